"""``ctguard plan`` as text: values before -> after with their memory cost, then the exact
files (unified diffs) and runtime commands, then what was left alone and why."""

from __future__ import annotations

import difflib

from ctguard.missing import Missing
from ctguard.model.sizing import Sizing, SizingTarget
from ctguard.model.units import human_bytes
from ctguard.remediation.changes import OURS, SetSysctl, WriteFile
from ctguard.remediation.plan import Plan
from ctguard.usecases.plan import PlanReport


def _value(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def _target_line(t: SizingTarget) -> str:
    arrow = (
        f"{_value(t.current)} -> {_value(t.value)}" if t.changes else f"{_value(t.value)} (kept)"
    )
    cost = f"   [{human_bytes(t.bytes)}, {t.pct:.2f} % of RAM]" if t.bytes else ""
    was = ""
    if t.changes and t.current_bytes and t.current_pct is not None:
        was = f"\n      today's value lets entries take {human_bytes(t.current_bytes)}"
        was += f" ({t.current_pct:.1f} % of RAM)"
    return f"  {t.name:<44} {arrow}{cost}\n      {t.reason}{was}"


def file_diff(change: WriteFile) -> str:
    old = (change.before or b"").decode("utf-8", "replace").splitlines(keepends=True)
    new = change.after.decode("utf-8", "replace").splitlines(keepends=True)
    before_name = change.path if change.before is not None else "/dev/null"
    lines = difflib.unified_diff(old, new, before_name, change.path)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def runtime_command(change: SetSysctl, netns: str | None) -> str:
    prefix = f"ip netns exec {netns} " if netns else ""
    if change.path.startswith("/proc/sys/"):
        key = change.path.removeprefix("/proc/sys/").replace("/", ".")
        return f"{prefix}sysctl -w {key}={change.after}"
    return f"{prefix}echo {change.after} > {change.path}"


def _sizing(sizing: Sizing | Missing) -> list[str]:
    if isinstance(sizing, Missing):
        return [f"  table size not planned: {sizing.reason}"]
    budget = f"budget {human_bytes(sizing.budget_bytes)}"
    if sizing.table_bytes > sizing.budget_bytes and sizing.refusal is None:
        budget += " (what a plan may add above the operator's max)"
    return [
        _target_line(sizing.max),
        _target_line(sizing.buckets),
        f"  a full table at these values: {human_bytes(sizing.table_bytes)}"
        f" ({sizing.table_pct:.2f} % of MemTotal); {budget}",
    ]


def render_plan_text(plan: Plan, host: str, hint: bool = True) -> str:
    out = [f"ctguard plan for {host}" + (f", namespace {plan.netns}" if plan.netns else "")]
    if plan.refusal:
        state = "FORCED (--force)" if plan.forced else "REFUSED (exit 2; --force overrides)"
        out += ["", f"{state}: {plan.refusal}"]
    out += ["", "Values", *_sizing(plan.sizing)]
    out += [_target_line(t) for t in plan.timeouts]
    if plan.addresses:
        out += ["", f"Fixes: {', '.join(plan.addresses)}"]
    if plan.treats:
        out += ["", "Removes the cause of (the evidence clears by itself):"]
        out += [f"  {t.id}: {t.why}" for t in plan.treats]
    if plan.empty:
        left = " (the notes below are steps left to you)" if plan.notes else ""
        out += ["", f"Nothing for ctguard to change: files and running values match{left}."]
    for change in plan.files:
        what = (
            f"new, mode {change.mode:04o}" if change.before is None
            else "ctguard's own file" if change.kind == OURS
            else "edited in place, backed up first"
        )  # fmt: skip
        out += ["", f"File {change.path} ({what}): {change.why}"]
        out.append(file_diff(change).rstrip("\n"))
    if plan.sysctls:
        out += ["", "Runtime values (set after the files, then read back):"]
        out += [
            f"  {runtime_command(c, plan.netns)}    # now {_value(c.before)}: {c.why}"
            for c in plan.sysctls
        ]
    if plan.conflicts:
        out += ["", "Left alone (other files' lines; they do not win):"]
        out += [f"  {line}" for line in plan.conflicts]
    if plan.notes:
        out += ["", "Notes (steps ctguard does not take itself):"]
        out += [f"  - {note.text}" for note in plan.notes]
    if hint and not plan.empty and not plan.refused:
        out += ["", "Apply: ctguard apply (same options), or save with -o plan.json and run"
                " 'ctguard apply --plan plan.json'; undo: ctguard rollback"]  # fmt: skip
    return "\n".join(out) + "\n"


def plan_host(report: PlanReport) -> str:
    """Whose plan: the hostname, and the tree or snapshot it was made from."""
    name = report.identity.hostname or "this host"
    if report.root is None:
        return name
    return f"{name} ({'snapshot' if report.archive else 'tree'} {report.root})"


def render_plan_report(report: PlanReport, hint: bool = True) -> str:
    return render_plan_text(report.plan, plan_host(report), hint)
