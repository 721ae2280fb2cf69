"""Open a ``.tar.gz`` snapshot safely: check every member first, then extract to a temp dir.

A snapshot comes from another machine and may have been crafted. Before anything is
written, every member is checked: no absolute names, no ``..``, only regular files,
directories and relative symbolic links that stay inside the archive, nothing stored
below a symbolic link. One bad member refuses the whole archive. Extraction then goes
to a fresh temporary directory with tarfile's ``data`` filter as a second guard.
"""

from __future__ import annotations

import posixpath
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ctguard.errors import HostAccessError, UnsafeArchiveError
from ctguard.host.root import HostRoot

MAX_MEMBERS = 200_000
MAX_TOTAL_BYTES = 8 * 1024**3


def is_archive(path: str) -> bool:
    return path.endswith((".tar.gz", ".tgz", ".tar"))


def check_members(members: list[tarfile.TarInfo], archive: str) -> None:
    """Raise UnsafeArchiveError naming the first member that could escape the target."""
    if len(members) > MAX_MEMBERS:
        raise UnsafeArchiveError(f"snapshot {archive}: more than {MAX_MEMBERS} members")
    links: set[str] = set()
    total = 0
    for m in members:
        name = m.name
        why = _unsafe_reason(m, links)
        if why:
            raise UnsafeArchiveError(
                f"snapshot {archive}: refusing the whole archive: member {name!r} {why}"
            )
        if m.issym():
            links.add(posixpath.normpath(name))
        total += m.size
        if total > MAX_TOTAL_BYTES:
            raise UnsafeArchiveError(f"snapshot {archive}: unpacks to more than 8 GiB")


def _unsafe_reason(m: tarfile.TarInfo, links: set[str]) -> str | None:
    name = m.name
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "has an absolute path"
    parts = name.split("/")
    if ".." in parts:
        return "has '..' in its path"
    norm = posixpath.normpath(name)
    prefix = ""
    for part in norm.split("/")[:-1]:
        prefix = posixpath.join(prefix, part) if prefix else part
        if prefix in links:
            return f"is stored below the symbolic link {prefix!r}"
    if m.isdev() or m.isfifo() or m.ischr() or m.isblk():
        return "is a device or fifo"
    if m.islnk():
        return "is a hard link"
    if m.issym():
        target = m.linkname
        if target.startswith("/"):
            return f"is a symbolic link to the absolute path {target!r}"
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(norm), target))
        if joined == ".." or joined.startswith("../"):
            return f"is a symbolic link that points outside the snapshot ({target!r})"
        return None
    if not (m.isfile() or m.isdir()):
        return "is not a file, directory or symbolic link"
    return None


@contextmanager
def extracted(archive: str) -> Iterator[HostRoot]:
    """Yield a HostRoot over a checked, extracted copy; the copy is removed afterwards."""
    try:
        tar = tarfile.open(archive, "r:*")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise HostAccessError(f"snapshot {archive} does not exist") from None
    except (tarfile.TarError, OSError) as exc:
        raise HostAccessError(f"snapshot {archive} is not a readable tar archive: {exc}") from None
    tmp: Path | None = None
    try:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise HostAccessError(f"snapshot {archive} is damaged: {exc}") from None
        check_members(members, archive)
        tmp = Path(tempfile.mkdtemp(prefix="ctguard-snapshot-"))
        try:
            tar.extractall(tmp, members=members, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise HostAccessError(f"snapshot {archive} could not be unpacked: {exc}") from None
        yield HostRoot(tmp)
    finally:
        tar.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def open_root(spec: str) -> Iterator[HostRoot]:
    """``/``, a snapshot directory, or a snapshot archive, as a HostRoot."""
    path = Path(spec)
    if path.is_dir():
        yield HostRoot(path)
    elif is_archive(spec) or path.is_file():
        with extracted(spec) as root:
            yield root
    elif not path.exists():
        raise HostAccessError(f"root {spec!r} does not exist")
    else:
        raise HostAccessError(f"root {spec!r} is neither a directory nor a snapshot archive")
