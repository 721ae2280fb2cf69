"""``ctguard analyze --netns all``: every namespace's share of the global table, busiest first,
then the full analysis of the busiest one."""

from __future__ import annotations

import json
import os
from typing import Any

from ctguard.cli.emit import emit
from ctguard.errors import CtguardError

COUNT_BUDGET = 30.0  # seconds for counting every namespace
ANALYZE_TIMEOUT = 300.0


def usage_rows(usages: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "inode": u.namespace.inode,
            "names": list(u.namespace.names),
            "holder": u.namespace.holder,
            "pids": list(u.namespace.pids[:8]),
            "initial": u.namespace.initial,
            "entries": u.count,
            "share_of_max": None if u.share() is None else round(u.share(), 2),
            "error": u.error or None,
        }
        for u in usages
    ]


def analyze_all_namespaces(
    source: str, breakdowns: tuple[str, ...], top: int | None, fmt: str
) -> int:
    from ctguard.cli.analyze import _Read, _read_host, _render
    from ctguard.host.namespaces import list_namespaces, namespace_usage, run_in_namespace
    from ctguard.host.root import HostRoot
    from ctguard.output.analyze_json import analyze_document
    from ctguard.sources.sysctl_runtime import read_global_max
    from ctguard.table.source import TableRead
    from ctguard.usecases.analyze import build_report

    if os.geteuid() != 0:
        raise CtguardError("--netns all needs root (setns into each namespace)")
    maximum = read_global_max(HostRoot("/")) or 0
    usages = namespace_usage(list_namespaces(), maximum, total=COUNT_BUDGET)
    rows = usage_rows(usages)
    busiest = next((u for u in usages if u.count), None)
    report = None
    why = "no namespace holds any entry"
    if busiest is not None:
        ns = busiest.namespace
        by_sport = "sport" in breakdowns

        def job() -> _Read:
            return _read_host("/", source, by_sport, True, False)

        read = run_in_namespace(ns, job, ANALYZE_TIMEOUT)
        if isinstance(read.table, TableRead):
            label = ns.names[0] if ns.names else ns.holder
            report = build_report(read.table.tally, read.table.source, breakdowns, top, netns=label)
        else:
            why = f"cannot read the table of {ns.holder}: {read.table.reason}"
    if fmt == "json":
        document: dict[str, Any] = (
            analyze_document(report) if report else {"schema": "ctguard.analyze/1"}
        )
        document["global_max"] = maximum
        if report is None:
            document["note"] = why
        document["namespaces"] = rows
        emit(json.dumps(document) + "\n")
        return 0
    if fmt == "csv":
        lines = ["breakdown,key,count"]
        for r in rows:
            entries = "" if r["entries"] is None else r["entries"]
            lines.append(f"namespace,{r['inode']} {r['holder']},{entries}")
        text = "\n".join(lines) + "\n"
        if report:
            text += "".join(_render(report, "csv").splitlines(keepends=True)[1:])
        emit(text)
        return 0
    out = [f"network namespaces (global nf_conntrack_max {maximum:,}), busiest first"]
    out.append(f"  {'inode':<12} {'entries':>10} {'of max':>7}  holder")
    for r in rows:
        entries = f"{r['entries']:,}" if r["entries"] is not None else "?"
        share = f"{r['share_of_max']:.1f}%" if r["share_of_max"] is not None else "-"
        note = f"  ({r['error']})" if r["error"] else ""
        out.append(f"  {r['inode']:<12} {entries:>10} {share:>7}  {r['holder']}{note}")
    text = "\n".join(out) + "\n\n"
    text += _render(report, "text") if report else f"{why}\n"
    emit(text)
    return 0
