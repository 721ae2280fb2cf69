"""Feed a scanner from a stream, a file (in parallel), gzip, or stdin, in bounded chunks.

Memory stays bounded: a chunk of at most CHUNK bytes plus the partial line carried to
the next one. A line longer than MAX_LINE is one bad line, however the reads fall: the
scanner rejects it inside a chunk, and the reader skips one that outgrows its buffer.
"""

from __future__ import annotations

import gzip
import os
import pickle
import queue
import signal
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from stat import S_ISREG
from typing import BinaryIO, cast

from ctguard.errors import CtguardError
from ctguard.host import caps
from ctguard.host.root import open_input
from ctguard.table import keys
from ctguard.table.address_counts import AddressCounts
from ctguard.table.scanner import Accumulator
from ctguard.table.tally import Tally

CHUNK = 4 << 20
MAX_LINE = keys.MAX_LINE
PARALLEL_MIN_BYTES = 32 << 20  # below this a second process costs more than it saves
GZIP_MAGIC = b"\x1f\x8b"
# What reading a dump raises besides our own errors: the file's own (OSError), a gzip cut
# short (EOFError), a gzip whose data is damaged (zlib.error, which is neither)
DAMAGED_DUMP = (OSError, EOFError, zlib.error)


def dump_damage(exc: BaseException) -> str:
    """One of DAMAGED_DUMP in words."""
    if isinstance(exc, zlib.error):
        return f"damaged gzip data ({exc})"
    if isinstance(exc, EOFError):
        return f"the gzip data ends early ({exc})"
    return str(getattr(exc, "strerror", None) or exc)


@dataclass(frozen=True)
class TooLong:
    """A line longer than MAX_LINE that the reader dropped; ``start`` is its beginning."""

    start: bytes


def _chunks(stream: BinaryIO) -> Iterator[bytes | TooLong]:
    """Whole-line chunks of ``stream``; the last one may lack its newline."""
    rest = b""
    skipping = False  # inside a line longer than MAX_LINE, already counted
    while block := stream.read(CHUNK):
        if skipping:
            at = block.find(b"\n")
            if at < 0:
                continue
            block, skipping = block[at + 1 :], False
        data = rest + block if rest else block
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            if len(data) > MAX_LINE:
                yield TooLong(data[:200])
                rest, skipping = b"", True
            else:
                rest = data
            continue
        rest = data[cut:]
        yield data[:cut] if rest else data
    if rest:
        yield rest


def scan_stream(
    stream: BinaryIO,
    by_sport: bool = True,
    prefetch: bool = False,
    exact_timeouts: bool = True,
    local: frozenset[bytes] | None = None,
    ephemeral: tuple[int, int] | None = None,
    by_address: bool = True,
) -> Tally:
    """Scan every line of ``stream``; with ``prefetch`` a thread reads ahead, so a slow
    producer (the kernel writing /proc/net/nf_conntrack, a conntrack -L pipe) overlaps
    with scanning. ``local``, ``ephemeral``, ``by_address``: scanner.Accumulator."""
    accumulator = Accumulator(
        by_sport, exact_timeouts=exact_timeouts, max_line=MAX_LINE, local=local,
        ephemeral=ephemeral, by_address=by_address,
    )  # fmt: skip
    for data in _prefetched(stream) if prefetch else _chunks(stream):
        if isinstance(data, TooLong):
            accumulator.bad_line(data.start)
        else:
            accumulator.feed(data)
    return accumulator.tally()


def _prefetched(stream: BinaryIO) -> Iterator[bytes | TooLong]:
    chunks: queue.Queue[bytes | TooLong | BaseException | None] = queue.Queue(maxsize=4)

    def produce() -> None:
        try:
            for data in _chunks(stream):
                chunks.put(data)
            chunks.put(None)
        except BaseException as exc:  # handed to the consumer, raised there
            chunks.put(exc)

    worker = threading.Thread(target=produce, name="ctguard-read", daemon=True)
    worker.start()
    while (item := chunks.get()) is not None:
        if isinstance(item, BaseException):
            raise item
        yield item
    worker.join()


class Inflated(CtguardError):
    """A gzipped dump that unpacks past what a table can be (caps: MAX_TABLE_BYTES, or
    MAX_RATIO times what was read of it): a gzip bomb, or not a table dump."""


class _Counted:
    """The bytes read through it, counted (GzipFile reads its compressed input here)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.read_bytes = raw, 0
        self.name = getattr(raw, "name", "the dump")
        self.mode = "rb"

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.read_bytes += len(data)
        return data


class _BoundedGzip(gzip.GzipFile):
    """Refuses, as it reads, to unpack more than a table dump can be: 1 GB of newlines
    packs into 1 MB and took analyze 6 s per MB."""

    def __init__(self, packed: _Counted) -> None:
        super().__init__(fileobj=cast(BinaryIO, packed), mode="rb")
        self._packed, self._unpacked = packed, 0

    def _count(self, data: bytes) -> bytes:
        self._unpacked += len(data)
        limit = min(caps.MAX_TABLE_BYTES, caps.max_unpacked(self._packed.read_bytes))
        if self._unpacked > limit:
            raise Inflated(
                f"{self._packed.name}: the gzip data unpacks to more than {limit} bytes"
                f" from {self._packed.read_bytes} (a table dump packs about 10:1 and is at"
                f" most {caps.MAX_TABLE_BYTES} bytes): not read further"
            )
        return data

    def read(self, size: int | None = -1) -> bytes:
        return self._count(super().read(-1 if size is None else size))

    def read1(self, size: int = -1) -> bytes:
        return self._count(super().read1(size))


def gunzipped(raw: BinaryIO) -> BinaryIO:
    """``raw``, unpacked when it starts with the gzip magic, within the caps of compressed
    input (Inflated past them). It peeks and never reopens, so a pipe (stdin,
    ``<(conntrack -L)``) loses nothing."""
    peek = getattr(raw, "peek", None)
    if peek is not None and peek(2)[:2] == GZIP_MAGIC:
        return cast(BinaryIO, _BoundedGzip(_Counted(raw)))
    return raw


def open_dump(path: str) -> BinaryIO:
    """A file or a pipe (never a device), transparently gunzipped when it starts with the
    gzip magic."""
    return gunzipped(open_input(path))


class Shrank(CtguardError):
    """The dump got shorter while it was read (rotated, truncated, rewritten): what was
    read is not the table it held."""

    def __init__(self, name: str, size: int, now: int) -> None:
        super().__init__(
            f"{name} shrank while it was read (from {size} to {now} bytes): "
            "scan a copy that is not being written"
        )


def _check_size(fd: int, size: int, name: str) -> None:
    now = os.fstat(fd).st_size
    if now < size:
        raise Shrank(name, size, now)


def scan_path(
    path: str,
    by_sport: bool = True,
    jobs: int | None = None,
    exact_timeouts: bool = True,
    local: frozenset[bytes] | None = None,
    ephemeral: tuple[int, int] | None = None,
    by_address: bool = True,
) -> Tally:
    """Scan a dump file (or a pipe); a large plain regular file is split across ``jobs``
    processes. A regular file that shrinks while it is read is an error (Shrank)."""
    jobs = jobs or min(os.cpu_count() or 1, 8)
    with open_input(path) as raw:
        info = os.fstat(raw.fileno())
        stream = gunzipped(raw)
        if (
            stream is raw
            and jobs > 1
            and S_ISREG(info.st_mode)
            and info.st_size >= PARALLEL_MIN_BYTES
        ):
            return _scan_parallel(
                raw, info.st_size, by_sport, jobs, exact_timeouts, local, ephemeral, by_address
            )
        tally = scan_stream(
            stream, by_sport, exact_timeouts=exact_timeouts, local=local, ephemeral=ephemeral,
            by_address=by_address,
        )  # fmt: skip
        if S_ISREG(info.st_mode):
            _check_size(raw.fileno(), info.st_size, path)
        return tally


def _boundaries(raw: BinaryIO, size: int, jobs: int) -> list[int]:
    """Where each range starts: just after the first newline past each ``size/jobs``-th
    byte (looked for in bounded reads: a line may be gigabytes of zeros)."""
    cuts = [0]
    for i in range(1, jobs):
        cuts.append(_after_newline(raw.fileno(), max(size * i // jobs, cuts[-1]), size))
    cuts.append(size)
    return cuts


def _after_newline(fd: int, position: int, end: int) -> int:
    """Just after the next newline at or past ``position`` (``end`` when there is none),
    read CHUNK by CHUNK."""
    while position < end:
        block = os.pread(fd, min(CHUNK, end - position), position)
        if not block:
            return end
        at = block.find(b"\n")
        if at >= 0:
            return position + at + 1
        position += len(block)
    return end


def _fill(fd: int, view: memoryview, offset: int, name: str, size: int) -> None:
    """Read exactly ``len(view)`` bytes at ``offset``; Shrank when the file ends first."""
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset + done)
        if got == 0:
            raise Shrank(name, size, os.fstat(fd).st_size)
        done += got


def _scan_range(
    accumulator: Accumulator, fd: int, start: int, end: int, name: str, size: int
) -> None:
    """Scan bytes ``start`` to ``end`` of ``fd`` (whole lines) in CHUNK-sized preads into
    one buffer: memory stays one CHUNK, and a file that shrinks under the read is Shrank,
    not the SIGBUS a memory map gets. A partial last line is read again with the next."""
    buffer = bytearray(min(CHUNK, max(end - start, 0)))
    with memoryview(buffer) as whole:
        position = start
        while position < end:
            want = min(CHUNK, end - position)
            _fill(fd, whole[:want], position, name, size or end)
            cut = want
            if position + want < end:
                cut = buffer.rfind(b"\n", 0, want) + 1
                if cut == 0:  # a line longer than CHUNK: one bad line, resume after it
                    accumulator.bad_line(bytes(whole[:200]))
                    position = _after_newline(fd, position + want, end)
                    continue
            accumulator.feed(whole[:cut])
            position += cut


def _scan_parallel(
    raw: BinaryIO,
    size: int,
    by_sport: bool,
    jobs: int,
    exact: bool,
    local: frozenset[bytes] | None,
    ephemeral: tuple[int, int] | None = None,
    by_address: bool = True,
) -> Tally:
    """The parent scans the first range; each other range runs in a forked child that
    sends its Tally back through a pipe. Each reads its range with pread into one buffer.
    A child's addresses follow its Tally as raw records, which the parent adds to its own
    tables a block at a time (Accumulator.absorb): exact counts, no Python object per
    address, and never a second copy of a table."""
    cuts = _boundaries(raw, size, jobs)
    name = getattr(raw, "name", "the dump")
    fd = raw.fileno()

    def accumulator() -> Accumulator:
        return Accumulator(by_sport, exact_timeouts=exact, max_line=MAX_LINE, local=local,
                           ephemeral=ephemeral, by_address=by_address)  # fmt: skip

    children: list[tuple[int, int]] = []
    for index in range(1, len(cuts) - 1):
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: always leaves through os._exit
            status = 1
            try:
                os.close(read_fd)
                with os.fdopen(write_fd, "wb") as out:
                    try:
                        mine = accumulator()
                        _scan_range(mine, fd, cuts[index], cuts[index + 1], name, size)
                    except BaseException as exc:  # its reason, in words, for the parent
                        pickle.dump(str(exc) or type(exc).__name__, out)
                        raise
                    _send(mine.tally(), out)
                status = 0
            finally:
                os._exit(status)
        os.close(write_fd)
        children.append((pid, read_fd))
    parent = accumulator()
    try:
        _scan_range(parent, fd, cuts[0], cuts[1], name, size)
    except BaseException:
        _reap(children, None)  # no child is left running or unwaited
        raise
    parts, failure = _reap(children, parent)
    _check_size(fd, size, name)  # a helper that failed on a short read says so here
    if failure is not None:
        raise OSError(f"a helper process scanning {name} failed ({failure})")
    total = parent.tally()
    for part in parts:  # in line order: the first bad line's number stays right
        total.add(part)
    return total


def _reap(
    children: list[tuple[int, int]], into: Accumulator | None
) -> tuple[list[Tally], str | None]:
    """Each child's Tally, its addresses absorbed ``into`` the parent's (None: only wait
    for them), in line order; and how the first that failed ended."""
    parts: list[Tally] = []
    failure = None
    for pid, read_fd in children:
        if into is None:
            os.close(read_fd)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            continue
        received = _receive(read_fd, into)
        _, status = os.waitpid(pid, 0)
        if status != 0 or not isinstance(received, Tally):
            code = os.waitstatus_to_exitcode(status)
            how = f"killed by signal {-code}" if code < 0 else f"exit {code}"
            failure = failure or (received if isinstance(received, str) else how)
            continue
        parts.append(received)
    return parts, failure


_LENGTHS = struct.Struct("=QQ")  # bytes of source records, of destination records
_RECORDS_BLOCK = keys.ADDRESS_RECORD * 43690  # about 1 MiB of address records at a time


def _send(part: Tally, out: BinaryIO) -> None:
    """A child's Tally without its addresses, then their records, raw."""
    sources, destinations = part.sources, part.destinations
    part.sources = AddressCounts(counted=sources.counted)
    part.destinations = AddressCounts(counted=destinations.counted)
    pickle.dump(part, out, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_LENGTHS.pack(len(sources.records), len(destinations.records)))
    out.write(sources.records)
    out.write(destinations.records)


def _receive(read_fd: int, into: Accumulator) -> Tally | str | None:
    """A child's Tally (_send); its address records go into ``into`` as they arrive.
    A str: why the child failed; None: it died before sending it all (its exit status
    says why)."""
    with os.fdopen(read_fd, "rb") as src:
        try:
            part = cast(Tally | str, pickle.load(src))  # noqa: S301 - our own child's bytes
        except (EOFError, pickle.UnpicklingError):
            return None
        if isinstance(part, str):
            return part
        head = src.read(_LENGTHS.size)
        if len(head) != _LENGTHS.size:
            return None
        none = AddressCounts()
        for which, length in enumerate(_LENGTHS.unpack(head)):
            while length:
                block = src.read(min(length, _RECORDS_BLOCK))
                if not block or len(block) % keys.ADDRESS_RECORD:
                    return None
                records = AddressCounts(block)
                sources, destinations = (records, none) if which == 0 else (none, records)
                into.absorb(sources, destinations)
                length -= len(block)
    return part
