"""``ctguard apply`` as text: what was done (or would be), and how to undo it."""

from __future__ import annotations

from ctguard.usecases.apply import DRY_RUN, IN_PLACE, NOTHING_PLANNED, ApplyReport


def render_apply_text(report: ApplyReport) -> str:
    if report.status == NOTHING_PLANNED:
        return "nothing to do: the files and the running values already match the plan\n"
    if report.status == DRY_RUN:
        return "".join(f"would {line}\n" for line in report.changed) + "".join(
            f"already in place: {line}\n" for line in report.in_place
        )
    if report.status == IN_PLACE:
        return "nothing to do: every change is already in place\n"
    lines = [f"applied {len(report.changed)} change(s): {', '.join(report.changed)}"]
    if report.in_place:
        lines.append(f"already in place: {', '.join(report.in_place)}")
    if report.entry_id is not None:
        lines.append(f"journal entry {report.entry_id}; undo with: {report.undo}")
    return "".join(f"{line}\n" for line in lines)
