"""Writing one file so that it is never seen half-written: the primitives apply.py uses.

Only ``remediation/apply.py`` imports this module (tests/test_writers.py checks it): the
rest of ctguard reads hosts and never writes to one.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from ctguard.errors import CtguardError
from ctguard.host.root import HostRoot

StepHook = Callable[[str], None]
PRIVATE_FILE_MODE = 0o600
TEMP_MARK = ".ctguard-"  # temporary files are .<name>.ctguard-<random>


def resolve_in_root(host: HostRoot, path: str) -> tuple[str, Path]:
    """(host path with links followed, path on this machine), never outside the root."""
    if not path.startswith("/"):
        raise CtguardError(f"{path!r} is not an absolute host path")
    real = host.realpath(path)
    return real, host.base / real.lstrip("/")


def replace_file(
    local: Path,
    data: bytes,
    mode: int,
    owner: tuple[int, int] | None,
    step: StepHook,
    label: str,
) -> None:
    """Give ``local`` the content ``data`` by rename(2), so that at every instant it holds
    either its old bytes or all of the new ones, and the temporary file never survives."""
    step(f"create-temp {label}")
    temp, fd = create_temp(local)
    renamed = False
    try:
        step(f"write {label}")
        write_all(fd, data)
        step(f"chmod {label}")
        set_owner_and_mode(fd, mode, owner)
        copy_security_label(local, fd)
        step(f"fsync {label}")
        os.fsync(fd)  # the data must be on disk before the name points at it
        os.close(fd)
        fd = -1
        step(f"rename {label}")
        os.rename(temp, local)
        renamed = True
    finally:
        if fd >= 0:
            os.close(fd)
        if not renamed:
            with suppress(OSError):
                os.unlink(temp)
    step(f"fsync-dir {label}")
    fsync_dir(local.parent)  # and the rename itself must survive a crash


def create_temp(local: Path) -> tuple[Path, int]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
    for _ in range(8):
        # Short enough to stay within NAME_MAX (255) whatever the target's name.
        temp = local.parent / f".{local.name[:200]}{TEMP_MARK}{secrets.token_hex(4)}"
        try:
            return temp, os.open(temp, flags, PRIVATE_FILE_MODE)
        except FileExistsError:
            continue
    raise OSError(errno.EEXIST, "cannot pick a temporary file name", str(local.parent))


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def set_owner_and_mode(fd: int, mode: int, owner: tuple[int, int] | None) -> None:
    if owner is not None:
        st = os.fstat(fd)
        if (st.st_uid, st.st_gid) != owner:
            os.fchown(fd, *owner)
    os.fchmod(fd, mode)  # after chown, which clears set-id bits


_SELINUX = "security.selinux"


def copy_security_label(local: Path, fd: int) -> None:
    """Keep the SELinux label of the file being replaced: a new inode would get its
    directory's default (etc_t for /etc/sysconfig/iptables-config, not system_conf_t)."""
    try:
        label = os.getxattr(local, _SELINUX, follow_symlinks=False)
    except OSError:
        return  # no such file yet, no label, or no xattr support: nothing to keep
    with suppress(OSError):
        os.setxattr(fd, _SELINUX, label)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_or_none(local: Path) -> bytes | None:
    try:
        with open(local, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def make_dirs(directory: Path, mode: int) -> None:
    """mkdir -p, each created directory getting ``mode`` whatever the umask."""
    if directory.is_dir():
        return
    make_dirs(directory.parent, mode)
    with suppress(FileExistsError):
        os.mkdir(directory, mode)
        os.chmod(directory, mode)
