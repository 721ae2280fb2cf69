"""A forked child that joins a network namespace, and the socket between it and ctguard.

Both ways of running code in a namespace fork such a child: ``run_in_netns`` (host/netns.py)
for one job, ``NetnsWorker`` (host/netns_worker.py) for many. ctguard's own process never
changes namespace, so global values keep coming from the initial one (the exporter's
per-scrape reads are the one exception, host/netns_thread.py: a dedicated thread, never the
process, joins them). What both need is
here, once: joining (setns(2)), one framing for what crosses the socket, and one reaper.

A frame is a pickle preceded by its length (8 bytes, network order), so the reader knows
when it has a whole message without waiting for end-of-file. A reply is ``("ok", value)``
or ``("error", text)``; end-of-file where a reply should be means the child died.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import select
import signal
import socket
import struct
import time
from collections.abc import Callable
from typing import cast

from ctguard.errors import CtguardError, HostAccessError

CLONE_NEWNET = 0x40000000
FRAME_HEADER = struct.Struct("!Q")

Reply = tuple[str, object]


def open_netns_fd(path: str, label: str) -> int:
    """An fd on the namespace, opened here so it stays pinned even if its holder exits."""
    try:
        # O_NONBLOCK: a FIFO put in place of an nsfs file must not block the open
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except (FileNotFoundError, ProcessLookupError) as exc:
        raise HostAccessError(f"{label} vanished ({path}: {exc.strerror})") from exc
    except OSError as exc:
        raise HostAccessError(f"{label}: cannot open {path}: {exc.strerror or exc}") from exc


def enter_netns(fd: int) -> None:
    setns = getattr(os, "setns", None)  # Python 3.12+
    if setns is not None:
        setns(fd, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def fork_child(body: Callable[[socket.socket], None]) -> tuple[int, socket.socket]:
    """Fork a child that runs ``body`` on its end of a socket pair and then exits.

    Returns the child's pid and ctguard's end. The child never returns from here: it
    ends with ``os._exit`` whatever ``body`` does, so no ``finally`` or atexit hook of
    ctguard's runs twice.
    """
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        pid = os.fork()
    except BaseException:
        ours.close()
        theirs.close()
        raise
    if pid == 0:
        status = 1
        try:
            ours.close()
            body(theirs)
            status = 0
        except BaseException:  # noqa: S110 - the parent reports a child that died
            pass
        finally:
            os._exit(status)
    theirs.close()
    return pid, ours


def frame(message: object) -> bytes:
    payload = pickle.dumps(message)
    return FRAME_HEADER.pack(len(payload)) + payload


def reply_to(job: Callable[[], object], label: str) -> bytes:
    """The framed reply to running ``job``; a failure (or a result that cannot be
    pickled) becomes an error reply: a ctguard error as it is, anything else on one line
    that names the namespace."""
    try:
        return frame(("ok", job()))
    except CtguardError as exc:
        return frame(("error", str(exc)))
    except BaseException as exc:  # SIGTERM arrives as SystemExit: report it too
        return frame(("error", f"in {label}: {type(exc).__name__}: {one_line(exc)}"))


def one_line(exc: BaseException) -> str:
    """The first line of an exception's text: error messages are one line."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


def read_frame(sock: socket.socket, deadline: float | None = None) -> object:
    """The next message on ``sock``; ``deadline`` (monotonic) bounds the wait.

    Raises TimeoutError when the deadline passes, EOFError when the other end closed.
    """
    (size,) = FRAME_HEADER.unpack(_read_exactly(sock, FRAME_HEADER.size, deadline))
    return pickle.loads(_read_exactly(sock, size, deadline))  # noqa: S301 - our own child's


def _read_exactly(sock: socket.socket, size: int, deadline: float | None) -> bytes:
    chunks: list[bytes] = []
    while size > 0:
        if deadline is not None:
            ready, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_reply(sock: socket.socket, deadline: float) -> Reply:
    """The next reply (see ``reply_to``); raises as ``read_frame`` does."""
    kind, value = cast(Reply, read_frame(sock, deadline))
    return kind, value


def reap(pid: int, wait: float = 0.0, grace: float = 10.0) -> None:
    """Reap child ``pid``, with every wait bounded: let it exit by itself for ``wait``
    seconds, then SIGTERM it (a job may clean up) for ``grace`` seconds, then SIGKILL.

    A child stuck in the kernel (D state) even after SIGKILL is given up on after a few
    seconds rather than hanging ctguard; once ctguard exits, init reaps it.
    """
    if _exited(pid, wait):
        return
    for signum, seconds in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):  # reaped by someone else meanwhile
            os.kill(pid, signum)
        if _exited(pid, seconds):
            return


def _exited(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    pause = 0.002
    while True:
        try:
            if os.waitpid(pid, os.WNOHANG) != (0, 0):
                return True
        except ChildProcessError:  # reaped already
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(pause, left))
        pause = min(pause * 2, 0.05)
