"""The phrases every ``ctguard report`` format shares: a host's name, a finding's
headline, a count of hosts. Text, CSV and HTML never show a whole machine id (the first
characters tell hosts apart; the id itself is for JSON and CSV, which carry it whole)."""

from __future__ import annotations

from ctguard.findings import Severity
from ctguard.usecases.report import FindingSpread, HostReading

ORDER = (Severity.CRITICAL, Severity.WARNING, Severity.INFO)


def hosts(n: int) -> str:
    """A count of hosts in words.

    >>> hosts(1), hosts(37)
    ('1 host', '37 hosts')
    """
    return f"{n:,} host" if n == 1 else f"{n:,} hosts"


def host_name(host: HostReading) -> str:
    """The hostname with the start of its machine id; the input's path for a host that
    named neither."""
    if host.short_id is None:
        return host.label
    return f"{host.label} ({host.short_id})"


def headline(spread: FindingSpread) -> str:
    """'CT304 critical on 37 hosts: firewall service restart resets conntrack settings'"""
    return f"{spread.id} {spread.worst.value} on {hosts(len(spread.hosts))}: {spread.title}"


def mix(spread: FindingSpread) -> str:
    """How many hosts at each severity, worst first: '2 critical, 35 warning'."""
    return ", ".join(f"{spread.count(s)} {s.value}" for s in ORDER if spread.count(s))
