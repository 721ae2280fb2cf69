"""Issue 14, item 4, at the level of system calls: ``ctguard apply --root`` and
``ctguard rollback --root`` killed by strace (``-e inject=SYSCALL:signal=KILL:when=N``)
at the N-th call of each system call that writes, for every N the run makes; then
recovered with ``ctguard rollback``. The tree must hold its exact original bytes (and a
new apply the complete plan), with no temporary file left.

The tree is a copy of examples/rhel6-table-full: a real RHEL 6 sysctl.conf, modprobe.d,
iptables-config and the /proc and /sys values of that host (see examples/README.md)."""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers import STRACE_ENV, ctguard_bin, kill_points, killed_by_strace
from remediation.conftest import temp_files, tree_state

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rhel6-table-full"
STATE = "var/lib/ctguard"

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")


def host_state(root: Path) -> dict[str, tuple[object, ...]]:
    """The tree as its host sees it: everything but ctguard's own journal, which stays
    after a rollback (with the directory above it, made 0755 like the distributions')."""
    state = tree_state(root)
    assert state.get("var/lib", ("dir", 0o755))[:2] == ("dir", 0o755)
    return {k: v for k, v in state.items() if not k.startswith(STATE) and k != "var/lib"}


def ctguard(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ctguard_bin(), *args], capture_output=True, text=True, timeout=60,
                          env=STRACE_ENV, check=False)  # fmt: skip


def on_tree(command: str, tree: Path) -> list[str]:
    return [ctguard_bin(), command, "--root", str(tree), "--yes"]


def killed(done: subprocess.CompletedProcess[str]) -> bool:
    return done.returncode in (-9, 137)


def fresh(base: Path) -> Path:
    tree = base / "T"
    shutil.copytree(EXAMPLE, tree, symlinks=True)
    return tree


@pytest.fixture
def strace_works() -> None:
    done = subprocess.run(["strace", "-o", "/dev/null", "true"], capture_output=True, timeout=30,
                          check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"strace cannot trace here: {done.stderr.decode().strip()[:80]}")


def killed_then_rolled_back(
    command: str, tree: Path, point: tuple[str, int], before: dict[str, tuple[object, ...]]
) -> str:
    """``ctguard COMMAND --root TREE`` killed at ``point``, then ``ctguard rollback``: the
    tree is as it was before the apply, with no temporary file; "killed" or "finished"."""
    done = killed_by_strace(on_tree(command, tree), point)
    assert killed(done) or done.returncode == 0, (point, done.stderr)
    back = ctguard("rollback", "--root", str(tree), "--yes")
    assert back.returncode == 0, (point, back.stderr)
    assert host_state(tree) == before, point
    assert temp_files(tree) == [], point
    return "killed" if killed(done) else "finished"


def run_all(points: list[tuple[str, int]], one: object) -> list[str]:
    """``one(index, point)`` for every kill point, two at a time (two cores)."""
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(one, range(len(points)), points))  # type: ignore[arg-type]


def test_apply_killed_at_every_write_syscall_is_recovered(tmp_path, strace_works):
    points = kill_points(on_tree("apply", fresh(tmp_path / "count")), tmp_path / "count.log")
    assert len(points) > 60 and {name for name, _ in points} >= {"write", "fsync", "renameat"}
    reference = fresh(tmp_path / "reference")
    before = host_state(reference)
    assert ctguard("apply", "--root", str(reference), "--yes").returncode == 0
    applied = host_state(reference)
    assert applied != before

    def one(index: int, point: tuple[str, int]) -> str:
        tree = fresh(tmp_path / str(index))
        outcome = killed_then_rolled_back("apply", tree, point, before)
        again = ctguard("apply", "--root", str(tree), "--yes")
        assert again.returncode == 0, (point, again.stderr)
        assert host_state(tree) == applied, point
        shutil.rmtree(tree.parent)
        return outcome

    assert run_all(points, one).count("killed") == len(points)  # each point kills


def test_rollback_killed_at_every_write_syscall_is_finished_by_a_rerun(tmp_path, strace_works):
    counted = fresh(tmp_path / "count")
    assert ctguard("apply", "--root", str(counted), "--yes").returncode == 0
    points = kill_points(on_tree("rollback", counted), tmp_path / "count.log")
    assert len(points) > 30
    before = host_state(fresh(tmp_path / "reference"))

    def one(index: int, point: tuple[str, int]) -> str:
        tree = fresh(tmp_path / str(index))
        assert ctguard("apply", "--root", str(tree), "--yes").returncode == 0
        outcome = killed_then_rolled_back("rollback", tree, point, before)
        listed = ctguard("rollback", "--root", str(tree), "--list")
        assert listed.stdout.split()[1] == "rolled-back", (point, listed.stdout)
        shutil.rmtree(tree.parent)
        return outcome

    assert run_all(points, one).count("killed") == len(points)
