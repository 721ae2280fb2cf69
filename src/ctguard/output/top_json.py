"""``top --format json``: one ``ctguard.top/1`` object per frame, one per line (JSON Lines:
``--once`` prints one; a live run prints one each refresh)."""

from __future__ import annotations

import json
from typing import Any

from ctguard.schemas import TOP
from ctguard.usecases.top import NamespaceShare, Rates, TableView, TopFrame


def _rates(rates: Rates) -> dict[str, Any]:
    per_second = {k: None if v is None else round(v, 2) for k, v in rates.values.items()}
    return {
        "seconds": round(rates.seconds, 3),
        "per_second": per_second,
        "new_lower_bound": rates.new_lower_bound,
    }


def _table(table: TableView) -> dict[str, Any]:
    return {
        "source": table.source,
        "entries": table.entries,
        "bad_lines": table.bad_lines,
        "ports": [{"protocol": p, "port": n, "entries": c} for p, n, c in table.ports],
        "sources": [{"address": a, "entries": c} for a, c in table.sources],
        "states": [{"protocol": p, "state": s, "entries": c} for p, s, c in table.states],
    }


def _namespace(share: NamespaceShare) -> dict[str, Any]:
    return {
        "label": share.label,
        "inode": share.inode,
        "count": share.count,
        "share": share.share,
        "error": share.error or None,
    }


def top_document(frame: TopFrame) -> dict[str, Any]:
    namespaces = frame.namespaces
    return {
        "schema": TOP,
        "time": round(frame.time, 3),
        "netns": frame.netns,
        "count": frame.count,
        "max": frame.max,
        "usage_percent": frame.usage_percent,
        "rates": None if frame.rates is None else _rates(frame.rates),
        "counter_source": frame.counter_source,
        "table": None if frame.table is None else _table(frame.table),
        "table_age": frame.table_age,
        "table_cost": frame.table_cost,
        "table_next": frame.table_next,
        "namespaces": None if namespaces is None else [_namespace(n) for n in namespaces],
        "notes": list(frame.notes),
    }


def render_top_json(frame: TopFrame) -> str:
    return json.dumps(top_document(frame)) + "\n"
