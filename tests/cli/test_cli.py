"""The installed console script: exit codes, JSON, one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ctguard import __version__
from helpers import assert_one_line_error, ctguard_bin, run_ctguard


def test_version_matches_package() -> None:
    done = run_ctguard("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"ctguard, version {__version__}"


def test_python_dash_m_entry_point() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ctguard", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert __version__ in done.stdout


@pytest.mark.parametrize("command", ["status", "snapshot"])
def test_help_teaches_with_examples(command: str) -> None:
    done = run_ctguard(command, "--help")
    assert done.returncode == 0
    assert "Examples:" in done.stdout
    assert f"ctguard {command}" in done.stdout


def test_live_status_json_has_stable_keys() -> None:
    done = run_ctguard("status", "--json", "--interval", "0")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["schema"] == "ctguard.status/1"
    assert set(report) == {
        "schema",
        "netns",
        "kernel",
        "conntrack",
        "table",
        "memory",
        "counters",
        "sysctls",
        "notes",
    }
    if report["conntrack"]["loaded"]:
        live_max = int(Path("/proc/sys/net/netfilter/nf_conntrack_max").read_text())
        assert report["table"]["max"] == live_max
        assert report["counters"]["mode"] == "total"


def test_missing_root() -> None:
    assert_one_line_error(run_ctguard("status", "--root", "/nonexistent/snap"), "does not exist")


def test_bad_option_is_unknown_exit_code() -> None:
    assert_one_line_error(run_ctguard("status", "--frobnicate"), "--frobnicate", "--help")


def test_bad_interval() -> None:
    assert_one_line_error(run_ctguard("status", "--interval", "soon"), "--interval")
    assert_one_line_error(run_ctguard("status", "--interval", "-1"), "--interval")


def test_root_and_netns_conflict(tmp_path: Path) -> None:
    done = run_ctguard("status", "--root", str(tmp_path), "--netns", "x")
    assert_one_line_error(done, "cannot be combined")


def test_garbage_sysctl_value(tmp_path: Path) -> None:
    netfilter = tmp_path / "proc/sys/net/netfilter"
    netfilter.mkdir(parents=True)
    (netfilter / "nf_conntrack_max").write_text("lots\n")
    done = run_ctguard("status", "--root", str(tmp_path))
    assert_one_line_error(done, "nf_conntrack_max", "expected an integer", "'lots'")


def test_garbage_stat_file(tmp_path: Path) -> None:
    netfilter = tmp_path / "proc/sys/net/netfilter"
    netfilter.mkdir(parents=True)
    (netfilter / "nf_conntrack_max").write_text("65536\n")
    stat = tmp_path / "proc/net/stat"
    stat.mkdir(parents=True)
    (stat / "nf_conntrack").write_bytes(b"entries found\n\x00\xff garbage\n")
    done = run_ctguard("status", "--root", str(tmp_path))
    assert_one_line_error(done, "/proc/net/stat/nf_conntrack line 2")


def test_snapshot_output_name_checked(tmp_path: Path) -> None:
    done = run_ctguard("snapshot", "-o", str(tmp_path / "snap.zip"))
    assert_one_line_error(done, ".tar.gz")
    assert list(tmp_path.iterdir()) == []


def test_snapshot_refuses_existing_file(tmp_path: Path) -> None:
    existing = tmp_path / "snap.tar.gz"
    existing.write_bytes(b"keep me")
    done = run_ctguard("snapshot", "-o", str(existing), "--no-table")
    assert_one_line_error(done, "already exists")
    assert existing.read_bytes() == b"keep me"


def test_snapshot_into_read_only_place_is_one_line(tmp_path: Path) -> None:
    # /proc is never writable, even for root
    done = run_ctguard("snapshot", "-o", "/proc/ctguard-test.tar.gz", "--no-table")
    assert_one_line_error(done)


def test_snapshot_live_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "live.tar.gz"
    done = run_ctguard("snapshot", "-o", str(out), "--no-table", "--json")
    assert done.returncode == 0, done.stderr
    manifest = json.loads(done.stdout)
    assert manifest["format"] == "ctguard.snapshot/1"
    assert manifest["ctguard_version"] == __version__
    assert "/proc/meminfo" in manifest["captured"]
    assert out.stat().st_mode & 0o077 == 0  # snapshots can hold addresses: owner only
    offline = json.loads(
        run_ctguard("status", "--root", str(out), "--json", "--interval", "0").stdout
    )
    assert offline["schema"] == "ctguard.status/1"
    assert offline["kernel"] == Path("/proc/sys/kernel/osrelease").read_text().strip()


def test_non_root_live_status_still_reads(tmp_path: Path) -> None:
    # euid 65534 in a user namespace: procfs values stay readable, no root needed
    done = subprocess.run(
        ["unshare", "--user", ctguard_bin(), "status", "--json", "--interval", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["schema"] == "ctguard.status/1"


def test_directory_that_is_not_a_snapshot(tmp_path: Path) -> None:
    # a typo in --root must not read as "conntrack not loaded, OK"
    done = run_ctguard("status", "--root", str(tmp_path))
    assert_one_line_error(done, "is not a ctguard snapshot")


def test_fifo_named_like_an_archive_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "snap.tar.gz"
    os.mkfifo(fifo)
    done = run_ctguard("status", "--root", str(fifo), timeout=20)
    assert_one_line_error(done, "neither a directory nor a regular file")


def test_nan_interval() -> None:
    assert_one_line_error(run_ctguard("status", "--interval", "nan"), "--interval", "nan")


def test_closed_stdout_is_not_an_error() -> None:
    proc = subprocess.Popen(
        [ctguard_bin(), "status", "--json", "--interval", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    proc.stdout.close()  # like `ctguard status --json | true`
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert b"Traceback" not in err


def _minimal_root(root: Path, **sysctls: str) -> Path:
    (root / "proc").mkdir(parents=True, exist_ok=True)
    (root / "proc/meminfo").write_text("MemTotal:        8000000 kB\n")
    netfilter = root / "proc/sys/net/netfilter"
    netfilter.mkdir(parents=True, exist_ok=True)
    for name, value in sysctls.items():
        (netfilter / f"nf_conntrack_{name}").write_text(value)
    return root


def test_negative_max_is_read_as_unsigned(tmp_path: Path) -> None:
    root = _minimal_root(tmp_path, max="-1\n", count="10\n", buckets="16384\n")
    report = json.loads(run_ctguard("status", "--root", str(root), "--json").stdout)
    assert report["table"]["max"] == 2**32 - 1
    assert any("reads it as unsigned" in note for note in report["notes"])


def test_negative_count_is_an_error(tmp_path: Path) -> None:
    root = _minimal_root(tmp_path, max="65536\n", count="-3\n")
    assert_one_line_error(run_ctguard("status", "--root", str(root)), "nf_conntrack_count", "-3")


def test_huge_sysctl_file_is_refused_quickly(tmp_path: Path) -> None:
    root = _minimal_root(tmp_path, max="65536\n")
    with open(root / "proc/sys/net/netfilter/nf_conntrack_count", "wb") as f:
        f.truncate(3 * 1024**3)  # sparse: 3 GiB of zeros
    done = run_ctguard("status", "--root", str(root), timeout=30)
    assert_one_line_error(done, "nf_conntrack_count", "larger than")


def test_unreadable_files_as_non_root(tmp_path: Path) -> None:
    """Non-root (user namespace): unreadable inputs are named, never a traceback."""
    root = _minimal_root(tmp_path, max="65536\n", count="5\n")
    stat = root / "proc/net/stat/nf_conntrack"
    stat.parent.mkdir(parents=True)
    stat.write_text("entries drop\n00000005 00000000\n")
    stat.chmod(0)
    (root / "proc/meminfo").chmod(0)
    done = subprocess.run(
        ["unshare", "--user", ctguard_bin(), "status", "--root", str(root), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    notes = " | ".join(json.loads(done.stdout)["notes"])
    assert "/proc/meminfo: permission denied" in notes
    assert "/proc/net/stat/nf_conntrack: permission denied" in notes


def test_sigterm_during_snapshot_leaves_nothing(tmp_path: Path) -> None:
    # a stand-in iptables-save that hangs, so the signal lands mid-capture
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    hang = fake_bin / "iptables-save"
    hang.write_text("#!/bin/sh\nsleep 30\n")
    hang.chmod(0o755)
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}"}
    proc = subprocess.Popen(
        [ctguard_bin(), "snapshot", "-o", str(out / "snap.tar.gz")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    time.sleep(2.0)
    assert proc.poll() is None, "snapshot finished before the signal: the test proves nothing"
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert list(out.iterdir()) == []  # no partial archive, no scratch copy of the table
