"""One journal entry kept current on disk while apply or rollback works: ``journal.json``
is replaced atomically after every step, so a crash at any instant leaves a journal that
says what was done (docs/design.md §9). Written through the state directory's tree (tree_fs)."""

from __future__ import annotations

import errno
import secrets
from contextlib import suppress
from dataclasses import replace
from typing import Any, Literal

from ctguard.remediation.failures import ApplyError, failing_as, one_line, reason
from ctguard.remediation.journal import ENTRY_ID, JournalEntry, entry_to_json
from ctguard.remediation.state_dir import (
    BACKUP_SUBDIR,
    PARENT_DIR_MODE,
    PRIVATE_DIR_MODE,
    StateDir,
)
from ctguard.remediation.tree_fs import PRIVATE_FILE_MODE, StepHook

Records = Literal["files", "sysctls", "commands"]


class JournalWriter:
    """One entry's journal.json, rewritten atomically after every step."""

    def __init__(self, state: StateDir, entry: JournalEntry, step: StepHook) -> None:
        self.state = state
        self.entry = entry
        self.step = step

    @property
    def shown(self) -> str:
        """The entry's directory on this machine, for messages."""
        return self.state.shown(self.state.entry_dir(self.entry.id))

    @classmethod
    def create(cls, state: StateDir, entry: JournalEntry, step: StepHook) -> JournalWriter:
        """Write the entry before the first change; ApplyError (nothing changed) if we cannot."""
        tree = state.tree
        made: str | None = None
        try:
            step("journal create")
            tree.make_dirs(state.journal_dir(), PRIVATE_DIR_MODE, PARENT_DIR_MODE)
            entry = _make_entry_dir(state, entry)
            made = state.entry_dir(entry.id)
            tree.mkdir(f"{made}/{BACKUP_SUBDIR}", PRIVATE_DIR_MODE)
            journal = cls(state, entry, step)
            journal.save()
            return journal
        except Exception as exc:
            if made is not None:
                with suppress(OSError):
                    tree.unlink(state.journal_file(entry.id))
                    tree.remove_temps(state.journal_file(entry.id))
                    tree.rmdir(f"{made}/{BACKUP_SUBDIR}")
                    tree.rmdir(made)
            raise ApplyError(
                one_line(
                    f"cannot create the journal in {state.shown(state.journal_dir())}:"
                    f" {reason(exc)}; nothing had been changed"
                )
            ) from exc

    def save(self) -> None:
        self.step("journal write")
        text = entry_to_json(self.entry).encode()
        path = self.state.journal_file(self.entry.id)
        self.state.tree.replace(path, text, PRIVATE_FILE_MODE, None, self.step, "journal")

    def update(self, entry: JournalEntry, save: bool = True) -> None:
        """Record ``entry``; ``save=False`` keeps it in memory until the next save."""
        self.entry = entry
        if save:
            with failing_as(f"cannot update the journal {self.shown}"):
                self.save()

    def mark(
        self,
        records: Records,
        index: int,
        what: Literal["done", "undone"] | None,
        save: bool = True,
        **changes: object,
    ) -> None:
        """Record step ``index`` of ``records`` as done or undone (with ``changes`` to it:
        a command's undo script and output, known once it ran)."""
        updated = list(getattr(self.entry, records))
        fields: dict[str, Any] = dict(changes)
        if what is not None:
            fields[what] = True
        updated[index] = replace(updated[index], **fields)
        entry: dict[str, Any] = {records: tuple(updated)}
        self.update(replace(self.entry, **entry), save)

    def backup_path(self, backup: str) -> str:
        return self.state.backup(self.entry.id, backup)


def _make_entry_dir(state: StateDir, entry: JournalEntry) -> JournalEntry:
    """Create the entry's directory; a clash within one second draws a new random part."""
    for _ in range(8):
        try:
            state.tree.mkdir(state.entry_dir(entry.id), PRIVATE_DIR_MODE)
            return entry
        except FileExistsError:
            entry = replace(entry, id=entry.id[:-4] + secrets.token_hex(2))
    raise OSError(errno.EEXIST, "cannot pick an unused entry id", state.shown())


def sweep_unborn(state: StateDir) -> list[str]:
    """Remove the entry directories an apply killed while creating its journal left: no
    journal.json, an empty ``files/``, at most a temporary journal. Nothing had been
    changed by then (the journal is written before the first change). Their ids."""
    swept: list[str] = []
    try:
        names = state.tree.listdir(state.journal_dir())
    except OSError:
        return swept
    for name in names:
        if not ENTRY_ID.fullmatch(name):
            continue
        entry = state.entry_dir(name)
        try:
            if state.tree.lstat(state.journal_file(name)) is not None:
                continue
            state.tree.remove_temps(state.journal_file(name))
            backups = f"{entry}/{BACKUP_SUBDIR}"
            if state.tree.lstat(backups) is not None and not state.tree.rmdir(backups):
                continue  # not empty: not ours to judge
            if state.tree.rmdir(entry):
                swept.append(name)
        except OSError:
            continue
    return swept
