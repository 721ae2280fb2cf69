"""Short reads inside many network namespaces, from one thread, without forking.

The exporter reads every namespace's table size and counters on each scrape; a forked
child per namespace (host/netns.py) costs milliseconds apiece, too much for fifty
namespaces within a scrape. A network namespace belongs to a thread, not to the process,
so one dedicated thread joins a namespace with setns(2), runs the job and joins its home
namespace again; every other thread (the HTTP server, the doctor) never leaves home.

What a job reads there must follow the *thread's* namespace: /proc/sys/net and sockets
opened by the thread do; ``/proc/net`` follows the process (its main thread), so read
``thread_proc()`` + ``/net`` instead (``/proc/self/task/TID``: /proc/thread-self is 3.17+,
and RHEL 7 runs 3.10).

The thread never serves a job outside its home namespace: after each job it checks the
inode of its namespace, and a thread that could not go home is retired (and so is one that
overran a timeout; it goes home and exits when its job ends). A retired thread is
replaced by a new one at the next call.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from ctguard.errors import CtguardError
from ctguard.host.netns_child import enter_netns, open_netns_fd

T = TypeVar("T")

_STOP = None


def thread_proc() -> str:
    """The calling thread's own /proc directory."""
    return f"/proc/self/task/{threading.get_native_id()}"


def thread_netns() -> str:
    """The nsfs link of the calling thread's network namespace."""
    return thread_proc() + "/ns/net"


class NotHome(Exception):
    """The thread could not join its home namespace again: it must serve no more jobs."""


def _inode(path: str) -> int:
    return os.stat(path).st_ino


class _Worker:
    """One daemon thread and its queue of (job, future)."""

    def __init__(self, home_fd: int, home_inode: int) -> None:
        self.home_fd = os.dup(home_fd)  # its own: closed by the thread when it ends
        self.home_inode = home_inode
        self.jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self.retired = False
        self.thread = threading.Thread(target=self._serve, name="ctguard-netns", daemon=True)
        self.thread.start()

    def _go_home(self) -> None:
        try:
            if _inode(thread_netns()) == self.home_inode:
                return  # never left (the namespace could not be entered)
            enter_netns(self.home_fd)
            if _inode(thread_netns()) != self.home_inode:
                raise NotHome("still outside the home namespace")
        except OSError as exc:
            raise NotHome(str(exc)) from exc

    def _serve(self) -> None:
        try:
            self._serve_jobs()
        finally:
            os.close(self.home_fd)

    def _serve_jobs(self) -> None:
        while not self.retired:
            item = self.jobs.get()
            if item is _STOP:
                return
            job, future = item
            if not future.set_running_or_notify_cancel():
                continue
            result: Any = None
            error: BaseException | None = None
            try:
                result = job()
            except BaseException as exc:  # handed to the caller, whatever it is
                error = exc
            try:
                self._go_home()
            except NotHome:
                # retired before the caller hears back: its next call gets a new thread
                self.retired = True
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

    def stop(self) -> None:
        self.retired = True
        self.jobs.put(_STOP)


class NamespaceThread:
    """Runs ``job()`` inside the namespace at an nsfs path, on a dedicated thread.

    ``run`` waits at most ``timeout`` seconds; a job that overruns it leaves its thread
    retired (a new one serves the next call) and raises a one-line CtguardError. Not meant
    for jobs that change the thread's state beyond its namespace.
    """

    def __init__(self) -> None:
        try:
            self._home_fd = os.open(thread_netns(), os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise CtguardError(
                f"cannot read this process's own namespace ({exc.filename}: {exc.strerror})"
            ) from None
        self._home_inode = os.fstat(self._home_fd).st_ino
        self._worker: _Worker | None = None
        self._lock = threading.Lock()

    def _current(self) -> _Worker:
        if self._worker is None or self._worker.retired or not self._worker.thread.is_alive():
            self._worker = _Worker(self._home_fd, self._home_inode)
        return self._worker

    def run(
        self, path: str, label: str, job: Callable[[], T], timeout: float, inode: int | None = None
    ) -> T:
        """``job()`` inside the namespace ``path`` names (``/run/netns/NAME``,
        ``/proc/PID/ns/net``); ``label`` names it in errors. ``inode``: the namespace that
        was listed there; another one found at ``path`` now (a pid or a name reused since)
        is refused."""
        with self._lock:
            ns_fd = open_netns_fd(path, label)  # pins it: a holder exiting now changes nothing
            if inode is not None and os.fstat(ns_fd).st_ino != inode:
                os.close(ns_fd)
                raise CtguardError(f"{label} changed since it was listed ({path})")

            def inside() -> T:
                try:
                    enter_netns(ns_fd)
                except OSError as exc:
                    raise CtguardError(f"cannot enter {label}: {exc.strerror or exc}") from None
                return job()

            worker = self._current()
            future: Future[T] = Future()
            worker.jobs.put((inside, future))
            try:
                return future.result(timeout=timeout)
            except FutureTimeout:
                worker.retired = True
                raise CtguardError(f"{label}: no answer within {timeout:g} s") from None
            finally:
                if future.done() or not worker.thread.is_alive():
                    os.close(ns_fd)
                else:  # the job still runs in it: closed when the job ends
                    future.add_done_callback(lambda _f: os.close(ns_fd))

    def close(self) -> None:
        with self._lock:
            if self._worker is not None:
                self._worker.stop()
                self._worker = None
            if self._home_fd >= 0:
                os.close(self._home_fd)
                self._home_fd = -1
