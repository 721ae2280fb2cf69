"""``analyze --format json`` (schema ctguard.analyze/1): lists sorted by count, most first,
ties by key; ``--top 0`` keeps every row."""

from __future__ import annotations

import json
from collections.abc import Mapping
from operator import itemgetter
from typing import Any

from ctguard.schemas import ANALYZE as SCHEMA
from ctguard.table.keys import HISTOGRAM_BOUNDS
from ctguard.usecases.analyze import AnalyzeReport


def histogram_labels() -> list[str]:
    def label(seconds: int) -> str:
        if seconds % 86400 == 0:
            return f"{seconds // 86400}d"
        if seconds % 3600 == 0:
            return f"{seconds // 3600}h"
        return f"{seconds}s"

    labels = [f"<={label(bound)}" for bound in HISTOGRAM_BOUNDS]
    return [*labels, f">{label(HISTOGRAM_BOUNDS[-1])}"]


def _rows(
    counts: Mapping[Any, int], fields: tuple[str, ...], top: int | None
) -> list[dict[str, Any]]:
    ordered = sorted(counts.items())
    ordered.sort(key=itemgetter(1), reverse=True)  # stable: ties stay in key order
    if top is not None:
        ordered = ordered[:top]
    rows = []
    for key, count in ordered:
        values = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(fields, values, strict=True)), "count": count})
    return rows


def analyze_document(report: AnalyzeReport) -> dict[str, Any]:
    s = report.summary
    top = report.top
    by: dict[str, Any] = {"family": _rows(s.families, ("family",), None)}
    wanted = set(report.breakdowns)
    if "protocol" in wanted:
        by["protocol"] = _rows(s.protocols, ("protocol",), None)
    if "state" in wanted:
        by["state"] = _rows(s.states, ("protocol", "state"), None)
    if "dport" in wanted:
        by["dport"] = [
            {**row, "nat": s.dports_nat.get((row["protocol"], row["port"]), 0)}
            for row in _rows(s.dports, ("protocol", "port"), top)
        ]
    if "sport" in wanted:
        by["sport"] = [{"protocol": p, "port": n, "count": c} for (p, n), c in s.sports]
    if "src" in wanted:
        by["src"] = [{"address": a, "count": c} for a, c in s.sources]
    if "dst" in wanted:
        by["dst"] = [{"address": a, "count": c} for a, c in s.destinations]
    if "zone" in wanted:
        by["zone"] = _rows(s.zones, ("zone",), top)
    if "mark" in wanted:
        by["mark"] = _rows(s.marks, ("mark",), top)
    if "flags" in wanted:
        by["flags"] = {
            "assured": s.assured,
            "unreplied": s.unreplied,
            "offload": s.offloaded - s.hw_offloaded,
            "hw_offload": s.hw_offloaded,
        }
    if "nat" in wanted:
        by["nat"] = {"nated": s.nated, "not_nated": s.entries - s.nated}
    if "timeout" in wanted:
        labels = histogram_labels()
        by["timeout"] = [
            {
                "protocol": protocol,
                "state": state or None,
                "histogram": dict(zip(labels, histogram, strict=True)),
            }
            for (protocol, state), histogram in sorted(
                s.timeouts.items(), key=lambda kv: (-sum(kv[1]), kv[0])
            )
        ]
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "source": report.source,
        "netns": report.netns,
        "scanner": report.scanner,
        "entries": s.entries,
        "lines": s.lines,
        "bad_lines": {
            "count": s.bad_lines,
            "first_line": s.first_bad_line,
            "first_text": s.first_bad_text,
        },
        "by": by,
        "no_timeout": s.no_timeout,
        "distinct": {"src": s.distinct_sources, "dst": s.distinct_destinations},
        "notrack_candidates": [
            {
                "protocol": c.protocol,
                "port": c.port,
                "direction": c.direction,
                "entries": c.entries,
                "share": round(c.share, 2),
                "split": dict(c.split),
                "command": c.command,
            }
            for c in report.candidates.rows
        ],
        "notrack_passed_over": [
            {
                "protocol": p.protocol,
                "port": p.port,
                "entries": p.entries,
                "share": round(p.share, 2),
                "why": p.why,
            }
            for p in report.candidates.passed_over
        ],
        "notrack_skipped": report.candidates.skipped or None,
    }
    if report.what_if is not None:
        document["what_if"] = [
            {
                "timeout": row.timeout,
                "current": row.current,
                "proposed": row.proposed,
                "affected": row.affected,
                "expired": row.expired,
                "expired_share": round(100.0 * row.expired / s.entries, 2) if s.entries else 0.0,
            }
            for row in report.what_if
        ]
    return document


def render_analyze_json(report: AnalyzeReport) -> str:
    # one line: the C encoder (indent= would switch to the pure-Python one, 20x slower
    # on a full --top 0 document); pipe to `jq .` to read it
    return json.dumps(analyze_document(report)) + "\n"
