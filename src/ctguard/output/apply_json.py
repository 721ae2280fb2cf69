"""``ctguard apply --format json``: schema ``ctguard.apply/1``; keys are stable, a change
that breaks readers bumps the number."""

from __future__ import annotations

import json
from typing import Any

from ctguard.schemas import APPLY as SCHEMA
from ctguard.usecases.apply import ApplyReport


def apply_dict(report: ApplyReport) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "status": report.status,
        "root": report.root,
        "netns": report.netns,
        "plan_checksum": report.plan_checksum,
        "changed": list(report.changed),
        "in_place": list(report.in_place),
        "entry_id": report.entry_id,
        "undo": report.undo,
    }


def render_apply_json(report: ApplyReport) -> str:
    return json.dumps(apply_dict(report), indent=2) + "\n"
