"""``status --format json``: schema ``ctguard.status/1`` (docs/json-schemas.md)."""

from __future__ import annotations

import json
from typing import Any

from ctguard.schemas import STATUS as SCHEMA
from ctguard.usecases.status import StatusReport


def status_dict(report: StatusReport) -> dict[str, Any]:
    p = report.presence
    memory = report.memory
    counters = report.counters
    return {
        "schema": SCHEMA,
        "netns": report.netns,
        "kernel": report.kernel,
        "conntrack": {
            "presence": p.kind,
            "loaded": p.loaded,
            "initstate": p.initstate,
            "hashsize_param": p.hashsize,
            "holders": list(p.holders),
            "evidence": p.evidence,
        },
        "table": {
            "count": report.count,
            "max": report.max,
            "usage_percent": report.usage_percent,
            "buckets": report.buckets,
            "max_per_bucket": report.entries_per_bucket,
        },
        "memory": None
        if memory is None
        else {
            "mem_total_bytes": memory.mem_total,
            "entry_bytes": memory.entry_bytes,
            "entry_source": memory.entry_source,
            "at_count_bytes": memory.at_count,
            "at_count_percent": memory.percent(memory.at_count),
            "at_max_bytes": memory.at_max,
            "at_max_percent": memory.percent(memory.at_max),
        },
        "counters": None
        if counters is None
        else {
            "source": counters.source,
            "mode": counters.mode,
            "interval_seconds": counters.interval,
            **counters.values,
        },
        "sysctls": dict(report.sysctls),
        "notes": list(report.notes),
    }


def render_status_json(report: StatusReport) -> str:
    return json.dumps(status_dict(report), indent=2, sort_keys=False) + "\n"
