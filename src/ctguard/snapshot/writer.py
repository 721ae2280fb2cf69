"""Where a snapshot goes: a ``.tar.gz`` or a directory, both finished atomically.

Everything is written under a temporary name beside the target and renamed into
place at the end, so an interrupted capture never leaves a half-written snapshot.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Protocol

from ctguard.errors import CtguardError


class SnapshotWriter(Protocol):
    def add_bytes(self, path: str, data: bytes) -> None: ...
    def add_file(self, path: str, src: Path) -> None: ...
    def add_symlink(self, path: str, target: str) -> None: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...


def _member(path: str) -> str:
    return path.lstrip("/")


class TarWriter:
    def __init__(self, target: Path) -> None:
        if target.exists():
            raise CtguardError(f"{target} already exists; choose another -o")
        self.target = target
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
        os.close(fd)
        self.tmp = Path(tmp)
        self.tar = tarfile.open(self.tmp, "w:gz")  # noqa: SIM115 - closed in commit/abort
        self.now = int(time.time())
        self._dirs: set[str] = set()

    def _parents(self, name: str) -> None:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self._dirs:
                self._dirs.add(d)
                info = tarfile.TarInfo(d)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, self.now
                self.tar.addfile(info)

    def add_bytes(self, path: str, data: bytes) -> None:
        name = _member(path)
        self._parents(name)
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, self.now
        self.tar.addfile(info, io.BytesIO(data))

    def add_file(self, path: str, src: Path) -> None:
        name = _member(path)
        self._parents(name)
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = src.stat().st_size, 0o644, self.now
        with open(src, "rb") as f:
            self.tar.addfile(info, f)

    def add_symlink(self, path: str, target: str) -> None:
        name = _member(path)
        self._parents(name)
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.mtime = tarfile.SYMTYPE, target, self.now
        self.tar.addfile(info)

    def commit(self) -> None:
        self.tar.close()
        with open(self.tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(self.tmp, 0o600)  # tables and logs can be sensitive
        os.rename(self.tmp, self.target)

    def abort(self) -> None:
        self.tar.close()
        self.tmp.unlink(missing_ok=True)


class DirWriter:
    def __init__(self, target: Path) -> None:
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise CtguardError(f"{target} exists and is not an empty directory")
        self.target = target
        target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))

    def _dest(self, path: str) -> Path:
        dest = self.tmp / _member(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        return dest

    def add_bytes(self, path: str, data: bytes) -> None:
        self._dest(path).write_bytes(data)

    def add_file(self, path: str, src: Path) -> None:
        shutil.copyfile(src, self._dest(path))

    def add_symlink(self, path: str, target: str) -> None:
        os.symlink(target, self._dest(path))

    def commit(self) -> None:
        if self.target.exists():
            self.target.rmdir()  # empty, checked above
        os.rename(self.tmp, self.target)

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def open_writer(target: str) -> SnapshotWriter:
    path = Path(target)
    if target.endswith("/") or path.is_dir():
        return DirWriter(path)
    if not target.endswith((".tar.gz", ".tgz")):
        raise CtguardError(f"-o {target}: name a .tar.gz file or a directory ending in '/'")
    if not path.parent.is_dir():
        raise CtguardError(f"-o {target}: directory {path.parent} does not exist")
    return TarWriter(path)
