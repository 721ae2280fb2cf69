"""When stdout fails (issue 17, "exit status"): a closed pipe (``| head -0``) or a full disk
(``> /dev/full``). A command that changed something keeps its exit code and says on stderr
what it did, with its journal entry: never "internal error" after a change that is made and
journalled. A command that only reports keeps its code on a closed pipe, silently (doctor's
code still reflects its findings), and exits 3 with one line when the output could not be
written for another reason. Everything writes into --root copies of fixture roots."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest

from helpers import ROOTS, ctguard_bin, run_ctguard

APPLY_ROOT = ROOTS / "apply" / "rhel6-service"
DISABLE_ROOT = ROOTS / "disable" / "modular-idle"
DOCTOR_ROOT = ROOTS / "rhel6-modular"
CLOSED, FULL = "closed pipe", "/dev/full"
REASON = {CLOSED: "Broken pipe", FULL: "No space left on device"}


@contextmanager
def failing_stdout(kind: str) -> Iterator[int | IO[bytes]]:
    """A stdout whose every write fails: a pipe nobody reads any more, or /dev/full."""
    if kind == CLOSED:
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            yield write_end
        finally:
            os.close(write_end)
    else:
        if not Path(FULL).is_char_device():
            pytest.skip("no /dev/full here")
        with open(FULL, "wb") as full:
            yield full


def run_failing(kind: str, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    with failing_stdout(kind) as stdout:
        return subprocess.run(
            [ctguard_bin(), *args], stdout=stdout, stderr=subprocess.PIPE, text=True,
            timeout=60, check=False, **kw,  # type: ignore[call-overload]
        )  # fmt: skip


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(APPLY_ROOT, root, symlinks=True)
    (tmp_path / "state").mkdir(mode=0o700)
    return root


def journal(tree: Path) -> list[dict[str, object]]:
    done = run_ctguard("rollback", "--list", "--root", str(tree), "--state-dir",
                       str(tree.parent / "state"), "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    entries: list[dict[str, object]] = json.loads(done.stdout)["entries"]
    return entries


def snapshot_of(tree: Path) -> dict[str, bytes]:
    return {str(p.relative_to(tree)): p.read_bytes() for p in sorted(tree.rglob("*"))
            if p.is_file() and not p.is_symlink()}  # fmt: skip


@pytest.mark.parametrize("kind", [CLOSED, FULL])
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_apply_that_applied_says_so_and_exits_0(tree: Path, kind: str, fmt: str) -> None:
    before = snapshot_of(tree)
    state = str(tree.parent / "state")
    done = run_failing(kind, "apply", "--root", str(tree), "--yes", "--state-dir", state,
                       "--format", fmt)  # fmt: skip
    assert done.returncode == 0, done.stderr
    (entry,) = journal(tree)
    assert entry["state"] == "applied"
    assert snapshot_of(tree) != before  # the change is made...
    assert done.stderr == (  # ...and said, once, with the entry to roll back
        f"ctguard: applied (journal entry {entry['id']}); could not write the report:"
        f" {REASON[kind]}\n"
    )


@pytest.mark.parametrize("kind", [CLOSED, FULL])
def test_rollback_that_rolled_back_says_so_and_exits_0(tree: Path, kind: str) -> None:
    before = snapshot_of(tree)
    state = str(tree.parent / "state")
    applied = run_ctguard("apply", "--root", str(tree), "--yes", "--state-dir", state)
    assert applied.returncode == 0, applied.stderr
    (entry,) = journal(tree)
    done = run_failing(kind, "rollback", "--root", str(tree), "--yes", "--state-dir", state)
    assert done.returncode == 0, done.stderr
    assert snapshot_of(tree) == before
    assert journal(tree)[0]["state"] == "rolled-back"
    assert done.stderr == (
        f"ctguard: rolled back journal entry {entry['id']}; could not write the report:"
        f" {REASON[kind]}\n"
    )


def test_disable_apply_says_what_it_did_on_a_closed_pipe(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(DISABLE_ROOT, root, symlinks=True)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    done = run_failing(CLOSED, "disable", "--root", str(root), "--apply", "--yes",
                       "--state-dir", str(state))  # fmt: skip
    assert done.returncode == 0, done.stderr
    listed = run_ctguard("rollback", "--list", "--root", str(root), "--state-dir", str(state),
                         "--format", "json")  # fmt: skip
    (entry,) = json.loads(listed.stdout)["entries"]
    assert entry["state"] == "applied"
    assert done.stderr == (
        f"ctguard: disable carried out (journal entry {entry['id']}); could not write the"
        " report: Broken pipe\n"
    )


@pytest.mark.parametrize("kind", [CLOSED, FULL])
def test_an_apply_with_nothing_to_do_changes_nothing_and_claims_nothing(
    tree: Path, kind: str
) -> None:
    state = str(tree.parent / "state")
    assert run_ctguard("apply", "--root", str(tree), "--yes", "--state-dir", state).returncode == 0
    done = run_failing(kind, "apply", "--root", str(tree), "--yes", "--state-dir", state)
    assert len(journal(tree)) == 1
    if kind == CLOSED:  # | head: the reader had enough
        assert (done.returncode, done.stderr) == (0, "")
    else:  # the report was the whole job, and it is lost
        assert done.returncode == 3
        assert (
            done.stderr == "ctguard: error: could not write the output: No space left on device\n"
        )


def test_doctor_keeps_its_findings_code_on_a_closed_pipe() -> None:
    seen = run_ctguard("doctor", "--root", str(DOCTOR_ROOT))
    assert seen.returncode in (1, 2), seen.stderr  # the fixture has findings
    done = run_failing(CLOSED, "doctor", "--root", str(DOCTOR_ROOT))
    assert (done.returncode, done.stderr) == (seen.returncode, "")


@pytest.mark.parametrize("argv", [("doctor",), ("status",), ("plan",)])
def test_a_report_that_cannot_be_written_is_an_error(argv: tuple[str, ...]) -> None:
    done = run_failing(FULL, *argv, "--root", str(DOCTOR_ROOT))
    assert done.returncode == 3
    assert done.stderr == "ctguard: error: could not write the output: No space left on device\n"


@pytest.mark.parametrize("argv", [("--help",), ("--version",), ("plan", "--help"), ()])
def test_help_into_a_closed_pipe_or_a_full_disk(argv: tuple[str, ...]) -> None:
    closed = run_failing(CLOSED, *argv)
    assert (closed.returncode, closed.stderr) == (0, "")
    full = run_failing(FULL, *argv)
    assert full.returncode == 3
    assert full.stderr == "ctguard: error: could not write the output: No space left on device\n"


def test_no_confirmation_of_a_plan_the_operator_could_not_see(tree: Path) -> None:
    # a terminal to answer on, but the plan went into a closed pipe: ask nothing, change nothing
    before = snapshot_of(tree)
    primary, secondary = os.openpty()
    try:
        done = run_failing(CLOSED, "apply", "--root", str(tree), "--state-dir",
                           str(tree.parent / "state"), stdin=secondary)  # fmt: skip
    finally:
        os.close(primary)
        os.close(secondary)
    assert done.returncode == 3
    assert "the plan could not be shown (Broken pipe); nothing was changed" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert snapshot_of(tree) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="top reads the live table as root")
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_top_stops_when_nobody_reads(fmt: str) -> None:
    # it went on writing frames into /dev/null forever: `ctguard top | head -1` never ended
    if not Path("/proc/sys/net/netfilter/nf_conntrack_max").exists():
        pytest.skip("no conntrack on this host")
    done = run_failing(CLOSED, "top", "--interval", "0.1", "--format", fmt)
    assert (done.returncode, done.stderr) == (0, "")


@pytest.mark.parametrize("kind", [CLOSED, FULL])
def test_a_snapshot_written_is_said_so(tmp_path: Path, kind: str) -> None:
    # the archive is the job; a report lost on stdout does not make it a failure
    archive = tmp_path / "snap.tar.gz"
    done = run_failing(kind, "snapshot", "--no-table", "-o", str(archive))
    assert done.returncode == 0, done.stderr
    assert archive.is_file()
    assert done.stderr == (
        f"ctguard: wrote the snapshot {archive}; could not write the report: {REASON[kind]}\n"
    )


def test_a_plan_saved_with_o_is_said_so(tmp_path: Path) -> None:
    saved = tmp_path / "plan.json"
    seen = run_ctguard("plan", "--root", str(DOCTOR_ROOT))
    done = run_failing(FULL, "plan", "--root", str(DOCTOR_ROOT), "-o", str(saved))
    assert done.returncode == seen.returncode  # refused or not, as without -o
    assert json.loads(saved.read_text())["schema"] == "ctguard.plan/1"
    assert done.stderr == (
        f"ctguard: saved the plan to {saved}; could not write the report: No space left on device\n"
    )


def test_a_broken_pipe_to_a_program_is_no_success(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # click takes every EPIPE for stdout's and exits 1 in silence (and, recorded as a
    # closed stdout, it would have been 0): one that is not stdout's is an error
    from ctguard.cli import main

    def closed(_finding_id: str | None) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr("ctguard.usecases.explain.explain", closed)
    assert main(["explain", "CT302"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("ctguard: error: internal error: PipeClosedError: a pipe closed early")
    assert len(err.splitlines()) == 1


def test_a_closed_stderr_is_not_taken_for_stdout(tree: Path) -> None:
    """The plan goes to stderr before the question when stdout holds JSON; with stderr a
    closed pipe the question cannot be asked either: nothing changes, exit 3, and stdout
    is not silenced as if it were the one lost (it was: exit 0, nothing applied)."""
    before = snapshot_of(tree)
    read_end, write_end = os.pipe()
    os.close(read_end)
    primary, secondary = os.openpty()
    try:
        done = subprocess.run(
            [ctguard_bin(), "apply", "--root", str(tree), "--state-dir",
             str(tree.parent / "state"), "--format", "json"],
            stdin=secondary, stdout=subprocess.PIPE, stderr=write_end, text=True,
            timeout=60, check=False,
        )  # fmt: skip
    finally:
        for fd in (primary, secondary, write_end):
            os.close(fd)
    assert done.returncode == 3
    assert snapshot_of(tree) == before
    assert journal(tree) == []


def test_a_report_reaches_stdout_when_stderr_is_closed() -> None:
    reference = run_ctguard("doctor", "--root", str(DOCTOR_ROOT), "--format", "json")
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [ctguard_bin(), "doctor", "--root", str(DOCTOR_ROOT), "--format", "json"],
            stdout=subprocess.PIPE, stderr=write_end, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert done.returncode == reference.returncode
    assert json.loads(done.stdout)["findings"] == json.loads(reference.stdout)["findings"]
