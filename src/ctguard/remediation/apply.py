"""Carry out a plan on a host: the only code in ctguard that writes to one.

The order is what makes it safe (design §9):

1. check every change against the host before writing anything: a file must still have the
   content the plan was made from, or already have the planned content (then it is skipped,
   so a second apply changes nothing); a runtime value likewise;
2. create the journal entry (``<state_dir>/journal/<id>/``) listing every step, and back up
   every file about to be replaced, so a crash at any later instant can be rolled back;
3. write files, each through a temporary file in its own directory that is fsynced and then
   renamed over the target: the target always holds the old bytes or the new, never a part;
4. set runtime values only once the files that make them persistent are in place;
5. read everything back. Any failure on the way undoes what was done, newest first, and
   becomes one ``ApplyError`` line saying what failed, why, and what was put back.

Paths are host paths, resolved inside ``root`` as ``HostRoot`` resolves them for reading
(a symbolic link, even an absolute one, never leads out of the root).
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from ctguard import __version__
from ctguard.errors import CtguardError
from ctguard.host.root import HostRoot
from ctguard.remediation.atomic_files import (
    PRIVATE_FILE_MODE,
    StepHook,
    fsync_dir,
    make_dirs,
    read_or_none,
    replace_file,
    resolve_in_root,
)
from ctguard.remediation.changes import NFT_ECHO, RunCommand, SetSysctl, WriteFile, sha256
from ctguard.remediation.command_runner import CommandRunner
from ctguard.remediation.journal import (
    APPLIED,
    APPLYING,
    BACKUP_SUBDIR,
    JOURNAL_FILE,
    JOURNAL_SUBDIR,
    ROLLED_BACK,
    UNDO_FAILED,
    UNDONE,
    CommandRecord,
    FileRecord,
    JournalEntry,
    SysctlRecord,
    backup_file,
    entry_dir,
    entry_to_json,
    list_entries,
    read_entry,
)
from ctguard.remediation.nft_echo import count_added_rules, undo_from_echo
from ctguard.remediation.runtime_files import NetnsRuntime, RuntimeFiles, TreeRuntime
from ctguard.remediation.undo_check import LISTING, cleanup, reconcile

__all__ = [
    "ApplyError", "ApplyResult", "NetnsRuntime", "RollbackResult", "RuntimeFiles",
    "StalePlanError", "StepHook", "TreeRuntime", "apply_changes", "dry_run", "rollback",
]  # fmt: skip

NEW_DIR_MODE = 0o755  # a directory apply creates under /etc, like the distributions' own
PRIVATE_DIR_MODE = 0o700  # the state directory holds copies of configuration files


# -- results and errors ------------------------------------------------------------------
class ApplyError(CtguardError):
    """A write failed: what, why, and what was undone (one line)."""


class StalePlanError(CtguardError):
    """The host no longer matches what the plan was made from."""


@dataclass(frozen=True)
class ApplyResult:
    entry_id: str | None  # None: everything was already in place, no journal entry
    files: tuple[str, ...]  # host paths written
    sysctls: tuple[str, ...]  # runtime paths written
    skipped: tuple[str, ...]  # already in place
    commands: tuple[str, ...] = ()  # what each command run did


@dataclass(frozen=True)
class RollbackResult:
    entry_id: str
    files: tuple[str, ...]  # host paths given their old content back
    sysctls: tuple[str, ...]  # runtime paths given their old value back
    removed: tuple[str, ...]  # files apply had created, removed
    nothing_to_do: bool  # the entry was already rolled back or undone
    removed_dirs: tuple[str, ...] = ()  # directories apply had created, removed
    commands: tuple[str, ...] = ()  # commands whose undo was run


# -- checking a plan against the host -----------------------------------------------------
@dataclass(frozen=True)
class _FileStep:
    change: WriteFile
    real: str  # host path once links are followed inside the root
    local: Path  # that path on this machine
    current: bytes | None
    st: os.stat_result | None

    def record(self, backup: str | None) -> FileRecord:
        existed = self.st is not None
        return FileRecord(
            path=self.change.path,
            real_path=self.real,
            existed=existed,
            mode=stat.S_IMODE(self.st.st_mode) if self.st else self.change.mode,
            uid=self.st.st_uid if self.st else None,
            gid=self.st.st_gid if self.st else None,
            before_sha256=sha256(self.current),
            after_sha256=self.change.after_sha256,
            backup=backup,
            kind=self.change.kind,
        )


@dataclass(frozen=True)
class _SysctlStep:
    change: SetSysctl
    current: int  # read just before; what an undo puts back

    def record(self) -> SysctlRecord:
        c = self.change
        return SysctlRecord(c.name, c.path, self.current, c.after, c.reads_back, c.scope)


@dataclass(frozen=True)
class _Checked:
    files: tuple[_FileStep, ...]
    sysctls: tuple[_SysctlStep, ...]
    skipped: tuple[str, ...]
    skipped_lines: tuple[str, ...]
    commands: tuple[RunCommand, ...] = ()  # not checked here: their planner read the host


def _check(
    files: Sequence[WriteFile],
    sysctls: Sequence[SetSysctl],
    host: HostRoot,
    runtime: RuntimeFiles,
) -> _Checked:
    """Compare every change with the host; StalePlanError if one no longer fits."""
    file_steps: list[_FileStep] = []
    sysctl_steps: list[_SysctlStep] = []
    skipped: list[str] = []
    lines: list[str] = []
    written: set[str] = set()
    for change in files:
        step = _check_file(change, host)
        if step.real in written:
            raise CtguardError(f"the plan writes {change.path} twice")
        written.add(step.real)
        if step.current == change.after:
            skipped.append(change.path)
            lines.append(f"{change.path} already has the planned content")
        else:
            file_steps.append(step)
    if len({s.path for s in sysctls}) != len(sysctls):
        raise CtguardError("the plan sets a runtime value twice")
    for setting in sysctls:
        current = _read_value(runtime, setting.path, "nothing had been changed")
        if current == setting.reads_back:
            skipped.append(setting.path)
            lines.append(f"{setting.name} is already {current}")
        elif setting.before is not None and current != setting.before:
            raise StalePlanError(
                f"{setting.name} ({setting.path}) is {current} now, the plan was made when it"
                f" was {setting.before}: make a new plan (ctguard plan)"
            )
        else:
            sysctl_steps.append(_SysctlStep(setting, current))
    return _Checked(tuple(file_steps), tuple(sysctl_steps), tuple(skipped), tuple(lines))


def _check_file(change: WriteFile, host: HostRoot) -> _FileStep:
    with _or_apply_error(f"cannot read {change.path}", "nothing had been changed"):
        real, local = resolve_in_root(host, change.path)
        current, st = _read_current(local, change.path)
    if current != change.after and sha256(current) != change.before_sha256:
        raise StalePlanError(
            f"{change.path} changed since the plan was made"
            f" ({_describe(change.before)} then, {_describe(current)} now):"
            " make a new plan (ctguard plan)"
        )
    return _FileStep(change, real, local, current, st)


def _describe(data: bytes | None) -> str:
    if data is None:
        return "absent"
    return f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:12]}"


def _read_current(local: Path, path: str) -> tuple[bytes | None, os.stat_result | None]:
    """The bytes and status of the file at ``local``; (None, None) when it does not exist."""
    try:
        st = os.stat(local)
    except FileNotFoundError:
        return None, None
    if not stat.S_ISREG(st.st_mode):
        raise StalePlanError(f"{path} is not a regular file; ctguard only writes regular files")
    with open(local, "rb") as f:
        return f.read(), st


def _read_value(runtime: RuntimeFiles, path: str, consequence: str) -> int:
    with _or_apply_error(f"cannot read {path}", consequence):
        text = runtime.read(path)
    try:
        return int(text)
    except ValueError:
        raise ApplyError(
            f"cannot read {path}: {text[:40]!r} is not an integer; {consequence}"
        ) from None


# -- dry run -----------------------------------------------------------------------------
def dry_run(
    files: Sequence[WriteFile],
    sysctls: Sequence[SetSysctl],
    *,
    root: Path,
    runtime: RuntimeFiles,
) -> tuple[list[str], list[str]]:
    """(what apply would change, what is already in place), one line each; reads only.

    StalePlanError, as apply would raise it, when the host no longer fits the plan.
    """
    host = HostRoot(root)
    checked = _check(files, sysctls, host, runtime)
    lines = [_would_write(step, host) for step in checked.files]
    for s in checked.sysctls:
        back = "" if s.change.expect is None else f" (the kernel makes it {s.change.expect})"
        lines.append(
            f"set {s.change.name} {s.current} -> {s.change.after}{back}: {s.change.path}"
            f" ({s.change.why})"
        )
    return lines, list(checked.skipped_lines)


def _would_write(step: _FileStep, host: HostRoot) -> str:
    c = step.change
    if step.st is not None:
        mode = stat.S_IMODE(step.st.st_mode)
        return f"replace {c.path} (backup kept; mode {mode:04o} and owner kept) ({c.why})"
    new_dirs = [d for d in _missing_dirs(step.real, host) if d]
    dirs = f", creating {', '.join(new_dirs)}" if new_dirs else ""
    return f"create {c.path} (mode {c.mode:04o}{dirs}) ({c.why})"


def _missing_dirs(real: str, host: HostRoot) -> list[str]:
    """Host paths of the absent directories above ``real``, outermost first."""
    parents = list(PurePosixPath(real).parents)[:-1]  # drop "/"
    return [str(p) for p in reversed(parents) if not os.path.lexists(host.base / str(p)[1:])]


def _no_hook(name: str) -> None:
    """The default StepHook: tests pass one that fails a chosen step."""


# -- errors ------------------------------------------------------------------------------
class _Failed(Exception):
    """A step failed; the message already says which and why."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    if isinstance(exc, CtguardError | _Failed):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _one_line(text: str) -> str:
    return " ".join(text.split())


@contextmanager
def _failing_as(what: str) -> Iterator[None]:
    """Turn any failure inside into ``_Failed("<what>: <why>")``."""
    try:
        yield
    except _Failed:
        raise
    except Exception as exc:
        raise _Failed(f"{what}: {_reason(exc)}") from exc


@contextmanager
def _or_apply_error(what: str, consequence: str) -> Iterator[None]:
    """For reads made before anything changed: an OSError becomes one ApplyError line."""
    try:
        yield
    except OSError as exc:
        raise ApplyError(_one_line(f"{what}: {_reason(exc)}; {consequence}")) from None


def _now() -> datetime:
    return datetime.now(UTC)


# -- the journal, kept current on disk ---------------------------------------------------
class _Journal:
    """One entry's journal.json, rewritten atomically after every step."""

    def __init__(self, state_dir: Path, entry: JournalEntry, step: StepHook) -> None:
        self.state_dir = state_dir
        self.entry = entry
        self.step = step
        self.dir = entry_dir(state_dir, entry.id)

    @classmethod
    def create(cls, state_dir: Path, entry: JournalEntry, step: StepHook) -> _Journal:
        """Write the entry before the first change; ApplyError (nothing changed) if we cannot."""
        top = state_dir / JOURNAL_SUBDIR
        made: Path | None = None
        try:
            step("journal create")
            make_dirs(top, PRIVATE_DIR_MODE)
            entry = _make_entry_dir(top, entry)
            made = top / entry.id
            os.chmod(made, PRIVATE_DIR_MODE)
            os.mkdir(made / BACKUP_SUBDIR, PRIVATE_DIR_MODE)
            fsync_dir(top)
            journal = cls(state_dir, entry, step)
            journal.save()
            return journal
        except Exception as exc:
            if made is not None:
                shutil.rmtree(made, ignore_errors=True)
            raise ApplyError(
                _one_line(
                    f"cannot create the journal in {top}: {_reason(exc)}; nothing had been changed"
                )
            ) from exc

    def save(self) -> None:
        self.step("journal write")
        text = entry_to_json(self.entry).encode()
        replace_file(self.dir / JOURNAL_FILE, text, PRIVATE_FILE_MODE, None, _no_hook, "journal")

    def update(self, entry: JournalEntry, save: bool = True) -> None:
        """Record ``entry``; ``save=False`` keeps it in memory until the next save."""
        self.entry = entry
        if save:
            with _failing_as(f"cannot update the journal {self.dir / JOURNAL_FILE}"):
                self.save()

    def mark(
        self,
        records: Literal["files", "sysctls", "commands"],
        index: int,
        what: Literal["done", "undone"],
        save: bool = True,
        **changes: str,
    ) -> None:
        """Record step ``index`` of ``records`` as done or undone (with ``changes`` to it:
        a command's undo script and output, known once it ran)."""
        updated = list(getattr(self.entry, records))
        step: dict[str, Any] = {**changes, what: True}
        updated[index] = replace(updated[index], **step)
        entry: dict[str, Any] = {records: tuple(updated)}
        self.update(replace(self.entry, **entry), save)

    def backup_path(self, backup: str) -> Path:
        return backup_file(self.state_dir, self.entry.id, backup)


def _make_entry_dir(top: Path, entry: JournalEntry) -> JournalEntry:
    """Create the entry's directory; a clash within one second draws a new random part."""
    for _ in range(8):
        try:
            os.mkdir(top / entry.id, PRIVATE_DIR_MODE)
            return entry
        except FileExistsError:
            entry = replace(entry, id=entry.id[:-4] + secrets.token_hex(2))
    raise OSError(errno.EEXIST, "cannot pick an unused entry id", str(top))


def _new_entry(checked: _Checked, meta: Mapping[str, str | None]) -> JournalEntry:
    now = _now()
    return JournalEntry(
        id=now.strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(2),
        created=now.isoformat(timespec="microseconds"),
        ctguard_version=__version__,
        state=APPLYING,
        meta=dict(meta),
        # Every planned step is listed before the first one is taken.
        files=tuple(
            step.record(None if step.st is None else str(index))
            for index, step in enumerate(checked.files)
        ),
        sysctls=tuple(step.record() for step in checked.sysctls),
        commands=tuple(
            CommandRecord(c.what, c.argv, c.stdin, c.undo_argv, c.undo_stdin, "", c.undo_check)
            for c in checked.commands
        ),
    )


# -- putting things back (undo of a failed apply, and rollback) --------------------------
def _put_back(
    local: Path, record: FileRecord, old: bytes | None, step: StepHook, label: str
) -> None:
    """Give the file its old content, mode and owner again, or remove it if it was new."""
    if old is None:
        step(f"unlink {label}")
        with suppress(FileNotFoundError):
            os.unlink(local)
        step(f"fsync-dir {label}")
        fsync_dir(local.parent)
        return
    owner = None if record.uid is None or record.gid is None else (record.uid, record.gid)
    replace_file(local, old, record.mode, owner, step, label)


def _remove_dir_if_empty(local: Path, step: StepHook, label: str) -> bool:
    """rmdir a directory apply created; one someone has put files in since is left."""
    step(f"rmdir {label}")
    try:
        os.rmdir(local)
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            return False
        raise
    fsync_dir(local.parent)
    return True


@dataclass(frozen=True)
class _Undo:
    label: str  # as the error message names it: a host path, a sysctl name, "dir/"
    action: Callable[[], bool]  # True when it changed the host back
    mark: Callable[[], None] = lambda: None  # record the undo in the journal (in memory)


# -- apply -------------------------------------------------------------------------------
@dataclass
class _Apply:
    host: HostRoot
    runtime: RuntimeFiles
    journal: _Journal
    step: StepHook
    runner: CommandRunner | None = None
    undos: list[_Undo] = field(default_factory=list)

    def run(self, checked: _Checked) -> None:
        for index, file_step in enumerate(checked.files):
            self.back_up(index, file_step)
        # Commands first (firewall rules, module unloads), so that a rollback, which goes
        # newest first, restores the files (say, a modprobe.d "install ... /bin/false")
        # before it undoes the commands (loads the module again).
        for index, command in enumerate(checked.commands):
            self.run_command(index, command)
        for index, file_step in enumerate(checked.files):
            self.write_file(index, file_step)
        # Runtime values last: if a file cannot be written, the running kernel is untouched.
        for index, sysctl_step in enumerate(checked.sysctls):
            self.set_sysctl(index, sysctl_step)
        self.verify(checked)
        self.journal.update(replace(self.journal.entry, state=APPLIED))

    def run_command(self, index: int, command: RunCommand) -> None:
        runner = self.runner
        if runner is None:
            raise _Failed(f"cannot {command.what}: no command runner given")
        undo = _CommandUndo(runner, command.undo_argv, command.undo_stdin, command.undo_check,
                            bool(command.stdin), self.step, command.what)  # fmt: skip
        mark = lambda: self.journal.mark("commands", index, "undone", save=False)  # noqa: E731
        if command.undo_check is not None and command.undo_from is None:
            # checked against the live ruleset, this undo is safe even if the command did
            # nothing (or was killed after it committed): register it first
            self.undos.append(_Undo(command.what, undo.run, mark))
        with _failing_as(f"cannot {command.what}"):
            self.step(f"run {command.what}")
            output = runner.run(command.argv, command.stdin)
        if command.undo_from == NFT_ECHO:
            undo.stdin = undo_from_echo(output)
            self.undos.append(_Undo(command.what, undo.run, mark))
            added = count_added_rules(command.stdin)
            deleted = undo.stdin.count("delete rule ")
            if deleted != added:
                raise _Failed(
                    f"cannot {command.what}: nft echoed {deleted} of the {added} rule handles,"
                    " so the rules could not all be undone later"
                )
        elif command.undo_check is None:
            self.undos.append(_Undo(command.what, undo.run, mark))
        self.journal.mark("commands", index, "done", undo_stdin=undo.stdin, output=output[:4000])

    def back_up(self, index: int, file_step: _FileStep) -> None:
        if file_step.current is None:
            return
        path = file_step.change.path
        with _failing_as(f"cannot back up {path}"):
            self.step(f"backup {path}")
            if read_or_none(file_step.local) != file_step.current:
                raise _Failed(f"cannot back up {path}: it changed while ctguard was applying")
            backup = self.journal.backup_path(str(index))
            replace_file(backup, file_step.current, PRIVATE_FILE_MODE, None, _no_hook, "backup")

    def write_file(self, index: int, file_step: _FileStep) -> None:
        change = file_step.change
        for directory in _missing_dirs(file_step.real, self.host):
            self.make_dir(directory)
        record = self.journal.entry.files[index]
        self.undos.append(
            _Undo(
                change.path,
                lambda: self.unwrite(file_step, record),
                lambda: self.journal.mark("files", index, "undone", save=False),
            )
        )
        owner = None if record.uid is None or record.gid is None else (record.uid, record.gid)
        with _failing_as(f"cannot write {change.path}"):
            replace_file(file_step.local, change.after, record.mode, owner, self.step, change.path)
        self.journal.mark("files", index, "done")

    def unwrite(self, file_step: _FileStep, record: FileRecord) -> bool:
        if read_or_none(file_step.local) == file_step.current:
            return False  # the failure came before the rename: the target never changed
        _put_back(file_step.local, record, file_step.current, _undo_step(self.step), record.path)
        return True

    def make_dir(self, directory: str) -> None:
        local = self.host.base / directory.lstrip("/")
        with _failing_as(f"cannot create directory {directory}"):
            self.step(f"mkdir {directory}")
            os.mkdir(local, NEW_DIR_MODE)
            self.undos.append(
                _Undo(
                    directory + "/",
                    lambda: _remove_dir_if_empty(local, _undo_step(self.step), directory),
                )
            )
            self.step(f"chmod {directory}")
            os.chmod(local, NEW_DIR_MODE)  # whatever the umask
            self.step(f"fsync-dir {directory}")
            fsync_dir(local.parent)
        entry = self.journal.entry
        self.journal.update(replace(entry, created_dirs=(*entry.created_dirs, directory)))

    def set_sysctl(self, index: int, sysctl_step: _SysctlStep) -> None:
        change = sysctl_step.change
        self.undos.append(
            _Undo(
                change.name,
                lambda: self.unset(sysctl_step),
                lambda: self.journal.mark("sysctls", index, "undone", save=False),
            )
        )
        with _failing_as(f"cannot set {change.name} to {change.after}"):
            self.step(f"set {change.path}")
            self.runtime.write(change.path, str(change.after))
        self.journal.mark("sysctls", index, "done")

    def unset(self, sysctl_step: _SysctlStep) -> bool:
        path = sysctl_step.change.path
        self.step(f"undo set {path}")
        with suppress(OSError, ValueError):
            if int(self.runtime.read(path)) == sysctl_step.current:
                return False  # the write was refused: the value never changed
        self.runtime.write(path, str(sysctl_step.current))
        return True

    def verify(self, checked: _Checked) -> None:
        for file_step in checked.files:
            path = file_step.change.path
            with _failing_as(f"cannot verify {path}"):
                self.step(f"verify {path}")
                if sha256(read_or_none(file_step.local)) != file_step.change.after_sha256:
                    raise _Failed(f"cannot verify {path}: it does not read back what was written")
        for sysctl_step in checked.sysctls:
            change = sysctl_step.change
            with _failing_as(f"cannot verify {change.name}"):
                self.step(f"verify {change.path}")
                got = self.runtime.read(change.path)
                if not _is_int(got, change.reads_back):
                    raise _Failed(
                        f"cannot verify {change.name}: it reads back {got[:40]!r} after writing"
                        f" {change.after}, expected {change.reads_back}"
                    )

    def undo_all(self, failure: str) -> str:
        """Undo every step taken, newest first, and say in one line what happened."""
        undone: list[str] = []
        failed: list[str] = []
        for undo in reversed(self.undos):
            try:
                if undo.action():
                    undone.append(undo.label)
                    undo.mark()
            except Exception as exc:  # one step that cannot be undone must not stop the rest
                failed.append(f"{undo.label} ({_reason(exc)})")
        state = UNDO_FAILED if failed else UNDONE
        problem = None
        try:
            entry = replace(
                self.journal.entry, state=state, error=failure, undo_failed=tuple(failed)
            )
            self.journal.update(entry)
        except _Failed as exc:
            problem = str(exc)
        parts = [failure]
        if failed:
            parts.append("could not undo: " + ", ".join(failed))
        if undone:
            parts.append("undone: " + ", ".join(undone))
        elif not failed:
            parts.append("nothing had been changed")
        if failed:
            parts.append(f"journal {self.journal.dir} ('ctguard rollback {self.journal.entry.id}')")
        if problem:
            parts.append(problem)
        return _one_line("; ".join(parts))


@dataclass
class _CommandUndo:
    """The undo of one command: run as recorded, or first fitted to the live ruleset."""

    runner: CommandRunner
    argv: Sequence[str]
    stdin: str
    check: str | None
    scripted: bool  # the command reads a script (nft -f -, iptables-restore)
    step: StepHook
    what: str

    def run(self) -> bool:
        """False when there is nothing to undo (no command, or nothing left to delete)."""
        script = self.stdin
        if self.check is not None and script.strip():
            listing = self.runner.run(LISTING[self.check], "")
            script = reconcile(self.check, script, listing)
        if not self.argv or (self.scripted and not script.strip()):
            return False
        self.step(f"undo {self.what}")
        self.runner.run(self.argv, script)
        if self.check in ("iptables", "ip6tables"):  # the only ones with a cleanup
            follow = cleanup(self.check, self.runner.run(LISTING[self.check], ""))
            if follow is not None:
                self.runner.run(*follow)
        return True


def _is_int(text: str, value: int) -> bool:
    try:
        return int(text) == value
    except ValueError:
        return False


def _undo_step(step: StepHook) -> StepHook:
    return lambda name: step(f"undo {name}")


def apply_changes(
    files: Sequence[WriteFile],
    sysctls: Sequence[SetSysctl],
    *,
    root: Path,
    runtime: RuntimeFiles,
    state_dir: Path,
    meta: Mapping[str, str | None],
    hook: StepHook | None = None,
    commands: Sequence[RunCommand] = (),
    runner: CommandRunner | None = None,
) -> ApplyResult:
    """Make the host match the plan, or leave it as it was and raise ApplyError.

    StalePlanError (before anything is written) when the host changed since the plan.
    ``commands`` (checked against the live state by their planner) run through ``runner``.
    """
    step = hook or _no_hook
    host = HostRoot(root)
    checked = replace(_check(files, sysctls, host, runtime), commands=tuple(commands))
    if not checked.files and not checked.sysctls and not checked.commands:
        return ApplyResult(None, (), (), checked.skipped)
    journal = _Journal.create(state_dir, _new_entry(checked, meta), step)
    run = _Apply(host, runtime, journal, step, runner)
    try:
        run.run(checked)
    except BaseException as exc:  # Ctrl-C too: the host must not stay half-changed
        message = run.undo_all(str(exc) if isinstance(exc, _Failed) else _reason(exc))
        if not isinstance(exc, Exception):
            raise
        raise ApplyError(message) from exc
    return ApplyResult(
        entry_id=journal.entry.id,
        files=tuple(s.change.path for s in checked.files),
        sysctls=tuple(s.change.path for s in checked.sysctls),
        skipped=checked.skipped,
        commands=tuple(c.what for c in checked.commands),
    )


# -- rollback ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _FileRestore:
    index: int
    record: FileRecord
    local: Path
    old: bytes | None  # the content before apply; None: the file did not exist


@dataclass(frozen=True)
class _RollbackTodo:
    files: tuple[_FileRestore, ...]
    sysctls: tuple[tuple[int, SysctlRecord], ...]
    commands: tuple[tuple[int, CommandRecord], ...] = ()


def rollback(
    entry_id: str | None,
    *,
    root: Path,
    runtime: RuntimeFiles,
    state_dir: Path,
    force: bool = False,
    hook: StepHook | None = None,
    runner: CommandRunner | None = None,
) -> RollbackResult:
    """Put back what journal entry ``entry_id`` (None: the newest applied one) changed.

    A file or value changed by someone else since the apply is not overwritten unless
    ``force``; in that case nothing at all is rolled back and CtguardError names them.
    """
    step = hook or _no_hook
    host = HostRoot(root)
    entry = _entry_to_roll_back(state_dir, entry_id)
    if entry.state in (ROLLED_BACK, UNDONE):
        return RollbackResult(entry.id, (), (), (), nothing_to_do=True)
    todo = _rollback_todo(entry, host, runtime, state_dir, force)
    if todo.commands and runner is None:
        raise CtguardError(f"entry {entry.id} ran commands, and no command runner was given")
    return _Rollback(host, runtime, _Journal(state_dir, entry, step), step, runner).run(todo)


def _entry_to_roll_back(state_dir: Path, entry_id: str | None) -> JournalEntry:
    if entry_id is not None:
        return read_entry(state_dir, entry_id)
    for entry in list_entries(state_dir):
        if entry.state == APPLIED:
            return entry
    raise CtguardError(f"no applied change to roll back (journal: {state_dir / JOURNAL_SUBDIR})")


def _rollback_todo(
    entry: JournalEntry, host: HostRoot, runtime: RuntimeFiles, state_dir: Path, force: bool
) -> _RollbackTodo:
    """What to put back; every check is made before the first write."""
    files: list[_FileRestore] = []
    sysctls: list[tuple[int, SysctlRecord]] = []
    changed: list[str] = []
    for index, record in enumerate(entry.files):
        with _or_apply_error(f"cannot read {record.real_path}", "nothing was rolled back"):
            _, local = resolve_in_root(host, record.real_path)
            now = sha256(read_or_none(local))
        if now == record.before_sha256:
            continue  # never written, or already put back
        if now != record.after_sha256 and not force:
            changed.append(record.path)
            continue
        old = _backup_bytes(entry, record, state_dir)
        files.append(_FileRestore(index, record, local, old))
    for index, setting in enumerate(entry.sysctls):
        value = _read_value(runtime, setting.path, "nothing was rolled back")
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
    # journal update): its undo is run too when it is checked against the live ruleset.
    commands = tuple(
        (index, record)
        for index, record in enumerate(entry.commands)
        if not record.undone and (record.done or record.undo_check is not None)
    )
    return _RollbackTodo(tuple(files), tuple(sysctls), commands)


def _backup_bytes(entry: JournalEntry, record: FileRecord, state_dir: Path) -> bytes | None:
    if not record.existed or record.backup is None:
        return None
    path = backup_file(state_dir, entry.id, record.backup)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CtguardError(
            f"cannot read the backup of {record.path} ({path}: {exc.strerror or exc});"
            " nothing was rolled back"
        ) from None
    if sha256(data) != record.before_sha256:
        raise CtguardError(
            f"the backup of {record.path} ({path}) does not match its recorded checksum;"
            " nothing was rolled back"
        )
    return data


@dataclass
class _Rollback:
    host: HostRoot
    runtime: RuntimeFiles
    journal: _Journal
    step: StepHook
    runner: CommandRunner | None = None
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
            when = _now().isoformat(timespec="seconds")
            done = replace(self.journal.entry, state=ROLLED_BACK, rolled_back=when)
            self.journal.update(done)
        except _Failed as exc:
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
        assert self.runner is not None  # rollback() checked
        with _failing_as(f"cannot undo {record.what}"):
            undo = _CommandUndo(
                self.runner,
                record.undo_argv,
                record.undo_stdin,
                record.undo_check,
                bool(record.stdin),
                self.step,
                record.what,
            )
            if undo.run():
                self.commands.append(record.what)
        self.journal.mark("commands", index, "undone")

    def restore_sysctl(self, index: int, setting: SysctlRecord) -> None:
        with _failing_as(f"cannot restore {setting.name} to {setting.before}"):
            self.step(f"restore {setting.path}")
            self.runtime.write(setting.path, str(setting.before))
        self.sysctls.append(setting.path)
        self.journal.mark("sysctls", index, "undone")

    def restore_file(self, restore: _FileRestore) -> None:
        record = restore.record
        with _failing_as(f"cannot restore {record.path}"):
            _put_back(restore.local, record, restore.old, self.step, record.path)
        (self.removed if restore.old is None else self.files).append(record.path)
        self.journal.mark("files", restore.index, "undone")

    def remove_dir(self, directory: str) -> None:
        with _failing_as(f"cannot remove directory {directory}"):
            _, local = resolve_in_root(self.host, directory)
            if _remove_dir_if_empty(local, self.step, directory):
                self.removed_dirs.append(directory)

    def failure(self, what: str, state: str) -> str:
        """One line for a rollback that stopped; the entry keeps its state so a rerun
        (which skips what is already back) can finish."""
        done = self.sysctls + self.files + self.removed + self.removed_dirs + self.commands
        entry = replace(self.journal.entry, state=state, rolled_back=None)
        with suppress(_Failed):
            self.journal.update(replace(entry, error=f"rollback failed: {what}"))
        so_far = f"restored so far: {', '.join(done)}" if done else "nothing had been restored"
        return _one_line(
            f"{what}; {so_far}; 'ctguard rollback {self.journal.entry.id}' again finishes it"
        )
