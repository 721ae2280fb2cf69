"""Open a ``.tar.gz`` snapshot safely: check every member first, then extract to a temp dir.

A snapshot comes from another machine and may have been crafted. Members are listed as a
stream, in bounded memory, and the first limit reached refuses the archive before more is
read: the member count, the size of one tar header (a pax header or GNU long name claiming
gigabytes is refused unread), all headers together, each member's size, the total, and
the unpacked bytes per archive byte. Before anything is written, every member is checked:
no absolute names, no ``..``, only regular files, directories and relative symbolic
links, no member stored below a symbolic link, and every link, followed through the other
links of the archive, must stay inside it. One bad member refuses the whole archive.
Extraction then goes to a fresh temporary directory with tarfile's ``data`` filter as a
second guard.
"""

from __future__ import annotations

import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from copy import copy as shallow_copy
from pathlib import Path
from typing import BinaryIO, cast

from ctguard.errors import HostAccessError, UnsafeArchiveError
from ctguard.host import caps
from ctguard.host.caps import MAX_FILE_BYTES
from ctguard.host.root import HostRoot
from ctguard.host.unpacked import Unpacked, unpacking

# A snapshot holds a few hundred members (docs/design.md §5); tarfile lists about 60,000 a
# second, so this bounds the listing to a third of a second and ~10 MB.
MAX_MEMBERS = 20_000
# A pax header or a GNU long name/link: a few hundred bytes in real archives.
MAX_HEADER_BYTES = 1024**2
MAX_HEADERS_TOTAL = 32 * 1024**2  # all header blocks of one archive, read while listing
MAX_MEMBER_BYTES = MAX_FILE_BYTES  # config files, logs (captured as tails), command outputs
TABLE_MEMBERS = ("proc/net/nf_conntrack", "ctguard_commands/conntrack-L")
MAX_TOTAL_BYTES = caps.MAX_TABLE_BYTES + 512 * 1024**2
_MAX_LINKS = 40
# Names and link targets: Linux's PATH_MAX, and a depth no snapshot comes near (extraction
# would fail past them anyway). Bounded, the checks below stay linear in the names.
MAX_NAME_BYTES = 4096
MAX_NAME_PARTS = 256
_SHOWN = 60  # characters of each end of a long name shown in an error
# Any of these makes a directory a snapshot (a typo in --root must not read as "no conntrack").
SNAPSHOT_MARKERS = (
    "/ctguard_manifest.json",
    "/proc/meminfo",
    "/proc/sys/kernel/osrelease",
    "/proc/sys/net/netfilter",
)


def _shown(name: str) -> str:
    """A member's name for a one-line error: a crafted one can be megabytes long."""
    if len(name) <= 2 * _SHOWN:
        return repr(name)
    return f"{name[:_SHOWN]!r}...{name[-_SHOWN:]!r} ({len(name)} characters)"


def _refuse(archive: str, name: str, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"snapshot {archive}: refusing the whole archive: member {_shown(name)} {why}"
    )


def _too_long(what: str, path: str) -> str | None:
    """Why ``path`` (a name or a link target) is refused for its length or depth."""
    if len(path.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        return f"has {what} longer than {MAX_NAME_BYTES} bytes (PATH_MAX)"
    if path.count("/") >= MAX_NAME_PARTS:
        return f"has {what} deeper than {MAX_NAME_PARTS} components"
    return None


def _member_reason(m: tarfile.TarInfo) -> str | None:
    name = m.name
    if too_long := _too_long("a name", name) or _too_long("a link target", m.linkname):
        return too_long
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "has an absolute path"
    if ".." in name.split("/"):
        return "has '..' in its path"
    if m.isdev() or m.isfifo() or m.ischr() or m.isblk():
        return "is a device or fifo"
    if m.islnk():
        return "is a hard link"
    if m.issym():
        if m.linkname.startswith("/"):
            return f"is a symbolic link to the absolute path {m.linkname!r}"
        return None
    if m.size < 0:
        return "has a negative size"
    if m.issparse() or m.type == tarfile.GNUTYPE_SPARSE:
        return "is a sparse file"
    if not (m.isfile() or m.isdir()):
        return "is not a file, directory or symbolic link"
    table = posixpath.normpath(name) in TABLE_MEMBERS
    limit = caps.MAX_TABLE_BYTES if table else MAX_MEMBER_BYTES
    if m.size > limit:
        return f"is larger than {limit} bytes"
    return None


def _escapes(name: str, links: dict[str, str]) -> bool:
    """Follow link ``name`` through the archive's links; True if it leaves the root.

    Linear in the parts followed (each name and target is bounded by ``_too_long``)."""
    pending = deque(posixpath.join(posixpath.dirname(name), links[name]).split("/"))
    done: list[str] = []  # the paths walked so far: done[-1] is where the walk is
    hops = 0
    while pending:
        part = pending.popleft()
        if part in ("", "."):
            continue
        if part == "..":
            if not done:
                return True
            done.pop()
            continue
        here = f"{done[-1]}/{part}" if done else part
        if here in links:
            hops += 1
            if hops > _MAX_LINKS:
                return True  # a loop: refuse rather than guess
            pending.extendleft(reversed(links[here].split("/")))
            continue
        done.append(here)
    return False


def _below_link(name: str, links: dict[str, str]) -> str | None:
    """The first proper prefix of normalized ``name`` that is a link, if any."""
    at = name.find("/")
    while at >= 0:
        if name[:at] in links:
            return name[:at]
        at = name.find("/", at + 1)
    return None


def check_members(members: list[tarfile.TarInfo], archive: str) -> int:
    """Raise UnsafeArchiveError naming the first member that could escape or overflow.

    Each name may appear once: a later member of the same name could be written through
    an earlier link of that name and then hidden by a third (tarfile replaces a link,
    but opens a file through one). Returns the bytes the archive unpacks to.
    """
    if len(members) > MAX_MEMBERS:
        raise _too_many(archive)
    links: dict[str, str] = {}
    names: set[str] = set()
    total = 0
    for m in members:
        total = _admit(m, total, archive)
        name = posixpath.normpath(m.name)
        if name in names:
            raise _refuse(archive, m.name, "is stored twice (a snapshot stores each path once)")
        names.add(name)
        if m.issym():
            links[name] = m.linkname
    if not links:
        return total
    for m in members:  # with every link known, whatever the order of members
        prefix = _below_link(posixpath.normpath(m.name), links)
        if prefix is not None:
            raise _refuse(archive, m.name, f"is stored below the symbolic link {prefix!r}")
    for name, target in links.items():  # every symbolic link member: one per name
        if _escapes(name, links):
            raise _refuse(
                archive,
                name,
                f"is a symbolic link that points outside the snapshot ({_shown(target)})",
            )
    return total


def _too_many(archive: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"snapshot {archive}: refusing the whole archive: more than {MAX_MEMBERS} members"
    )


def _admit(member: tarfile.TarInfo, total: int, archive: str) -> int:
    """``total`` plus the member's size; UnsafeArchiveError when the member is refused."""
    why = _member_reason(member)
    if why:
        raise _refuse(archive, member.name, why)
    total += member.size
    if total > MAX_TOTAL_BYTES:
        raise UnsafeArchiveError(
            f"snapshot {archive}: refusing the whole archive: "
            f"it unpacks to more than {MAX_TOTAL_BYTES} bytes"
        )
    return total


# What unpacking may raise on a damaged archive besides tarfile's own errors.
_DAMAGED = (
    tarfile.TarError, OSError, EOFError, lzma.LZMAError, zlib.error, RecursionError,
    UnicodeError,
)  # fmt: skip


def _stream(raw: BinaryIO, archive: str, read_budget: int | None) -> Unpacked:
    raw.seek(0)
    size = os.fstat(raw.fileno()).st_size
    source, packed = unpacking(raw)
    return Unpacked(
        source,
        archive,
        max_read=MAX_HEADER_BYTES,
        max_unpacked=caps.max_unpacked(size) if packed else size,
        read_budget=read_budget,
    )


def _opened(stream: Unpacked, archive: str) -> tarfile.TarFile:
    try:
        return tarfile.TarFile(fileobj=cast(BinaryIO, stream), mode="r")
    except _DAMAGED as exc:
        why = str(exc).strip().splitlines()[0].rstrip(" :") if str(exc).strip() else ""
        why = why if why and "header" not in why and why != "empty file" else "not a tar file"
        raise HostAccessError(f"snapshot {archive} is not a readable tar archive ({why})") from None


def listed(raw: BinaryIO, archive: str) -> list[tarfile.TarInfo]:
    """The members of the archive ``raw``, each checked as it comes: the first member
    over a limit (count, header size, size, total, unpacked bytes) refuses the archive
    before anything more is read. Links are checked by ``check_members``, once all are known."""
    stream = _stream(raw, archive, MAX_HEADERS_TOTAL)
    tar = _opened(stream, archive)
    members: list[tarfile.TarInfo] = []
    total = 0
    try:
        while (member := tar.next()) is not None:
            if len(members) == MAX_MEMBERS:
                raise _too_many(archive)
            total = _admit(member, total, archive)  # before tarfile skips its data
            members.append(member)
    except _DAMAGED as exc:
        raise HostAccessError(f"snapshot {archive} is damaged: {exc}") from None
    return members


def _extract(tar: tarfile.TarFile, dest: Path, members: list[tarfile.TarInfo]) -> None:
    """Unpack checked members. Python before 3.11.4 (Debian 12 has 3.11.2) has no
    extraction filters: ``check_members`` already refused whatever could land outside
    (absolute, "..", links out, names stored twice, devices, hard links); the rest of the
    "data" filter is done here: no set-id, sticky or group/other-writable modes, every
    file is ours, and nothing is written through a link already there (tarfile opens a
    file's path as it is; it is unlinked first)."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, members=members, filter="data")
        return
    directories = []
    for member in members:
        copy = shallow_copy(member)
        copy.mode = member.mode & 0o755
        copy.uid, copy.gid, copy.uname, copy.gname = os.getuid(), os.getgid(), "", ""
        target = dest / member.name
        if not member.isdir() and os.path.islink(target):
            os.unlink(target)
        # directories get their modes last, as extractall does, so a read-only one
        # still takes its files
        tar.extract(copy, dest, set_attrs=not copy.isdir())
        if copy.isdir():
            directories.append(copy)
    for directory in reversed(directories):
        path = os.path.join(dest, directory.name)
        tar.chmod(directory, path)
        tar.utime(directory, path)


def _open_regular(archive: str) -> BinaryIO:
    try:
        fd = os.open(archive, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise HostAccessError(f"snapshot {archive} does not exist") from None
    except OSError as exc:
        raise HostAccessError(f"snapshot {archive}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise HostAccessError(f"snapshot {archive} is not a regular file")
    return os.fdopen(fd, "rb")


@contextmanager
def extracted(archive: str) -> Iterator[HostRoot]:
    """Yield a HostRoot over a checked, extracted copy; the copy is removed afterwards.

    Two passes over the one open file: the first lists and checks every member in
    bounded memory and refuses at the first limit; the second unpacks the checked
    members (the names, types and links extracted are the checked ones)."""
    tmp: Path | None = None
    with _open_regular(archive) as raw:
        try:
            members = listed(raw, archive)
            needed = check_members(members, archive)
            free = shutil.disk_usage(tempfile.gettempdir()).free
            if needed > free:
                raise HostAccessError(
                    f"snapshot {archive} needs {needed} bytes to unpack, "
                    f"{tempfile.gettempdir()} has {free} free (set TMPDIR)"
                )
            tar = _opened(_stream(raw, archive, None), archive)
            tmp = Path(tempfile.mkdtemp(prefix="ctguard-snapshot-"))
            try:
                _extract(tar, tmp, members)
            except _DAMAGED as exc:
                raise HostAccessError(f"snapshot {archive} could not be unpacked: {exc}") from None
            yield HostRoot(tmp)
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)


def _require_snapshot(root: HostRoot, spec: str) -> HostRoot:
    if root.is_live or any(root.exists(marker) for marker in SNAPSHOT_MARKERS):
        return root
    raise HostAccessError(
        f"root {spec!r} is not a ctguard snapshot "
        "(none of ctguard_manifest.json, proc/meminfo, proc/sys/kernel/osrelease, "
        "proc/sys/net/netfilter)"
    )


@contextmanager
def open_root(spec: str) -> Iterator[HostRoot]:
    """``/``, a snapshot directory, or a snapshot archive, as a HostRoot."""
    try:
        mode = os.stat(spec).st_mode
    except FileNotFoundError:
        raise HostAccessError(f"root {spec!r} does not exist") from None
    except OSError as exc:
        raise HostAccessError(f"root {spec!r}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        yield _require_snapshot(HostRoot(spec), spec)
    elif stat.S_ISREG(mode):
        with extracted(spec) as root:
            yield _require_snapshot(root, spec)
    else:
        raise HostAccessError(f"root {spec!r} is neither a directory nor a regular file")
