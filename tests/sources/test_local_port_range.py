"""ip_local_port_range parsing."""

from __future__ import annotations

import pytest

from ctguard.errors import ParseError
from ctguard.host.root import HostRoot
from ctguard.missing import Missing
from ctguard.sources.local_port_range import (
    LOCAL_PORT_RANGE,
    LocalPortRange,
    parse_local_port_range,
    read_local_port_range,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("32768\t60999\n", LocalPortRange(32768, 60999)),
        ("1024 65535", LocalPortRange(1024, 65535)),  # spaces, as 'sysctl -w' writes them back
        ("40000\t40000\n", LocalPortRange(40000, 40000)),
    ],
)
def test_parses_low_and_high(text: str, expected: LocalPortRange) -> None:
    assert parse_local_port_range(text) == expected


@pytest.mark.parametrize(
    "text", ["", "32768\n", "32768 60999 1", "a b", "-1 5", "0 100", "60999 32768", "1 70000"]
)
def test_anything_else_is_a_parse_error(text: str) -> None:
    with pytest.raises(ParseError, match="ip_local_port_range"):
        parse_local_port_range(text)


def test_read_from_a_root(tmp_path) -> None:
    path = tmp_path / LOCAL_PORT_RANGE.lstrip("/")
    assert isinstance(read_local_port_range(HostRoot(tmp_path)), Missing)
    path.parent.mkdir(parents=True)
    path.write_text("49152\t65535\n")
    assert read_local_port_range(HostRoot(tmp_path)) == LocalPortRange(49152, 65535)
