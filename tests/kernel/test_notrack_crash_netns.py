"""Issue 14, item 4, for firewall commands: ``ctguard notrack --apply`` killed by strace at
each write system call it makes itself (its journal, its output; nft and iptables-restore
run in children, which are not traced, so each transaction either commits or not), then
``ctguard rollback``: the namespace's ruleset is exactly what it was before, including
when ctguard died right after nft committed and before it recorded nft's echo.

Each backend gets its own namespace (fixture ``netns``); nothing is sent anywhere."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ctguard.remediation.journal import list_entries
from helpers import ctguard_bin, kill_points, killed_by_strace, run_ctguard
from kernel.test_notrack_netns import firewall, ruleset
from netns_helpers import Netns

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed"),
]


def notrack_argv(netns: Netns, state: Path, action: str) -> list[str]:
    what = ["--remove"] if action == "remove" else ["--port", "8983", "--direction", "both",
                                                    "--apply"]  # fmt: skip
    return [ctguard_bin(), "notrack", *what, "--yes", "--netns", netns.name,
            "--state-dir", str(state)]  # fmt: skip


@pytest.mark.parametrize(
    ("backend", "action"), [("nft", "apply"), ("iptables", "apply"), ("nft", "remove")]
)
def test_notrack_killed_at_every_write_syscall_is_rolled_back(netns, tmp_path, backend, action):
    """``apply``: add the rules; ``remove``: delete them again (``--remove``), whose undo
    re-adds them only if the deletion committed."""
    firewall(netns, backend)
    if action == "remove":
        done = run_ctguard(*notrack_argv(netns, tmp_path / "setup", "apply")[1:])
        assert done.returncode == 0, done.stderr
    before = ruleset(netns, backend)
    points = kill_points(notrack_argv(netns, tmp_path / "count", action), tmp_path / "count.log")
    changed = ruleset(netns, backend)
    assert changed != before
    assert len(points) > 15
    back = run_ctguard("rollback", "--state-dir", str(tmp_path / "count"), "--yes")
    assert back.returncode == 0 and ruleset(netns, backend) == before, back.stderr
    committed_then_killed = 0
    for index, (name, n) in enumerate(points):
        state = tmp_path / str(index)
        killed = killed_by_strace(notrack_argv(netns, state, action), (name, n))
        assert killed.returncode in (-9, 137), ((name, n), killed.returncode, killed.stderr)
        committed_then_killed += ruleset(netns, backend) == changed
        back = run_ctguard("rollback", "--state-dir", str(state), "--yes")
        assert back.returncode == 0, ((name, n), back.stderr)
        assert ruleset(netns, backend) == before, ((name, n), back.stdout)
        states = {e.state for e in list_entries(state)} if state.exists() else set()
        assert states <= {"rolled-back", "undone"}, ((name, n), states)
    # some kills came after the transaction had committed: those are the ones that matter
    assert committed_then_killed > 0
