"""Issue 14, item 4: ctguard killed (SIGKILL: no undo, no finally) before any one of the
steps of an apply or a rollback; then recovered. Every step hook stands right before a
write system call (create a temporary file, write, chmod, fsync, rename, unlink, mkdir,
rmdir, set a runtime value, run a command), so killing at each one kills between every
two writes. After recovery the tree holds its exact original bytes (a rollback), or the
complete plan (an apply after that rollback), with no temporary file left.

The kill is real: the apply runs in a forked child that sends itself SIGKILL. The same
is done at the level of system calls, on the ctguard command, in
tests/cli/test_kill_at_syscalls.py."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from ctguard.errors import CtguardError
from ctguard.remediation.journal import list_entries
from ctguard.remediation.rollback import NothingToRollBack
from ctguard.remediation.state_dir import StateDir
from remediation.conftest import apply_tree, make_tree, roll_back_tree, temp_files, tree_state

STATE = "var/lib/ctguard"


def host_state(root: Path) -> dict[str, tuple[object, ...]]:
    """The tree as the host sees it: everything but ctguard's own journal."""
    return {k: v for k, v in tree_state(root).items() if not k.startswith(STATE)}


def killed_at(k: int, action: Callable[[Callable[[str], None]], object]) -> list[str]:
    """Run ``action(hook)`` in a child that SIGKILLs itself as it reaches its ``k``-th step;
    the steps it reached (all of them when it finished before)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read)
        reached = 0

        def hook(step: str) -> None:
            nonlocal reached
            os.write(write, f"{step}\n".encode())
            if reached == k:
                os.kill(os.getpid(), signal.SIGKILL)
            reached += 1

        try:
            action(hook)
            os._exit(0)
        except BaseException:
            os._exit(3)
    os.close(write)
    with os.fdopen(read) as f:
        steps = f.read().splitlines()
    _, status = os.waitpid(pid, 0)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert killed == (k < len(steps)) or os.waitstatus_to_exitcode(status) == 0, (k, status)
    return steps


def steps_and_result(base: Path) -> tuple[list[str], dict[str, tuple[object, ...]]]:
    """The steps of a good apply, and the tree it leaves."""
    root, _ = make_tree(base)
    steps: list[str] = []
    apply_tree(root, steps.append)
    return steps, host_state(root)


def test_killed_at_any_step_of_apply_rollback_restores_the_original(tmp_path):
    steps, applied = steps_and_result(tmp_path / "count")
    assert len(steps) > 60
    for k, name in enumerate(steps):
        root, _ = make_tree(tmp_path / str(k))
        before = host_state(root)
        reached = killed_at(k, lambda hook, root=root: apply_tree(root, hook))
        assert reached[-1] == name, (k, name, reached[-1])
        entries = list_entries(StateDir.in_tree(root))
        if entries and entries[0].state == "applying":
            # a re-run of apply does not stack a new entry on a half-applied one
            with pytest.raises(CtguardError, match="did not finish"):
                apply_tree(root)
        with contextlib.suppress(NothingToRollBack):  # killed before the journal existed
            roll_back_tree(root)
        assert host_state(root) == before, (k, name)
        assert temp_files(root) == [], (k, name)
        assert all(e.state == "rolled-back" for e in list_entries(StateDir.in_tree(root)))
        # and the plan applies whole afterwards
        apply_tree(root)
        assert host_state(root) == applied, (k, name)


def test_killed_at_any_step_of_rollback_a_rerun_finishes_it(tmp_path):
    root, _ = make_tree(tmp_path / "count")
    before = host_state(root)
    apply_tree(root)
    steps: list[str] = []
    from ctguard.remediation.apply import TreeRuntime, rollback

    def roll_back(hook: Callable[[str], None], root: Path) -> object:
        return rollback(None, root=root, runtime=TreeRuntime(root),
                        state_dir=StateDir.in_tree(root), hook=hook)  # fmt: skip

    roll_back(steps.append, root)
    assert host_state(root) == before
    assert len(steps) > 30
    for k, name in enumerate(steps):
        root, _ = make_tree(tmp_path / str(k))
        apply_tree(root)
        reached = killed_at(k, lambda hook, root=root: roll_back(hook, root))
        assert reached[-1] == name, (k, name)
        with contextlib.suppress(NothingToRollBack):  # killed once it said "rolled-back"
            roll_back_tree(root)
        assert host_state(root) == before, (k, name)
        assert temp_files(root) == [], (k, name)
        assert [e.state for e in list_entries(StateDir.in_tree(root))] == ["rolled-back"]


def test_killed_twice_apply_then_its_recovery_still_recovers(tmp_path):
    """A second crash, in the middle of the rollback that recovers the first."""
    steps, _ = steps_and_result(tmp_path / "count")
    for k in range(0, len(steps), 7):
        root, _ = make_tree(tmp_path / str(k))
        before = host_state(root)
        killed_at(k, lambda hook, root=root: apply_tree(root, hook))
        from ctguard.remediation.apply import TreeRuntime, rollback

        killed_at(
            k // 3,
            lambda hook, root=root: rollback(
                None, root=root, runtime=TreeRuntime(root), state_dir=StateDir.in_tree(root),
                hook=hook,
            ),
        )  # fmt: skip
        with contextlib.suppress(NothingToRollBack):
            roll_back_tree(root)
        assert host_state(root) == before, k
        assert temp_files(root) == [], k


def test_a_runtime_value_left_empty_is_named_and_force_restores_it(tmp_path):
    """A tree value emptied by something else (ctguard itself replaces it whole): the
    rollback names it, and --force puts the recorded value back."""
    from ctguard.remediation.apply import TreeRuntime, rollback

    root, _ = make_tree(tmp_path)
    max_file = root / "proc/sys/net/netfilter/nf_conntrack_max"
    apply_tree(root)
    max_file.write_text("")
    with pytest.raises(CtguardError, match=r"nf_conntrack_max \(now '', ctguard set 262144\)"):
        roll_back_tree(root)
    rollback(None, root=root, runtime=TreeRuntime(root), state_dir=StateDir.in_tree(root),
             force=True)  # fmt: skip
    assert max_file.read_text() == "65536\n"
