"""`ctguard top --netns` against the real kernel: known entries, rates, q and cleanup."""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import threading
import time

import pytest

from helpers import assert_one_line_error, ctguard_bin, run_ctguard
from netns_helpers import Netns

pytestmark = pytest.mark.kernel

TCP = (
    "-I -p tcp -s 127.0.0.2 -d 127.0.0.1 --sport {port} --dport 8983"
    " --state ESTABLISHED --status ASSURED,SEEN_REPLY -t 600"
)
UDP = "-I -p udp -s 127.0.0.3 -d 127.0.0.1 --sport {port} --dport 53 -t 600"


def insert_known(netns: Netns) -> None:
    for i in range(6):
        netns.run("conntrack", *TCP.format(port=30000 + i).split())
    for i in range(2):
        netns.run("conntrack", *UDP.format(port=40000 + i).split())
    assert netns.count() == 8


def pids_inside(netns: Netns) -> str:
    """Processes in the namespace (asked from outside, or `ip` would list itself)."""
    return subprocess.run(
        ["ip", "netns", "pids", netns.name], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()


def row(out: str, key: str) -> list[str]:
    """The cells after ``key`` on the line that shows it."""
    for line in out.splitlines():
        cells = line.split()
        if key in cells:
            return cells[cells.index(key) + 1 :]
    raise AssertionError(f"{key} not shown:\n{out}")


def test_top_once_shows_the_namespace_table(netns: Netns) -> None:
    insert_known(netns)
    done = run_ctguard("top", "--once", "--netns", netns.name, "--interval", "0", timeout=60)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"ctguard top (netns {netns.name})" in out
    assert re.search(r"^entries 8 / [0-9,]+ ", out, re.M), out
    assert "table: 8 entries, from /proc/net/nf_conntrack" in out
    assert row(out, "tcp/8983")[:2] == ["6", "75.0"]
    assert row(out, "udp/53")[:2] == ["2", "25.0"]
    assert row(out, "127.0.0.2")[0] == "6"
    assert "busiest namespaces" not in out  # only on the host
    assert "q quits" not in out and "\x1b[" not in out  # a script's output: plain
    assert done.stderr == ""


def test_top_once_measures_new_entries_per_second(netns: Netns) -> None:
    created = 1500
    sender = threading.Thread(target=lambda: (time.sleep(0.7), netns.udp_flows(created, 30000)))
    sender.start()
    done = run_ctguard("top", "--once", "--netns", netns.name, "--interval", "3", timeout=60)
    sender.join(timeout=60)
    assert done.returncode == 0, done.stderr
    match = re.search(r"new ([0-9,.]+) .*\s+over ([0-9.]+) s", done.stdout)
    assert match, done.stdout
    rate, seconds = float(match[1].replace(",", "")), float(match[2])
    assert abs(rate * seconds - created) <= 0.05 * created + 2, done.stdout
    assert f"entries {created:,} /" in done.stdout


def read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{needle!r} not shown in {timeout} s: {seen[-1500:]!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                seen += os.read(fd, 1 << 16)
            except OSError:
                break
    return seen


@pytest.mark.parametrize("key", [b"q", b"\x03"], ids=["q", "ctrl-c"])
def test_top_live_quits_on_key_and_leaves_nothing_behind(netns: Netns, key: bytes) -> None:
    insert_known(netns)
    argv = [ctguard_bin(), "top", "--netns", netns.name, "--interval", "0.5"]
    pid, master = pty.fork()
    if pid == 0:
        os.execv(argv[0], argv)  # noqa: S606 - an argument list
    try:
        screen = read_until(master, b"q quits", 30)
        assert b"tcp/8983" in screen
        assert pids_inside(netns)  # the helper
        read_until(master, b"next in", 10)  # a later refresh
        os.write(master, key)
        deadline = time.monotonic() + 5
        status = None
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            select.select([master], [], [], 0.05)
            with contextlib.suppress(OSError):
                os.read(master, 1 << 16)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"ctguard top did not exit within 5 s of {key!r}")
        assert status is not None and os.waitstatus_to_exitcode(status) == 0
    finally:
        os.close(master)
    # the helper that lived in the namespace is gone too
    assert pids_inside(netns) == ""


def test_top_piped_prints_frames_and_stops_on_sigterm(netns: Netns) -> None:
    insert_known(netns)
    proc = subprocess.Popen(
        [ctguard_bin(), "top", "--netns", netns.name, "--interval", "0.3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        seen = b""
        deadline = time.monotonic() + 30
        while seen.count(b"ctguard top") < 3 and time.monotonic() < deadline:
            seen += proc.stdout.read1(1 << 16)
        assert seen.count(b"ctguard top") >= 3, seen[-1500:]
        assert b"\x1b[" not in seen and b"entries 8 /" in seen
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert pids_inside(netns) == ""


def test_top_needs_root(netns: Netns) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    # in a new user namespace ctguard runs with euid 65534 and no capabilities
    done = subprocess.run(
        ["unshare", "--user", ctguard_bin(), "top", "--once", "--netns", netns.name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert_one_line_error(done, "needs root")


def test_top_unknown_netns_is_one_line_error() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    done = run_ctguard("top", "--once", "--netns", "ctguard-no-such-ns")
    assert_one_line_error(done, "not found")
