"""Put back what one apply changed, from its journal entry: files byte for byte, runtime
values, directories it made, and the undo of the commands it ran.

Every check is made before the first write, and every step is journalled, so a rollback
that stops (a crash, a full disk) is finished by running it again. An entry that an apply
left half-done ("applying": ctguard was killed; "undo-failed") is rolled back like an
applied one: what was never written is skipped.

A journal is data read back from disk (state_dir.py says when it is trusted): a rollback
writes only inside its tree, reads backups as bounded regular files, and runs an undo
command only from a trusted state directory and only in a shape ctguard writes
(undo.check_shape). The journal of a ``--root`` tree never runs a command.
"""

from __future__ import annotations

import errno
import re
import stat
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from ctguard.errors import CtguardError
from ctguard.remediation.apply_steps import Writer, put_back, recorded_owner
from ctguard.remediation.changes import sha256
from ctguard.remediation.command_runner import CommandRunner
from ctguard.remediation.failures import (
    ApplyError,
    Failed,
    describe,
    failing_as,
    one_line,
    or_apply_error,
    reason,
)
from ctguard.remediation.journal import (
    APPLIED,
    APPLYING,
    DAMAGED,
    ROLLED_BACK,
    UNDO_FAILED,
    UNDONE,
    CommandRecord,
    FileRecord,
    JournalEntry,
    SysctlRecord,
    list_entries,
    read_entry,
)
from ctguard.remediation.journal_writer import JournalWriter, sweep_unborn
from ctguard.remediation.runtime_files import RuntimeFiles, read_int
from ctguard.remediation.state_dir import MAX_BACKUP_BYTES, StateDir
from ctguard.remediation.tree_fs import StepHook, Tree, host_parts
from ctguard.remediation.undo import CommandUndo, check_shape, may_have_run
from ctguard.sources.modules import HASHSIZE_PARAM
from ctguard.sources.sysctl_runtime import LEGACY_MAX, NETFILTER_DIR

UNFINISHED = (APPLYING, APPLIED, UNDO_FAILED)  # what a rollback without an ID picks
# The runtime values ctguard sets: conntrack's sysctls and the hash size parameter.
_RUNTIME_PATH = re.compile(
    rf"{re.escape(NETFILTER_DIR)}/nf_conntrack_[a-z0-9_]+|{re.escape(LEGACY_MAX)}"
    rf"|{re.escape(HASHSIZE_PARAM)}"
)


@dataclass(frozen=True)
class RollbackResult:
    entry_id: str
    files: tuple[str, ...]  # host paths given their old content back
    sysctls: tuple[str, ...]  # runtime paths given their old value back
    removed: tuple[str, ...]  # files apply had created, removed
    nothing_to_do: bool  # the entry was already rolled back or undone
    removed_dirs: tuple[str, ...] = ()  # directories apply had created, removed
    commands: tuple[str, ...] = ()  # commands whose undo was run
    temps: tuple[str, ...] = ()  # temporary files a crash had left, removed


@dataclass(frozen=True)
class _FileRestore:
    index: int
    record: FileRecord
    old: bytes | None  # the content before apply; None: the file did not exist
    mode: int  # what the restored file gets (see _mode_and_owner)
    owner: tuple[int, int] | None


@dataclass(frozen=True)
class _RollbackTodo:
    files: tuple[_FileRestore, ...]
    sysctls: tuple[tuple[int, SysctlRecord], ...]
    commands: tuple[tuple[int, CommandRecord], ...] = ()


def _no_hook(name: str) -> None:
    """The default StepHook."""


class NothingToRollBack(CtguardError):
    """No entry is applied or half done: the message says what the latest one is."""


def entry_to_roll_back(state: StateDir, entry_id: str | None) -> JournalEntry:
    """Entry ``entry_id``, or the newest one that is applied or was left half done.

    A damaged entry newer than that is an error, not something to skip: it may be the
    apply whose changes are on the host now, and ctguard cannot tell what it changed."""
    if entry_id is not None:
        return read_entry(state, entry_id)
    entries = list_entries(state)
    for entry in entries:
        if entry.state in UNFINISHED:
            return entry
        if entry.state == DAMAGED:
            raise CtguardError(
                f"the newest entry not rolled back, {entry.id}, is damaged ({entry.error}):"
                " ctguard cannot tell what it changed; check it by hand and move it out of"
                f" {state.shown(state.journal_dir())}, or roll back an older entry by its ID"
            )
    if entries:
        raise NothingToRollBack(f"the latest entry, {entries[0].id}, is already {entries[0].state}")
    raise NothingToRollBack(f"no applied change to roll back (journal: {state.shown()})")


def tidy(state: StateDir) -> list[str]:
    """Remove, under the lock, the entries an apply killed while creating its journal
    left (nothing had been changed by then); their ids."""
    try:
        if not state.exists():
            return []
        with state.lock(create=False):
            return sweep_unborn(state)
    except OSError as exc:
        raise CtguardError(
            f"cannot use the state directory {state.shown()}: {describe(exc)}"
        ) from None


def rollback(
    entry_id: str | None,
    *,
    root: Path | Tree,
    runtime: RuntimeFiles,
    state_dir: StateDir | Path,
    force: bool = False,
    hook: StepHook | None = None,
    runner: CommandRunner | None = None,
) -> RollbackResult:
    """Put back what journal entry ``entry_id`` (None: the newest applied or half-done
    one) changed.

    A file or value changed by someone else since the apply is not overwritten unless
    ``force``; in that case nothing at all is rolled back and CtguardError names them.
    """
    try:
        return _rollback(entry_id, root, runtime, StateDir.of(state_dir), force,
                         hook or _no_hook, runner)  # fmt: skip
    except OSError as exc:  # before the first write: after, every failure is one line
        raise CtguardError(one_line(f"{describe(exc)}; nothing was rolled back")) from None


def _rollback(
    entry_id: str | None,
    root: Path | Tree,
    runtime: RuntimeFiles,
    state: StateDir,
    force: bool,
    step: StepHook,
    runner: CommandRunner | None,
) -> RollbackResult:
    tree = Tree.of(root)
    with ExitStack() as held:
        try:
            if not state.exists():
                raise CtguardError(
                    f"no applied change to roll back (no journal in {state.shown()})"
                )
            held.enter_context(state.lock(create=False, written=tree))
            sweep_unborn(state)
            entry = entry_to_roll_back(state, entry_id)
        except OSError as exc:
            raise CtguardError(
                f"cannot use the state directory {state.shown()}: {reason(exc)};"
                " nothing was rolled back"
            ) from None
        if entry.state in (ROLLED_BACK, UNDONE):
            return RollbackResult(entry.id, (), (), (), nothing_to_do=True)
        _check_entry(entry, state, runner)
        temps = _remove_temps(entry, tree, state)
        todo = _rollback_todo(entry, tree, runtime, state, force)
        undo = _Rollback(tree, runtime, JournalWriter(state, entry, step), step, runner)
        return replace(undo.run(todo), temps=tuple(temps))


def _check_entry(entry: JournalEntry, state: StateDir, runner: CommandRunner | None) -> None:
    """What a journal may ask, checked before anything is done."""

    def refuse(why: str) -> CtguardError:
        return CtguardError(f"entry {entry.id}: {why}; nothing was rolled back")

    for setting in entry.sysctls:
        if not _RUNTIME_PATH.fullmatch(setting.path):
            raise refuse(f"{setting.path!r} is not a runtime value ctguard sets")
    for record in entry.files:
        if not 0 <= record.mode <= 0o7777:
            raise refuse(f"mode {record.mode} of {record.path!r} is no file mode")
        if any(not 0 <= i < 2**32 - 1 for i in (record.uid or 0, record.gid or 0)):
            raise refuse(f"the owner of {record.path!r} is no user or group id")
    for path in (*(r.real_path for r in entry.files), *entry.created_dirs):
        try:
            if not host_parts(path):
                raise OSError(errno.EINVAL, "the root itself", path)
        except OSError as exc:
            raise refuse(f"{path!r}: {exc.strerror}") from None
    if not entry.commands:
        return
    if not state.trusted or runner is None:
        raise refuse(
            f"it lists commands ({entry.commands[0].what}), and a rollback with --root, or of"
            " a directory tree's journal, never runs one: roll it back on the host it was"
            " applied to, without --root"
        )
    for command in entry.commands:
        check_shape(entry.id, command)


def _mode_and_owner(
    record: FileRecord, tree: Tree, state: StateDir
) -> tuple[int, tuple[int, int] | None]:
    """What a restored file gets. From a trusted journal: the mode and owner it recorded.
    From a tree's journal, which anyone may have written: the mode and owner the file has
    now (apply kept them), without set-id or sticky bits; a new file stays root's 0644."""
    if state.trusted:
        return record.mode, recorded_owner(record)
    st = tree.lstat(record.real_path)
    if st is None or not stat.S_ISREG(st.st_mode):
        return 0o644, None
    return stat.S_IMODE(st.st_mode) & 0o777, (st.st_uid, st.st_gid)


def _remove_temps(entry: JournalEntry, tree: Tree, state: StateDir) -> list[str]:
    """The temporary files a crash left beside what the entry writes."""
    removed: list[str] = []
    with suppress(OSError):
        for record in entry.files:
            removed += tree.remove_temps(record.real_path)
        if not tree.is_live:
            for setting in entry.sysctls:
                removed += tree.remove_temps(tree.realpath(setting.path))
        removed += state.tree.remove_temps(state.journal_file(entry.id))
        for record in entry.files:
            if record.backup is not None:
                removed += state.tree.remove_temps(state.backup(entry.id, record.backup))
    return removed


def _rollback_todo(
    entry: JournalEntry, tree: Tree, runtime: RuntimeFiles, state: StateDir, force: bool
) -> _RollbackTodo:
    """What to put back; every check is made before the first write."""
    files: list[_FileRestore] = []
    sysctls: list[tuple[int, SysctlRecord]] = []
    changed: list[str] = []
    for index, record in enumerate(entry.files):
        with or_apply_error(f"cannot read {record.real_path}", "nothing was rolled back"):
            now = sha256(tree.read(record.real_path, MAX_BACKUP_BYTES))
        if now == record.before_sha256:
            continue  # never written, or already put back
        if now != record.after_sha256 and not force:
            changed.append(record.path)
            continue
        old = _backup_bytes(entry, record, state)
        files.append(_FileRestore(index, record, old, *_mode_and_owner(record, tree, state)))
    for index, setting in enumerate(entry.sysctls):
        value: int | str
        with or_apply_error(f"cannot read {setting.path}", "nothing was rolled back"):
            try:
                value = read_int(runtime, setting.path)
            except OSError as exc:
                if exc.errno != errno.EINVAL:  # unreadable, not merely garbage
                    raise
                value = f"{runtime.read(setting.path)[:40]!r}"  # --force writes it over
        if value == setting.before:
            continue
        if value != setting.reads_back and not force:
            changed.append(f"{setting.name} (now {value}, ctguard set {setting.reads_back})")
            continue
        sysctls.append((index, setting))
    if changed:
        raise CtguardError(
            f"changed by someone else since entry {entry.id} was applied: {', '.join(changed)};"
            " nothing was rolled back (--force restores them anyway)"
        )
    # A command not marked done may still have run (ctguard died between its commit and the
    # journal update): its undo is run too when it is safe either way (may_have_run).
    commands = tuple(
        (index, record)
        for index, record in enumerate(entry.commands)
        if not record.undone and (record.done or may_have_run(record))
    )
    return _RollbackTodo(tuple(files), tuple(sysctls), commands)


def _backup_bytes(entry: JournalEntry, record: FileRecord, state: StateDir) -> bytes | None:
    if not record.existed:
        return None
    if record.backup is None or not record.backup.isdigit():
        raise CtguardError(
            f"entry {entry.id}: the backup of {record.path} is not named; nothing was rolled back"
        )
    path = state.backup(entry.id, record.backup)
    try:
        data = state.read(path, MAX_BACKUP_BYTES)
    except OSError as exc:
        raise CtguardError(
            f"cannot read the backup of {record.path} ({state.shown(path)}:"
            f" {exc.strerror or exc}); nothing was rolled back"
        ) from None
    if sha256(data) != record.before_sha256:
        raise CtguardError(
            f"the backup of {record.path} ({state.shown(path)}) does not match its recorded"
            " checksum; nothing was rolled back"
        )
    return data


@dataclass
class _Rollback(Writer):
    files: list[str] = field(default_factory=list)
    sysctls: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    removed_dirs: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)

    def run(self, todo: _RollbackTodo) -> RollbackResult:
        entry_id, state = self.journal.entry.id, self.journal.entry.state
        try:
            # Reverse of apply's order: runtime values, then files, then their directories.
            for index, setting in reversed(todo.sysctls):
                self.restore_sysctl(index, setting)
            for restore in reversed(todo.files):
                self.restore_file(restore)
            for directory in reversed(self.journal.entry.created_dirs):
                self.remove_dir(directory)
            for index, record in reversed(todo.commands):
                self.undo_command(index, record)
            when = datetime.now(UTC).isoformat(timespec="seconds")
            done = replace(self.journal.entry, state=ROLLED_BACK, rolled_back=when)
            self.journal.update(done)
        except Failed as exc:
            raise ApplyError(self.failure(str(exc), state)) from exc
        return RollbackResult(
            entry_id=entry_id,
            files=tuple(self.files),
            sysctls=tuple(self.sysctls),
            removed=tuple(self.removed),
            nothing_to_do=False,  # True only for an entry rolled back or undone before
            removed_dirs=tuple(self.removed_dirs),
            commands=tuple(self.commands),
        )

    def undo_command(self, index: int, record: CommandRecord) -> None:
        assert self.runner is not None  # _check_entry checked
        with failing_as(f"cannot undo {record.what}"):
            if CommandUndo.of(record, self.runner.run, self.step).run():
                self.commands.append(record.what)
        self.journal.mark("commands", index, "undone")

    def restore_sysctl(self, index: int, setting: SysctlRecord) -> None:
        with failing_as(f"cannot restore {setting.name} to {setting.before}"):
            self.step(f"restore {setting.path}")
            self.runtime.write(setting.path, str(setting.before))
        self.sysctls.append(setting.path)
        self.journal.mark("sysctls", index, "undone")

    def restore_file(self, restore: _FileRestore) -> None:
        record = restore.record
        with failing_as(f"cannot restore {record.path}"):
            put_back(self.tree, record.real_path, restore.old, restore.mode, restore.owner,
                     self.step, record.path)  # fmt: skip
        (self.removed if restore.old is None else self.files).append(record.path)
        self.journal.mark("files", restore.index, "undone")

    def remove_dir(self, directory: str) -> None:
        with failing_as(f"cannot remove directory {directory}"):
            if self.tree.rmdir(directory, self.step, directory):
                self.removed_dirs.append(directory)

    def failure(self, what: str, state: str) -> str:
        """One line for a rollback that stopped; the entry keeps its state so a rerun
        (which skips what is already back) can finish."""
        done = self.sysctls + self.files + self.removed + self.removed_dirs + self.commands
        entry = replace(self.journal.entry, state=state, rolled_back=None)
        with suppress(Failed):
            self.journal.update(replace(entry, error=f"rollback failed: {what}"))
        so_far = f"restored so far: {', '.join(done)}" if done else "nothing had been restored"
        return one_line(
            f"{what}; {so_far}; 'ctguard rollback {self.journal.entry.id}' again finishes it"
        )
