"""Conntrack counters: ``/proc/net/stat/nf_conntrack``, ``conntrack -S``, or ctnetlink.

All three name the same per-CPU counters differently; records use one canonical name
per counter so rules and ``status`` never care where a number came from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from ctguard.errors import ParseError
from ctguard.host.caps import PROC_LIST_BYTES
from ctguard.host.commands import NETLINK_STATS, Commands
from ctguard.host.root import HostRoot
from ctguard.missing import Missing
from ctguard.sources.modules import ctnetlink_absent_reason

STAT_FILE = "/proc/net/stat/nf_conntrack"
# the same file under a thread's /proc (/proc/net follows the main thread's namespace):
# host/netns_thread.py reads namespaces from a thread
STAT_FILE_UNDER = "/net/stat/nf_conntrack"
_HEX = re.compile(r"[0-9a-fA-F]{1,16}")
_DECIMAL = re.compile(r"[0-9]{1,20}")

# Names differ between the procfs header, `conntrack -S` and netlink attributes.
_CANONICAL = {
    "clashres": "clash_resolve",  # procfs 5.10+, the column that was `searched` before
    "chainlength": "chaintoolong",  # procfs header keeps the old word, 5.15+
    "chain_toolong": "chaintoolong",  # netlink CTA_STATS_CHAIN_TOOLONG
    "icmp_error": "error",  # procfs calls `conntrack -S`'s error icmp_error
}


def canonical(name: str) -> str:
    return _CANONICAL.get(name, name)


@dataclass(frozen=True)
class ConntrackStats:
    """Counters summed over CPUs; ``entries`` is the table count when the source has it."""

    source: str
    cpus: int
    totals: Mapping[str, int]
    entries: int | None = None
    fallback_reason: str | None = None  # why procfs was not the source

    def get(self, name: str) -> int | None:
        return self.totals.get(canonical(name))


@dataclass(frozen=True)
class CounterBaseline:
    """Counters ``ctguard apply`` recorded just before it changed this target (its journal
    entry), read back for the doctor: in this boot and namespace, or not at all."""

    taken: str  # ISO 8601 UTC: when the apply started
    entry: str  # the journal entry's id
    counters: Mapping[str, int]
    same_table: bool = True  # False: a tree without a boot id, the table was not compared


# the netlink readers (ctnetlink, `conntrack -S`) print the same counters
NETLINK_SOURCES = ("netlink", "conntrack -S")


def stats_source(stats: ConntrackStats | Missing) -> str:
    """Where counters came from, in the exporter's words: procfs, netlink or none."""
    if isinstance(stats, Missing):
        return "none"
    return "netlink" if stats.source in NETLINK_SOURCES else stats.source


def parse_stat_file(text: str) -> ConntrackStats:
    """Parse ``/proc/net/stat/nf_conntrack``: a header, then one hex line per CPU.

    Columns are taken by header name; ``entries`` is global, so it is taken once.

    >>> s = parse_stat_file(
    ...     "entries  clashres found new invalid ignore delete chainlength insert "
    ...     "insert_failed drop early_drop icmp_error  expect_new expect_create "
    ...     "expect_delete search_restart\\n"
    ...     "00000021  00000000 00000000 00000000 00000003 00000000 00000000 00000000 "
    ...     "0000002a 00000000 00000002 00000000 00000000  00000000 00000000 00000000 "
    ...     "00000000\\n")
    >>> (s.entries, s.get("insert"), s.get("drop"), s.get("icmp_error"))
    (33, 42, 2, 0)
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ParseError(f"{STAT_FILE}: empty")
    header = [canonical(h) for h in lines[0].split()]
    if not header or any(not h.replace("_", "").isalpha() for h in header):
        raise ParseError(f"{STAT_FILE}: first line is not a header of counter names")
    if len(set(header)) != len(header):
        raise ParseError(f"{STAT_FILE}: header repeats a column name")
    totals = dict.fromkeys(header, 0)
    entries: int | None = None
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split()
        if len(cells) != len(header):
            raise ParseError(
                f"{STAT_FILE} line {number}: {len(cells)} values for {len(header)} columns"
            )
        if not all(_HEX.fullmatch(c) for c in cells):
            raise ParseError(f"{STAT_FILE} line {number}: not hexadecimal: {line[:60]!r}")
        values = [int(c, 16) for c in cells]
        for name, value in zip(header, values, strict=True):
            totals[name] += value
        if "entries" in header and entries is None:
            entries = values[header.index("entries")]
    if len(lines) == 1:
        raise ParseError(f"{STAT_FILE}: header but no per-CPU lines")
    totals.pop("entries", None)
    return ConntrackStats("procfs", len(lines) - 1, totals, entries)


def parse_conntrack_s(text: str, source: str = "conntrack -S") -> ConntrackStats:
    """Parse ``conntrack -S`` (also our netlink capture, printed the same way).

    >>> s = parse_conntrack_s(
    ...     "cpu=0   \\tfound=0 invalid=3 insert=0 insert_failed=0 drop=0 early_drop=1 "
    ...     "error=0 search_restart=0 clash_resolve=0 chaintoolong=0 \\n"
    ...     "cpu=1   \\tfound=0 invalid=1 insert=0 insert_failed=0 drop=0 early_drop=0 "
    ...     "error=0 search_restart=0 clash_resolve=0 chaintoolong=0 \\n")
    >>> (s.cpus, s.get("invalid"), s.get("early_drop"))
    (2, 4, 1)
    """
    totals: dict[str, int] = {}
    entries: int | None = None
    cpus = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        pairs: dict[str, int] = {}
        for token in line.split():
            key, sep, raw = token.partition("=")
            if not sep or not key:
                raise ParseError(f"{source} line {number}: expected name=value, got {token[:40]!r}")
            if not _DECIMAL.fullmatch(raw):
                raise ParseError(f"{source} line {number}: {key[:40]} is not a number")
            pairs[canonical(key)] = int(raw)
        if "cpu" not in pairs:
            raise ParseError(f"{source} line {number}: no cpu= field")
        cpus += 1
        pairs.pop("cpu")
        if "entries" in pairs:  # older conntrack-tools printed it on every line
            count = pairs.pop("entries")
            entries = count if entries is None else entries
        for name, value in pairs.items():
            totals[name] = totals.get(name, 0) + value
    if cpus == 0:
        raise ParseError(f"{source}: no per-CPU lines")
    return ConntrackStats(source, cpus, totals, entries)


def read_stats(
    host: HostRoot, commands: Commands, stat_file: str = STAT_FILE
) -> ConntrackStats | Missing:
    """Counters from the best source: procfs (``stat_file``), then netlink, then
    ``conntrack -S``.

    A fallback says why procfs was not used (``fallback_reason``). On a live host the
    netlink sources are asked only where that cannot load a module.
    """
    text = host.try_read_text(stat_file, PROC_LIST_BYTES)
    if not isinstance(text, Missing):
        return parse_stat_file(text)
    reasons = [text.reason]
    blocked = ctnetlink_absent_reason(host) if host.is_live else None
    if blocked:
        return Missing("no conntrack counters: " + "; ".join([*reasons, blocked]))
    netlink = commands.output(NETLINK_STATS)
    if not isinstance(netlink, Missing):
        return replace(parse_conntrack_s(netlink, source="netlink"), fallback_reason=text.reason)
    reasons.append(netlink.reason)
    tool = commands.output("conntrack-S")
    if not isinstance(tool, Missing):
        return replace(parse_conntrack_s(tool), fallback_reason=text.reason)
    reasons.append(tool.reason)
    return Missing("no conntrack counters: " + "; ".join(reasons))
