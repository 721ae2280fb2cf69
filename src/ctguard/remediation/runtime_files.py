"""Runtime values (``/proc/sys/...``, module parameters): where apply.py reads and sets them.

Only ``remediation/apply.py`` imports this module (tests/test_writers.py checks it); the
CLI gets ``TreeRuntime`` and ``NetnsRuntime`` through it.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Protocol

from ctguard.host.netns import run_in_netns
from ctguard.host.root import SMALL_FILE_BYTES, HostRoot
from ctguard.remediation.atomic_files import resolve_in_root
from ctguard.sizing import kernel_buckets

_HASH_SIZE_FILES = (
    "/proc/sys/net/netfilter/nf_conntrack_buckets",
    "/sys/module/nf_conntrack/parameters/hashsize",
)


class RuntimeFiles(Protocol):
    """Where runtime values (``/proc/sys/...``, module parameters) are read and written."""

    def read(self, path: str) -> str:
        """The text of a runtime file, stripped; OSError when it cannot be read."""
        ...

    def write(self, path: str, value: str) -> None:
        """Write ``value``; OSError when the kernel (or the file system) refuses."""
        ...


class TreeRuntime:
    """Runtime files under a directory: ``Path("/")`` is the live /proc/sys; any other
    directory is a tree whose ``proc/sys/...`` files stand for them (tests, snapshots)."""

    def __init__(self, root: Path) -> None:
        self._host = HostRoot(root)

    def read(self, path: str) -> str:
        return self._host.read_text(path, SMALL_FILE_BYTES).strip()

    def write(self, path: str, value: str) -> None:
        if self._host.is_live or path not in _HASH_SIZE_FILES or not value.isdigit():
            self._write_one(path, value)
            return
        # A tree shows what a kernel would: one variable, nf_conntrack_htable_size, behind
        # both files, rounded up to whole pages by nf_ct_alloc_hashtable().
        size = str(kernel_buckets(int(value)))
        self._write_one(path, size)
        for other in _HASH_SIZE_FILES:
            if other != path and self._host.is_file(other):
                self._write_one(other, size)

    def _write_one(self, path: str, value: str) -> None:
        _, local = resolve_in_root(self._host, path)
        data = (value + "\n").encode()
        # No O_CREAT: a runtime value that does not exist is not ours to invent; and one
        # write(2), since /proc/sys parses each write on its own (sysctl_writes_strict).
        fd = os.open(local, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            if os.write(fd, data) != len(data):
                raise OSError(errno.EIO, "short write", path)
        finally:
            os.close(fd)


class NetnsRuntime:
    """Runtime files as seen from inside the named network namespace.

    /proc/sys/net/* shows the namespace of the process that opens it, so each read and
    write happens in a short-lived child that joined the namespace (host.netns).
    """

    def __init__(self, netns: str, timeout: float = 10.0) -> None:
        self.netns = netns
        self.timeout = timeout

    def read(self, path: str) -> str:
        return self._run(path, None)

    def write(self, path: str, value: str) -> None:
        self._run(path, value)

    def _run(self, path: str, value: str | None) -> str:
        code, text = run_in_netns(self.netns, lambda: _runtime_job(path, value), self.timeout)
        if code:
            raise OSError(code, text, path)
        return text


def _runtime_job(path: str, value: str | None) -> tuple[int, str]:
    """Runs inside the namespace: (0, text) or (errno, strerror), since only a picklable
    result crosses back and an OSError must stay an OSError for the caller."""
    live = TreeRuntime(Path("/"))
    try:
        if value is None:
            return 0, live.read(path)
        live.write(path, value)
        return 0, ""
    except OSError as exc:
        return exc.errno or errno.EIO, exc.strerror or str(exc)
