"""``ctguard notrack`` as text and JSON (formatting only)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ctguard.host.flow_watch import NewFlow
from ctguard.remediation.changes import RunCommand
from ctguard.remediation.notrack import NotrackPlan, describe_flow
from ctguard.schemas import NOTRACK as SCHEMA
from ctguard.schemas import NOTRACK_VERIFY as VERIFY_SCHEMA


def render_plan(plan: NotrackPlan, where: str, commands: Sequence[RunCommand]) -> str:
    lines = [f"ctguard notrack for {where}", f"backend: {plan.backend} ({plan.backend_why})", ""]
    lines.append("Untracked:")
    lines += [f"  {describe_flow(flow)}" for flow in plan.flows]
    if plan.refusals:
        lines.append("")
        for refusal in plan.refusals:
            lines.append(f"REFUSED: {refusal.reason}")
            lines += [f"    {rule}" for rule in refusal.rules]
            lines += [f"  instead: {fix}" for fix in refusal.fix]
    if plan.add and not plan.refusals:
        lines += ["", "Rules to add (each tagged with the comment ctguard):"]
        lines += [f"  {rule.shown()}" for rule in plan.add]
    if plan.present:
        lines += ["", "Already in place:"]
        lines += [f"  {rule.shown()}" for rule in plan.present]
    if commands and not plan.refusals:
        lines += ["", "Transactions (each atomic):"]
        for command in commands:
            lines.append(f"  # {command.what}")
            lines.append(f"  {' '.join(command.argv)} <<'EOF'")
            lines += [f"    {line}" for line in command.stdin.splitlines()]
            lines.append("  EOF")
    if plan.fates and not plan.refusals:
        lines += ["", "Check of the resulting ruleset (untracked packets):"]
        lines += [f"  {fate}" for fate in plan.fates]
    if plan.notes:
        lines += ["", "Notes:"]
        lines += [f"  - {note}" for note in plan.notes]
    if not plan.refusals:
        lines.append("")
        if not plan.add:
            lines.append("Nothing to add: every rule is already in place.")
        else:
            lines.append("Apply: add --apply (journalled; 'ctguard rollback' or --remove undoes)")
    return "\n".join(lines) + "\n"


def plan_json(plan: NotrackPlan, commands: Sequence[RunCommand]) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "backend": plan.backend,
        "backend_why": plan.backend_why,
        "untracked": [describe_flow(flow) for flow in plan.flows],
        "refused": plan.refused,
        "refusals": [
            {"reason": r.reason, "rules": list(r.rules), "fix": list(r.fix)} for r in plan.refusals
        ],
        "add": [rule.shown() for rule in plan.add],
        "present": [rule.shown() for rule in plan.present],
        "transactions": [{"argv": list(c.argv), "script": c.stdin} for c in commands],
        "check": list(plan.fates),
        "notes": list(plan.notes),
    }


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"


@dataclass(frozen=True)
class Verification:
    """What ``notrack --verify`` saw: the filter check and the new entries of the window."""

    fates: tuple[str, ...]  # one line per untracked flow
    dropped: tuple[str, ...]  # the flows the filter would drop
    window: float
    on_ports: tuple[NewFlow, ...]  # new entries on the untracked ports (should be none)
    others: int  # new entries for other traffic (some: conntrack is in use)
    exit_code: int


def render_verify(v: Verification) -> str:
    lines = ["Verify:"]
    lines += [f"  filter: {fate}" for fate in v.fates]
    lines.append(f"  new conntrack entries in {v.window:g} s: {len(v.on_ports)} on the untracked"
                 f" ports, {v.others} for other traffic")  # fmt: skip
    lines += [f"    tracked: {f.proto} sport {f.sport} dport {f.dport}" for f in v.on_ports[:10]]
    if v.dropped or v.on_ports:
        why = ["the filter drops untracked packets"] if v.dropped else []
        why += ["these ports are still tracked"] if v.on_ports else []
        lines.append("FAILED: " + "; ".join(why))
    elif v.others == 0:
        lines.append("INCONCLUSIVE: no other traffic created entries during the window"
                     " (is conntrack in use here?)")  # fmt: skip
    else:
        lines.append("OK: the ports create no entries while other traffic still does")
    return "\n".join(lines) + "\n"


def verify_json(v: Verification) -> dict[str, Any]:
    return {
        "schema": VERIFY_SCHEMA,
        "filter": list(v.fates),
        "filter_drops": list(v.dropped),
        "window_seconds": v.window,
        "new_entries_on_ports": len(v.on_ports),
        "new_entries_other": v.others,
        "exit_code": v.exit_code,
    }
