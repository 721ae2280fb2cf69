"""What `analyze FILE` agrees to read, and a dump that shrinks while it is read.

A device (/dev/zero never ends) is refused with one line; an anonymous pipe named on the
command line (``<(conntrack -L)``) is read like ``-``. A dump truncated under the scan is an
error naming the file: before issue 17 the parallel scan mapped the file and the kernel
killed ctguard with SIGBUS (exit 135, no message); the serial scan returned what it had
read as if it were the table.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import resource
import subprocess
from pathlib import Path

import pytest
from tablegen import dump, to_bytes

from ctguard.cli import main
from ctguard.host import caps
from ctguard.table import reader
from helpers import ctguard_bin, one_error_line

LINE = (
    b"ipv4     2 udp      17 29 src=10.0.0.1 dst=10.0.0.2 sport=1000 dport=53 "
    b"src=10.0.0.2 dst=10.0.0.1 sport=53 dport=1000 mark=0 zone=0 use=2\n"
)
ADDRESS_SPACE = 256 * 1024**2


def _capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def analyze(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ctguard_bin(), "analyze", *args], capture_output=True, text=True, timeout=timeout,
        check=False, preexec_fn=_capped,
    )  # fmt: skip


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null", "/dev/urandom"])
def test_a_device_is_refused_in_one_line(device: str) -> None:
    done = analyze(device, timeout=30)
    one_error_line(done, 3, device, "character device")


def test_a_directory_says_use_root(tmp_path: Path) -> None:
    one_error_line(analyze(str(tmp_path)), 3, "is a directory", "--root")


def test_an_anonymous_pipe_is_read_like_stdin() -> None:
    """``analyze <(conntrack -L)`` names /dev/fd/N, a pipe whose writer is already there
    (a named FIFO is refused: tests/cli/test_bad_arguments.py)."""
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, LINE * 3)
        os.close(write_fd)
        done = subprocess.run(
            [ctguard_bin(), "analyze", f"/dev/fd/{read_fd}", "--format", "json"],
            capture_output=True, text=True, timeout=60, check=False, pass_fds=(read_fd,),
            preexec_fn=_capped,
        )  # fmt: skip
    finally:
        os.close(read_fd)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["entries"] == 3


def sparse(path: Path, size: int, newline_every: int | None) -> Path:
    """A sparse file of ``size`` zero bytes (a newline every ``newline_every`` bytes):
    gigabytes to read, nothing on disk."""
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    try:
        os.pwrite(fd, LINE, 0)
        os.ftruncate(fd, size)
        if newline_every:
            for offset in range(newline_every - 1, size, newline_every):
                os.pwrite(fd, b"\n", offset)
    finally:
        os.close(fd)
    return path


def test_a_line_of_gigabytes_is_one_bad_line_in_bounded_memory(tmp_path: Path) -> None:
    """The parallel split looks for a newline in bounded reads (it used readline(), which
    held a 1 GiB line whole)."""
    dump = sparse(tmp_path / "one-line.dump", 1 << 30, None)
    done = analyze(str(dump), "--format", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["entries"], report["bad_lines"]["count"]) == (1, 1)


class TruncatingAccumulator(reader.Accumulator):
    """Cuts ``path`` to one MiB the first time any scan of it is fed (in whichever
    process: forked helpers inherit it), so the reads after that come up short."""

    path = ""

    def feed(self, data: bytes | memoryview) -> None:
        if os.path.getsize(self.path) > 1 << 20:
            os.truncate(self.path, 1 << 20)
        super().feed(data)


def test_a_dump_truncated_while_scanned_in_parallel_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The file is cut after the first 4 MiB block was read: the parent's next read of its
    own range comes up short whatever the helpers did (they may have finished theirs)."""
    size = 2 * reader.PARALLEL_MIN_BYTES
    dump = sparse(tmp_path / "cut.dump", size, 4 << 20)
    TruncatingAccumulator.path = str(dump)
    monkeypatch.setattr(reader, "Accumulator", TruncatingAccumulator)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # one forked helper, on any machine
    split = reader._boundaries
    ranges: list[list[int]] = []
    monkeypatch.setattr(reader, "_boundaries", lambda *a: ranges.append(split(*a)) or ranges[-1])
    code = main(["analyze", str(dump)])
    assert len(ranges) == 1 and len(ranges[0]) == 3, ranges  # it was the parallel scan
    err = capsys.readouterr().err.strip()
    assert code == 3, err
    assert len(err.splitlines()) == 1, err
    assert "shrank while it was read" in err and str(size) in err and str(dump) in err


def test_a_dump_truncated_while_streamed_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The serial reader (one job) stops at the new end: it must not pass off what it
    read as the table."""
    dump = sparse(tmp_path / "serial.dump", 16 << 20, 1 << 20)
    TruncatingAccumulator.path = str(dump)
    monkeypatch.setattr(reader, "Accumulator", TruncatingAccumulator)
    with pytest.raises(reader.Shrank, match="shrank while it was read"):
        reader.scan_path(str(dump), jobs=1)


@pytest.mark.parametrize("via", ["file", "stdin"])
def test_a_damaged_gzip_dump_is_one_line(tmp_path: Path, via: str) -> None:
    """Damaged deflate data raises zlib.error, neither OSError nor EOFError: it was an
    'internal error'."""
    packed = bytearray(gzip.compress(LINE * 2000))
    packed[20:40] = bytes(b ^ 0xFF for b in packed[20:40])
    dump = tmp_path / "bad.gz"
    dump.write_bytes(bytes(packed))
    if via == "file":
        done = analyze(str(dump))
    else:
        with dump.open("rb") as stdin:
            done = subprocess.run(
                [ctguard_bin(), "analyze", "-"], stdin=stdin, capture_output=True, text=True,
                timeout=60, check=False, preexec_fn=_capped,
            )  # fmt: skip
    one_error_line(done, 3, "damaged gzip data")


class FailingInHelper(reader.Accumulator):
    """Runs out of memory in the forked helper only (not in the process that forked it)."""

    parent = 0

    def feed(self, data: bytes | memoryview) -> None:
        if os.getpid() != self.parent:
            raise MemoryError
        super().feed(data)


def test_a_helper_that_fails_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """It said only 'a helper process scanning X failed', its reason lost in os._exit."""
    dump = sparse(tmp_path / "big.dump", 2 * reader.PARALLEL_MIN_BYTES, 4 << 20)
    FailingInHelper.parent = os.getpid()
    monkeypatch.setattr(reader, "Accumulator", FailingInHelper)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    code = main(["analyze", str(dump)])
    err = capsys.readouterr().err.strip()
    assert code == 3, err
    assert err.splitlines() == [
        f"ctguard: error: {dump}: a helper process scanning {dump} failed (MemoryError)"
    ]


def gzip_bomb_and_dump(tmp_path: Path) -> tuple[Path, Path]:
    """A gzip of 8 MiB of newlines (over 1000:1) and one of a varied table (about 8:1)."""
    bomb = tmp_path / "newlines.gz"
    bomb.write_bytes(gzip.compress(b"\n" * (8 << 20), 9))
    table = tmp_path / "table.gz"
    table.write_bytes(gzip.compress(to_bytes(dump(17, 20_000, bad_rate=0, blank_rate=0)), 9))
    return bomb, table


@pytest.mark.parametrize("via", ["file", "stdin"])
def test_a_gzip_bomb_is_refused_as_it_unpacks(
    tmp_path: Path, via: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """1 GB of newlines packs into 1 MB and took analyze 6 s per MB of it. The caps of
    compressed input (host/caps: 100:1 past a 64 MiB floor) are made small here, so a
    few MiB show both sides: the bomb is refused, a real table's 8:1 is read whole."""
    monkeypatch.setattr(caps, "RATIO_FLOOR", 1 << 20)
    bomb, table = gzip_bomb_and_dump(tmp_path)
    assert table.stat().st_size * 20 > len(gzip.decompress(table.read_bytes())) > 1 << 20

    def run(path: Path) -> int:
        if via == "file":
            return main(["analyze", str(path), "--format", "json"])
        with path.open("rb") as stdin:
            monkeypatch.setattr("sys.stdin", io.TextIOWrapper(stdin))
            return main(["analyze", "-", "--format", "json"])

    assert run(table) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["entries"] == 20_000
    assert run(bomb) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "gzip data unpacks to more than" in err, err
