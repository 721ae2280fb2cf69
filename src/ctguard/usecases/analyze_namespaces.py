"""``ctguard analyze --netns all``: every namespace's share of the global table, busiest
first, then the full analysis of the busiest one."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ctguard.errors import CtguardError
from ctguard.host.root import HostRoot
from ctguard.usecases.analyze import AnalyzeOptions, AnalyzeReport, TableRead, build_report

COUNT_BUDGET = 30.0  # seconds for counting every namespace
ANALYZE_TIMEOUT = 300.0


@dataclass(frozen=True)
class NamespaceRow:
    inode: int
    names: tuple[str, ...]
    holder: str
    pids: tuple[int, ...]  # the first few processes in it
    initial: bool
    entries: int | None  # None: could not be counted (error says why)
    share_of_max: float | None  # % of the global nf_conntrack_max
    error: str | None


@dataclass(frozen=True)
class NamespacesReport:
    global_max: int
    rows: tuple[NamespaceRow, ...]  # busiest first
    busiest: AnalyzeReport | None  # None: no namespace holds an entry, or it was unreadable
    note: str  # why there is no analysis ("" when there is one)


def analyze_namespaces(options: AnalyzeOptions) -> NamespacesReport:
    from ctguard.host.commands import LiveCommands
    from ctguard.host.namespaces import list_namespaces, namespace_usage, run_in_namespace
    from ctguard.sources.sysctl_runtime import read_count, read_global_max
    from ctguard.table.source import TableRead as SourceRead
    from ctguard.table.summary import counts_addresses
    from ctguard.usecases.analyze import read_host_table

    if os.geteuid() != 0:
        raise CtguardError("--netns all needs root (setns into each namespace)")
    maximum = read_global_max(HostRoot("/")) or 0
    usages = namespace_usage(list_namespaces(), maximum, read_count, total=COUNT_BUDGET)
    rows = tuple(
        NamespaceRow(
            inode=u.namespace.inode,
            names=tuple(u.namespace.names),
            holder=u.namespace.holder,
            pids=tuple(u.namespace.pids[:8]),
            initial=u.namespace.initial,
            entries=u.count,
            share_of_max=None if (share := u.share()) is None else round(share, 2),
            error=u.error or None,
        )
        for u in usages
    )
    busiest = next((u for u in usages if u.count), None)
    if busiest is None:
        return NamespacesReport(maximum, rows, None, "no namespace holds any entry")
    ns = busiest.namespace
    by_sport = "sport" in options.breakdowns
    by_address = counts_addresses(options.breakdowns)

    def job() -> TableRead:
        return read_host_table(
            HostRoot("/"), LiveCommands(), options.source, by_sport, False, by_address
        )

    read = run_in_namespace(ns, job, ANALYZE_TIMEOUT)
    if not isinstance(read.table, SourceRead):
        why = f"cannot read the table of {ns.holder}: {read.table.reason}"
        return NamespacesReport(maximum, rows, None, why)
    label = ns.names[0] if ns.names else ns.holder
    report = build_report(
        read.table.tally,
        read.table.source,
        options.breakdowns,
        options.top,
        netns=label,
        local_ports=read.local_ports,
    )
    return NamespacesReport(maximum, rows, report, "")
