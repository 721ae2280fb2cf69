"""HostRoot: read a host's files from the live ``/`` or from a snapshot directory.

Paths are always given as they are on the audited host (``/proc/meminfo``). For a
snapshot directory every path, and every symbolic link met on the way, is resolved
inside the directory as if it were ``/`` (like openat2's RESOLVE_IN_ROOT), so a
snapshot can never make ctguard read a file of the machine it runs on.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ctguard.errors import HostAccessError
from ctguard.host.caps import MAX_FILE_BYTES
from ctguard.host.named_pipe import names_a_named_pipe
from ctguard.missing import Missing

_MAX_LINKS = 40  # the kernel's own limit on links followed in one lookup
SMALL_FILE_BYTES = 64 * 1024  # one sysctl or sysfs value
_CHUNK = 64 * 1024
_FIRST_CHUNK = 4096


class HostRoot:
    """Files of one host, live (``/``) or captured in a directory."""

    def __init__(self, path: str | os.PathLike[str] = "/") -> None:
        base = Path(path)
        if not base.is_dir():
            raise HostAccessError(f"root {str(path)!r} is not a directory")
        self.base = base.resolve()
        self.is_live = self.base == Path("/")

    def __repr__(self) -> str:
        return f"HostRoot({str(self.base)!r})"

    # -- resolution -------------------------------------------------------------------
    def _resolve(self, path: str, follow_last: bool = True) -> Path:
        """Map a host path to a path on this machine, never leaving ``self.base``."""
        if self.is_live:
            return Path(path)
        parts = [p for p in PurePosixPath("/", path).parts[1:] if p not in ("", ".")]
        done: list[str] = []
        links = 0
        while parts:
            name = parts.pop(0)
            if name == "..":
                if done:
                    done.pop()
                continue
            candidate = self.base.joinpath(*done, name)
            is_last = not parts
            if (not is_last or follow_last) and candidate.is_symlink():
                links += 1
                if links > _MAX_LINKS:
                    raise OSError(40, "too many levels of symbolic links", path)
                target = os.readlink(candidate)
                if target.startswith("/"):
                    done = []
                parts = [p for p in PurePosixPath(target).parts if p not in ("/", "", ".")] + parts
                continue
            done.append(name)
        return self.base.joinpath(*done)

    def realpath(self, path: str) -> str:
        """The host path that ``path`` names once links are followed."""
        if self.is_live:
            return os.path.realpath(path)
        relative = str(self._resolve(path).relative_to(self.base))
        return "/" if relative == "." else "/" + relative

    # -- reading ----------------------------------------------------------------------
    def _open(self, path: str) -> BinaryIO:
        """Open for reading; in a snapshot only regular files (a FIFO would block us, a
        device never end), looked at again once open (a swap in between is caught)."""
        real = self._resolve(path)
        if self.is_live:
            return open(real, "rb")
        _require_regular(os.stat(real).st_mode, path)
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            _require_regular(os.fstat(fd).st_mode, path)
        except OSError:
            os.close(fd)
            raise
        return os.fdopen(fd, "rb")

    def read_bytes(self, path: str, max_size: int = MAX_FILE_BYTES) -> bytes:
        """The whole file; OSError like open(), or EFBIG past ``max_size`` bytes."""
        if self.is_live:  # no Path, no file object: an exporter scrape reads ~60 files
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                return read_bounded(fd, max_size, path)
            finally:
                os.close(fd)
        with self._open(path) as f:
            return read_bounded(f.fileno(), max_size, path)

    def read_text(self, path: str, max_size: int = MAX_FILE_BYTES) -> str:
        return self.read_bytes(path, max_size).decode("utf-8", errors="replace")

    def read_tail(self, path: str, size: int) -> bytes:
        """The last ``size`` bytes of a regular file (logs can be gigabytes)."""
        with self._open(path) as f:
            f.seek(0, os.SEEK_END)
            end = f.tell()
            f.seek(max(0, end - size))
            return f.read()

    @contextmanager
    def open_binary(self, path: str) -> Iterator[BinaryIO]:
        with self._open(path) as f:
            yield f

    def try_read_text(self, path: str, max_size: int = MAX_FILE_BYTES) -> str | Missing:
        """File text, or Missing with the reason an operator needs."""
        try:
            return self.read_text(path, max_size)
        except OSError as exc:
            return unreadable(path, exc)

    def try_read_tail(self, path: str, size: int) -> bytes | Missing:
        """The last ``size`` bytes, or Missing with the reason an operator needs."""
        try:
            return self.read_tail(path, size)
        except OSError as exc:
            return unreadable(path, exc)

    # -- listing ----------------------------------------------------------------------
    def exists(self, path: str) -> bool:
        try:
            return self._resolve(path).exists()
        except OSError:
            return False

    def is_dir(self, path: str) -> bool:
        try:
            return self._resolve(path).is_dir()
        except OSError:
            return False

    def is_file(self, path: str) -> bool:
        try:
            return self._resolve(path).is_file()
        except OSError:
            return False

    def is_symlink(self, path: str) -> bool:
        try:
            return self._resolve(path, follow_last=False).is_symlink()
        except OSError:
            return False

    def readlink(self, path: str) -> str:
        return os.readlink(self._resolve(path, follow_last=False))

    def listdir(self, path: str) -> list[str]:
        """Sorted names in a directory; an absent directory lists as empty."""
        try:
            return sorted(os.listdir(self._resolve(path)))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def glob(self, directory: str, pattern: str) -> list[str]:
        """Host paths of entries of ``directory`` whose name matches ``pattern``."""
        prefix = str(PurePosixPath(directory)).rstrip("/") + "/"  # "/" stays "/"
        return [
            prefix + name for name in self.listdir(directory) if fnmatch.fnmatchcase(name, pattern)
        ]

    def file_kind(self, path: str) -> str:
        """'file', 'dir', 'link', 'other' or 'absent' without following the last link."""
        try:
            mode = os.lstat(self._resolve(path, follow_last=False)).st_mode
        except OSError:
            return "absent"
        if stat.S_ISLNK(mode):
            return "link"
        if stat.S_ISDIR(mode):
            return "dir"
        if stat.S_ISREG(mode):
            return "file"
        return "other"


def unreadable(path: str, exc: OSError) -> Missing:
    """Why ``path`` could not be read, in the words an operator needs."""
    if isinstance(exc, FileNotFoundError):
        return Missing(f"{path} does not exist")
    if isinstance(exc, PermissionError):
        return Missing(f"{path}: permission denied (run as root)")
    return Missing(f"{path}: {exc.strerror or exc}")


def _require_regular(mode: int, path: str) -> None:
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory", path)
    if not stat.S_ISREG(mode):
        raise OSError(errno.EINVAL, "not a regular file", path)


def read_regular_file(path: str | os.PathLike[str], max_size: int) -> bytes:
    """A file named on the command line (a saved plan): regular files only, looked at before
    opening (a FIFO would block, /dev/zero never ends), and at most ``max_size`` bytes."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped in between
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        return read_bounded(fd, max_size, str(path))
    finally:
        os.close(fd)


def _input_kind(info: os.stat_result, path: str) -> None:
    mode = info.st_mode
    if names_a_named_pipe(info):
        raise OSError(
            errno.EINVAL,
            f"a named pipe (FIFO), which would wait for a writer: read it on stdin ('- < {path}')",
            path,
        )
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory", path)
    if stat.S_ISREG(mode) or stat.S_ISFIFO(mode):
        return
    kind = (
        "a character device" if stat.S_ISCHR(mode)
        else "a block device" if stat.S_ISBLK(mode)
        else "a socket" if stat.S_ISSOCK(mode)
        else "not a regular file"
    )  # fmt: skip
    raise OSError(errno.EINVAL, f"{kind}, not a dump file or a pipe", path)


def open_input(path: str) -> BinaryIO:
    """A file named on the command line to be read to its end (a table dump): a regular
    file or an anonymous pipe (``<(conntrack -L)``), never a device such as /dev/zero, a
    socket, a directory, or a named pipe (opening one waits for a writer, with none
    forever: the shell's ``- < FIFO`` makes that wait the operator's choice). Looked at
    before opening (opening a device can act on it) and again once open."""
    _input_kind(os.stat(path), path)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)  # a FIFO swapped in
    try:  # meanwhile does not wait either
        _input_kind(os.fstat(fd), path)
        os.set_blocking(fd, True)
    except OSError:
        os.close(fd)
        raise
    stream = os.fdopen(fd, "rb")
    stream.raw.name = path  # type: ignore[attr-defined]  # named as open(path) would be
    return stream


def read_bounded(fd: int, max_size: int, name: str) -> bytes:
    """Everything ``fd`` reads; EFBIG past ``max_size`` bytes. In chunks, since procfs and
    sysfs report size 0 and a /proc/sys read allocates a kernel buffer as large as the
    request (ENOMEM). Reads ask for one page until one fills it: that buffer is also zeroed
    on each read, the one that finds the end included (proc_sys_call_handler's kvzalloc),
    and a sysctl value fits in a page, so its two reads cost 2 us instead of 7 (41
    nf_conntrack_* files: 0.09 ms, not 0.28)."""
    chunks: list[bytes] = []
    size = 0
    want = _FIRST_CHUNK
    while chunk := os.read(fd, want):
        size += len(chunk)
        if size > max_size:
            raise OSError(errno.EFBIG, f"larger than {max_size} bytes", name)
        chunks.append(chunk)
        if len(chunk) == want:
            want = _CHUNK
    return b"".join(chunks)
