"""``ctguard analyze``: what fills the table, in one pass: live, in a namespace, from a
snapshot, a dump file or stdin (``--netns all`` is ``analyze_namespaces``)."""

from __future__ import annotations

import ipaddress
import os
import sys
from dataclasses import dataclass

from ctguard.errors import CtguardError, UsageError
from ctguard.host.commands import Commands
from ctguard.host.root import HostRoot
from ctguard.host.target import Target, open_target
from ctguard.missing import Missing
from ctguard.sources.local_addresses import LocalAddresses, read_local_addresses
from ctguard.sources.local_port_range import (
    DEFAULT_LOCAL_PORT_RANGE,
    LocalPortRange,
    ephemeral_range,
    read_local_port_range,
)
from ctguard.sources.sysctl_runtime import read_conntrack_sysctls
from ctguard.table.candidates import Candidates, notrack_candidates
from ctguard.table.reader import DAMAGED_DUMP, dump_damage, gunzipped, scan_path, scan_stream
from ctguard.table.scanner import IMPLEMENTATION
from ctguard.table.source import TableRead as SourceRead
from ctguard.table.source import read_table
from ctguard.table.summary import (
    BREAKDOWNS,
    DEFAULT_BREAKDOWNS,
    TableSummary,
    counts_addresses,
    summarize,
)
from ctguard.table.tally import Tally
from ctguard.table.whatif import WhatIf, current_timeouts, what_if


@dataclass(frozen=True)
class AnalyzeReport:
    source: str
    scanner: str
    summary: TableSummary
    breakdowns: tuple[str, ...]
    top: int | None  # None: every row
    candidates: Candidates
    what_if: list[WhatIf] | None
    netns: str | None = None


def parse_local_addresses(spec: str) -> LocalAddresses:
    """``--local-address 10.0.0.10,2001:db8::10``.

    >>> sorted(parse_local_addresses("10.0.0.10, 2001:DB8::10").addresses)
    ['10.0.0.10', '2001:db8::10']
    """
    words = [word.strip() for word in spec.split(",") if word.strip()]
    for word in words:  # ipaddress takes fe80::1%eth0, then fails on its own spelling of it
        if "%" in word:
            raise ValueError(
                f"--local-address {word!r}: a table entry's address has no zone (%...);"
                " leave it out"
            )
    try:
        found = frozenset(ipaddress.ip_address(word).compressed for word in words)
    except ValueError as exc:
        raise ValueError(f"--local-address {spec!r}: {exc}") from None
    if not found:
        raise ValueError("--local-address: name at least one address")
    return LocalAddresses(found)


def parse_breakdowns(spec: str | None) -> tuple[str, ...]:
    """``--by dport,src`` / ``--by all`` / default.

    >>> parse_breakdowns("dport, src")
    ('dport', 'src')
    """
    if spec is None:
        return DEFAULT_BREAKDOWNS
    names = tuple(part.strip() for part in spec.split(",") if part.strip())
    if names == ("all",):
        return BREAKDOWNS
    unknown = [name for name in names if name not in BREAKDOWNS]
    if unknown or not names:
        raise ValueError(f"--by {spec!r}: choose from {', '.join(BREAKDOWNS)} (or all)")
    return names


def build_report(
    tally: Tally,
    source: str,
    breakdowns: tuple[str, ...] = DEFAULT_BREAKDOWNS,
    top: int | None = 10,
    sysctls: dict[str, int] | None = None,
    proposed: dict[str, int] | None = None,
    netns: str | None = None,
    local_ports: LocalPortRange | None = None,
) -> AnalyzeReport:
    """``local_ports``: the host's ip_local_port_range (None: unread, the kernel default)."""
    summary = summarize(tally, top)
    rows = None
    if proposed is not None:
        rows = what_if(tally, current_timeouts(sysctls or {}), proposed)
    return AnalyzeReport(
        source=source,
        scanner=IMPLEMENTATION,
        summary=summary,
        breakdowns=breakdowns,
        top=top,
        candidates=notrack_candidates(summary, ephemeral_range(local_ports)),
        what_if=rows,
        netns=netns,
    )


@dataclass(frozen=True)
class AnalyzeOptions:
    breakdowns: tuple[str, ...] = DEFAULT_BREAKDOWNS
    top: int | None = 10  # rows per breakdown; None: every row
    source: str = "auto"  # live table: auto, procfs or netlink
    what_if: dict[str, int] | None = None  # short timeout name -> proposed seconds
    # a dump file's host addresses (--local-address); None: the file's directions unknown
    local_addresses: LocalAddresses | None = None


@dataclass(frozen=True)
class TableRead:
    """What one reading job brings back (picklable, so it crosses from a namespace)."""

    table: SourceRead | Missing
    sysctls: dict[str, int]  # the nf_conntrack_* values, for --what-if; empty: unreadable
    local_ports: LocalPortRange | None = None  # ip_local_port_range; None: unreadable


def _sysctls(host: HostRoot) -> dict[str, int]:
    values = read_conntrack_sysctls(host)
    return {} if isinstance(values, Missing) else dict(values.values)


def read_host_table(
    host: HostRoot,
    commands: Commands,
    source: str,
    by_sport: bool,
    exact: bool,
    by_address: bool = True,
) -> TableRead:
    """The table and the timeouts of a host, a namespace (run inside it) or a snapshot."""
    ports = _local_ports(host)
    local = _local_spellings(host, commands)
    table = read_table(
        host, commands, source, by_sport, exact, local, ephemeral_range(ports), by_address
    )
    return TableRead(table, _sysctls(host), ports)


def _local_spellings(host: HostRoot, commands: Commands) -> frozenset[bytes] | Missing:
    addresses = read_local_addresses(host, commands)
    return addresses if isinstance(addresses, Missing) else addresses.spellings()


def _local_ports(host: HostRoot) -> LocalPortRange | None:
    try:
        ports = read_local_port_range(host)
    except CtguardError:  # a ParseError: unreadable is unread here
        return None
    return None if isinstance(ports, Missing) else ports


def _read_dump(
    path: str,
    by_sport: bool,
    exact: bool,
    addresses: LocalAddresses | Missing | None,
    ephemeral: tuple[int, int] = DEFAULT_LOCAL_PORT_RANGE,
    by_address: bool = True,
) -> SourceRead:
    """A dump file (procfs or ``conntrack -L`` text, plain or gzip), or ``-`` for stdin.
    ``addresses``: its host's (--local-address, or the --root snapshot's); Missing: why the
    snapshot's are unknown; None: no host named."""
    local = addresses.spellings() if isinstance(addresses, LocalAddresses) else None
    tally = _scan_dump(path, by_sport, exact, local, ephemeral, by_address)
    if addresses is None:
        tally.no_local_addresses = (
            "a dump file does not say which addresses were its host's (--local-address)"
        )
    elif isinstance(addresses, Missing):
        tally.no_local_addresses = (
            f"the snapshot's addresses are unknown ({addresses.reason}); name the dump's"
            " host's with --local-address"
        )
    return SourceRead(tally, "stdin" if path == "-" else path)


def _scan_dump(
    path: str,
    by_sport: bool,
    exact: bool,
    local: frozenset[bytes] | None,
    ephemeral: tuple[int, int],
    by_address: bool = True,
) -> Tally:
    if path == "-":
        try:
            stdin = gunzipped(sys.stdin.buffer)
            return scan_stream(stdin, by_sport, False, exact, local, ephemeral, by_address)
        except DAMAGED_DUMP as exc:
            raise CtguardError(f"stdin: {dump_damage(exc)}") from None
    try:
        return scan_path(path, by_sport, exact_timeouts=exact, local=local, ephemeral=ephemeral,
                         by_address=by_address)  # fmt: skip
    except FileNotFoundError:
        raise CtguardError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CtguardError(f"{path} is a directory (use --root DIR for a snapshot)") from None
    except DAMAGED_DUMP as exc:
        raise CtguardError(f"{path}: {dump_damage(exc)}") from None


def _read(target: Target, dump: str | None, options: AnalyzeOptions) -> TableRead:
    by_sport, exact = "sport" in options.breakdowns, options.what_if is not None
    by_address = counts_addresses(options.breakdowns)
    if dump is not None and target.netns is not None:
        raise UsageError("a FILE and --netns cannot be combined")
    if target.live and target.netns is None and dump is None and os.geteuid() != 0:
        raise CtguardError("reading the live table needs root (/proc/net/nf_conntrack is 0440)")
    with open_target(target) as opened:
        if dump is None:
            return opened.run(
                lambda host, commands: read_host_table(
                    host, commands, options.source, by_sport, exact, by_address
                ),
                timeout=300,
            )
        # the file is the table; the host (or snapshot) lends its timeouts, its
        # ip_local_port_range and, unless --local-address names them, its addresses
        sysctls = _sysctls(opened.host) if exact or not target.live else {}
        addresses: LocalAddresses | Missing | None = options.local_addresses
        if addresses is None and not target.live:
            addresses = read_local_addresses(opened.host, opened.commands)
        ports = _local_ports(opened.host) if not target.live else None
        table = _read_dump(dump, by_sport, exact, addresses, ephemeral_range(ports), by_address)
        return TableRead(table, sysctls, ports)


def analyze(target: Target, options: AnalyzeOptions, dump: str | None = None) -> AnalyzeReport:
    """What fills the table of the target, or of ``dump`` (a file, ``-`` for stdin)."""
    read = _read(target, dump, options)
    table = read.table
    if isinstance(table, Missing):
        raise CtguardError(f"cannot read the conntrack table: {table.reason}")
    tally = table.tally
    if tally.entries == 0 and tally.bad > 0:
        raise CtguardError(
            f"{table.source}: no conntrack entries in {tally.lines} lines "
            f"(line {tally.first_bad}: {tally.first_bad_text[:60].decode('utf-8', 'replace')!r})"
        )
    return build_report(
        tally,
        table.source,
        options.breakdowns,
        options.top,
        read.sysctls,
        options.what_if,
        target.netns,
        read.local_ports,
    )
