"""Feed the sanitized C table scanner generated and mutated conntrack lines (run by
tests/fuzz/test_scanner_sanitized.py in a process with libasan preloaded).

    LD_PRELOAD=$(gcc -print-file-name=libasan.so) python scanner_asan_driver.py \\
        --module /tmp/x/_scan.cpython-311-x86_64-linux-gnu.so --lines 300000 --seed 1

The module built by scripts/build_sanitized_scanner.py is loaded as ``ctguard.table._scan``
before ``ctguard.table.scanner`` is imported, so the scanner's public API
(``Accumulator(...).feed()/bad_line()/tally()``) drives the sanitized code; the driver checks
that it does (the module's file, and the ASan runtime in the process) before feeding.

The lines: entries in /proc/net/nf_conntrack, ``conntrack -L`` and ``-o extended`` form
(tests/table/tablegen.py), the real dump in tests/realworld/conntrack, each mutated (cut at
every byte, huge and negative numbers, long tokens, missing, doubled and swapped fields,
NULs, invalid UTF-8, stray bytes). A sanitizer report aborts the process (the build uses
-fno-sanitize-recover=all); the last stdout line names the seed, so a failure reruns exactly.
``--self-check`` instead makes one heap overflow on purpose, to show a report is caught.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib.machinery
import importlib.util
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
REAL_DUMPS = sorted((REPO / "tests" / "realworld" / "conntrack").iterdir())
sys.path.insert(0, str(REPO / "tests" / "table"))

import tablegen  # noqa: E402  (tests/table, put on the path above)


def load_sanitized(module: Path) -> None:
    """Register ``module`` as ctguard.table._scan, before the scanner imports that name."""
    if "ctguard.table.scanner" in sys.modules:
        raise SystemExit("ctguard.table.scanner was imported before the sanitized module")
    loader = importlib.machinery.ExtensionFileLoader("ctguard.table._scan", str(module))
    spec = importlib.util.spec_from_file_location("ctguard.table._scan", module, loader=loader)
    assert spec is not None
    scan = importlib.util.module_from_spec(spec)
    sys.modules["ctguard.table._scan"] = scan
    loader.exec_module(scan)
    import ctguard.table

    ctguard.table._scan = scan  # type: ignore[attr-defined]


def check_sanitized(module: Path) -> None:
    from ctguard.table import scanner

    used = getattr(scanner, "_scan", None)
    assert scanner.IMPLEMENTATION == "c", scanner.IMPLEMENTATION
    assert used is not None and Path(used.__file__).resolve() == module.resolve(), used
    try:
        ctypes.CDLL(None).__asan_init  # noqa: B018  (present only under ASan)
    except AttributeError:
        raise SystemExit("the ASan runtime is not in this process (LD_PRELOAD libasan)") from None


# -- lines ----------------------------------------------------------------------------------
def base_lines(rng: random.Random, count: int) -> list[bytes]:
    """Well-formed entries in every format, and every line of the real dumps."""
    lines = [tablegen.render(tablegen.random_conn(rng), fmt, rng.randrange(1 << 32)).encode()
             for _ in range(count) for fmt in tablegen.FORMATS]  # fmt: skip
    for dump in REAL_DUMPS:
        lines.extend(dump.read_bytes().splitlines())
    return lines


HUGE = (b"4294967296", b"18446744073709551615", b"18446744073709551616", b"-1", b"-0",
        b"99999999999999999999999999999999999999", b"0x7fffffff", b"2147483648", b"+5",
        b"00000000000000000000000000000000000000000001", b"1e9")  # fmt: skip
JUNK = (b"\x00", b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\r", b"\t", b"\x0b", b"=", b"[", b"]",
        b"  ", b"\x1b[31m", b"src=", b"dport=", b"%", b"\x80")  # fmt: skip


def _cut(rng: random.Random, line: bytes) -> bytes:
    return line[: rng.randrange(len(line) + 1)]


def _huge_number(rng: random.Random, line: bytes) -> bytes:
    digits = [i for i, c in enumerate(line) if 48 <= c <= 57 and (i == 0 or line[i - 1] in b" =")]
    if not digits:
        return line + b" " + rng.choice(HUGE)
    at = rng.choice(digits)
    end = at
    while end < len(line) and 48 <= line[end] <= 57:
        end += 1
    return line[:at] + rng.choice(HUGE) + line[end:]


def _long_token(rng: random.Random, line: bytes) -> bytes:
    size = rng.choice([255, 256, 4096, 40, 64, 65, 1 << 12])
    filler = rng.choice([b"a", b"1", b"f", b":", b".", b"="])
    at = rng.randrange(len(line) + 1)
    return line[:at] + filler * size + line[at:]


def _drop_field(rng: random.Random, line: bytes) -> bytes:
    fields = line.split(b" ")
    if len(fields) > 1:
        del fields[rng.randrange(len(fields))]
    return b" ".join(fields)


def _double_field(rng: random.Random, line: bytes) -> bytes:
    fields = line.split(b" ")
    at = rng.randrange(len(fields))
    fields.insert(at, fields[rng.randrange(len(fields))])
    return b" ".join(fields)


def _swap_fields(rng: random.Random, line: bytes) -> bytes:
    fields = line.split(b" ")
    a, b = rng.randrange(len(fields)), rng.randrange(len(fields))
    fields[a], fields[b] = fields[b], fields[a]
    return b" ".join(fields)


def _junk(rng: random.Random, line: bytes) -> bytes:
    at = rng.randrange(len(line) + 1)
    return line[:at] + rng.choice(JUNK) + line[at + rng.randrange(2) :]


def _flip(rng: random.Random, line: bytes) -> bytes:
    if not line:
        return bytes([rng.randrange(256)])
    at = rng.randrange(len(line))
    return line[:at] + bytes([rng.randrange(256)]) + line[at + 1 :]


def _value_only(rng: random.Random, line: bytes) -> bytes:
    """A key with its value gone, or a key with an empty value: ``dport=`` at the end."""
    at = line.find(b"=", rng.randrange(len(line) + 1))
    return line[: at + 1] if at >= 0 else line + b" sport="


def _random_bytes(rng: random.Random, _line: bytes) -> bytes:
    return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 120))).replace(b"\n", b" ")


MUTATIONS: tuple[Callable[[random.Random, bytes], bytes], ...] = (
    _cut, _huge_number, _long_token, _drop_field, _double_field, _swap_fields, _junk,
    _flip, _value_only, _random_bytes,
)  # fmt: skip


def mutated(rng: random.Random, line: bytes) -> bytes:
    for _ in range(rng.choice((0, 1, 1, 1, 2, 3))):
        line = rng.choice(MUTATIONS)(rng, line)
    return line.replace(b"\n", b" ")


def every_cut(line: bytes) -> list[bytes]:
    """The line cut after each of its bytes (a dump truncated anywhere in it)."""
    return [line[:n] for n in range(len(line) + 1)]


def near_max_line(rng: random.Random, line: bytes) -> bytes:
    from ctguard.table.keys import MAX_LINE

    size = MAX_LINE + rng.randrange(-2, 3) - len(line) - 1
    return line + b" " + b"x" * max(0, size)


# -- feeding --------------------------------------------------------------------------------
V6_LOCAL = frozenset({b"2001:db8::10", b"2001:0db8:0000:0000:0000:0000:0000:0010"})
LOCALS = (None, frozenset(), frozenset({b"10.0.0.1", b"192.168.1.1"}), V6_LOCAL)


def accumulator(rng: random.Random, scanner: object) -> object:
    local = rng.choice(LOCALS)
    ephemeral = rng.choice([None, (32768, 60999), (0, 65535), (1024, 1024), (60999, 32768)])
    make = scanner.Accumulator  # type: ignore[attr-defined]
    return make(rng.random() < 0.7, exact_timeouts=rng.random() < 0.7, local=local,
                ephemeral=ephemeral)  # fmt: skip


def feed(rng: random.Random, acc: object, lines: list[bytes]) -> None:
    """In whole-line chunks of random sizes; the last may lack its newline, as a dump does."""
    at = 0
    while at < len(lines):
        step = rng.choice((1, 2, 7, 100, 1000, len(lines)))
        chunk = b"\n".join(lines[at : at + step]) + b"\n"
        at += step
        if at >= len(lines) and rng.random() < 0.3:
            chunk = chunk[:-1]
        acc.feed(chunk if rng.random() < 0.8 else memoryview(chunk))  # type: ignore[attr-defined]
        if rng.random() < 0.02:
            acc.bad_line(mutated(rng, rng.choice(lines))[:200])  # type: ignore[attr-defined]


def addresses(rng: random.Random, scanner: Any, tally: Any, previous: Any) -> None:
    """The address tables' own C paths (issue 17's high-cardinality code): ranking, merging
    two scans, a parent absorbing a child's records, and records that are not whole."""
    for counts in (tally.sources, tally.destinations):
        counts.top(rng.choice((0, 1, 10, None)))
        if previous is not None and counts.counted:
            counts.merged(previous.sources).top(rng.choice((1, 5)))
    if tally.sources.counted:
        parent = accumulator(rng, scanner)
        parent.absorb(tally.sources, tally.destinations)
        parent.tally().sources.top(3)
    ragged = tally.sources.records[: rng.randrange(len(tally.sources.records) + 1)]
    # a length that is not whole records, or bytes that are not records at all
    with contextlib.suppress(ValueError, TypeError):
        scanner._scan.top_addresses(ragged + os.urandom(rng.randrange(30)), 4)


def run(module: Path, total: int, seed: int) -> int:
    load_sanitized(module)
    check_sanitized(module)
    from ctguard.table import scanner

    rng = random.Random(seed)
    corpus = base_lines(rng, 400)
    fed = 0
    batches = 0
    previous = None
    while fed < total:
        acc = accumulator(rng, scanner)
        kind = rng.random()
        if kind < 0.1:
            lines = every_cut(rng.choice(corpus))
        elif kind < 0.12:
            lines = [near_max_line(rng, rng.choice(corpus)) for _ in range(rng.randrange(1, 4))]
        else:
            lines = [mutated(rng, rng.choice(corpus)) for _ in range(rng.randrange(1, 5000))]
        feed(rng, acc, lines)
        tally = acc.tally()  # type: ignore[attr-defined]
        assert tally.entries + tally.bad <= tally.lines, (tally.entries, tally.bad, tally.lines)
        addresses(rng, scanner, tally, previous)
        previous = tally
        fed += len(lines)
        batches += 1
    return fed


def self_check() -> None:
    """A heap overflow on purpose: memmove past a malloc'd block (ASan intercepts it)."""
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    block = libc.malloc(16)
    ctypes.memmove(block, b"x" * 64, 64)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--module", type=Path, required=True)
    parser.add_argument("--lines", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--self-check", action="store_true")
    args = parser.parse_args()
    print(f"seed={args.seed}", flush=True)
    if args.self_check:
        load_sanitized(args.module)
        check_sanitized(args.module)
        self_check()
        return 0
    started = time.monotonic()
    fed = run(args.module, args.lines, args.seed)
    print(f"lines={fed} seconds={time.monotonic() - started:.1f} seed={args.seed}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
