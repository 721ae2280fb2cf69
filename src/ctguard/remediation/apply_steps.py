"""The steps of one apply, each journalled, each with its undo (apply.py orders them)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace

from ctguard.remediation.changes import NFT_ECHO, RunCommand, SetSysctl, WriteFile, sha256
from ctguard.remediation.command_runner import CommandRunner
from ctguard.remediation.failures import Failed, failing_as, one_line, reason
from ctguard.remediation.journal import (
    APPLIED,
    UNDO_FAILED,
    UNDONE,
    FileRecord,
    SysctlRecord,
)
from ctguard.remediation.journal_writer import JournalWriter
from ctguard.remediation.nft_echo import count_added_rules, undo_from_echo
from ctguard.remediation.runtime_files import RuntimeFiles
from ctguard.remediation.state_dir import MAX_BACKUP_BYTES
from ctguard.remediation.tree_fs import PRIVATE_FILE_MODE, StepHook, Tree
from ctguard.remediation.undo import CommandUndo, tagged_handles
from ctguard.remediation.undo_check import LISTING

NEW_DIR_MODE = 0o755  # a directory apply creates under /etc, like the distributions' own


@dataclass(frozen=True)
class FileStep:
    change: WriteFile
    real: str  # host path once links are followed inside the root
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
class SysctlStep:
    change: SetSysctl
    current: int  # read just before; what an undo puts back

    def record(self) -> SysctlRecord:
        c = self.change
        return SysctlRecord(c.name, c.path, self.current, c.after, c.reads_back, c.scope)


@dataclass(frozen=True)
class Undo:
    label: str  # as the error message names it: a host path, a sysctl name, "dir/"
    action: Callable[[], bool]  # True when it changed the host back
    mark: Callable[[], None] = lambda: None  # record the undo in the journal (in memory)


def put_back(
    tree: Tree,
    real_path: str,
    old: bytes | None,
    mode: int,
    owner: tuple[int, int] | None,
    step: StepHook,
    label: str,
) -> None:
    """Give the file its old content, mode and owner again, or remove it if it was new."""
    if old is None:
        tree.unlink(real_path, step, label)
        return
    tree.replace(real_path, old, mode, owner, step, label)


def recorded_owner(record: FileRecord) -> tuple[int, int] | None:
    return None if record.uid is None or record.gid is None else (record.uid, record.gid)


def _undo_step(step: StepHook) -> StepHook:
    return lambda name: step(f"undo {name}")


@dataclass
class Writer:
    """What apply and rollback write with: the tree, its runtime values, the journal."""

    tree: Tree
    runtime: RuntimeFiles
    journal: JournalWriter
    step: StepHook
    runner: CommandRunner | None = None


@dataclass
class Apply(Writer):
    undos: list[Undo] = field(default_factory=list)

    def run(
        self,
        files: Sequence[FileStep],
        sysctls: Sequence[SysctlStep],
        commands: Sequence[RunCommand],
    ) -> None:
        for index, file_step in enumerate(files):
            self.back_up(index, file_step)
        # Commands first (firewall rules, module unloads), so that a rollback, which goes
        # newest first, restores the files (say, a modprobe.d "install ... /bin/false")
        # before it undoes the commands (loads the module again).
        for index, command in enumerate(commands):
            self.run_command(index, command)
        for index, file_step in enumerate(files):
            self.write_file(index, file_step)
        # Runtime values last: if a file cannot be written, the running kernel is untouched.
        for index, sysctl_step in enumerate(sysctls):
            self.set_sysctl(index, sysctl_step)
        self.verify(files, sysctls)
        self.journal.update(replace(self.journal.entry, state=APPLIED))

    def run_command(self, index: int, command: RunCommand) -> None:
        runner = self.runner
        if runner is None:
            raise Failed(f"cannot {command.what}: no command runner given")
        record = self.journal.entry.commands[index]
        undo = CommandUndo.of(record, runner.run, self.step)
        mark = lambda: self.journal.mark("commands", index, "undone", save=False)  # noqa: E731
        if command.undo_from == NFT_ECHO:
            # What nft adds is known only from its echo; if ctguard dies before recording
            # it, the rules tagged ctguard that were not there before are the ones it added.
            with failing_as(f"cannot {command.what}"):
                before = tagged_handles(runner.run(LISTING["nft"], ""))
            self.journal.mark("commands", index, None, tagged_before=before)
            undo.tagged_before = before
        if command.undo_check is not None:
            # checked against the live ruleset, this undo is safe even if the command did
            # nothing (or was killed after it committed): register it first
            self.undos.append(Undo(command.what, undo.run, mark))
        with failing_as(f"cannot {command.what}"):
            self.step(f"run {command.what}")
            output = runner.run(command.argv, command.stdin)
        undo.unsure = None  # it ran: its undo needs no check that it did
        if command.undo_from == NFT_ECHO:
            undo.stdin, undo.tagged_before = undo_from_echo(output), None
            added = count_added_rules(command.stdin)
            deleted = undo.stdin.count("delete rule ")
            if deleted != added:
                raise Failed(
                    f"cannot {command.what}: nft echoed {deleted} of the {added} rule handles,"
                    " so the rules could not all be undone later"
                )
        elif command.undo_check is None:
            self.undos.append(Undo(command.what, undo.run, mark))
        self.journal.mark("commands", index, "done", undo_stdin=undo.stdin, output=output[:4000])

    def back_up(self, index: int, file_step: FileStep) -> None:
        if file_step.current is None:
            return
        path = file_step.change.path
        with failing_as(f"cannot back up {path}"):
            self.step(f"backup {path}")
            if self.tree.read(file_step.real, MAX_BACKUP_BYTES) != file_step.current:
                raise Failed(f"cannot back up {path}: it changed while ctguard was applying")
            backup = self.journal.backup_path(str(index))
            self.journal.state.tree.replace(
                backup, file_step.current, PRIVATE_FILE_MODE, None, self.step, f"backup {path}"
            )

    def write_file(self, index: int, file_step: FileStep) -> None:
        change = file_step.change
        for directory in self.journal.entry.created_dirs:
            if directory in _above(file_step.real) and self.tree.lstat(directory) is None:
                self.make_dir(directory)
        record = self.journal.entry.files[index]
        self.undos.append(
            Undo(
                change.path,
                lambda: self.unwrite(file_step, record),
                lambda: self.journal.mark("files", index, "undone", save=False),
            )
        )
        owner = None if record.uid is None or record.gid is None else (record.uid, record.gid)
        with failing_as(f"cannot write {change.path}"):
            self.tree.replace(file_step.real, change.after, record.mode, owner, self.step,
                              change.path)  # fmt: skip
        self.journal.mark("files", index, "done")

    def unwrite(self, file_step: FileStep, record: FileRecord) -> bool:
        if self.tree.read(file_step.real, MAX_BACKUP_BYTES) == file_step.current:
            return False  # the failure came before the rename: the target never changed
        put_back(self.tree, record.real_path, file_step.current, record.mode,
                 recorded_owner(record), _undo_step(self.step), record.path)  # fmt: skip
        return True

    def make_dir(self, directory: str) -> None:
        """The journal lists every directory apply may create before the first is made
        (so a crash right after a mkdir still leaves it to rollback)."""
        self.undos.append(
            Undo(
                directory + "/",
                lambda: self.tree.rmdir(directory, _undo_step(self.step), directory),
            )
        )
        with failing_as(f"cannot create directory {directory}"):
            self.tree.mkdir(directory, NEW_DIR_MODE, self.step)

    def set_sysctl(self, index: int, sysctl_step: SysctlStep) -> None:
        change = sysctl_step.change
        self.undos.append(
            Undo(
                change.name,
                lambda: self.unset(sysctl_step),
                lambda: self.journal.mark("sysctls", index, "undone", save=False),
            )
        )
        with failing_as(f"cannot set {change.name} to {change.after}"):
            self.step(f"set {change.path}")
            self.runtime.write(change.path, str(change.after))
        self.journal.mark("sysctls", index, "done")

    def unset(self, sysctl_step: SysctlStep) -> bool:
        path = sysctl_step.change.path
        self.step(f"undo set {path}")
        with suppress(OSError, ValueError):
            if int(self.runtime.read(path)) == sysctl_step.current:
                return False  # the write was refused: the value never changed
        self.runtime.write(path, str(sysctl_step.current))
        return True

    def verify(self, files: Sequence[FileStep], sysctls: Sequence[SysctlStep]) -> None:
        for file_step in files:
            path = file_step.change.path
            with failing_as(f"cannot verify {path}"):
                self.step(f"verify {path}")
                data = self.tree.read(file_step.real, MAX_BACKUP_BYTES)
                if sha256(data) != file_step.change.after_sha256:
                    raise Failed(f"cannot verify {path}: it does not read back what was written")
        for sysctl_step in sysctls:
            change = sysctl_step.change
            with failing_as(f"cannot verify {change.name}"):
                self.step(f"verify {change.path}")
                got = self.runtime.read(change.path)
                if not _is_int(got, change.reads_back):
                    raise Failed(
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
                failed.append(f"{undo.label} ({reason(exc)})")
        state = UNDO_FAILED if failed else UNDONE
        problem = None
        try:
            entry = replace(
                self.journal.entry, state=state, error=failure, undo_failed=tuple(failed)
            )
            self.journal.update(entry)
        except Failed as exc:
            problem = str(exc)
        parts = [failure]
        if failed:
            parts.append("could not undo: " + ", ".join(failed))
        if undone:
            parts.append("undone: " + ", ".join(undone))
        elif not failed:
            parts.append("nothing had been changed")
        if failed:
            parts.append(
                f"journal {self.journal.shown} ('ctguard rollback {self.journal.entry.id}')"
            )
        if problem:
            parts.append(problem)
        return one_line("; ".join(parts))


def _above(real: str) -> list[str]:
    path, out = real, []
    while (parent := os.path.dirname(path)) not in ("/", path):
        out.append(parent)
        path = parent
    return out


def _is_int(text: str, value: int) -> bool:
    try:
        return int(text) == value
    except ValueError:
        return False
