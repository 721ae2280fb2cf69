"""The long-lived namespace worker (host/netns_worker.py) and the one-shot runner that
shares its child, framing and reaper (host/netns.py): calls, errors, timeouts, cleanup.

Most tests run the worker in ctguard's own namespace (no root needed); the namespace
tests create one with ``ip netns add`` and always delete it.
"""

from __future__ import annotations

import gc
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial

import pytest

from ctguard.errors import CtguardError
from ctguard.host.netns import run_in_netns, run_in_netns_path
from ctguard.host.netns_worker import TERM_GRACE, NetnsWorker

# -- jobs: module-level, so a worker can be sent them by reference ------------------------


def my_pid() -> int:
    return os.getpid()


def my_netns() -> str:
    return os.readlink("/proc/self/ns/net")


def raise_value_error() -> None:
    raise ValueError("bad value\nsecond line\nthird line")


def raise_ctguard_error() -> None:
    raise CtguardError("conntrack -L exited 1")


def hang() -> None:
    time.sleep(60)


def hang_deaf_to_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(60)


def die() -> None:
    os._exit(3)


def unpicklable_result() -> object:
    return lambda: None


def echo_over_loopback(payload: bytes) -> bytes:
    """One UDP datagram to ourselves on 127.0.0.1, bounded by a timeout."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.bind(("127.0.0.1", 0))
        sock.sendto(payload, sock.getsockname())
        return sock.recv(1024)


class Counter:
    """A service: state that lives in the worker's child across calls."""

    def __init__(self) -> None:
        self.calls = 0

    def bump(self) -> int:
        self.calls += 1
        return self.calls

    def pid(self) -> int:
        return os.getpid()


class Listener(Counter):
    """A service with idle work: it counts bytes that arrive between calls."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.sock = sock
        self.seen = 0

    def fileno(self) -> int | None:
        return self.sock.fileno()

    def drain(self) -> None:
        self.seen += len(self.sock.recv(4096))

    def received(self) -> int:
        return self.seen


def assert_gone(pid: int) -> None:
    """``pid`` is neither running nor a zombie: it was our child and has been reaped."""
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    assert not os.path.exists(f"/proc/{pid}"), f"process {pid} still exists"


# -- the worker ---------------------------------------------------------------------------


def test_serves_several_calls_from_one_child() -> None:
    with NetnsWorker(start=Counter) as worker:
        pid = worker.pid
        assert pid is not None and pid != os.getpid()
        assert [worker.call("bump") for _ in range(5)] == [1, 2, 3, 4, 5]
        assert worker.call("pid") == pid
        assert worker.call(my_pid) == pid  # a callable, sent by reference
        assert worker.call(partial(echo_over_loopback, b"ping")) == b"ping"
    assert worker.pid is None
    assert_gone(pid)


def test_a_job_that_raises_fails_that_call_only_on_one_line() -> None:
    with NetnsWorker(label="netns web1") as worker:
        with pytest.raises(CtguardError) as caught:
            worker.call(raise_value_error)
        assert str(caught.value) == "in netns web1: ValueError: bad value"
        with pytest.raises(CtguardError, match=r"^conntrack -L exited 1$"):
            worker.call(raise_ctguard_error)  # ctguard's own errors pass as they are
        with pytest.raises(
            CtguardError, match=r"^in netns web1: AttributeError: Can.t pickle local object"
        ):
            worker.call(unpicklable_result)
        assert worker.call(my_pid) == worker.pid  # still serving


def test_unknown_or_private_job_names() -> None:
    with NetnsWorker(start=Counter, label="netns web1") as worker:
        with pytest.raises(CtguardError, match=r"^in netns web1: no job named 'nope'$"):
            worker.call("nope")
        with pytest.raises(ValueError, match="not a job name"):
            worker.call("__init__")
        with pytest.raises(TypeError, match="picklable"):
            worker.call(lambda: 1)
        assert worker.call("bump") == 1


def test_a_hung_job_is_killed_at_its_timeout() -> None:
    worker = NetnsWorker(label="netns web1")
    pid = worker.pid
    assert pid is not None
    started = time.monotonic()
    with pytest.raises(CtguardError, match=r"^reading inside netns web1 took over 0\.5 s$"):
        worker.call(hang, timeout=0.5)
    assert time.monotonic() - started < 2.0
    assert worker.pid is None
    assert_gone(pid)
    # a stopped worker is never reused: its state is unknown
    with pytest.raises(CtguardError, match="failed \\(the helper process died\\)"):
        worker.call(my_pid)
    worker.close()  # and closing it again is harmless


def test_a_job_deaf_to_sigterm_is_killed_after_the_grace() -> None:
    worker = NetnsWorker()
    pid = worker.pid
    assert pid is not None
    started = time.monotonic()
    with pytest.raises(CtguardError, match=r"took over 0\.3 s"):
        worker.call(hang_deaf_to_sigterm, timeout=0.3)
    assert time.monotonic() - started < 0.3 + TERM_GRACE + 1.5
    assert_gone(pid)


def test_a_dead_child_is_a_one_line_error() -> None:
    worker = NetnsWorker(label="netns web1")
    pid = worker.pid
    assert pid is not None
    with pytest.raises(CtguardError) as caught:
        worker.call(die)
    assert str(caught.value) == "reading inside netns web1 failed (the helper process died)"
    assert_gone(pid)


def test_close_leaves_no_child() -> None:
    worker = NetnsWorker(start=Counter)
    pid = worker.pid
    assert pid is not None and os.path.exists(f"/proc/{pid}")
    started = time.monotonic()
    worker.close()
    assert time.monotonic() - started < 1.0  # the child read end-of-file and left
    assert_gone(pid)


def test_a_worker_that_cannot_start_says_why_and_leaves_no_child() -> None:
    def refuse() -> Counter:
        raise OSError("no conntrack here\nmore detail")

    children_before = set(_children())
    with pytest.raises(CtguardError) as caught:
        NetnsWorker(start=refuse, label="netns web1")
    assert str(caught.value) == "cannot read inside netns web1: no conntrack here"
    assert set(_children()) <= children_before


def test_idle_work_is_drained_between_calls() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs, NetnsWorker(start=lambda: Listener(theirs)) as worker:
        ours.sendall(b"x" * 100)
        deadline = time.monotonic() + 5
        while worker.call("received") < 100 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert worker.call("received") == 100
        assert worker.call("bump") == 1


def test_a_worker_dropped_without_close_is_reaped() -> None:
    worker = NetnsWorker(start=Counter)
    pid = worker.pid
    assert pid is not None
    del worker
    gc.collect()
    assert_gone(pid)


WORKER_LEFT_OPEN = """
import sys
from ctguard.host.netns_worker import NetnsWorker

worker = NetnsWorker()  # never closed: the interpreter's exit must stop it
print(worker.pid, flush=True)
sys.exit(0)
"""


def test_a_worker_left_open_is_stopped_when_ctguard_exits() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WORKER_LEFT_OPEN],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    pid = int(done.stdout)
    deadline = time.monotonic() + 5  # an orphan is reaped by init, not by us
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not os.path.exists(f"/proc/{pid}"), "the worker outlived its parent"


def test_the_child_ignores_ctrl_c() -> None:
    with NetnsWorker(start=Counter) as worker:
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
        assert worker.call("bump") == 1


def _children() -> list[int]:
    """Our own child processes, from /proc (every task's children file)."""
    found: list[int] = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as text:
                found += [int(pid) for pid in text.read().split()]
        except FileNotFoundError:  # CONFIG_PROC_CHILDREN=n
            pytest.skip("this kernel has no /proc/PID/task/TID/children")
    return found


# -- inside a namespace the test creates ---------------------------------------------------


@pytest.fixture
def named_netns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root to create a network namespace")
    if shutil.which("ip") is None:
        pytest.skip("ip (iproute2) is not installed")
    name = f"ctgw-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    try:
        subprocess.run(
            ["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
            check=True,
            timeout=30,
        )
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=30)


def test_worker_inside_a_named_namespace(named_netns: str) -> None:
    path = f"/run/netns/{named_netns}"
    ours = my_netns()
    with NetnsWorker(path, f"netns {named_netns}", start=Counter) as worker:
        pid = worker.pid
        assert pid is not None
        inside = worker.call(my_netns)
        assert inside == f"net:[{os.stat(path).st_ino}]" and inside != ours
        assert worker.call(partial(echo_over_loopback, b"hello")) == b"hello"
        assert [worker.call("bump") for _ in range(3)] == [1, 2, 3]
        assert os.readlink(f"/proc/{pid}/ns/net") == inside
    assert my_netns() == ours  # ctguard itself never moved
    assert_gone(pid)
    assert (
        subprocess.run(
            ["ip", "netns", "pids", named_netns], capture_output=True, text=True, timeout=30
        ).stdout.strip()
        == ""
    )


def test_one_shot_shares_the_child(named_netns: str) -> None:
    path = f"/run/netns/{named_netns}"
    assert run_in_netns(named_netns, my_netns) == f"net:[{os.stat(path).st_ino}]"
    assert run_in_netns(named_netns, lambda: 6 * 7) == 42  # run once: no pickling of jobs
    with pytest.raises(CtguardError) as caught:
        run_in_netns(named_netns, raise_value_error)
    assert str(caught.value) == f"in netns {named_netns}: ValueError: bad value"
    with pytest.raises(CtguardError, match=r"^reading inside x took over 0\.3 s$"):
        run_in_netns_path(path, hang, 0.3, "x")
    with pytest.raises(
        CtguardError, match=r"^reading inside x failed \(the helper process died\)$"
    ):
        run_in_netns_path(path, die, 5.0, "x")
    assert (
        subprocess.run(
            ["ip", "netns", "pids", named_netns], capture_output=True, text=True, timeout=30
        ).stdout.strip()
        == ""
    )


def test_a_namespace_that_vanished_is_named() -> None:
    with pytest.raises(CtguardError, match=r"^netns gone vanished \(/run/netns/ctgw-none"):
        NetnsWorker("/run/netns/ctgw-none-such", "netns gone")
