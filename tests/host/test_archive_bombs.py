"""Archive bombs are refused at the first limit, in bounded memory, before the data is read.

Each bomb runs through the CLI in a child whose address space is capped (RLIMIT_AS): before
issue 17 a pax header claiming 1.5 GB was read whole (1.6 GB RSS), so the cap fails the old
behaviour with a MemoryError instead of the one-line refusal. Sizes here are small (the
headers claim, the data is not there); bench/archive_bombs.py builds them at full size.
"""

from __future__ import annotations

import bz2
import io
import lzma
import os
import resource
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from archive_bombs import claiming_header, header, many_members, zeros_member
from ctguard.errors import UnsafeArchiveError
from ctguard.host.archive import MAX_MEMBERS
from ctguard.host.caps import RATIO_FLOOR
from ctguard.host.unpacked import Unpacked
from helpers import assert_one_line_error, ctguard_bin
from host.test_archive_safety import GOOD_FILES

ADDRESS_SPACE = 256 * 1024**2  # the CLI needs about 40 MB; a 1.5 GB header does not fit


def _capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def run_capped(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ctguard_bin(), *args], capture_output=True, text=True, timeout=60, check=False,
        preexec_fn=_capped, env=env,
    )  # fmt: skip


@pytest.mark.parametrize(
    "kind",
    [tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK],
    ids=["pax-x", "pax-g", "gnu-long-name", "gnu-long-link"],
)
def test_a_header_claiming_gigabytes_is_refused_unread(tmp_path: Path, kind: bytes) -> None:
    """Only 64 KiB of the claimed 1.5 GB follow: had ctguard tried to read the header, it
    would have said 'damaged' (or run out of memory); it refuses on the claim."""
    bomb = claiming_header(tmp_path / "bomb.tar.gz", kind, 1_500_000_000, 64 * 1024)
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    done = run_capped("status", "--root", str(bomb), env={**os.environ, "TMPDIR": str(scratch)})
    assert_one_line_error(done, "refusing the whole archive", "claims 1500000256 bytes")
    assert list(scratch.iterdir()) == []


def test_a_real_long_name_is_read(tmp_path: Path) -> None:
    """The limit is on what a header claims, not on long names as such: a 218-byte name
    (a GNU 'L' header) is read as tarfile reads it."""
    archive = tmp_path / "long.tar.gz"
    with tarfile.open(archive, "w:gz", format=tarfile.GNU_FORMAT) as tar:
        for name, data in GOOD_FILES.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("etc/sysctl.d/" + "n" * 200 + ".conf")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"#\n"))
    done = run_capped("status", "--root", str(archive), "--json", "--interval", "0")
    assert done.returncode == 0, done.stderr


def test_too_many_members_is_refused_at_the_first_one_over(tmp_path: Path) -> None:
    bomb = many_members(tmp_path / "many.tar.gz", MAX_MEMBERS + 1)
    done = run_capped("status", "--root", str(bomb))
    assert_one_line_error(done, "refusing the whole archive", f"more than {MAX_MEMBERS} members")


def test_a_member_count_bomb_stops_at_the_limit(tmp_path: Path) -> None:
    """Listing stops at MAX_MEMBERS + 1: 10x more members are never read. A truncated
    tail after the limit proves it (reading on would end in 'damaged')."""
    bomb = many_members(tmp_path / "many.tar.gz", 10 * MAX_MEMBERS)
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(bomb.read_bytes()[: bomb.stat().st_size * 3 // 4])
    done = run_capped("status", "--root", str(cut))
    assert_one_line_error(done, f"more than {MAX_MEMBERS} members")


def test_a_compression_bomb_is_refused_as_it_unpacks(tmp_path: Path) -> None:
    """A table dump of zeros packs ~1000:1; it is refused once the unpacked bytes pass
    100 x the archive (or the floor), not after unpacking it all."""
    size = RATIO_FLOOR + 16 * 1024**2
    bomb = zeros_member(tmp_path / "zeros.tar.gz", "proc/net/nf_conntrack", size)
    assert bomb.stat().st_size * 100 < RATIO_FLOOR
    done = run_capped("status", "--root", str(bomb))
    assert_one_line_error(done, "refusing the whole archive", f"unpacks to more than {RATIO_FLOOR}")


@pytest.mark.parametrize(
    ("suffix", "pack"),
    [("tar", lambda b: b), ("tar.bz2", bz2.compress), ("tar.xz", lzma.compress)],
)
def test_every_compression_tarfile_reads_is_read(
    tmp_path: Path, suffix: str, pack: Callable[[bytes], bytes]
) -> None:
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w") as tar:
        for name, data in GOOD_FILES.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    archive = tmp_path / f"snap.{suffix}"
    archive.write_bytes(pack(plain.getvalue()))
    done = run_capped("status", "--root", str(archive), "--json", "--interval", "0")
    assert done.returncode == 0, done.stderr
    assert '"count": 10' in done.stdout


def test_a_bzip2_header_bomb_is_refused_too(tmp_path: Path) -> None:
    raw = header("././@PaxHeader", tarfile.XHDTYPE, 1_500_000_000) + bytes(8192)
    bomb = tmp_path / "bomb.tar.bz2"
    bomb.write_bytes(bz2.compress(raw))
    assert_one_line_error(run_capped("status", "--root", str(bomb)), "claims 1500000256 bytes")


def test_a_sparse_member_is_refused(tmp_path: Path) -> None:
    raw = header("proc/meminfo", tarfile.GNUTYPE_SPARSE, 0) + bytes(1024)
    bomb = tmp_path / "sparse.tar"
    bomb.write_bytes(raw)
    assert_one_line_error(run_capped("status", "--root", str(bomb)), "sparse")


def test_a_negative_size_is_refused(tmp_path: Path) -> None:
    """A negative base-256 size would send tarfile back over what it already read."""
    block = bytearray(header("proc/meminfo", tarfile.REGTYPE, 0))
    block[124:136] = b"\xff" * 12  # size -1 in base-256
    block[148:156] = b"        "
    block[148:156] = b"%06o\0 " % sum(block)
    bomb = tmp_path / "backwards.tar"
    bomb.write_bytes(bytes(block) + bytes(1024))
    done = run_capped("status", "--root", str(bomb))
    assert_one_line_error(done, str(bomb), "negative size")


def test_the_stream_counts_what_it_unpacks() -> None:
    """Skipped and read bytes both count toward the unpacked limit; the read budget
    counts reads only (headers, while listing)."""
    stream = Unpacked(io.BytesIO(bytes(10_000)), "x.tar", max_read=512, max_unpacked=4096,
                      read_budget=1024)  # fmt: skip
    assert stream.read(512) == bytes(512)
    assert stream.seek(3000) == 3000
    with pytest.raises(OSError, match="backwards"):
        stream.seek(10)
    with pytest.raises(UnsafeArchiveError, match="claims 513 bytes"):
        stream.read(513)
    assert stream.read(512) == bytes(512)
    with pytest.raises(UnsafeArchiveError, match="headers take more than 1024"):
        stream.read(1)
    again = Unpacked(io.BytesIO(bytes(10_000)), "x.tar", max_read=512, max_unpacked=4096)
    with pytest.raises(UnsafeArchiveError, match="unpacks to more than 4096"):
        again.seek(5000)
