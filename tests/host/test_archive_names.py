"""Names in a crafted snapshot archive: one member per name, bounded length and depth.

An archive may hold one name twice. Three members named ``a`` - a symbolic link out of
the snapshot, a regular file, a harmless link - passed a check that kept only the last
member per name: extraction wrote the file through the first link, then the last link
hid it. On Python before 3.11.4 (Debian 12 has 3.11.2) tarfile has no extraction filter
to stop it, so both paths are tested: with the filter, and without it (monkeypatched).
"""

from __future__ import annotations

import io
import os
import resource
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

import ctguard.host.archive as archive_module
from archive_bombs import deep_name
from ctguard.errors import UnsafeArchiveError
from ctguard.host.archive import MAX_NAME_BYTES, MAX_NAME_PARTS, extracted
from helpers import assert_one_line_error, ctguard_bin
from host.test_archive_safety import GOOD_FILES

PATHS = ["with-filter", "python-3.11.2"]


def _file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _link(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    tar.addfile(info)


def _archive(path: Path, extra: Callable[[tarfile.TarFile], None]) -> Path:
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT) as tar:
        for name, data in GOOD_FILES.items():
            _file(tar, name, data)
        extra(tar)
    return path


def _open(archive: Path) -> None:
    with extracted(str(archive)):
        pass


def _python(monkeypatch: pytest.MonkeyPatch, scratch: Path, path: str) -> None:
    """Extract under ``scratch``; on "python-3.11.2", as if tarfile had no filters."""
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    if path == "python-3.11.2":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)


def _shadowed_link(tmp_path: Path) -> tuple[Path, Path]:
    """The archive of three members named ``a`` and the file its first link points at
    (tmp/esc/PWNED, seen from tmp/scratch/ctguard-snapshot-XXXX/a)."""
    outside = tmp_path / "esc"
    outside.mkdir()

    def three(tar: tarfile.TarFile) -> None:
        _link(tar, "a", "../../esc/PWNED")
        _file(tar, "a", b"written through the link\n")
        _link(tar, "a", "proc")

    return _archive(tmp_path / "shadow.tar.gz", three), outside / "PWNED"


@pytest.mark.parametrize("path", PATHS)
def test_a_name_stored_twice_refuses_the_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    archive, pwned = _shadowed_link(tmp_path)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    _python(monkeypatch, scratch, path)
    with pytest.raises(UnsafeArchiveError, match="'a' is stored twice") as refused:
        _open(archive)
    assert "\n" not in str(refused.value)
    assert not pwned.exists()
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize(
    "second", ["a/", "./a", "a/."], ids=["trailing-slash", "dot-slash", "slash-dot"]
)
def test_names_that_normalize_alike_are_one_name(tmp_path: Path, second: str) -> None:
    def twice(tar: tarfile.TarFile) -> None:
        _file(tar, "a", b"x")
        info = tarfile.TarInfo(second)
        info.type = tarfile.DIRTYPE
        tar.addfile(info)

    with pytest.raises(UnsafeArchiveError, match="stored twice"):
        _open(_archive(tmp_path / "twice.tar.gz", twice))


def test_the_fallback_extraction_never_writes_through_a_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second guard alone (the member check switched off): without tarfile's filter,
    a regular file replaces a link of its name instead of being written through it."""
    archive, pwned = _shadowed_link(tmp_path)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    _python(monkeypatch, scratch, "python-3.11.2")
    monkeypatch.setattr(archive_module, "check_members", lambda members, name: 0)
    with extracted(str(archive)) as host:
        assert os.readlink(Path(host.base) / "a") == "proc"
    assert not pwned.exists()
    assert list(scratch.iterdir()) == []


def test_our_own_snapshots_store_each_name_once(tmp_path: Path) -> None:
    """The refusal costs nothing for snapshots ctguard writes (directories included)."""
    from ctguard.snapshot.writer import TarWriter

    writer = TarWriter(tmp_path / "snap.tar.gz")
    for name, data in GOOD_FILES.items():
        writer.add_bytes("/" + name, data)
    writer.add_symlink("/etc/sysctl.d/99-sysctl.conf", "../sysctl.conf")
    writer.add_bytes("/etc/sysctl.conf", b"net.netfilter.nf_conntrack_max = 262144\n")
    writer.commit()
    with extracted(str(tmp_path / "snap.tar.gz")) as host:
        assert host.read_text("/etc/sysctl.d/99-sysctl.conf").startswith("net.netfilter")


# -- length and depth --------------------------------------------------------------------

CPU_SECONDS = 10  # the check took 29 s on "a/" * 100000 + "f" before names were bounded


def _cpu_capped() -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))


def _run_capped(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ctguard_bin(), *args], capture_output=True, text=True, timeout=120, check=False,
        preexec_fn=_cpu_capped,
    )  # fmt: skip


def test_a_deep_long_name_is_refused_in_one_line_fast(tmp_path: Path) -> None:
    """A 400-byte archive naming one file "a/" * 100000 + "f": refused on its length,
    within the CPU limit (RLIMIT_CPU kills the check that grew with the square)."""
    bomb = deep_name(tmp_path / "deep.tar.gz", 100_000)
    assert bomb.stat().st_size < 1024
    done = _run_capped("status", "--root", str(bomb))
    assert_one_line_error(done, "refusing the whole archive", f"longer than {MAX_NAME_BYTES} bytes")
    assert len(done.stderr) < 1000  # the name is shown by its ends, not all 200 KB of it


NAMES: dict[str, tuple[Callable[[tarfile.TarFile], None], str]] = {
    "long-name": (
        lambda t: _file(t, "etc/" + "n" * MAX_NAME_BYTES, b"x"),
        f"longer than {MAX_NAME_BYTES} bytes",
    ),
    "deep-name": (
        lambda t: _file(t, "a/" * MAX_NAME_PARTS + "f", b"x"),
        f"deeper than {MAX_NAME_PARTS} components",
    ),
    "long-link": (
        lambda t: _link(t, "etc/l", "x" * (MAX_NAME_BYTES + 1)),
        f"longer than {MAX_NAME_BYTES} bytes",
    ),
    "deep-link": (
        lambda t: _link(t, "etc/l", "./" * MAX_NAME_PARTS + "x"),
        f"deeper than {MAX_NAME_PARTS} components",
    ),
}


@pytest.mark.parametrize("case", sorted(NAMES))
def test_names_and_links_past_path_max_are_refused(tmp_path: Path, case: str) -> None:
    build, needle = NAMES[case]
    with pytest.raises(UnsafeArchiveError, match=needle) as refused:
        _open(_archive(tmp_path / f"{case}.tar.gz", build))
    assert "\n" not in str(refused.value)


def test_names_at_the_limits_are_read(tmp_path: Path) -> None:
    """Up to PATH_MAX bytes and MAX_NAME_PARTS components: refused no earlier."""
    deep = "d/" * (MAX_NAME_PARTS - 1) + "f"
    long = "etc/" + "n" * (MAX_NAME_BYTES - len("etc/"))

    def at_limits(tar: tarfile.TarFile) -> None:
        _file(tar, deep, b"deep\n")
        _link(tar, "etc/l", "../" + "d/" * (MAX_NAME_PARTS - 2) + "f")
        info = tarfile.TarInfo(long)
        info.size = 0
        tar.addfile(info, io.BytesIO(b""))

    archive = _archive(tmp_path / "limits.tar.gz", at_limits)
    members = archive_module.listed(archive.open("rb"), str(archive))
    assert len(long.encode()) == MAX_NAME_BYTES
    assert archive_module.check_members(members, str(archive)) > 0
