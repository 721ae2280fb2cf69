"""``ctguard disable --format json``: schema ``ctguard.disable/1``; keys are stable, a change that
breaks readers bumps the number."""

from __future__ import annotations

import json
from typing import Any

from ctguard.output.plan_text import file_diff
from ctguard.remediation.disable import DisablePlan
from ctguard.schemas import DISABLE as SCHEMA
from ctguard.usecases.disable import DisableReport


def disable_dict(plan: DisablePlan) -> dict[str, Any]:
    file = plan.modprobe_file
    return {
        "schema": SCHEMA,
        "source": "live" if plan.live else "snapshot",
        "netns": plan.netns,
        "kernel": plan.kernel,
        "conntrack": plan.presence,
        "evidence": plan.evidence,
        "status": plan.status,
        "exit_code": plan.exit_code,
        "holders": [
            {
                "module": h.module,
                "chain": list(h.chain),
                "refcount": h.refcount,
                "used_by": list(h.used_by),
            }
            for h in plan.holders
        ],
        "rules": [
            {"rule": r.rule, "verdict": r.verdict, "replacement": r.replacement, "reason": r.reason}
            for r in plan.rules
        ],
        "agents": [
            {"pid": a.pid, "program": a.program, "args": a.args, "why": a.why} for a in plan.agents
        ],
        "unload_order": list(plan.unload_order),
        "modprobe_file": None
        if file is None
        else {
            "path": file.path,
            "mode": f"{file.mode:04o}",
            "exists": file.before is not None,
            "content": file.after.decode("utf-8", "replace"),
            "diff": file_diff(file),
            "why": file.why,
        },
        "existing": list(plan.existing),
        "refusals": list(plan.refusals),
        "notes": [note.text for note in plan.notes],
    }


def render_disable_json(plan: DisablePlan, report: DisableReport | None = None) -> str:
    """The one document ``--format json`` prints; with ``report`` (--apply), its result."""
    document = disable_dict(plan)
    if report is not None:
        document["apply"] = {
            "status": report.status,
            "tree": report.tree,
            "would": list(report.would),
            "would_run": [list(argv) for argv in report.would_run],
            "done": list(report.done),
            "entry_id": report.entry_id,
        }
    return json.dumps(document, indent=2) + "\n"
