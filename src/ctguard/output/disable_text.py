"""``ctguard disable`` as text: what keeps nf_conntrack loaded (modules, rules, agents),
then either the plan (rule changes, the modprobe.d file as a diff, ``modprobe -r`` in
order) or the refusal with everything that still needs conntrack."""

from __future__ import annotations

from ctguard.output.plan_text import file_diff
from ctguard.remediation.disable import BLOCKER, REPLACE, DisablePlan, RuleFate
from ctguard.usecases.disable import DONE, DRY_RUN, NOTHING_TO_DO, DisableReport

_INDENT = "     "
REFUSED = (
    "REFUSED (exit 2): conntrack is still needed; remove these, then run ctguard disable"
    " again (or keep conntrack and size it: ctguard plan):"
)


def _header(plan: DisablePlan) -> list[str]:
    source = "live" if plan.live else "snapshot"
    scope = f", netns {plan.netns}" if plan.netns else ""
    return [
        f"ctguard disable ({source}{scope}, kernel {plan.kernel or '?'},"
        f" conntrack {plan.presence})",
        f"  {plan.evidence}",
    ]


def _chain(plan: DisablePlan) -> list[str]:
    out = ["", "What keeps nf_conntrack loaded:"]
    if plan.holders:
        out.append("  modules (/proc/modules, /sys/module/nf_conntrack/holders):")
        out += [f"    {' <- '.join(h.chain)}" for h in plan.holders]
    else:
        out.append("  modules: none uses nf_conntrack")
    if plan.rules:
        out.append("  rules:")
        out += [f"    {r.verdict:<8} {r.rule}" for r in plan.rules]
    else:
        out.append("  rules: none needs conntrack")
    if plan.agents:
        out.append("  agents:")
        out += [f"    {a.program} (pid {a.pid}): {a.args}" for a in plan.agents]
    else:
        out.append("  agents: none running")
    if plan.existing:
        out.append("  modprobe.d lines for these modules:")
        out += [f"    {line}" for line in plan.existing]
    return out


def _rule_step(fate: RuleFate) -> list[str]:
    lines = [f"       {fate.verdict:<8} {fate.rule}"]
    if fate.verdict == REPLACE:
        lines.append(f"       {'by':>7}  {fate.replacement}")
    lines.append(f"                {fate.reason}")
    return lines


def _steps(plan: DisablePlan) -> list[str]:
    out = ["", "Plan (nothing changes without --apply):"]
    step = 0
    changes = [r for r in plan.rules if r.verdict != BLOCKER]
    if changes:
        step += 1
        out.append(f"  {step}. Change these rules (each in its own syntax):")
        for fate in changes:
            out += _rule_step(fate)
    file = plan.modprobe_file
    if file is not None:
        step += 1
        state = f"new, mode {file.mode:04o}" if file.before is None else "ctguard's own file"
        out.append(f"  {step}. File {file.path} ({state}): {file.why}")
        out += [f"{_INDENT}{line}" for line in file_diff(file).rstrip("\n").splitlines()]
    if plan.unload_order:
        step += 1
        out.append(f"  {step}. Unload, each module before the ones it uses:")
        out += [f"       modprobe -r {name}" for name in plan.unload_order]
    return out


def render_disable_text(plan: DisablePlan) -> str:
    out = _header(plan) + _chain(plan)
    if plan.refused:
        out += ["", REFUSED if plan.presence != "builtin" else "REFUSED (exit 2):"]
        out += [f"  - {reason}" for reason in plan.refusals]
    elif plan.nothing_to_do:
        out += ["", "Nothing to do."]
    else:
        out += _steps(plan)
    if plan.notes:
        out += ["", "Notes:"]
        out += [f"  - {note.text}" for note in plan.notes]
    return "\n".join(out) + "\n"


def render_disable_result(report: DisableReport) -> str:
    """What --apply did or would do, after the plan ("" without --apply)."""
    if report.status == NOTHING_TO_DO:
        return "nothing to do\n"
    if report.status == DRY_RUN:
        text = "".join(f"would {line}\n" for line in report.would)
        text += "".join(f"would run: {' '.join(argv)}\n" for argv in report.would_run)
        if report.tree:
            text += "(a directory tree has no modules to unload: only the file is written)\n"
        return text
    if report.status == DONE:
        done = f"done: {', '.join(report.done) or 'nothing to change'}"
        if report.entry_id is None:  # nothing changed: no journal entry, nothing to undo
            return f"{done}\n"
        return (
            f"{done}; journal entry {report.entry_id}; undo with: ctguard rollback"
            f" {report.entry_id}\n"
        )
    return ""
