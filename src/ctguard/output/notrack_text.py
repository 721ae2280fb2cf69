"""``ctguard notrack`` as text (formatting only): the plan, the rules added or removed, and
what ``--verify`` saw."""

from __future__ import annotations

from ctguard.remediation.notrack import describe_flow
from ctguard.usecases.notrack import NotrackReport, Removal, Verification


def render_notrack_text(report: NotrackReport) -> str:
    plan, commands = report.plan, report.commands
    lines = [f"ctguard notrack for {report.where}", f"backend: {plan.backend} ({plan.backend_why})",
             ""]  # fmt: skip
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


def render_added(report: NotrackReport) -> str:
    """The one line an --apply that added rules ends with ("" when it added none)."""
    if report.entry_id is None:
        return ""
    undo = f"ctguard rollback {report.entry_id} (or ctguard notrack --remove)"
    return (
        f"added {len(report.plan.add)} rule(s); journal entry {report.entry_id};"
        f" undo with: {undo}\n"
    )


def render_removal(removal: Removal) -> str:
    """The rules --remove is about to delete."""
    return "Rules to delete (tagged ctguard):\n" + "".join(f"  {line}\n" for line in removal.rules)


def render_removed(removal: Removal) -> str:
    if removal.entry_id is None:
        return f"nothing to remove: no rule tagged ctguard in {removal.where}\n"
    return (
        f"removed; journal entry {removal.entry_id} (ctguard rollback {removal.entry_id} puts"
        " them back)\n"
    )


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
