"""Run a reading job inside a network namespace: a named one (``ip netns add NAME``) or
any nsfs file, such as ``/proc/PID/ns/net`` of a process that holds an unnamed one.

The job runs in a forked child that joins the namespace with setns(2) (host/netns_child.py);
ctguard's own process never changes namespace, so global values keep coming from the
initial one. The child sends its (picklable) result back and exits; it is stopped if it
takes longer than ``timeout``. For many jobs in one namespace, see host/netns_worker.py;
for short reads in many namespaces on every scrape, host/netns_thread.py.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import TypeVar, cast

from ctguard.errors import CtguardError, HostAccessError
from ctguard.host.netns_child import (
    enter_netns,
    fork_child,
    open_netns_fd,
    read_reply,
    reap,
    reply_to,
)

T = TypeVar("T")

NETNS_DIR = "/run/netns"  # where iproute2 bind-mounts named namespaces
STOP_GRACE = 10.0  # seconds a stopped job has to clean up (SIGTERM, then SIGKILL)


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


def run_in_netns(name: str, job: Callable[[], T], timeout: float = 300.0) -> T:
    """Return ``job()`` as computed inside network namespace ``name``."""
    return run_in_netns_path(netns_path(name), job, timeout, label=f"netns {name}")


def run_in_netns_path(path: str, job: Callable[[], T], timeout: float, label: str) -> T:
    """Return ``job()`` as computed inside the network namespace that the nsfs file
    ``path`` stands for (``/run/netns/NAME`` or ``/proc/PID/ns/net``).

    ``label`` names the namespace in error messages (``netns web1``, ``netns of pid 42``).
    """
    ns_fd = open_netns_fd(path, label)

    def child(conn: socket.socket) -> None:
        def inside() -> T:
            enter_netns(ns_fd)
            os.close(ns_fd)
            return job()

        conn.sendall(reply_to(inside, label))

    try:
        pid, conn = fork_child(child)
    finally:
        os.close(ns_fd)
    with conn:
        try:
            kind, value = read_reply(conn, time.monotonic() + timeout)
        except TimeoutError:
            reap(pid, grace=STOP_GRACE)
            raise CtguardError(f"reading inside {label} took over {timeout:g} s") from None
        except EOFError:
            reap(pid, wait=STOP_GRACE, grace=STOP_GRACE)
            raise CtguardError(f"reading inside {label} failed (the helper process died)") from None
        except BaseException:
            reap(pid, grace=STOP_GRACE)  # ctguard itself interrupted: stop the child cleanly
            raise
    reap(pid, wait=STOP_GRACE, grace=STOP_GRACE)  # it has replied: it is on its way out
    if kind == "error":
        raise CtguardError(str(value))
    return cast(T, value)


def netns_born(name: str) -> float | None:
    """When the named namespace was made, in seconds since boot (the clock of dmesg lines).

    A namespace's inode number is reused once it is freed, so kernel log lines that name
    it may belong to an earlier namespace; lines older than this one are not its own.
    ``ip netns add`` creates /run/netns/NAME when it creates the namespace.
    """
    try:
        return _born(netns_path(name))
    except CtguardError:
        return None


def own_netns_born(netns_dir: str = NETNS_DIR) -> float | None:
    """``netns_born`` of the namespace ctguard itself runs in, when it is a named one
    (``ip netns exec NAME ctguard ...``); None in one without a name (its age is not
    known: an nsfs inode's times are those of its first look, not of the namespace). The
    initial namespace needs no age: its log lines name no namespace."""
    try:
        own = os.stat("/proc/self/ns/net")
        names = os.listdir(netns_dir)
    except OSError:
        return None
    for name in sorted(names):
        path = f"{netns_dir}/{name}"
        try:
            st = os.stat(path)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino):
            return _born(path)
    return None


def _born(path: str) -> float | None:
    """Seconds since boot when ``path`` (a name's bind mount) was made."""
    try:
        made = os.stat(path).st_mtime
        with open("/proc/uptime", "rb") as uptime:
            since_boot = float(uptime.read().split()[0])
    except (OSError, ValueError, IndexError):
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
