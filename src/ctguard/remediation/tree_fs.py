"""Writes inside one directory tree through file descriptors, so that no symbolic link,
whether there from the start or swapped in while ctguard works, leads a write out of it.

A path is given as a host path (``/etc/sysctl.d/90-ctguard-conntrack.conf``). The root is
opened once. ``realpath`` follows the tree's links once, inside the tree and through that
descriptor (like openat2's RESOLVE_IN_ROOT); every operation then walks that real path
again from the descriptor held on the root, one component at a time with ``O_NOFOLLOW``,
and acts on the last one relative to its directory's descriptor (``openat``, ``renameat``,
``unlinkat``, ``mkdirat``). A link met on that walk means the tree changed since it was
resolved: the operation fails with ELOOP or ENOTDIR instead of following it. Files are
replaced by rename(2), which also breaks a hard link instead of writing through it.

The live host is the tree ``/``: the same code writes it.

Only ``remediation/`` writers import this module (tests/test_writers.py checks it).
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from ctguard.host.root import read_bounded

StepHook = Callable[[str], None]
PRIVATE_FILE_MODE = 0o600
TEMP_MARK = ".ctguard-"  # temporary files are .<name>.ctguard-<8 hex digits>
_TEMP = re.compile(rf"\.(?P<name>.+){re.escape(TEMP_MARK)}[0-9a-f]{{8}}")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_MAX_LINKS = 40  # the kernel's own limit on links followed in one lookup
_SELINUX = "security.selinux"


def host_parts(path: str) -> list[str]:
    """The names in an absolute host path; OSError(EINVAL) for '.', '..' or a relative path.

    >>> host_parts("/etc//sysctl.d/")
    ['etc', 'sysctl.d']
    """
    if not path.startswith("/") or "\0" in path:
        raise OSError(errno.EINVAL, "not an absolute host path", path)
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise OSError(errno.EINVAL, "'.' or '..' in a host path", path)
    return parts


def _no_hook(name: str) -> None:
    """The default StepHook: tests pass one that fails, or kills, at a chosen step."""


class Tree:
    """One directory tree, written through a descriptor held on its root.

    The root is opened once; everything after, resolving links included, goes through
    that descriptor, so swapping the path given for another directory (or for a link to
    ``/``) after it was opened changes nothing. Share one Tree between the journal, the
    runtime values and the files of one command."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.base = Path(os.path.realpath(root))
        self._fd = os.open(self.base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        st, slash = os.fstat(self._fd), os.stat("/")
        # the host's own / however it is reached (a link, a bind mount, /proc/1/root)
        self.is_live = (st.st_dev, st.st_ino) == (slash.st_dev, slash.st_ino)

    @classmethod
    def of(cls, root: Tree | str | os.PathLike[str]) -> Tree:
        return root if isinstance(root, Tree) else cls(root)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        with suppress(Exception):
            self.close()

    def __repr__(self) -> str:
        return f"Tree({str(self.base)!r})"

    def local(self, path: str) -> Path:
        """Where ``path`` is on this machine: for messages only, never opened by name."""
        return self.base.joinpath(*host_parts(path))

    def realpath(self, path: str) -> str:
        """``path`` with the tree's links followed, inside the tree: an absolute link
        starts again at the tree's root and '..' stops there, as in a chroot (openat2's
        RESOLVE_IN_ROOT). Read through the root's descriptor, never by path."""
        if not path.startswith("/") or "\0" in path:
            raise OSError(errno.EINVAL, "not an absolute host path", path)
        todo = [p for p in path.split("/") if p not in ("", ".")]
        done: list[str] = []
        links = 0
        missing = 0  # how many of the last names in done do not exist
        while todo:
            name = todo.pop(0)
            if name == "..":
                if done:
                    done.pop()
                    missing = max(0, missing - 1)
                continue
            if missing:
                missing += 1
            else:
                with self.dir_fd("/" + "/".join(done)) as fd:
                    try:
                        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    except FileNotFoundError:
                        missing = 1
                    else:
                        if stat.S_ISLNK(st.st_mode):
                            links += 1
                            if links > _MAX_LINKS:
                                raise OSError(errno.ELOOP, "too many levels of links", path)
                            target = os.readlink(name, dir_fd=fd)
                            if target.startswith("/"):
                                done = []
                            todo = [p for p in target.split("/") if p not in ("", ".")] + todo
                            continue
            done.append(name)
        return "/" + "/".join(done)

    @contextmanager
    def own_root_fd(self) -> Iterator[int]:
        """A new open file description of the root (not a dup): an flock on it is
        released when it is closed, whatever else holds the root open."""
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self._fd)
        try:
            yield fd
        finally:
            os.close(fd)

    # -- walking ------------------------------------------------------------------------
    @contextmanager
    def dir_fd(self, path: str) -> Iterator[int]:
        """A descriptor on the directory ``path``, reached without following any link."""
        fd = os.dup(self._fd)
        try:
            for depth, name in enumerate(parts := host_parts(path)):
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    raise _on_the_way(exc, fd, parts[: depth + 1]) from None
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    @contextmanager
    def parent(self, path: str) -> Iterator[tuple[int, str]]:
        """(descriptor on the directory holding ``path``, its last name)."""
        parts = host_parts(path)
        if not parts:
            raise OSError(errno.EINVAL, "the root itself", path)
        with self.dir_fd("/" + "/".join(parts[:-1])) as fd:
            yield fd, parts[-1]

    # -- reading ------------------------------------------------------------------------
    def lstat(self, path: str) -> os.stat_result | None:
        """The status of ``path`` itself (a link is not followed); None when absent."""
        try:
            with self.parent(path) as (fd, name):
                return os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def read(self, path: str, max_size: int) -> bytes | None:
        """The bytes of the regular file ``path``; None when absent. OSError for anything
        else than a regular file (a link, a FIFO, a device), or past ``max_size`` bytes."""
        try:
            with self.parent(path) as (dirfd, name):
                # Looked at before it is opened: opening a FIFO or a device can block or act.
                if not stat.S_ISREG(os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mode):
                    raise OSError(errno.EINVAL, "not a regular file", path)
                fd = os.open(name, _READ_FLAGS, dir_fd=dirfd)
        except FileNotFoundError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped in between
                raise OSError(errno.EINVAL, "not a regular file", path)
            return read_bounded(fd, max_size, path)
        finally:
            os.close(fd)

    def listdir(self, path: str) -> list[str]:
        """Names in the directory ``path``; FileNotFoundError when absent."""
        with self.dir_fd(path) as fd:
            return sorted(os.listdir(fd))

    # -- writing ------------------------------------------------------------------------
    def replace(
        self,
        path: str,
        data: bytes,
        mode: int,
        owner: tuple[int, int] | None,
        step: StepHook = _no_hook,
        label: str | None = None,
    ) -> None:
        """Give ``path`` the content ``data`` by rename(2): at every instant it holds its
        old bytes or all of the new ones, and the temporary file never survives an error
        (one left by a crash, ``remove_temps`` cleans)."""
        label = label or path
        with self.parent(path) as (dirfd, name):
            step(f"create-temp {label}")
            temp, fd = _create_temp(dirfd, name)
            renamed = False
            try:
                step(f"write {label}")
                _write_all(fd, data)
                step(f"chmod {label}")
                _set_owner_and_mode(fd, mode, owner)
                _copy_security_label(dirfd, name, fd)
                step(f"fsync {label}")
                os.fsync(fd)  # the data must be on disk before the name points at it
                os.close(fd)
                fd = -1
                step(f"rename {label}")
                os.rename(temp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
                renamed = True
            finally:
                if fd >= 0:
                    os.close(fd)
                if not renamed:
                    with suppress(OSError):
                        os.unlink(temp, dir_fd=dirfd)
            step(f"fsync-dir {label}")
            os.fsync(dirfd)  # and the rename itself must survive a crash

    def unlink(self, path: str, step: StepHook = _no_hook, label: str | None = None) -> bool:
        """Remove the file ``path``; False when it was already gone."""
        label = label or path
        try:
            with self.parent(path) as (dirfd, name):
                step(f"unlink {label}")
                try:
                    os.unlink(name, dir_fd=dirfd)
                except FileNotFoundError:
                    return False
                step(f"fsync-dir {label}")
                os.fsync(dirfd)
        except FileNotFoundError:
            return False  # its directory is gone too
        return True

    def mkdir(self, path: str, mode: int, step: StepHook = _no_hook) -> None:
        """Create the directory ``path`` with ``mode`` whatever the umask (FileExistsError
        when it exists)."""
        with self.parent(path) as (dirfd, name):
            step(f"mkdir {path}")
            os.mkdir(name, mode, dir_fd=dirfd)
            step(f"chmod {path}")
            with self.dir_fd(path) as fd:
                os.fchmod(fd, mode)
            step(f"fsync-dir {path}")
            os.fsync(dirfd)

    def make_dirs(self, path: str, mode: int, parents_mode: int) -> list[str]:
        """mkdir -p: ``path`` gets ``mode``, the directories above it ``parents_mode``;
        the host paths created, outermost first."""
        made: list[str] = []
        parts = host_parts(path)
        for depth in range(1, len(parts) + 1):
            here = "/" + "/".join(parts[:depth])
            st = self.lstat(here)
            if st is not None and stat.S_ISDIR(st.st_mode):
                continue
            try:
                self.mkdir(here, mode if depth == len(parts) else parents_mode)
            except FileExistsError:
                continue  # made meanwhile; the walk below checks it is a directory
            made.append(here)
        with self.dir_fd(path):
            pass
        return made

    def rmdir(self, path: str, step: StepHook = _no_hook, label: str | None = None) -> bool:
        """Remove the directory ``path`` if it is empty; False when absent or not empty."""
        try:
            with self.parent(path) as (dirfd, name):
                step(f"rmdir {label or path}")
                try:
                    os.rmdir(name, dir_fd=dirfd)
                except OSError as exc:
                    if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                        return False
                    raise
                os.fsync(dirfd)
        except FileNotFoundError:
            return False
        return True

    def write_in_place(self, path: str, data: bytes) -> None:
        """One write(2) into the existing file ``path``, never created: a kernel file
        (``/proc/sys``, ``/sys/module``), which parses each write on its own."""
        with self.parent(path) as (dirfd, name):
            fd = os.open(
                name, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd
            )
        try:
            if os.write(fd, data) != len(data):
                raise OSError(errno.EIO, "short write", path)
        finally:
            os.close(fd)

    def remove_temps(self, path: str) -> list[str]:
        """Remove the temporary files a crash left beside ``path`` (``.<name>.ctguard-*``);
        the host paths removed."""
        try:
            with self.parent(path) as (dirfd, name):
                removed = []
                for entry in os.listdir(dirfd):
                    m = _TEMP.fullmatch(entry)
                    if m is None or m.group("name") != name[:200]:
                        continue
                    st = os.stat(entry, dir_fd=dirfd, follow_symlinks=False)
                    if stat.S_ISREG(st.st_mode):
                        os.unlink(entry, dir_fd=dirfd)
                        removed.append(str(Path(path).parent / entry))
                if removed:
                    os.fsync(dirfd)
                return removed
        except (FileNotFoundError, NotADirectoryError):
            return []


def _on_the_way(exc: OSError, dirfd: int, parts: list[str]) -> OSError:
    """The error of a walk that met something else than a directory, naming it."""
    where = "/" + "/".join(parts)
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        with suppress(OSError):
            if stat.S_ISLNK(os.stat(parts[-1], dir_fd=dirfd, follow_symlinks=False).st_mode):
                why = "a symbolic link where ctguard expects a directory"
                return OSError(
                    errno.ELOOP, f"{why} (links are followed once, before writing)", where
                )
        return OSError(errno.ENOTDIR, "not a directory", where)
    return OSError(exc.errno, exc.strerror or str(exc), where)


def _create_temp(dirfd: int, name: str) -> tuple[str, int]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
    for _ in range(8):
        # Short enough to stay within NAME_MAX (255) whatever the target's name.
        temp = f".{name[:200]}{TEMP_MARK}{secrets.token_hex(4)}"
        try:
            return temp, os.open(temp, flags, PRIVATE_FILE_MODE, dir_fd=dirfd)
        except FileExistsError:
            continue
    raise OSError(errno.EEXIST, "cannot pick a temporary file name", name)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _set_owner_and_mode(fd: int, mode: int, owner: tuple[int, int] | None) -> None:
    if owner is not None:
        st = os.fstat(fd)
        if (st.st_uid, st.st_gid) != owner:
            os.fchown(fd, *owner)
    os.fchmod(fd, mode)  # after chown, which clears set-id bits


def _copy_security_label(dirfd: int, name: str, fd: int) -> None:
    """Keep the SELinux label of the file being replaced: a new inode would get its
    directory's default (etc_t for /etc/sysconfig/iptables-config, not system_conf_t)."""
    try:
        if not stat.S_ISREG(os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mode):
            return  # only a regular file is ever replaced; never open a device to look
        old = os.open(name, _READ_FLAGS, dir_fd=dirfd)
    except OSError:
        return  # no such file yet, or a link: nothing to keep
    try:
        label = os.getxattr(old, _SELINUX)
    except OSError:
        return  # no label, or no xattr support
    finally:
        os.close(old)
    with suppress(OSError):
        os.setxattr(fd, _SELINUX, label)
