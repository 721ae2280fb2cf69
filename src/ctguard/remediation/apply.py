"""Carry out a plan on a host: the only code in ctguard that changes one (with rollback.py).

The order is what makes it safe (docs/design.md §9):

1. take the state directory's lock, and refuse while an earlier apply did not finish (its
   entry says "applying" or "undo-failed": 'ctguard rollback' finishes it first);
2. check every change against the host before writing anything: a file must still have the
   content the plan was made from, or already have the planned content (then it is skipped,
   so a second apply changes nothing); a runtime value likewise;
3. create the journal entry (``<state_dir>/journal/<id>/``) listing every step, and back up
   every file about to be replaced, so a crash at any later instant can be rolled back;
   a directory is recorded in the journal before it is made;
4. write files, each through a temporary file in its own directory that is fsynced and then
   renamed over the target: the target always holds the old bytes or the new, never a part;
5. set runtime values only once the files that make them persistent are in place;
6. read everything back. Any failure on the way undoes what was done, newest first, and
   becomes one ``ApplyError`` line saying what failed, why, and what was put back.

Every file is reached through ``tree_fs.Tree``: links are followed once, inside the root,
and every write then walks that real path without following any link, so a link swapped
in while ctguard works can never lead a write out of the root.
"""

from __future__ import annotations

import hashlib
import secrets
import stat
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from ctguard import __version__
from ctguard.errors import CtguardError
from ctguard.remediation.apply_steps import Apply, FileStep, SysctlStep
from ctguard.remediation.changes import RunCommand, SetSysctl, WriteFile, sha256
from ctguard.remediation.command_runner import CommandRunner
from ctguard.remediation.failures import (
    ApplyError,
    Failed,
    StalePlanError,
    describe,
    one_line,
    or_apply_error,
    reason,
)
from ctguard.remediation.journal import (
    APPLYING,
    UNDO_FAILED,
    Baseline,
    CommandRecord,
    JournalEntry,
    list_entries,
)
from ctguard.remediation.journal_writer import JournalWriter, sweep_unborn
from ctguard.remediation.rollback import RollbackResult, rollback
from ctguard.remediation.runtime_files import NetnsRuntime, RuntimeFiles, TreeRuntime, read_int
from ctguard.remediation.state_dir import MAX_BACKUP_BYTES, StateDir
from ctguard.remediation.tree_fs import StepHook, Tree

__all__ = [
    "ApplyError", "ApplyResult", "NetnsRuntime", "RollbackResult", "RuntimeFiles",
    "StalePlanError", "StepHook", "Tree", "TreeRuntime", "apply_changes", "dry_run", "rollback",
]  # fmt: skip


@dataclass(frozen=True)
class ApplyResult:
    entry_id: str | None  # None: everything was already in place, no journal entry
    files: tuple[str, ...]  # host paths written
    sysctls: tuple[str, ...]  # runtime paths written
    skipped: tuple[str, ...]  # already in place
    commands: tuple[str, ...] = ()  # what each command run did


# -- checking a plan against the host -----------------------------------------------------
@dataclass(frozen=True)
class _Checked:
    files: tuple[FileStep, ...]
    sysctls: tuple[SysctlStep, ...]
    skipped: tuple[str, ...]
    skipped_lines: tuple[str, ...]
    commands: tuple[RunCommand, ...] = ()  # not checked here: their planner read the host


def _check(
    files: Sequence[WriteFile],
    sysctls: Sequence[SetSysctl],
    tree: Tree,
    runtime: RuntimeFiles,
) -> _Checked:
    """Compare every change with the host; StalePlanError if one no longer fits."""
    file_steps: list[FileStep] = []
    sysctl_steps: list[SysctlStep] = []
    skipped: list[str] = []
    lines: list[str] = []
    written: set[str] = set()
    for change in files:
        step = _check_file(change, tree)
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
            sysctl_steps.append(SysctlStep(setting, current))
            sysctl_steps += _mirrors(setting, runtime)
    return _Checked(tuple(file_steps), tuple(sysctl_steps), tuple(skipped), tuple(lines))


def _mirrors(setting: SetSysctl, runtime: RuntimeFiles) -> list[SysctlStep]:
    """The other files a tree keeps for the same kernel variable (the hash size has two):
    journalled as steps of their own, so a rollback puts each back."""
    steps = []
    for path in runtime.mirrors(setting.path):
        current = _read_value(runtime, path, "nothing had been changed")
        if current != setting.reads_back:
            name = f"{PurePosixPath(path).name} (mirror)"
            why = f"the same kernel variable as {setting.name}"
            mirror = SetSysctl(name, path, current, setting.reads_back, setting.scope, why)
            steps.append(SysctlStep(mirror, current))
    return steps


def _check_file(change: WriteFile, tree: Tree) -> FileStep:
    with or_apply_error(f"cannot read {change.path}", "nothing had been changed"):
        real = tree.realpath(change.path)
        st = tree.lstat(real)
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise StalePlanError(
                f"{change.path} is not a regular file; ctguard only writes regular files"
            )
        current = tree.read(real, MAX_BACKUP_BYTES)
    if current != change.after and sha256(current) != change.before_sha256:
        raise StalePlanError(
            f"{change.path} changed since the plan was made"
            f" ({_describe(change.before)} then, {_describe(current)} now):"
            " make a new plan (ctguard plan)"
        )
    return FileStep(change, real, current, st if current is not None else None)


def _describe(data: bytes | None) -> str:
    if data is None:
        return "absent"
    return f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:12]}"


def _read_value(runtime: RuntimeFiles, path: str, consequence: str) -> int:
    with or_apply_error(f"cannot read {path}", consequence):
        return read_int(runtime, path)


def _missing_dirs(real: str, tree: Tree) -> list[str]:
    """Host paths of the absent directories above ``real``, outermost first."""
    parents = list(PurePosixPath(real).parents)[:-1]  # drop "/"
    return [str(p) for p in reversed(parents) if tree.lstat(str(p)) is None]


# -- dry run -----------------------------------------------------------------------------
def dry_run(
    files: Sequence[WriteFile],
    sysctls: Sequence[SetSysctl],
    *,
    root: Path | Tree,
    runtime: RuntimeFiles,
) -> tuple[list[str], list[str]]:
    """(what apply would change, what is already in place), one line each; reads only.

    StalePlanError, as apply would raise it, when the host no longer fits the plan.
    """
    tree = Tree.of(root)
    checked = _check(files, sysctls, tree, runtime)
    lines = [_would_write(step, tree) for step in checked.files]
    for s in checked.sysctls:
        back = "" if s.change.expect is None else f" (the kernel makes it {s.change.expect})"
        lines.append(
            f"set {s.change.name} {s.current} -> {s.change.after}{back}: {s.change.path}"
            f" ({s.change.why})"
        )
    return lines, list(checked.skipped_lines)


def _would_write(step: FileStep, tree: Tree) -> str:
    c = step.change
    if step.st is not None:
        mode = stat.S_IMODE(step.st.st_mode)
        return f"replace {c.path} (backup kept; mode {mode:04o} and owner kept) ({c.why})"
    new_dirs = _missing_dirs(step.real, tree)
    dirs = f", creating {', '.join(new_dirs)}" if new_dirs else ""
    return f"create {c.path} (mode {c.mode:04o}{dirs}) ({c.why})"


def _no_hook(name: str) -> None:
    """The default StepHook: tests pass one that fails (or kills) at a chosen step."""


# -- apply -------------------------------------------------------------------------------
def _new_entry(
    checked: _Checked, meta: Mapping[str, str | None], tree: Tree, baseline: Baseline
) -> JournalEntry:
    now = datetime.now(UTC)
    dirs: list[str] = []
    for step in checked.files:
        dirs += [d for d in _missing_dirs(step.real, tree) if d not in dirs]
    return JournalEntry(
        id=now.strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(2),
        created=now.isoformat(timespec="microseconds"),
        ctguard_version=__version__,
        state=APPLYING,
        meta=dict(meta),
        counters=dict(baseline.counters),
        table_id=baseline.table_id,
        # Every planned step is listed before the first one is taken.
        files=tuple(
            step.record(None if step.st is None else str(index))
            for index, step in enumerate(checked.files)
        ),
        sysctls=tuple(step.record() for step in checked.sysctls),
        created_dirs=tuple(dirs),  # listed before any is made; rollback removes them if empty
        commands=tuple(
            CommandRecord(
                c.what,
                c.argv,
                c.stdin,
                c.undo_argv,
                c.undo_stdin,
                "",
                c.undo_check,
                undo_from=c.undo_from,
            )
            for c in checked.commands
        ),
    )


def refuse_unfinished(state: StateDir) -> None:
    """CtguardError when an earlier apply stopped half-way: rollback finishes it first, so
    that a new entry never stands on top of one that is half applied."""
    for entry in list_entries(state):
        if entry.state in (APPLYING, UNDO_FAILED):
            why = "it was stopped half-way" if entry.state == APPLYING else entry.state
            raise CtguardError(
                f"journal entry {entry.id} did not finish ({why}): 'ctguard rollback"
                f" {entry.id}' puts back what it changed; then run this again"
            )


def apply_changes(
    files: Sequence[WriteFile],
    sysctls: Sequence[SetSysctl],
    *,
    root: Path | Tree,
    runtime: RuntimeFiles,
    state_dir: StateDir | Path,
    meta: Mapping[str, str | None],
    hook: StepHook | None = None,
    commands: Sequence[RunCommand] = (),
    runner: CommandRunner | None = None,
    baseline: Baseline | None = None,
) -> ApplyResult:
    """Make the host match the plan, or leave it as it was and raise ApplyError.

    StalePlanError (before anything is written) when the host changed since the plan.
    ``commands`` (checked against the live state by their planner) run through ``runner``.
    """
    try:
        return _apply_changes(files, sysctls, root, runtime, StateDir.of(state_dir), meta,
                              hook or _no_hook, commands, runner,
                              baseline or Baseline())  # fmt: skip
    except OSError as exc:  # before the journal exists: after, every failure is undone
        raise ApplyError(one_line(f"{describe(exc)}; nothing had been changed")) from None


def _apply_changes(
    files: Sequence[WriteFile],
    sysctls: Sequence[SetSysctl],
    root: Path | Tree,
    runtime: RuntimeFiles,
    state: StateDir,
    meta: Mapping[str, str | None],
    step: StepHook,
    commands: Sequence[RunCommand],
    runner: CommandRunner | None,
    baseline: Baseline,
) -> ApplyResult:
    if commands and not state.trusted:
        raise CtguardError("commands are run only with a state directory on this machine")
    tree = Tree.of(root)
    # Checked once before the state directory is made or locked (a stale plan or one
    # already in place writes nothing at all), and again under the lock.
    checked = _check(files, sysctls, tree, runtime)
    if not checked.files and not checked.sysctls and not commands:
        if state.exists():  # in place, maybe by an apply that was killed: say so
            with state.lock(create=False):
                refuse_unfinished(state)
        return ApplyResult(None, (), (), checked.skipped)
    with ExitStack() as held:
        try:
            held.enter_context(state.lock(create=True, written=tree))
        except OSError as exc:
            raise ApplyError(
                f"cannot use the state directory {state.shown()}: {reason(exc)};"
                " nothing had been changed"
            ) from None
        sweep_unborn(state)
        refuse_unfinished(state)
        checked = replace(_check(files, sysctls, tree, runtime), commands=tuple(commands))
        if not checked.files and not checked.sysctls and not checked.commands:
            return ApplyResult(None, (), (), checked.skipped)
        return _apply(checked, tree, runtime, state, meta, step, runner, baseline)


def _apply(
    checked: _Checked,
    tree: Tree,
    runtime: RuntimeFiles,
    state: StateDir,
    meta: Mapping[str, str | None],
    step: StepHook,
    runner: CommandRunner | None,
    baseline: Baseline,
) -> ApplyResult:
    journal = JournalWriter.create(state, _new_entry(checked, meta, tree, baseline), step)
    run = Apply(tree, runtime, journal, step, runner)
    try:
        run.run(checked.files, checked.sysctls, checked.commands)
    except BaseException as exc:  # Ctrl-C too: the host must not stay half-changed
        message = run.undo_all(str(exc) if isinstance(exc, Failed) else reason(exc))
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
