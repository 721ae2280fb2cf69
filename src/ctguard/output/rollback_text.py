"""``ctguard rollback`` as text: what was put back; and ``rollback --list``, the journal."""

from __future__ import annotations

from ctguard.usecases.rollback import (
    ALREADY_ROLLED_BACK,
    NO_JOURNAL,
    NOTHING_TO_ROLL_BACK,
    JournalListing,
    RollbackReport,
)


def render_rollback_text(report: RollbackReport) -> str:
    if report.status == NO_JOURNAL:
        return f"nothing to do: no journal in {report.journal}\n"
    if report.status == NOTHING_TO_ROLL_BACK:
        swept = (
            f" (removed the empty entry {', '.join(report.swept)} an interrupted apply had left)"
            if report.swept
            else ""
        )
        return f"nothing to do: {report.reason}{swept}\n"
    if report.status == ALREADY_ROLLED_BACK:
        return f"nothing to do: {report.entry_id} is already rolled back\n"
    done = [*report.files, *report.removed, *report.sysctls]
    done += [f"undid: {command}" for command in report.commands]
    return f"rolled back {report.entry_id}: {', '.join(done) or 'nothing had changed'}\n"


def render_journal_text(listing: JournalListing) -> str:
    if not listing.entries:
        return f"no journal entries in {listing.journal}\n"
    lines = []
    for e in listing.entries:
        what = [c.what for c in e.commands] + [f.path for f in e.files]
        what += [s.name for s in e.sysctls]
        lines.append(f"{e.id}  {e.state:<12} {e.created}  {', '.join(what) or e.error or ''}\n")
    return "".join(lines)
