"""Crafted snapshot archives are refused whole and write nothing outside a temp dir."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import assert_one_line_error, run_ctguard

GOOD_FILES = {
    "proc/meminfo": b"MemTotal:        8000000 kB\nMemAvailable:    4000000 kB\n",
    "proc/sys/kernel/osrelease": b"6.1.0-18-amd64\n",
    "proc/sys/net/netfilter/nf_conntrack_count": b"10\n",
    "proc/sys/net/netfilter/nf_conntrack_max": b"65536\n",
    "proc/sys/net/netfilter/nf_conntrack_buckets": b"65536\n",
}


def _add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _add_special(tar: tarfile.TarFile, name: str, kind: bytes, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    tar.addfile(info)


def make_archive(path: Path, extra: Callable[[tarfile.TarFile], None]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in GOOD_FILES.items():
            _add_file(tar, name, data)
        extra(tar)
    return path


CRAFTED: dict[str, tuple[Callable[[tarfile.TarFile], None], str]] = {
    "dotdot": (lambda t: _add_file(t, "../escaped-dotdot", b"x"), "'..'"),
    "dotdot-inner": (lambda t: _add_file(t, "etc/../../escaped-inner", b"x"), "'..'"),
    "absolute": (lambda t: _add_file(t, "/tmp/ctguard-escaped-absolute", b"x"), "absolute"),
    "symlink-absolute": (
        lambda t: _add_special(t, "etc/passwd-link", tarfile.SYMTYPE, "/etc/passwd"),
        "absolute",
    ),
    "symlink-escape": (
        lambda t: _add_special(t, "etc/up", tarfile.SYMTYPE, "../../../.."),
        "outside",
    ),
    "below-symlink": (
        lambda t: (
            _add_special(t, "etc/dir", tarfile.SYMTYPE, "../proc"),
            _add_file(t, "etc/dir/evil", b"x"),
        ),
        "below the symbolic link",
    ),
    # each link alone looks harmless; followed through each other, esc is the parent dir
    "chained-links": (
        lambda t: (
            _add_special(t, "esc", tarfile.SYMTYPE, "d/.."),
            _add_special(t, "d", tarfile.SYMTYPE, "."),
        ),
        "outside",
    ),
    "link-loop": (
        lambda t: (
            _add_special(t, "a", tarfile.SYMTYPE, "b"),
            _add_special(t, "b", tarfile.SYMTYPE, "a"),
        ),
        "outside",
    ),
    "oversized-member": (
        lambda t: _add_file(t, "var/log/messages", bytes(65 * 1024 * 1024)),
        "larger than",
    ),
    "char-device": (lambda t: _add_special(t, "dev/null", tarfile.CHRTYPE), "device"),
    "block-device": (lambda t: _add_special(t, "dev/sda", tarfile.BLKTYPE), "device"),
    "fifo": (lambda t: _add_special(t, "proc/fifo", tarfile.FIFOTYPE), "fifo"),
    "hardlink": (
        lambda t: _add_special(t, "etc/hard", tarfile.LNKTYPE, "/etc/shadow"),
        "hard link",
    ),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_archive_refused(case: str, tmp_path: Path) -> None:
    build, needle = CRAFTED[case]
    work = tmp_path / "work"
    work.mkdir()
    archive = make_archive(work / "crafted.tar.gz", build)
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    before = sorted(p.name for p in tmp_path.iterdir())
    done = run_ctguard("status", "--root", str(archive), "--interval", "0", cwd=work, env=env)
    assert_one_line_error(done, "refusing the whole archive", needle)
    # nothing was extracted anywhere: no temp dir left, nothing new beside the archive
    assert list(scratch.iterdir()) == []
    assert sorted(p.name for p in work.iterdir()) == ["crafted.tar.gz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not Path("/tmp/ctguard-escaped-absolute").exists()


def test_good_archive_is_read_and_cleaned_up(tmp_path: Path) -> None:
    archive = make_archive(
        tmp_path / "good.tar.gz",
        lambda t: _add_special(t, "etc/sysctl.d/99-sysctl.conf", tarfile.SYMTYPE, "../sysctl.conf"),
    )
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    done = run_ctguard("status", "--root", str(archive), "--json", "--interval", "0", env=env)
    assert done.returncode == 0, done.stderr
    assert '"count": 10' in done.stdout
    assert list(scratch.iterdir()) == []  # the extracted copy is removed afterwards


def test_not_an_archive(tmp_path: Path) -> None:
    bogus = tmp_path / "snapshot.tar.gz"
    bogus.write_bytes(b"this is not a tar archive\n")
    done = run_ctguard("status", "--root", str(bogus))
    assert_one_line_error(done, "not a readable tar archive")


@pytest.mark.parametrize("command", ["status", "doctor", "plan"])
def test_a_truncated_gzip_is_one_line(tmp_path: Path, command: str) -> None:
    """gzip says EOFError, which click would turn into a bare 'aborted'."""
    bogus = tmp_path / "snapshot.tar.gz"
    bogus.write_bytes(b"\x1f\x8b\x08\x00not really")
    done = run_ctguard(command, "--root", str(bogus))
    assert_one_line_error(done, "not a readable tar archive", str(bogus))


def test_fifo_in_snapshot_directory_does_not_block(tmp_path: Path) -> None:
    for name, data in GOOD_FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    stat_file = tmp_path / "proc/net/stat/nf_conntrack"
    stat_file.parent.mkdir(parents=True)
    os.mkfifo(stat_file)
    done = run_ctguard("status", "--root", str(tmp_path), "--json", "--interval", "0", timeout=30)
    assert done.returncode == 0, done.stderr
    assert "not a regular file" in done.stdout


@pytest.mark.parametrize("filters", [True, False], ids=["python-with-filters", "python-3.11.2"])
def test_extraction_drops_set_id_bits_and_foreign_owners(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, filters: bool
) -> None:
    """Debian 12's Python 3.11.2 has no tarfile filters; ctguard tames members itself."""
    from ctguard.host.archive import extracted

    if not filters:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)

    def setuid(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("etc/suid-tool")
        info.mode, info.uid, info.gid, info.size = 0o4777, 4242, 4242, 2
        tar.addfile(info, io.BytesIO(b"x\n"))

    archive = make_archive(tmp_path / "modes.tar.gz", setuid)
    with extracted(str(archive)) as host:
        got = (Path(host.base) / "etc" / "suid-tool").stat()
        assert got.st_mode & 0o7022 == 0, oct(got.st_mode)
        assert (got.st_uid, got.st_gid) == (os.getuid(), os.getgid())
        assert host.read_text("/proc/sys/net/netfilter/nf_conntrack_count") == "10\n"
