"""/proc/meminfo parsing."""

from __future__ import annotations

import pytest

from ctguard.errors import ParseError
from ctguard.missing import Missing
from ctguard.sources.meminfo import MEMINFO, Meminfo, parse_meminfo, read_meminfo

# Linux 6.1, trimmed.
MEMINFO_61 = """\
MemTotal:       16318020 kB
MemFree:         1204532 kB
MemAvailable:    9876544 kB
Buffers:          523400 kB
Cached:          7654320 kB
SwapCached:            0 kB
HugePages_Total:       0
HugePages_Free:        0
Hugepagesize:       2048 kB
"""
# Linux 2.6.32 (RHEL 6): no MemAvailable (it appeared in 3.14).
MEMINFO_2632 = """\
MemTotal:        3924176 kB
MemFree:          215876 kB
Buffers:          181008 kB
Cached:          2513344 kB
"""


def test_kb_converted_to_bytes():
    info = parse_meminfo(MEMINFO_61)
    assert info == Meminfo(mem_total=16318020 * 1024, mem_available=9876544 * 1024)


def test_no_mem_available_is_none():
    info = parse_meminfo(MEMINFO_2632)
    assert info.mem_total == 3924176 * 1024
    assert info.mem_available is None


def test_value_without_unit_is_taken_as_is():
    assert parse_meminfo("MemTotal: 4096\n").mem_total == 4096


def test_unparsable_lines_are_skipped():
    text = "garbage\nMemFree: lots kB\n: 5 kB\nMemTotal:   2 kB\nEmpty:\n"
    assert parse_meminfo(text) == Meminfo(2048, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no MemTotal"),
        ("MemFree: 1 kB\nMemAvailable: 2 kB\n", "no MemTotal"),
        ("MemTotal: many kB\n", "no MemTotal"),
        ("MemTotal: 0 kB\n", "not positive"),
        ("MemTotal: -4 kB\n", "not positive"),
    ],
)
def test_rejects(text, message):
    with pytest.raises(ParseError, match=message):
        parse_meminfo(text)


def test_read_meminfo(host, write):
    assert isinstance(read_meminfo(host), Missing)
    write(MEMINFO, MEMINFO_2632)
    assert read_meminfo(host) == Meminfo(3924176 * 1024, None)
