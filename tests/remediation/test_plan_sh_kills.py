"""``plan --format sh`` stopped dead (SIGKILL, as a power cut) at each of its steps: run
again, it finishes (the tree is the one an uninterrupted run makes); or its undo script,
when it was written, gives back the original tree, every byte and mode."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from remediation.plan_sh_helpers import SHELLS, TREES, copy_tree, make_script, picture, run

pytestmark = pytest.mark.skipif(not SHELLS, reason="neither dash nor bash is installed")
MAX_STEPS = 100  # far more than any plan here has: the loop ends on a run that finishes


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("name", sorted(TREES))
def test_killed_at_each_step_a_rerun_finishes_or_the_undo_restores(
    shell: str, name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = copy_tree(TREES[name], tmp_path / "source")
    script = make_script(capsys, source, tmp_path / "plan.sh", stops=True)
    original = picture(source)
    whole = copy_tree(source, tmp_path / "whole")
    assert run(shell, script, whole, tmp_path / "whole-backups").returncode == 0
    applied = picture(whole)

    stops = 0
    for step in range(1, MAX_STEPS + 1):
        # the undo script names its tree and backups: each way on from a kill gets its own
        undone, backups = _killed(shell, script, source, tmp_path / f"undo-{step}", step)
        if undone is None:  # the script has fewer steps: each one was tried
            break
        stops += 1
        undo = backups / "undo.sh"
        if undo.exists():  # else nothing had been changed
            done = run(shell, undo, undone, backups)
            assert done.returncode == 0, (step, done.stderr)
        assert picture(undone) == original, step

        tree, backups = _killed(shell, script, source, tmp_path / f"again-{step}", step)
        assert tree is not None
        again = run(shell, script, tree, backups)
        assert again.returncode == 0, (step, again.stderr)
        assert picture(tree) == applied, step
        # and after that, the undo still gives back the original
        assert run(shell, backups / "undo.sh", tree, backups).returncode == 0
        assert picture(tree) == original, step
    else:
        pytest.fail(f"the script was still stopping at step {MAX_STEPS}")
    assert stops >= 10  # a backup, a write and a value each for several files and values


def _killed(
    shell: str, script: Path, source: Path, to: Path, step: int
) -> tuple[Path | None, Path]:
    """A copy of ``source`` with the script killed at ``step`` (None: it finished first)."""
    tree = copy_tree(source, to / "tree")
    backups = to / "backups"
    killed = run(shell, script, tree, backups, stop_at=step)
    if killed.returncode == 0:
        return None, backups
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    return tree, backups
