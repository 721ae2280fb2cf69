"""Every parser, fed any text, returns its record or raises ParseError: nothing else.

Files in a snapshot come from someone else's machine, so a parser must never crash with
an exception the CLI does not turn into one line for the operator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctguard.errors import ParseError
from ctguard.sources.doctor_document import DoctorDocument, parse_doctor_document
from ctguard.sources.kernel import KernelVersion, parse_kernel_release
from ctguard.sources.manifest import ManifestInfo, parse_manifest
from ctguard.sources.meminfo import Meminfo, parse_meminfo
from ctguard.sources.modules import parse_proc_modules
from ctguard.sources.stats import ConntrackStats, parse_conntrack_s, parse_stat_file
from ctguard.sources.sysctl_runtime import parse_sysctl_int

PARSERS: list[tuple[Callable[[str], Any], type]] = [
    (parse_stat_file, ConntrackStats),
    (parse_conntrack_s, ConntrackStats),
    (parse_meminfo, Meminfo),
    (parse_proc_modules, dict),
    (parse_kernel_release, KernelVersion),
    (parse_sysctl_int, int),
    (parse_manifest, ManifestInfo),
    (parse_doctor_document, DoctorDocument),
]
IDS = [parser.__name__ for parser, _ in PARSERS]

# Near misses reach deeper than random text: real words, hex, separators, line ends.
_WORDS = st.sampled_from(
    [
        "entries", "clashres", "found", "drop", "early_drop", "icmp_error", "searched",
        "cpu=0", "cpu=1", "found=3", "drop=x", "=1", "entries=13", "chain_toolong=2",
        "00000021", "0000002a", "ffffffff", "-1", "0x10", "1_0", "MemTotal:", "MemAvailable:",
        "kB", "12", "0", "nf_conntrack", "172032", "5", "-", "nf_nat,xt_conntrack,", "Live",
        "0xffffffffc0a2e000", "5.15.0-91-generic", "2.6.32", "6.1", "{", "}", "[", "]",
        '"hostname"', ":", ",", "null", '"x"', "\u00e9", "\u0663",
    ]
)  # fmt: skip
_SEPARATORS = st.sampled_from([" ", "  ", "\t", "\n", "\r\n", "\x0b", "\x1c", "\u2028", ""])
NEAR_MISS = st.lists(st.tuples(_WORDS, _SEPARATORS), max_size=40).map(
    lambda pairs: "".join(word + sep for word, sep in pairs)
)
DECODED_BYTES = st.binary(max_size=400).map(lambda b: b.decode("utf-8", errors="replace"))

_PROPERTY = settings(max_examples=300, deadline=None)
# Drawing per-CPU tables is slower than parsing them; exact 64-CPU sums are in test_stats.
_ROUND_TRIP = settings(max_examples=100, deadline=None)


def _record_or_parse_error(parser: Callable[[str], Any], kind: type, text: str) -> None:
    try:
        result = parser(text)
    except ParseError:
        return
    assert isinstance(result, kind)


@pytest.mark.parametrize(("parser", "kind"), PARSERS, ids=IDS)
@_PROPERTY
@given(text=st.text())
def test_any_text(parser, kind, text):
    _record_or_parse_error(parser, kind, text)


@pytest.mark.parametrize(("parser", "kind"), PARSERS, ids=IDS)
@_PROPERTY
@given(text=DECODED_BYTES)
def test_any_bytes(parser, kind, text):
    _record_or_parse_error(parser, kind, text)


@pytest.mark.parametrize(("parser", "kind"), PARSERS, ids=IDS)
@_PROPERTY
@given(text=NEAR_MISS)
def test_near_misses(parser, kind, text):
    _record_or_parse_error(parser, kind, text)


# -- well-formed input round-trips ---------------------------------------------------------
_COUNTER = st.integers(min_value=0, max_value=(1 << 32) - 1)
_NAMES = st.lists(
    st.sampled_from(["found", "invalid", "insert", "drop", "early_drop", "searched", "new"]),
    min_size=1,
    unique=True,
)


@_ROUND_TRIP
@given(data=st.data(), names=_NAMES, cpus=st.integers(min_value=1, max_value=16))
def test_stat_file_sums_match(data, names, cpus):
    entries = data.draw(_COUNTER)
    rows = data.draw(st.lists(st.lists(_COUNTER, min_size=len(names), max_size=len(names)),
                              min_size=cpus, max_size=cpus))  # fmt: skip
    text = "entries  " + " ".join(names) + "\n"
    text += "".join(f"{entries:08x}  " + " ".join(f"{v:08x}" for v in row) + "\n" for row in rows)
    stats = parse_stat_file(text)
    assert stats.cpus == cpus
    assert stats.entries == entries
    assert dict(stats.totals) == {n: sum(row[i] for row in rows) for i, n in enumerate(names)}


@_ROUND_TRIP
@given(data=st.data(), names=_NAMES, cpus=st.integers(min_value=1, max_value=16))
def test_conntrack_s_sums_match(data, names, cpus):
    rows = data.draw(st.lists(st.lists(_COUNTER, min_size=len(names), max_size=len(names)),
                              min_size=cpus, max_size=cpus))  # fmt: skip
    text = "".join(
        f"cpu={cpu:<4}\t" + "".join(f"{n}={v} " for n, v in zip(names, row, strict=True)) + "\n"
        for cpu, row in enumerate(rows)
    )
    stats = parse_conntrack_s(text)
    assert stats.cpus == cpus
    assert dict(stats.totals) == {n: sum(row[i] for row in rows) for i, n in enumerate(names)}


@_PROPERTY
@given(total=st.integers(min_value=1, max_value=1 << 40), avail=st.none() | _COUNTER)
def test_meminfo_round_trip(total, avail):
    text = f"MemTotal: {total:>14} kB\nMemFree: 1 kB\n"
    if avail is not None:
        text += f"MemAvailable: {avail:>10} kB\n"
    info = parse_meminfo(text)
    assert info.mem_total == total * 1024
    assert info.mem_available == (None if avail is None else avail * 1024)
