"""``ctguard rollback``: put back what an apply (or notrack/disable --apply) changed, by its
journal entry; and the journal, newest first (``--list``).

The journal of a --root tree is data: its rollback writes only inside the tree and runs no
command, and no namespace it names is entered.
"""

from __future__ import annotations

from dataclasses import dataclass

from ctguard.host.target import Target
from ctguard.remediation import apply as writer
from ctguard.remediation.journal import JournalEntry, list_entries
from ctguard.remediation.rollback import NothingToRollBack, entry_to_roll_back, tidy
from ctguard.usecases.site import Confirm, Site, ask, site_to_write

# what a rollback did (RollbackReport.status)
NO_JOURNAL = "no-journal"
NOTHING_TO_ROLL_BACK = "nothing-to-roll-back"
ALREADY_ROLLED_BACK = "already-rolled-back"
ROLLED_BACK = "rolled-back"


@dataclass(frozen=True)
class RollbackOptions:
    entry_id: str | None = None  # None: the newest entry applied or left half done
    state_dir: str | None = None
    force: bool = False  # restore even files or values changed since the apply


@dataclass(frozen=True)
class RollbackReport:
    status: str
    journal: str  # the state directory, as a path on this machine
    entry_id: str | None = None
    reason: str | None = None  # nothing to roll back: why
    swept: tuple[str, ...] = ()  # empty entries an interrupted apply had left, removed
    files: tuple[str, ...] = ()  # given their old content back
    removed: tuple[str, ...] = ()  # files the apply had created
    sysctls: tuple[str, ...] = ()  # runtime values given their old value back
    commands: tuple[str, ...] = ()  # commands whose undo was run


@dataclass(frozen=True)
class JournalListing:
    journal: str  # the state directory, as a path on this machine
    entries: tuple[JournalEntry, ...]  # newest first


def list_journal(target: Target, state_dir: str | None = None) -> JournalListing:
    journal = site_to_write(target, "rollback").state_dir(state_dir)
    return JournalListing(journal.shown(), tuple(list_entries(journal)))


def rollback(target: Target, options: RollbackOptions, confirm: Confirm) -> RollbackReport:
    """Roll back one journal entry; ``confirm`` is asked first. CtguardError: not root, an
    unknown entry, another apply or rollback running, a file changed since (``force``)."""
    site = site_to_write(target, "rollback")
    journal = site.state_dir(options.state_dir)
    shown = journal.shown()
    if not journal.exists() and options.entry_id is None:
        return RollbackReport(NO_JOURNAL, shown)
    if options.entry_id is None:
        site.need_root("rollback")
        swept = tidy(journal)
        try:
            chosen = entry_to_roll_back(journal, None)
        except NothingToRollBack as exc:
            return RollbackReport(NOTHING_TO_ROLL_BACK, shown, reason=str(exc), swept=tuple(swept))
    else:
        chosen = entry_to_roll_back(journal, options.entry_id)
    # A tree's journal is data: its files are put back inside the tree, its runtime values
    # are the tree's files, and no namespace or command it names is ever used.
    tree = target.root is not None
    netns = None if tree else chosen.meta.get("netns")
    runtime_site = site if tree else Site.live(netns)
    runtime_site.need_root("rollback")
    ask(confirm, f"Roll back {chosen.id}?")
    runner = runtime_site.runner() if journal.trusted and not tree else None
    result = writer.rollback(
        chosen.id, root=site.tree, runtime=runtime_site.runtime(), state_dir=journal,
        force=options.force, runner=runner,
    )  # fmt: skip
    if result.nothing_to_do:
        return RollbackReport(ALREADY_ROLLED_BACK, shown, result.entry_id)
    return RollbackReport(
        ROLLED_BACK, shown, result.entry_id, files=result.files, removed=result.removed,
        sysctls=result.sysctls, commands=result.commands,
    )  # fmt: skip
