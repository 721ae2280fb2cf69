"""Runtime values (``/proc/sys/...``, module parameters): where apply and rollback read and
set them.

Only the writers (``remediation/apply*.py``, ``rollback.py``) import this module
(tests/test_writers.py checks it); the CLI gets ``TreeRuntime`` and ``NetnsRuntime``
through apply.py.
"""

from __future__ import annotations

import errno
import stat
from pathlib import Path
from typing import Protocol

from ctguard.host.netns import run_in_netns
from ctguard.host.root import SMALL_FILE_BYTES
from ctguard.model.sizing import kernel_buckets
from ctguard.remediation.changes import HASH_SIZE_FILES
from ctguard.remediation.tree_fs import Tree


class RuntimeFiles(Protocol):
    """Where runtime values (``/proc/sys/...``, module parameters) are read and written."""

    def read(self, path: str) -> str:
        """The text of a runtime file, stripped; OSError when it cannot be read."""
        ...

    def write(self, path: str, value: str) -> None:
        """Write ``value``; OSError when the kernel (or the file system) refuses."""
        ...

    def mirrors(self, path: str) -> tuple[str, ...]:
        """Other files that change with ``path`` and must be written and journalled
        with it (a tree's second hash-size file); () on a kernel, which keeps one
        variable behind both."""
        ...


def read_int(runtime: RuntimeFiles, path: str) -> int:
    """The integer in a runtime file; OSError when it cannot be read, or is no integer."""
    text = runtime.read(path)
    try:
        return int(text)
    except ValueError:
        raise OSError(errno.EINVAL, f"{text[:40]!r} is not an integer", path) from None


class TreeRuntime:
    """Runtime files under a directory: ``Path("/")`` is the live /proc/sys; any other
    directory is a tree whose ``proc/sys/...`` files stand for them (tests, snapshots).

    In a tree a value is replaced like any file (temporary file, fsync, rename), so a crash
    never leaves it empty and a hard link never carries the write out of the tree."""

    def __init__(self, root: Path | Tree) -> None:
        self._tree = Tree.of(root)

    def read(self, path: str) -> str:
        data = self._tree.read(self._tree.realpath(path), SMALL_FILE_BYTES)
        if data is None:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        return data.decode("utf-8", "replace").strip()

    def mirrors(self, path: str) -> tuple[str, ...]:
        if self._tree.is_live or path not in HASH_SIZE_FILES:
            return ()
        # A tree shows what a kernel would: one variable, nf_conntrack_htable_size, behind
        # both files.
        return tuple(
            other for other in HASH_SIZE_FILES if other != path and self._is_regular(other)
        )

    def _is_regular(self, path: str) -> bool:
        st = self._tree.lstat(self._tree.realpath(path))
        return st is not None and stat.S_ISREG(st.st_mode)

    def write(self, path: str, value: str) -> None:
        if not self._tree.is_live and path in HASH_SIZE_FILES and value.isdigit():
            # rounded up to whole pages, as nf_ct_alloc_hashtable() does
            value = str(kernel_buckets(int(value)))
        real = self._tree.realpath(path)
        data = (value + "\n").encode()
        if self._tree.is_live:
            # No O_CREAT: a runtime value that does not exist is not ours to invent; and
            # one write(2), since /proc/sys parses each write on its own.
            self._tree.write_in_place(real, data)
            return
        st = self._tree.lstat(real)
        if st is None:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        self._tree.replace(real, data, stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid))


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

    def mirrors(self, path: str) -> tuple[str, ...]:
        return ()

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
