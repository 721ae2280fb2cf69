"""Where a table comes from: /proc/net/nf_conntrack, ``conntrack -L``, or a snapshot.

/proc/net/nf_conntrack is the fastest live source when the kernel has it
(CONFIG_NF_CONNTRACK_PROCFS); otherwise ``conntrack -L`` streams the table
over ctnetlink and we scan its output as it arrives (measured against pyroute2's dump,
which costs ~235 us/entry: bench/analyze.py). A snapshot holds either
``proc/net/nf_conntrack`` or ``ctguard_commands/conntrack-L``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ctguard.host.commands import CAPTURE_DIR, Commands, capture_failures
from ctguard.host.root import HostRoot, unreadable
from ctguard.missing import Missing
from ctguard.table.reader import scan_stream
from ctguard.table.tally import Tally

PROC_TABLE = "/proc/net/nf_conntrack"
_NOT_READ = Missing("the host's addresses were not read")


@dataclass(frozen=True)
class TableRead:
    tally: Tally
    source: str  # what was read, for the report


def read_table(
    host: HostRoot,
    commands: Commands,
    source: str = "auto",
    by_sport: bool = True,
    exact_timeouts: bool = True,
    local: frozenset[bytes] | Missing = _NOT_READ,
    ephemeral: tuple[int, int] | None = None,
    by_address: bool = True,
) -> TableRead | Missing:
    """The whole table of the namespace ``host`` is read in (or of the snapshot).

    ``local``: that namespace's addresses as tables spell them (sources.local_addresses),
    which tell each entry's direction; Missing: why they are unknown. ``ephemeral``: its
    ip_local_port_range, to mark its own connections from other source ports.
    ``by_address`` False: entries per address are not counted (scanner.Accumulator)."""
    known = None if isinstance(local, Missing) else local
    read = _read_table(
        host, commands, source, by_sport, exact_timeouts, known, ephemeral, by_address
    )
    if isinstance(local, Missing) and not isinstance(read, Missing):
        read.tally.no_local_addresses = f"the host's addresses are unknown: {local.reason}"
    return read


def _read_table(
    host: HostRoot,
    commands: Commands,
    source: str,
    by_sport: bool,
    exact_timeouts: bool,
    local: frozenset[bytes] | None,
    ephemeral: tuple[int, int] | None = None,
    by_address: bool = True,
) -> TableRead | Missing:
    procfs_missing: Missing | None = None
    if source in ("auto", "procfs"):
        if host.exists(PROC_TABLE):
            try:
                with host.open_binary(PROC_TABLE) as stream:
                    tally = scan_stream(stream, by_sport, host.is_live, exact_timeouts, local,
                                        ephemeral, by_address)  # fmt: skip
            except OSError as exc:
                procfs_missing = unreadable(PROC_TABLE, exc)
            else:
                where = PROC_TABLE if host.is_live else f"snapshot {PROC_TABLE.lstrip('/')}"
                return TableRead(tally, where)
        elif host.is_live:
            procfs_missing = Missing(
                f"no {PROC_TABLE} (kernel built without CONFIG_NF_CONNTRACK_PROCFS)"
            )
        else:
            procfs_missing = _no_table_in(host)
        if source == "procfs":
            return procfs_missing
    # plain conntrack -L (not -o extended): both families, the family follows from the
    # addresses, and it prints less, which is what a full table's time goes on
    with commands.stream("conntrack-L") as stream:
        if isinstance(stream, Missing):
            if procfs_missing is not None and not host.is_live:
                return procfs_missing
            reasons = [m.reason for m in (procfs_missing, stream) if m is not None]
            return Missing("; ".join(reasons))
        tally = scan_stream(stream, by_sport, True, exact_timeouts, local, ephemeral, by_address)
    shown = "conntrack -L" if host.is_live else "snapshot ctguard_commands/conntrack-L"
    return TableRead(tally, shown)


def _no_table_in(snapshot: HostRoot) -> Missing:
    """Why a snapshot holds no table: what its capture recorded (a table too large to
    store, conntrack -L failing), else the usual cause."""
    failures = capture_failures(snapshot)
    why = [
        f"{what.lstrip('/')} not captured: {failures[what]}"
        for what in (PROC_TABLE, f"{CAPTURE_DIR}/conntrack-L")
        if failures.get(what)
    ]
    if why:
        return Missing(f"the snapshot holds no table: {'; '.join(why)}")
    return Missing(
        "the snapshot holds no table (proc/net/nf_conntrack or"
        " ctguard_commands/conntrack-L; was it taken with --no-table?)"
    )
