"""Both scanners tell an entry's direction alike when given the host's addresses."""

from __future__ import annotations

import pytest
from tablegen import dump
from tablescan import FIELDS, c_built, make_scan

from ctguard.table.summary import decode_shape


@pytest.mark.skipif(not c_built(), reason="C scanner not built yet")
@pytest.mark.parametrize("seed", [21, 22])
def test_c_and_python_agree_with_local_addresses(seed: int) -> None:
    data = b"\n".join(line.text.encode() for line in dump(seed, 3000, bad_rate=0.02))
    seen = make_scan("python")(data)
    picked = sorted(seen.sources.as_dict())[::7] + sorted(seen.destinations.as_dict())[::5]
    local = frozenset(address.encode() for address in picked)
    python, c = make_scan("python")(data, True, local), make_scan("c")(data, True, local)
    for name in FIELDS:
        assert getattr(c, name) == getattr(python, name), name
    shapes = [decode_shape(key) for key in python.shapes]
    assert any(s.src_local for s in shapes) and any(s.dst_local for s in shapes)
    assert python.no_local_addresses == ""
    assert not any(s.fixed_sport for s in shapes)  # no range given: bit 55 never set
    # with ip_local_port_range too: the host's own entries from other ports are marked alike
    ephemeral = (32768, 60999)
    python = make_scan("python")(data, True, local, ephemeral)
    c = make_scan("c")(data, True, local, ephemeral)
    for name in FIELDS:
        assert getattr(c, name) == getattr(python, name), name
    shapes = [decode_shape(key) for key in python.shapes]
    assert any(s.fixed_sport for s in shapes)
    assert all(s.src_local for s in shapes if s.fixed_sport)


@pytest.mark.parametrize("kind", ["python", "c"])
def test_without_addresses_no_direction_is_claimed(kind: str) -> None:
    if kind == "c" and not c_built():
        pytest.skip("C scanner not built")
    line = (
        b"udp 17 25 src=10.0.0.10 dst=192.0.2.1 sport=40000 dport=53"
        b" src=192.0.2.1 dst=10.0.0.10 sport=53 dport=40000\n"
    )
    tally = make_scan(kind)(line)
    assert tally.no_local_addresses
    (key,) = tally.shapes
    assert not decode_shape(key).src_local
    told = make_scan(kind)(line, True, frozenset({b"10.0.0.10"}))
    (key,) = told.shapes
    assert decode_shape(key).direction == "client"


@pytest.mark.parametrize("kind", ["python", "c"])
def test_own_connections_from_outside_the_range_are_marked(kind: str) -> None:
    if kind == "c" and not c_built():
        pytest.skip("C scanner not built")
    scan = make_scan(kind)

    def line(src: str, dst: str, sport: int) -> bytes:
        return (
            f"udp 17 25 src={src} dst={dst} sport={sport} dport=123"
            f" src={dst} dst={src} sport=123 dport={sport}\n"
        ).encode()

    local, ephemeral = frozenset({b"10.0.0.10"}), (32768, 60999)
    cases = [("10.0.0.10", "192.0.2.1", 123), ("10.0.0.10", "192.0.2.1", 32768),
             ("10.0.0.10", "192.0.2.1", 60999), ("10.0.0.10", "192.0.2.1", 61000),
             ("192.0.2.1", "10.0.0.10", 123)]  # fmt: skip
    marked = {}
    for src, dst, sport in cases:
        (key,) = scan(line(src, dst, sport), True, local, ephemeral).shapes
        marked[(src, sport)] = decode_shape(key).fixed_sport
    assert marked == {
        ("10.0.0.10", 123): True,  # ntpd's fixed port
        ("10.0.0.10", 32768): False,  # the range's ends are inside
        ("10.0.0.10", 60999): False,
        ("10.0.0.10", 61000): True,
        ("192.0.2.1", 123): False,  # a peer's source port is not the host's business
    }
