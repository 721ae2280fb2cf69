"""``analyze --netns all``: the namespaces table, then the busiest one's analysis, as text,
JSON (``ctguard.analyze/1`` plus ``global_max``, ``namespaces`` and ``note``) or CSV."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from ctguard.output.analyze_csv import render_analyze_csv
from ctguard.output.analyze_json import analyze_document
from ctguard.output.analyze_text import render_analyze_text
from ctguard.schemas import ANALYZE
from ctguard.usecases.analyze_namespaces import NamespaceRow, NamespacesReport


def _row(row: NamespaceRow) -> dict[str, Any]:
    data = asdict(row)
    data["names"], data["pids"] = list(row.names), list(row.pids)
    return data


def render_namespaces_json(report: NamespacesReport) -> str:
    document: dict[str, Any] = (
        analyze_document(report.busiest) if report.busiest else {"schema": ANALYZE}
    )
    document["global_max"] = report.global_max
    if report.busiest is None:
        document["note"] = report.note
    document["namespaces"] = [_row(row) for row in report.rows]
    return json.dumps(document) + "\n"


def render_namespaces_csv(report: NamespacesReport) -> str:
    lines = ["breakdown,key,count"]
    for row in report.rows:
        entries = "" if row.entries is None else row.entries
        lines.append(f"namespace,{row.inode} {row.holder},{entries}")
    text = "\n".join(lines) + "\n"
    if report.busiest:
        text += "".join(render_analyze_csv(report.busiest).splitlines(keepends=True)[1:])
    return text


def render_namespaces_text(report: NamespacesReport) -> str:
    out = [f"network namespaces (global nf_conntrack_max {report.global_max:,}), busiest first"]
    out.append(f"  {'inode':<12} {'entries':>10} {'of max':>7}  holder")
    for row in report.rows:
        entries = f"{row.entries:,}" if row.entries is not None else "?"
        share = f"{row.share_of_max:.1f}%" if row.share_of_max is not None else "-"
        note = f"  ({row.error})" if row.error else ""
        out.append(f"  {row.inode:<12} {entries:>10} {share:>7}  {row.holder}{note}")
    text = "\n".join(out) + "\n\n"
    return text + (render_analyze_text(report.busiest) if report.busiest else f"{report.note}\n")
