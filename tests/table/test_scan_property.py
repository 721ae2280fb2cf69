"""Properties of the scanners on any bytes: no exception, every line accounted for once,
the counts agree with each other, and the C scanner answers exactly as the Python one."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tablegen import FORMATS, L4_NAMES, Conn, dump, render
from tablescan import FIELDS, c_built, make_scan

from ctguard.table.keys import PORTED
from ctguard.table.summary import decode_shape, decode_timeout
from ctguard.table.tally import Tally

SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

VALID = [line.text.encode() for line in dump(7, 400, bad_rate=0, blank_rate=0)]
ALPHABET = b" \t\r\n\x0b\x0c=[]:.0123456789srcdtpoa-_\x00\xff"


def split_lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return lines


def check_invariants(tally: Tally, data: bytes, by_sport: bool = True) -> None:
    lines = split_lines(data)
    blank = sum(1 for line in lines if not line.strip())
    assert tally.lines == len(lines)
    assert tally.entries + tally.bad + blank == tally.lines
    for counts in (
        tally.shapes,
        tally.timeouts,
        tally.markzones,
        tally.sources.as_dict(),
        tally.destinations.as_dict(),
    ) + ((tally.sports,) if by_sport else ()):
        assert sum(counts.values()) == tally.entries
        assert all(count > 0 for count in counts.values())
    if not by_sport:
        assert tally.sports == {}
    if tally.bad == 0:
        assert (tally.first_bad, tally.first_bad_text) == (None, b"")
    else:
        assert tally.first_bad is not None and 1 <= tally.first_bad <= tally.lines
        line = lines[tally.first_bad - 1]
        assert line.strip()
        assert tally.first_bad_text == line[:200]
    for key in tally.shapes:  # every key decodes to something a renderer can show
        shape = decode_shape(key)
        assert shape.family in ("ipv4", "ipv6")
        assert shape.dport is None or 0 <= shape.dport <= 0xFFFF
    for key in tally.timeouts:
        remaining = decode_timeout(key).remaining
        assert remaining is None or 0 <= remaining < 1 << 32


@st.composite
def mangled(draw: st.DrawFn) -> bytes:
    """Valid lines, then truncated, spliced, overwritten, duplicated or re-joined."""
    lines = draw(st.lists(st.sampled_from(VALID), min_size=1, max_size=8))
    data = b"\n".join(lines) + draw(st.sampled_from([b"", b"\n"]))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["cut", "splice", "overwrite", "insert", "delete"]))
        at = draw(st.integers(0, len(data)))
        if op == "cut":
            data = data[:at]
        elif op == "splice":
            other = draw(st.sampled_from(VALID))
            data = data[:at] + other[draw(st.integers(0, len(other))) :]
        elif op == "overwrite":
            junk = draw(st.binary(min_size=1, max_size=12))
            data = data[:at] + junk + data[at + len(junk) :]
        elif op == "insert":
            data = (
                data[:at]
                + draw(st.sampled_from([b"\n", b" ", b"=", b"src=", b"[", b"9"]))
                + (data[at:])
            )
        else:
            data = data[:at] + data[at + draw(st.integers(1, 20)) :]
    return data


ANY_BYTES = st.one_of(
    st.binary(max_size=600),
    st.lists(st.sampled_from(list(ALPHABET)), max_size=400).map(bytes),
    mangled(),
)


@SETTINGS
@given(data=ANY_BYTES, by_sport=st.booleans())
def test_any_bytes_never_raise_and_every_line_counts_once(scanner, data: bytes, by_sport: bool):
    check_invariants(scanner(data, by_sport), data, by_sport)


@SETTINGS
@given(head=ANY_BYTES, tail=ANY_BYTES)
def test_scanning_in_two_parts_adds_up(scanner, head: bytes, tail: bytes) -> None:
    head = head if head.endswith(b"\n") or not head else head + b"\n"
    whole = scanner(head + tail)
    parts = scanner(head)
    parts.add(scanner(tail))
    assert whole == parts


ports = st.integers(0, 0xFFFF)
addresses = st.one_of(
    st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(lambda a: a.compressed)
)


@st.composite
def conns(draw: st.DrawFn) -> Conn:
    proto = draw(st.sampled_from([1, 2, 6, 17, 33, 47, 58, 132, 136, 250]))
    src = draw(addresses)
    same = st.ip_addresses(v=6 if ":" in src else 4).map(lambda a: a.compressed)
    ported = proto in PORTED
    state = ""
    if proto in (6, 33, 132):
        state = draw(
            st.sampled_from(
                ["ESTABLISHED", "TIME_WAIT", "SYN_SENT", "OPEN", "COOKIE_WAIT", "CLOSE"]
            )
        )
    flag = draw(st.sampled_from(["", "ASSURED", "OFFLOAD", "HW_OFFLOAD"]))
    return Conn(
        proto=proto,
        src=src,
        dst=draw(same),
        sport=draw(ports) if ported else None,
        dport=draw(ports) if ported else None,
        state=state,
        timeout=None if "OFFLOAD" in flag else draw(st.integers(0, 1 << 31)),
        unreplied=draw(st.booleans()),
        flag=flag,
        mark=draw(st.integers(0, 0xFFFFFFFF)),
        zone=draw(st.integers(0, 0xFFFF)),
        reply_src=draw(st.none() | same),
        reply_dst=draw(st.none() | same),
        reply_sport=draw(st.none() | ports) if ported else None,
        reply_dport=draw(st.none() | ports) if ported else None,
        acct=draw(st.booleans()),
        delta=draw(st.none() | st.integers(0, 1 << 40)),
    )


@SETTINGS
@given(conn=conns(), fmt=st.sampled_from(FORMATS))
def test_rendered_entry_round_trips(scanner, conn: Conn, fmt: str) -> None:
    if fmt == "list" and conn.proto not in L4_NAMES:
        fmt = "extended"  # conntrack -L "unknown N": see test_conntrack_list_unknown_protocol
    line = render(conn, fmt)
    tally = scanner(line.encode())
    assert (tally.entries, tally.bad) == (1, 0), line
    shape = decode_shape(next(iter(tally.shapes)))
    assert shape.family == ("ipv6" if conn.ipv6 else "ipv4")
    assert shape.dport == conn.dport
    assert shape.unreplied == conn.unreplied
    assert shape.nat == conn.nat
    assert shape.flag == ["", "ASSURED", "OFFLOAD", "HW_OFFLOAD"].index(conn.flag)
    assert decode_timeout(next(iter(tally.timeouts))).remaining == conn.timeout
    assert tally.markzones == {conn.mark << 16 | conn.zone: 1}
    assert tally.sports == {conn.proto << 17 | (0 if conn.sport is None else conn.sport + 1): 1}


@pytest.mark.skipif(not c_built(), reason="C scanner not built yet")
@settings(max_examples=300, deadline=None)
@given(data=ANY_BYTES, by_sport=st.booleans())
def test_c_and_python_agree(data: bytes, by_sport: bool) -> None:
    python, c = make_scan("python")(data, by_sport), make_scan("c")(data, by_sport)
    for name in FIELDS:
        assert getattr(c, name) == getattr(python, name), name


@pytest.mark.skipif(not c_built(), reason="C scanner not built yet")
@pytest.mark.parametrize("seed", [11, 12])
def test_c_and_python_agree_on_a_generated_dump(seed: int) -> None:
    data = b"\n".join(line.text.encode() for line in dump(seed, 3000, bad_rate=0.02))
    python, c = make_scan("python")(data), make_scan("c")(data)
    for name in FIELDS:
        assert getattr(c, name) == getattr(python, name), name
