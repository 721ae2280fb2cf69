"""Where a snapshot goes: a ``.tar.gz`` or a directory, both finished atomically.

Everything is written under a temporary name beside the target and renamed into
place at the end; ``scratch`` (for spooling a table dump) lives beside it too. ``abort``
removes both, so an interrupted capture leaves neither a half-written snapshot nor a
stray copy of the table. A failure to write is a SnapshotWriteError, which a capture
never mistakes for an unreadable host file.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Protocol

from ctguard.errors import CtguardError


class SnapshotWriteError(CtguardError):
    """The snapshot itself could not be written (disk full, read-only, permission)."""


class SnapshotWriter(Protocol):
    scratch: Path

    def add_bytes(self, path: str, data: bytes) -> None: ...
    def add_file(self, path: str, src: Path) -> None: ...
    def add_symlink(self, path: str, target: str) -> None: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...


def _member(path: str) -> str:
    return path.lstrip("/")


@contextmanager
def _writing(target: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise SnapshotWriteError(f"writing {target}: {exc.strerror or exc}") from None


def _scratch(target: Path) -> Path:
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.scratch-", dir=target.parent))


class TarWriter:
    def __init__(self, target: Path) -> None:
        if target.exists():
            raise CtguardError(f"{target} already exists; choose another -o")
        self.target = target
        with _writing(target):
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
            os.close(fd)
            self.tmp = Path(tmp)
            self.scratch = _scratch(target)
            self.tar = tarfile.open(self.tmp, "w:gz")  # noqa: SIM115 - closed in commit/abort
        self.now = int(time.time())
        self._dirs: set[str] = set()

    def _info(self, name: str, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self._dirs:
                self._dirs.add(d)
                self.tar.addfile(self._info_of(d, tarfile.DIRTYPE, 0o755))
        return self._info_of(name, kind, 0o644)

    def _info_of(self, name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = kind, mode, self.now
        return info

    def add_bytes(self, path: str, data: bytes) -> None:
        with _writing(self.target):
            info = self._info(_member(path))
            info.size = len(data)
            self.tar.addfile(info, io.BytesIO(data))

    def add_file(self, path: str, src: Path) -> None:
        with _writing(self.target):
            info = self._info(_member(path))
            info.size = src.stat().st_size
            with open(src, "rb") as f:
                self.tar.addfile(info, f)

    def add_symlink(self, path: str, target: str) -> None:
        with _writing(self.target):
            info = self._info(_member(path), tarfile.SYMTYPE)
            info.linkname = target
            self.tar.addfile(info)

    def commit(self) -> None:
        with _writing(self.target):
            self.tar.close()
            with open(self.tmp, "rb") as f:
                os.fsync(f.fileno())
            os.chmod(self.tmp, 0o600)  # tables and logs can be sensitive
            os.rename(self.tmp, self.target)
        shutil.rmtree(self.scratch, ignore_errors=True)

    def abort(self) -> None:
        with suppress(OSError):
            self.tar.close()
        self.tmp.unlink(missing_ok=True)
        shutil.rmtree(self.scratch, ignore_errors=True)


class DirWriter:
    def __init__(self, target: Path) -> None:
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise CtguardError(f"{target} exists and is not an empty directory")
        self.target = target
        with _writing(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
            self.scratch = _scratch(target)

    def _put(self, path: str, write: Callable[[Path], object]) -> None:
        with _writing(self.target):
            dest = self.tmp / _member(path)
            dest.parent.mkdir(parents=True, exist_ok=True)
            write(dest)

    def add_bytes(self, path: str, data: bytes) -> None:
        self._put(path, lambda dest: dest.write_bytes(data))

    def add_file(self, path: str, src: Path) -> None:
        self._put(path, lambda dest: shutil.copyfile(src, dest))

    def add_symlink(self, path: str, target: str) -> None:
        self._put(path, lambda dest: os.symlink(target, dest))

    def commit(self) -> None:
        with _writing(self.target):
            if self.target.exists():
                self.target.rmdir()  # empty, checked above
            os.rename(self.tmp, self.target)
        shutil.rmtree(self.scratch, ignore_errors=True)

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        shutil.rmtree(self.scratch, ignore_errors=True)


def open_writer(target: str) -> SnapshotWriter:
    path = Path(target)
    if target.endswith("/") or path.is_dir():
        return DirWriter(path)
    if not target.endswith((".tar.gz", ".tgz")):
        raise CtguardError(f"-o {target}: name a .tar.gz file or a directory ending in '/'")
    if not path.parent.is_dir():
        raise CtguardError(f"-o {target}: directory {path.parent} does not exist")
    return TarWriter(path)
