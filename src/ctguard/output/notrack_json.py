"""``ctguard notrack --format json`` (schema ``ctguard.notrack/1``) and
``notrack --verify --format json`` (schema ``ctguard.notrack-verify/2``)."""

from __future__ import annotations

import json
from typing import Any

from ctguard.remediation.notrack import describe_flow
from ctguard.schemas import NOTRACK, NOTRACK_VERIFY
from ctguard.usecases.notrack import NotrackReport, Verification


def plan_json(report: NotrackReport) -> dict[str, Any]:
    plan = report.plan
    return {
        "schema": NOTRACK,
        "backend": plan.backend,
        "backend_why": plan.backend_why,
        "untracked": [describe_flow(flow) for flow in plan.flows],
        "refused": plan.refused,
        "refusals": [
            {"reason": r.reason, "rules": list(r.rules), "fix": list(r.fix)} for r in plan.refusals
        ],
        "add": [rule.shown() for rule in plan.add],
        "present": [rule.shown() for rule in plan.present],
        "transactions": [{"argv": list(c.argv), "script": c.stdin} for c in report.commands],
        "check": list(plan.fates),
        "notes": list(plan.notes),
    }


def verify_json(v: Verification) -> dict[str, Any]:
    return {
        "schema": NOTRACK_VERIFY,
        "filter": list(v.fates),
        "filter_drops": list(v.dropped),
        "window_seconds": v.window,
        "new_entries_on_ports": len(v.on_ports),
        "new_entries_other": v.others,
        "exit_code": v.exit_code,
    }


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"


def render_notrack_json(report: NotrackReport) -> str:
    return dumps(plan_json(report))


def render_verify_json(v: Verification) -> str:
    return dumps(verify_json(v))
