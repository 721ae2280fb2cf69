"""Run a reading job inside a network namespace: a named one (``ip netns add NAME``) or
any nsfs file, such as ``/proc/PID/ns/net`` of a process that holds an unnamed one.

The job runs in a forked child that joins the namespace with setns(2); ctguard's own
process never changes namespace, so global values keep coming from the initial one.
The child sends its (picklable) result back over a pipe and exits; it is killed if it
takes longer than ``timeout``.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import select
import signal
import time
from collections.abc import Callable
from typing import TypeVar

from ctguard.errors import CtguardError, HostAccessError

T = TypeVar("T")

NETNS_DIR = "/run/netns"  # where iproute2 bind-mounts named namespaces
CLONE_NEWNET = 0x40000000


def netns_path(name: str) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise HostAccessError(f"invalid network namespace name {name!r}")
    path = f"{NETNS_DIR}/{name}"
    if not os.path.exists(path):
        raise HostAccessError(
            f"network namespace {name!r} not found ('ip netns list' shows the named ones)"
        )
    if os.geteuid() != 0:
        raise HostAccessError(f"--netns {name} needs root (setns(2) requires CAP_SYS_ADMIN)")
    return path


def enter_netns(fd: int) -> None:
    setns = getattr(os, "setns", None)  # Python 3.12+
    if setns is not None:
        setns(fd, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _reap(pid: int, grace: float = 10.0) -> None:
    """Wait for the child; if it is still running, SIGTERM (it cleans up), then SIGKILL."""
    if os.waitpid(pid, os.WNOHANG) != (0, 0):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def run_in_netns(name: str, job: Callable[[], T], timeout: float = 300.0) -> T:
    """Return ``job()`` as computed inside network namespace ``name``."""
    return run_in_netns_path(netns_path(name), job, timeout, label=f"netns {name}")


def open_netns_fd(path: str, label: str) -> int:
    """An fd on the namespace, opened here so it stays pinned even if its holder exits."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, ProcessLookupError) as exc:
        raise HostAccessError(f"{label} vanished ({path}: {exc.strerror})") from exc
    except OSError as exc:
        raise HostAccessError(f"{label}: cannot open {path}: {exc.strerror or exc}") from exc


def run_in_netns_path(path: str, job: Callable[[], T], timeout: float, label: str) -> T:
    """Return ``job()`` as computed inside the network namespace that the nsfs file
    ``path`` stands for (``/run/netns/NAME`` or ``/proc/PID/ns/net``).

    ``label`` names the namespace in error messages (``netns web1``, ``netns of pid 42``).
    """
    ns_fd = open_netns_fd(path, label)
    try:
        read_fd, write_fd = os.pipe()
    except BaseException:
        os.close(ns_fd)
        raise
    try:
        pid = os.fork()
    except BaseException:
        for fd in (ns_fd, read_fd, write_fd):
            os.close(fd)
        raise
    if pid == 0:  # child: whatever happens, it ends here with os._exit
        status = 1
        try:
            os.close(read_fd)
            try:
                enter_netns(ns_fd)
                os.close(ns_fd)
                payload = pickle.dumps(("ok", job()))
            except CtguardError as exc:
                payload = pickle.dumps(("error", str(exc)))
            except BaseException as exc:  # SIGTERM arrives as SystemExit: report it too
                payload = pickle.dumps(("error", f"in {label}: {type(exc).__name__}: {exc}"))
            with os.fdopen(write_fd, "wb") as out:
                out.write(payload)
            status = 0
        finally:
            os._exit(status)
    os.close(ns_fd)
    os.close(write_fd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        with os.fdopen(read_fd, "rb", buffering=0) as src:
            while True:
                left = deadline - time.monotonic()
                ready, _, _ = select.select([src], [], [], max(0.0, left))
                if not ready:
                    raise CtguardError(f"reading inside {label} took over {timeout:g} s")
                chunk = src.read(1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
    except BaseException:
        _reap(pid)  # timeout, or ctguard itself interrupted: stop the child cleanly
        raise
    os.waitpid(pid, 0)
    if not chunks:
        raise CtguardError(f"reading inside {label} failed (the helper process died)")
    kind, value = pickle.loads(b"".join(chunks))  # noqa: S301 - our own child's bytes
    if kind == "error":
        raise CtguardError(str(value))
    result: T = value
    return result


def netns_born(name: str) -> float | None:
    """When the named namespace was made, in seconds since boot (the clock of dmesg lines).

    A namespace's inode number is reused once it is freed, so kernel log lines that name
    it may belong to an earlier namespace; lines older than this one are not its own.
    ``ip netns add`` creates /run/netns/NAME when it creates the namespace.
    """
    try:
        made = os.stat(netns_path(name)).st_mtime
        with open("/proc/uptime", "rb") as uptime:
            since_boot = float(uptime.read().split()[0])
    except (OSError, ValueError, IndexError, CtguardError):
        return None
    return max(0.0, since_boot - (time.time() - made))


def netns_inode(link: str) -> int | None:
    """The inode in a ``/proc/<pid>/ns/net`` link text, ``net:[4026531840]``."""
    digits = link.removeprefix("net:[").removesuffix("]")
    return int(digits) if digits.isdigit() and len(digits) <= 20 else None


def in_each_named_netns(
    job: Callable[[], T], limit: int = 64, each: float = 10.0, total: float = 30.0
) -> dict[str, T] | None:
    """``job``'s result inside every namespace under /run/netns (at most ``limit``, within
    ``total`` seconds); None when that needs root and ctguard does not have it.

    A namespace that vanishes or fails is left out: the caller reports those it got.
    """
    try:
        names = sorted(os.listdir(NETNS_DIR))[:limit]
    except OSError:
        return {}
    if names and os.geteuid() != 0:
        return None
    results: dict[str, T] = {}
    deadline = time.monotonic() + total
    for name in names:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            results[name] = run_in_netns(name, job, timeout=min(each, left))
        except (CtguardError, OSError):
            continue
    return results
