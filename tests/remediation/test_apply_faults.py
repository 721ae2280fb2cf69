"""Fault injection: a failure at any step of apply (or of its undo, or of rollback) leaves
every file whole and the host as it was, and surfaces as one line, never a traceback.
The last tests make the file system really read-only or full, in a private mount
namespace, since those are the failures an operator meets."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ctguard.remediation.apply import ApplyError, ApplyResult, rollback
from ctguard.remediation.journal import list_entries, read_entry
from remediation.conftest import (
    BUCKETS,
    MAX,
    NEW_60,
    RUNTIME_BEFORE,
    Host,
    apply_host,
    new_host,
    temp_files,
)

TESTS = Path(__file__).resolve().parent.parent


def apply(host: Host, **kw: object) -> ApplyResult:
    return apply_host(host, **kw)


def assert_files_whole(host: Host) -> None:
    """Every target holds its old bytes (or is absent) or its new bytes, nothing else."""
    for change in host.files:
        local = host.root / change.path.lstrip("/")
        data = local.read_bytes() if local.exists() else None
        assert data in (change.before, change.after), change.path


class FailAt:
    """A StepHook that fails the n-th step (0-based) and checks files at every step."""

    def __init__(self, host: Host, n: int, exc: BaseException) -> None:
        self.host, self.n, self.exc = host, n, exc
        self.calls: list[str] = []

    def __call__(self, step: str) -> None:
        assert_files_whole(self.host)
        self.calls.append(step)
        if len(self.calls) - 1 == self.n:
            raise self.exc


def steps_of_a_good_apply(base: Path) -> list[str]:
    host = new_host(base)
    steps: list[str] = []
    apply(host, hook=steps.append)
    return steps


SHARDS = 3  # the steps are split over a few tests to keep each one short


@pytest.mark.parametrize("shard", range(SHARDS))
def test_a_failure_at_any_step_of_apply_is_undone(tmp_path, shard):
    steps = steps_of_a_good_apply(tmp_path / "count")
    assert len(steps) > 40
    assert steps[0] == "journal create" and steps[-1] == "fsync-dir journal"
    for k, name in list(enumerate(steps))[shard::SHARDS]:
        host = new_host(tmp_path / str(k))
        before = host.snapshot()
        hook = FailAt(host, k, OSError(errno.EIO, "injected fault"))
        with pytest.raises(ApplyError) as err:
            apply(host, hook=hook)
        message = str(err.value)
        where = (k, name, message)
        assert "\n" not in message and "injected fault" in message, where
        assert "could not undo" not in message, where
        assert message.endswith("nothing had been changed") or "; undone: " in message, where
        assert host.snapshot() == before, where  # files, modes, runtime values, no new dirs
        assert temp_files(host.root, host.state) == [], where
        states = [e.state for e in list_entries(host.state)]
        if k <= steps.index("fsync-dir journal"):  # creating the journal: no entry left
            assert states == [] and message.startswith("cannot create the journal"), where
        else:
            assert states == ["undone"], where


def test_a_failure_during_undo_is_reported_and_rollback_finishes(tmp_path):
    host = new_host(tmp_path)
    before = host.snapshot()

    def hook(step: str) -> None:
        if step == f"set {BUCKETS}":
            raise OSError(errno.EINVAL, "Invalid argument")
        if step == "undo rename /etc/sysctl.d/60-x.conf":
            raise OSError(errno.EROFS, "Read-only file system")

    with pytest.raises(ApplyError) as err:
        apply(host, hook=hook)
    message = str(err.value)
    assert message.startswith(
        "cannot set nf_conntrack_buckets to 65536: Invalid argument;"
        " could not undo: /etc/sysctl.d/60-x.conf (Read-only file system);"
        " undone: nf_conntrack_max, /etc/sysctl.d/90-ctguard-conntrack.conf,"
    )
    (entry,) = list_entries(host.state)
    assert f"'ctguard rollback {entry.id}'" in message and "\n" not in message
    assert entry.state == "undo-failed"
    assert entry.undo_failed == ("/etc/sysctl.d/60-x.conf (Read-only file system)",)
    assert (host.root / "etc/sysctl.d/60-x.conf").read_bytes() == NEW_60  # whole, not partial
    assert host.runtime.values == RUNTIME_BEFORE
    assert temp_files(host.root, host.state) == []
    # What could not be undone, rollback finishes.
    result = rollback(entry.id, root=host.root, runtime=host.runtime, state_dir=host.state)
    assert result.files == ("/etc/sysctl.d/60-x.conf",)
    assert host.snapshot() == before
    assert read_entry(host.state, entry.id).state == "rolled-back"


def test_undo_survives_any_exception_and_a_journal_that_stops_working(tmp_path):
    host = new_host(tmp_path)
    before = host.snapshot()
    failing = False

    def hook(step: str) -> None:
        nonlocal failing
        if step == f"set {MAX}":
            failing = True
            raise RuntimeError("a bug")
        if failing and step == "journal write":
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(ApplyError) as err:
        apply(host, hook=hook)
    message = str(err.value)
    assert message.startswith("cannot set nf_conntrack_max to 262144: RuntimeError: a bug;")
    assert message.endswith("No space left on device") and "cannot update the journal" in message
    assert host.snapshot() == before


def test_interrupt_undoes_and_propagates(tmp_path):
    host = new_host(tmp_path)
    before = host.snapshot()

    def hook(step: str) -> None:
        if step == "rename /etc/modprobe.d/nf_conntrack.conf":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        apply(host, hook=hook)
    assert host.snapshot() == before
    (entry,) = list_entries(host.state)
    assert (entry.state, entry.error) == ("undone", "interrupted")


@pytest.mark.parametrize("shard", range(SHARDS))
def test_a_failure_at_any_step_of_rollback_keeps_files_whole(tmp_path, shard):
    probe = new_host(tmp_path / "count")
    apply(probe)
    steps: list[str] = []
    rollback(None, root=probe.root, runtime=probe.runtime, state_dir=probe.state, hook=steps.append)
    assert len(steps) > 20
    for k, name in list(enumerate(steps))[shard::SHARDS]:
        host = new_host(tmp_path / str(k))
        before = host.snapshot()
        apply(host)
        hook = FailAt(host, k, OSError(errno.EIO, "injected fault"))
        with pytest.raises(ApplyError) as err:
            rollback(None, root=host.root, runtime=host.runtime, state_dir=host.state, hook=hook)
        message = str(err.value)
        assert "\n" not in message and "injected fault" in message, (k, name, message)
        assert_files_whole(host)
        assert temp_files(host.root, host.state) == [], (k, name)
        # Whatever was left half done, running rollback again completes it.
        rollback(None, root=host.root, runtime=host.runtime, state_dir=host.state)
        assert host.snapshot() == before, (k, name)


# -- real read-only and full file systems ------------------------------------------------
CHILD = textwrap.dedent(
    """
    import errno, json, subprocess, sys
    from pathlib import Path
    from ctguard.remediation.apply import ApplyError, apply_changes
    from remediation.conftest import (
        RUNTIME_BEFORE, FakeRuntime, make_root, plan_files, plan_sysctls, temp_files, tree_state,
    )

    case, mnt, outside = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(mnt)],
                   check=True)
    on_mount = case.endswith("root")
    root = make_root((mnt if on_mount else outside) / "root")
    state = (outside if on_mount else mnt) / "state"
    if case.startswith("full"):
        with open(mnt / "filler", "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\\0" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
    before = tree_state(root)
    runtime = FakeRuntime(RUNTIME_BEFORE)
    try:
        apply_changes(plan_files(), plan_sysctls(), root=root, runtime=runtime,
                      state_dir=state, meta={"command": "test"})
        error = None
    except ApplyError as exc:
        error = str(exc)
    print(json.dumps({
        "error": error,
        "tree_same": tree_state(root) == before,
        "runtime_same": runtime.values == RUNTIME_BEFORE,
        "runtime_writes": len(runtime.writes),
        "temps": temp_files(root),
    }))
    """
)


def run_in_private_mount(tmp_path: Path, case: str) -> dict[str, object]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs in a private mount namespace needs root")
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    (tmp_path / "mnt").mkdir()
    (tmp_path / "outside").mkdir()
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, str(script), case,
         str(tmp_path / "mnt"), str(tmp_path / "outside")],
        capture_output=True, text=True, timeout=30, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert os.listdir(tmp_path / "mnt") == []  # the tmpfs went with the namespace
    return json.loads(done.stdout)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (
            "ro-root",
            "cannot write /etc/sysctl.d/60-x.conf: Read-only file system; nothing had been changed",
        ),
        (
            "full-root",
            "cannot write /etc/sysctl.d/60-x.conf: No space left on device;"
            " nothing had been changed",
        ),
        ("ro-state", "Read-only file system; nothing had been changed"),
        ("full-state", "No space left on device; nothing had been changed"),
    ],
)
def test_read_only_or_full_file_system_for_real(tmp_path, case, expected):
    out = run_in_private_mount(tmp_path, case)
    error = out["error"]
    assert isinstance(error, str) and "\n" not in error
    assert error.endswith(expected)
    if case.endswith("state"):
        # read-only: the state directory cannot even be made; full: it is made, with its
        # lock file (an inode, no data), but the journal cannot be written
        assert error.startswith(
            ("cannot use the state directory ", "cannot create the journal in ")
        )
    assert out["tree_same"] and out["runtime_same"]
    assert out["runtime_writes"] == 0  # files failed first: the kernel was never touched
    assert out["temps"] == []
