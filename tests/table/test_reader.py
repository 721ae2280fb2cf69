"""The readers: chunked streams (with and without a prefetch thread), gzip, the forked
parallel scan of a plain file, over-long lines and empty input, each compared with one
scan of the whole bytes. CHUNK, MAX_LINE and PARALLEL_MIN_BYTES are made small so chunk
and range boundaries fall in the middle of lines."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest
from tablegen import dump, to_bytes
from tablescan import FIELDS, KINDS, c_built, make_scan

from ctguard.table import reader
from ctguard.table import scanner as scanner_module
from ctguard.table.tally import Tally


def use(kind: str, monkeypatch: pytest.MonkeyPatch, chunk: int, max_line: int = 2048) -> None:
    """Make every reader use the ``kind`` scanner, with small reads."""
    if kind == "c" and not c_built():
        pytest.skip("C scanner not built yet")
    if kind == "python":
        monkeypatch.setattr(scanner_module, "_scan", None)
    monkeypatch.setattr(reader, "CHUNK", chunk)
    monkeypatch.setattr(reader, "MAX_LINE", max_line)
    monkeypatch.setattr(reader, "PARALLEL_MIN_BYTES", 1)


def whole(kind: str, data: bytes, by_sport: bool = True) -> Tally:
    return make_scan(kind)(data, by_sport)


LINES = dump(21, 300, bad_rate=0.03, blank_rate=0.02)
DATA = to_bytes(LINES)
LONGEST = max(len(line.text) for line in LINES) + 1
assert LONGEST < 1024 and sum(line.bad for line in LINES) >= 3


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunk", [1, 7, 64, 333, 4096, 1 << 20])
@pytest.mark.parametrize("prefetch", [False, True])
def test_stream_in_chunks_equals_one_scan(monkeypatch, kind: str, chunk: int, prefetch: bool):
    use(kind, monkeypatch, chunk)
    tally = reader.scan_stream(io.BytesIO(DATA), prefetch=prefetch)
    assert tally == whole(kind, DATA)
    assert tally.lines == len(LINES)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunk", [5, 64, 4096])
def test_stream_last_line_without_newline(monkeypatch, kind: str, chunk: int) -> None:
    use(kind, monkeypatch, chunk)
    data = to_bytes(LINES[:40], final_newline=False)
    assert not data.endswith(b"\n")
    tally = reader.scan_stream(io.BytesIO(data))
    assert tally == whole(kind, data)
    assert tally.lines == 40
    cut = reader.scan_stream(io.BytesIO(data[:-3]))  # the last line, cut short, still counts
    assert cut.lines == 40


@pytest.mark.parametrize("kind", KINDS)
def test_stream_without_sports(monkeypatch, kind: str) -> None:
    use(kind, monkeypatch, 100)
    tally = reader.scan_stream(io.BytesIO(DATA), by_sport=False)
    assert tally == whole(kind, DATA, by_sport=False)
    assert tally.sports == {}


class FailingStream(io.RawIOBase):
    def __init__(self) -> None:
        self.calls = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.calls += 1
        if self.calls > 2:
            raise OSError("the producer went away")
        return DATA[:size]


@pytest.mark.parametrize("prefetch", [False, True])
def test_read_error_reaches_the_caller(monkeypatch, prefetch: bool) -> None:
    use("python", monkeypatch, 100)
    with pytest.raises(OSError, match="producer went away"):
        reader.scan_stream(FailingStream(), prefetch=prefetch)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunk", [64, 4096])
def test_gzip_file(tmp_path: Path, monkeypatch, kind: str, chunk: int) -> None:
    use(kind, monkeypatch, chunk)
    path = tmp_path / "dump.gz"
    path.write_bytes(gzip.compress(DATA))
    with reader.open_dump(str(path)) as stream:
        assert stream.read() == DATA
    expected = whole(kind, DATA)
    assert reader.scan_path(str(path), jobs=1) == expected
    assert reader.scan_path(str(path), jobs=3) == expected  # gzip is never split
    plain = tmp_path / "dump"
    plain.write_bytes(DATA)
    with reader.open_dump(str(plain)) as stream:
        assert stream.read() == DATA


def parallel_data(final_newline: bool) -> tuple[bytes, int]:
    """Clean lines, then lines with bad ones: every bad line is past the middle."""
    clean = dump(31, 200, bad_rate=0, blank_rate=0)
    mixed = dump(32, 200, bad_rate=0.05, blank_rate=0.02)
    lines = clean + mixed
    first_bad = next(number for number, line in enumerate(lines, 1) if line.bad)
    return to_bytes(lines, final_newline), first_bad


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("jobs", [2, 3])
@pytest.mark.parametrize("final_newline", [True, False])
def test_parallel_equals_sequential(
    tmp_path: Path, monkeypatch, kind: str, jobs: int, final_newline: bool
) -> None:
    use(kind, monkeypatch, 1024, 1024)  # a range is read in 1 KiB pieces: cut mid-line
    data, first_bad = parallel_data(final_newline)
    path = tmp_path / "dump"
    path.write_bytes(data)
    calls: list[int] = []
    split = reader._scan_parallel

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return split(*args, **kwargs)

    monkeypatch.setattr(reader, "_scan_parallel", spy)
    sequential = reader.scan_path(str(path), jobs=1)
    assert calls == []
    parallel = reader.scan_path(str(path), jobs=jobs)
    assert calls == [1]
    for name in FIELDS:
        assert getattr(parallel, name) == getattr(sequential, name), name
    assert sequential == whole(kind, data)
    assert parallel.first_bad == first_bad > 200
    assert parallel.lines == 400


@pytest.mark.parametrize("kind", KINDS)
def test_parallel_more_jobs_than_lines(tmp_path: Path, monkeypatch, kind: str) -> None:
    use(kind, monkeypatch, 1024, 1024)
    data = to_bytes(LINES[:2], final_newline=False)
    path = tmp_path / "dump"
    path.write_bytes(data)
    assert reader.scan_path(str(path), jobs=3) == whole(kind, data)


LONG = b"a-line-that-never-ends " * 250  # 5750 bytes, no '=': never an entry


def with_long_line(where: str) -> tuple[bytes, bytes, int]:
    """(data with LONG at ``where``, the same with LONG as one short bad line, its number)."""
    head = to_bytes(LINES[:100])
    tail = to_bytes(LINES[100:150])
    if where == "first":
        return LONG + b"\n" + head + tail, b"short\n" + head + tail, 1
    if where == "middle":
        return head + LONG + b"\n" + tail, head + b"short\n" + tail, 101
    return head + tail + LONG, head + tail + b"short", 151  # last, without newline


def check_long(tally: Tally, stand_in: Tally, number: int) -> None:
    assert tally.bad == stand_in.bad and tally.lines == stand_in.lines
    assert tally.entries == stand_in.entries  # the lines after it are read
    for name in (
        "shapes",
        "timeouts",
        "sports",
        "markzones",
        "nat_ports",
        "sources",
        "destinations",
    ):
        assert getattr(tally, name) == getattr(stand_in, name), name
    if tally.first_bad == number:  # what is shown is the start of the long line
        assert tally.first_bad_text.lstrip(b"=").startswith(LONG[:100])
    assert stand_in.first_bad is not None
    assert tally.first_bad == min(number, stand_in.first_bad)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunk", [64, 700, 4096])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("prefetch", [False, True])
def test_over_long_line_is_one_bad_line(
    monkeypatch, kind: str, chunk: int, where: str, prefetch: bool
) -> None:
    use(kind, monkeypatch, chunk, max_line=1024)
    data, stand_in, number = with_long_line(where)
    tally = reader.scan_stream(io.BytesIO(data), prefetch=prefetch)
    check_long(tally, whole(kind, stand_in), number)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("jobs", [1, 2, 3])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_over_long_line_in_a_file(
    tmp_path: Path, monkeypatch, kind: str, where: str, jobs: int
) -> None:
    use(kind, monkeypatch, 1024, 1024)
    data, stand_in, number = with_long_line(where)
    path = tmp_path / "dump"
    path.write_bytes(data)
    check_long(reader.scan_path(str(path), jobs=jobs), whole(kind, stand_in), number)


@pytest.mark.parametrize("kind", KINDS)
def test_line_longer_than_max_line_is_bad_however_it_is_read(
    tmp_path: Path, monkeypatch, kind: str
) -> None:
    long_entry = (
        b"ipv4     2 udp      17 29 src=10.0.0.1 dst=10.0.0.2 sport=1 dport=53 src=10.0.0.2 "
        b"dst=10.0.0.1 sport=53 dport=1 mark=0 secctx=" + b"s" * 700 + b" zone=0 use=2\n"
    )
    data = to_bytes(LINES[:5]) + long_entry + to_bytes(LINES[5:10])
    results = []
    for chunk in (64, 4096):
        use(kind, monkeypatch, chunk, max_line=512)
        results.append(reader.scan_stream(io.BytesIO(data)))
    path = tmp_path / "dump"
    path.write_bytes(data)
    results.append(reader.scan_path(str(path), jobs=2))
    short = whole(kind, to_bytes(LINES[:5]) + b"bad\n" + to_bytes(LINES[5:10]))
    for tally in results:
        assert (tally.lines, tally.entries, tally.bad) == (short.lines, short.entries, short.bad)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("jobs", [1, 2])
def test_empty_file(tmp_path: Path, monkeypatch, kind: str, jobs: int) -> None:
    use(kind, monkeypatch, 64)
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert reader.scan_path(str(path), jobs=jobs) == Tally()
    assert reader.scan_stream(io.BytesIO(b"")) == Tally()
    assert reader.scan_stream(io.BytesIO(b""), prefetch=True) == Tally()
    gz = tmp_path / "empty.gz"
    gz.write_bytes(gzip.compress(b""))
    assert reader.scan_path(str(gz), jobs=jobs) == Tally()


@pytest.mark.parametrize("kind", KINDS)
def test_only_newlines(tmp_path: Path, monkeypatch, kind: str) -> None:
    use(kind, monkeypatch, 3)
    assert reader.scan_stream(io.BytesIO(b"\n" * 10)) == Tally(lines=10)
