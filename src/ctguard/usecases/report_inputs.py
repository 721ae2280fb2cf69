"""What ``ctguard report PATH...`` reads: doctor JSON files, snapshot directories and
snapshot archives, given one by one or found in directories.

A directory with ``ctguard_manifest.json`` is a snapshot; any other is walked, in sorted
order (the output is the same on every run), to a bounded depth and number of entries,
without following a link out of it: Ansible's ``fetch`` lays files out as
``DEST/<inventory_hostname>/<path>``, so files sit a few directories down. In a walk,
``*.json`` is a doctor document and ``*.tar.gz``/``*.tgz`` a snapshot archive; other files
are not ours and are passed over. A path given by name is read whatever its name. A
file met twice (given twice, or through a link) is read once.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass

from ctguard.host.commands import MANIFEST

JSON, ARCHIVE, SNAPSHOT = "json", "archive", "snapshot"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
MAX_DEPTH = 16  # DEST/<host>/var/tmp/ctguard/... is 4 or 5 deep
MAX_ENTRIES = 1_000_000  # directory entries looked at in one walk
_GZIP_MAGIC = b"\x1f\x8b"
_MANIFEST_NAME = MANIFEST.lstrip("/")


@dataclass(frozen=True)
class Input:
    path: str
    kind: str  # JSON, ARCHIVE or SNAPSHOT


@dataclass(frozen=True)
class Unreadable:
    path: str
    reason: str  # one line


def find_inputs(paths: Iterable[str]) -> tuple[list[Input], list[Unreadable]]:
    """Every input under ``paths``, in the order given (a directory's in sorted order)."""
    found: list[Input] = []
    bad: list[Unreadable] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError as exc:
            bad.append(Unreadable(path, _why(exc)))
            continue
        if stat.S_ISDIR(st.st_mode):
            if os.path.isfile(os.path.join(path, _MANIFEST_NAME)):
                found.append(Input(path, SNAPSHOT))
            else:
                _walk(path, found, bad)
        elif stat.S_ISREG(st.st_mode):
            found.append(Input(path, ARCHIVE if _is_archive(path) else JSON))
        else:
            bad.append(Unreadable(path, "not a file or a directory"))
    return _once(found), bad


def _once(found: list[Input]) -> list[Input]:
    """Each file or snapshot once (the real paths compared before anything is read):
    ``report a.json a.json``, a directory given with a file in it, or a link to a file
    beside it, is one input; read twice it would be its own duplicate. The input keeps
    its first mention's place, named by a path that is not a link when one names it."""
    first: dict[str, int] = {}
    once: list[Input] = []
    for item in found:
        real = os.path.realpath(item.path)
        at = first.get(real)
        if at is None:
            first[real] = len(once)
            once.append(item)
        elif os.path.islink(once[at].path) and not os.path.islink(item.path):
            once[at] = item
    return once


def _is_archive(path: str) -> bool:
    if path.endswith(ARCHIVE_SUFFIXES):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(2) == _GZIP_MAGIC
    except OSError:
        return False  # reading it as JSON says why


def _why(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "does not exist"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return str(exc.strerror or exc)


def _walk(top: str, found: list[Input], bad: list[Unreadable]) -> None:
    real_top = os.path.realpath(top)
    seen = 0
    stack: list[tuple[str, int]] = [(top, 0)]
    while stack:
        directory, depth = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            bad.append(Unreadable(directory, _why(exc)))
            continue
        subdirs: list[str] = []
        for entry in entries:
            seen += 1
            if seen > MAX_ENTRIES:
                bad.append(Unreadable(top, f"walk stopped after {MAX_ENTRIES:,} entries"))
                return
            kind = _kind(entry.name)
            try:
                if entry.is_symlink():
                    _link(entry, kind, real_top, found, bad)
                elif entry.is_dir(follow_symlinks=False):
                    if os.path.isfile(os.path.join(entry.path, _MANIFEST_NAME)):
                        found.append(Input(entry.path, SNAPSHOT))
                    elif depth + 1 >= MAX_DEPTH:
                        bad.append(Unreadable(entry.path, f"deeper than {MAX_DEPTH} levels"))
                    else:
                        subdirs.append(entry.path)
                elif kind is not None and entry.is_file(follow_symlinks=False):
                    found.append(Input(entry.path, kind))
            except OSError as exc:
                bad.append(Unreadable(entry.path, _why(exc)))
        # depth first, in sorted order: the stack pops the first name first
        stack.extend((sub, depth + 1) for sub in reversed(subdirs))


def _kind(name: str) -> str | None:
    if name.endswith(ARCHIVE_SUFFIXES):
        return ARCHIVE
    if name.endswith(".json") and name != _MANIFEST_NAME:
        return JSON
    return None


def _link(
    entry: os.DirEntry[str],
    kind: str | None,
    real_top: str,
    found: list[Input],
    bad: list[Unreadable],
) -> None:
    """A link to a file of ours inside the walked directory is read; one that leads out
    of it is listed, not followed; a link to a directory is not walked (its target is
    walked where it is, or is outside)."""
    if kind is None:
        return
    target = os.path.realpath(entry.path)
    if os.path.commonpath([real_top, target]) != real_top:
        bad.append(Unreadable(entry.path, f"a link out of {real_top} ({target}): not followed"))
    elif os.path.isfile(target):
        found.append(Input(entry.path, kind))
