"""Kernel release parsing and read_kernel's uname fallback."""

from __future__ import annotations

import pytest

from ctguard.errors import ParseError
from ctguard.missing import Missing
from ctguard.sources.kernel import OSRELEASE, KernelVersion, parse_kernel_release, read_kernel


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("2.6.32-754.el6", (2, 6, 32)),
        ("2.6.32-754.35.1.el6.x86_64\n", (2, 6, 32)),
        ("6.1.0-18-amd64\n", (6, 1, 0)),
        ("5.15.0-91-generic", (5, 15, 0)),
        ("4.19", (4, 19, 0)),
        ("  3.10.0-1160.el7.x86_64  \n", (3, 10, 0)),
        ("6.8.0-rc3+", (6, 8, 0)),
    ],
)
def test_parse_release(text, numbers):
    version = parse_kernel_release(text)
    assert (version.major, version.minor, version.patch) == numbers
    assert version.release == text.strip()


@pytest.mark.parametrize(
    ("release", "at_least_5_15"),
    [
        ("2.6.32-754.el6", False),
        ("5.14.21", False),
        ("5.15.0-91-generic", True),
        ("6.1.0-18-amd64", True),
        ("10.0", True),  # compared as numbers, not strings
    ],
)
def test_at_least(release, at_least_5_15):
    assert parse_kernel_release(release).at_least(5, 15) is at_least_5_15


def test_at_least_compares_major_before_minor():
    version = KernelVersion("5.15.0", 5, 15, 0)
    assert version.at_least(5, 15)
    assert version.at_least(4, 99)
    assert not version.at_least(5, 16)
    assert not version.at_least(6, 0)


@pytest.mark.parametrize("text", ["", "\n", "Linux", "v5.10", "5", "5.", ".5.1", "five.ten"])
def test_garbage_is_a_parse_error(text):
    with pytest.raises(ParseError, match="not of the form"):
        parse_kernel_release(text)


def test_absurdly_long_number_is_a_parse_error():
    # int() refuses more than 4300 decimal digits with ValueError (CPython 3.11+).
    with pytest.raises(ParseError):
        parse_kernel_release("1" * 5000 + ".2")
    for text in ("5." + "1" * 5000, "5.15." + "1" * 5000):
        try:
            version = parse_kernel_release(text)
        except ParseError:
            continue
        assert version.major == 5


def test_read_kernel_from_osrelease(host, write, fake_commands):
    write(OSRELEASE, "5.15.0-91-generic\n")
    commands = fake_commands({"uname-r": "9.9.9\n"})
    assert read_kernel(host, commands) == KernelVersion("5.15.0-91-generic", 5, 15, 0)
    assert commands.asked == []


def test_read_kernel_falls_back_to_uname(host, fake_commands):
    version = read_kernel(host, fake_commands({"uname-r": "6.1.0-18-amd64\n"}))
    assert version == KernelVersion("6.1.0-18-amd64", 6, 1, 0)


def test_read_kernel_missing(host, fake_commands):
    result = read_kernel(host, fake_commands())
    assert isinstance(result, Missing)
    assert "uname-r" in result.reason
