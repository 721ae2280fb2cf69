"""A helper that lives inside a network namespace and answers call after call.

``run_in_netns`` (host/netns.py) forks a child per job. A caller that asks the same
namespace on every refresh, and keeps state there between asks (``ctguard top`` holds a
netlink listener that must not miss an event), forks once instead: a ``NetnsWorker``'s
child joins the namespace, starts an optional *service* (whose public methods are jobs
called by name) and answers calls until it is closed.

    with NetnsWorker("/run/netns/web1", "netns web1", start=Probe) as worker:
        worker.call("counters")           # a method of the service, by name
        worker.call(read_count, 5.0)      # or a picklable (module-level) callable

Every call has a timeout. A job that raises fails that call only; a child that overruns
the timeout or dies is stopped, reaped and never reused (its state is unknown), and the
call raises a one-line CtguardError. Closing (also on leaving the ``with`` block, on
garbage collection and at interpreter exit) closes the socket, so the child reads
end-of-file and exits; it is then reaped, with SIGTERM and SIGKILL after bounded waits.
The child ignores SIGINT: Ctrl-C reaches the whole process group and ctguard decides.
One caller at a time: calls are not thread-safe.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import socket
import time
import weakref
from collections.abc import Callable
from functools import partial
from typing import Protocol, TypeVar, overload, runtime_checkable

from ctguard.errors import CtguardError
from ctguard.host.netns_child import (
    enter_netns,
    fork_child,
    frame,
    one_line,
    open_netns_fd,
    read_frame,
    read_reply,
    reap,
    reply_to,
)

T = TypeVar("T")

EOF_WAIT = 2.0  # seconds a closed worker has to exit by itself before SIGTERM
TERM_GRACE = 1.0  # and after SIGTERM, before SIGKILL


@runtime_checkable
class IdleWork(Protocol):
    """A service with work to do while no call is pending: the child drains it whenever
    ``fileno`` is readable (``ctguard top`` counts netlink events this way)."""

    def fileno(self) -> int | None: ...

    def drain(self) -> None: ...


class NetnsWorker:
    """A forked child inside the namespace of nsfs file ``path`` (in ctguard's own
    namespace when None) that runs ``start()`` once, then serves ``call`` until closed.

    ``label`` names the namespace in messages (``netns web1``); ``timeout`` is the
    default per call and bounds the start.
    """

    def __init__(
        self,
        path: str | None = None,
        label: str = "",
        start: Callable[[], object] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.label = label or ("this namespace" if path is None else path)
        self.timeout = timeout
        ns_fd = open_netns_fd(path, self.label) if path is not None else None
        try:
            pid, conn = fork_child(partial(_child, ns_fd=ns_fd, start=start, label=self.label))
        finally:
            if ns_fd is not None:
                os.close(ns_fd)
        self.pid: int | None = pid
        self._conn = conn
        self._finalizer = weakref.finalize(self, _stop, pid, conn, EOF_WAIT)
        try:
            self._reply(timeout)  # started, inside the namespace
        except BaseException:
            self.close()
            raise

    @overload
    def call(self, job: str, timeout: float | None = None) -> object: ...

    @overload
    def call(self, job: Callable[[], T], timeout: float | None = None) -> T: ...

    def call(self, job: str | Callable[[], object], timeout: float | None = None) -> object:
        """``job``'s result, computed in the child: the service's public method of that
        name, or a picklable callable. Raises CtguardError with the job's message, or
        when the child overran ``timeout`` (default: the worker's) or died."""
        request = _request(job)
        if self.pid is None:
            raise self._died()
        try:
            self._conn.sendall(request)
        except OSError:
            self._abandon()
            raise self._died() from None
        return self._reply(self.timeout if timeout is None else timeout)

    def close(self) -> None:
        """Stop the child: end-of-file first, then SIGTERM, then SIGKILL; reap it."""
        self.pid = None
        self._finalizer()

    def __enter__(self) -> NetnsWorker:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _reply(self, timeout: float) -> object:
        try:
            kind, value = read_reply(self._conn, time.monotonic() + timeout)
        except TimeoutError:
            self._abandon()
            raise CtguardError(f"reading inside {self.label} took over {timeout:g} s") from None
        except EOFError:
            self._abandon()
            raise self._died() from None
        except BaseException:  # ctguard itself interrupted mid-call: the state is unknown
            self._abandon()
            raise
        if kind == "error":
            raise CtguardError(str(value))
        return value

    def _abandon(self) -> None:
        """Stop a child that is busy or broken, without waiting for it to notice EOF."""
        pid, self.pid = self.pid, None
        if pid is not None and self._finalizer.detach() is not None:
            _stop(pid, self._conn, 0.0)

    def _died(self) -> CtguardError:
        return CtguardError(f"reading inside {self.label} failed (the helper process died)")


def _stop(pid: int, conn: socket.socket, wait: float) -> None:
    conn.close()
    reap(pid, wait=wait, grace=TERM_GRACE)


def _request(job: str | Callable[[], object]) -> bytes:
    if isinstance(job, str):
        if not job.isidentifier() or job.startswith("_"):
            raise ValueError(f"not a job name: {job!r}")
        return frame(job)
    try:
        return frame(job)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise TypeError(f"a worker job must be picklable (a module-level function): {exc}") from exc


# -- in the child -------------------------------------------------------------------------


def _child(
    conn: socket.socket, ns_fd: int | None, start: Callable[[], object] | None, label: str
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        if ns_fd is not None:
            enter_netns(ns_fd)
            os.close(ns_fd)
        service = start() if start is not None else None
    except Exception as exc:
        conn.sendall(frame(("error", f"cannot read inside {label}: {one_line(exc)}")))
        return
    conn.sendall(frame(("ok", None)))
    _serve(conn, service, label)


def _serve(conn: socket.socket, service: object, label: str) -> None:
    """Drain the service's idle work, answer one call at a time; return on end-of-file."""
    idle = service if isinstance(service, IdleWork) else None
    while True:
        fd = idle.fileno() if idle is not None else None
        watched: list[socket.socket | int] = [conn] if fd is None else [conn, fd]
        ready, _, _ = select.select(watched, [], [])
        if idle is not None and fd in ready:
            idle.drain()
        if conn not in ready:
            continue
        try:
            job = read_frame(conn)
        except EOFError:
            return  # ctguard closed its end, or exited
        conn.sendall(reply_to(partial(_run, service, job, label), label))


def _run(service: object, job: object, label: str) -> object:
    if isinstance(job, str):
        method = getattr(service, job, None)
        if not callable(method):
            raise CtguardError(f"in {label}: no job named {job!r}")
        return method()
    if not callable(job):
        raise CtguardError(f"in {label}: not a job: {job!r}")
    return job()
