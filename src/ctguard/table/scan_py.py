"""The pure-Python scanner: the same counts as the C one (``_scan.c``), 10-20x slower.

It is used when the C extension was not built (no compiler at install time), and it is
the readable statement of what a line means. Accepted lines, as the kernel's
``ct_seq_show()`` (``/proc/net/nf_conntrack``) and conntrack-tools (``conntrack -L``,
``-o extended``) print them::

    ipv4     2 tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=51234 dport=443 \
src=10.0.0.2 dst=10.0.0.1 sport=443 dport=51234 [ASSURED] mark=0 zone=0 use=2
    udp      17 29 src=127.0.0.1 dst=127.0.0.1 sport=55495 dport=53 [UNREPLIED] \
src=127.0.0.1 dst=127.0.0.1 sport=53 dport=55495 mark=0 use=1

Grammar: an optional ``ipv4|ipv6|unknown N`` prefix (``unknown N`` only when a protocol
name follows: conntrack -L prints an unknown *l4* protocol as ``unknown  2 99 src=...``);
the l4 name and number; an optional remaining timeout (absent for offloaded entries); an
optional state word; then tokens: the original tuple (from the first ``src=``), the reply
tuple (from the second ``src=``), ``[FLAG]`` words and ``key=value`` fields in any order.
A line without a protocol number, without ``src=``/``dst=`` in both tuples, or whose
original ``src=``/``dst=`` is not an address (keys.address_key) is bad: counted, never fatal.
"""

from __future__ import annotations

from ctguard.table.keys import (
    FLAG_IDS,
    MAX_LINE,
    OTHER_STATE,
    STATE_IDS,
    address_key,
    bucketed,
    markzone_key,
    nat_port_key,
    outside,
    shape_key,
    sport_key,
    timeout_key,
)
from ctguard.table.tally import Tally

_L3 = (b"ipv4", b"ipv6", b"unknown")
_MAX_U32 = 0xFFFFFFFF


def _number(token: bytes, limit: int) -> int | None:
    return int(token) if token.isdigit() and len(token) <= 10 and int(token) <= limit else None


class Addresses:
    """Entries per original source and destination, by keys.address_key; the scan's
    AddressCounts are made from them once, at the end."""

    def __init__(self) -> None:
        self.sources: dict[bytes, int] = {}
        self.destinations: dict[bytes, int] = {}


def scan(
    data: bytes,
    tally: Tally,
    by_sport: bool = True,
    max_line: int = MAX_LINE,
    local: frozenset[bytes] = frozenset(),
    ephemeral: tuple[int, int] | None = None,
    addresses: Addresses | None = None,
) -> None:
    """Count every line of ``data``: whole lines; a last line without newline counts.

    ``tally.exact_timeouts`` False: remaining timeouts are rounded up (keys.bucketed).
    ``local``: the host's own addresses as the table spells them (keys.shape_key bits 53-54);
    ``ephemeral``: its ip_local_port_range (bit 55). ``addresses``: where to count the
    entries per address (None: not counted; a line must hold addresses all the same)."""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    for line in lines:
        tally.lines += 1
        if len(line) <= max_line and (
            not line.strip() or _scan_line(line, tally, by_sport, local, ephemeral, addresses)
        ):
            continue
        tally.bad += 1
        if tally.first_bad is None:
            tally.first_bad = tally.lines
            tally.first_bad_text = line[:200]


def bad_line(start: bytes, tally: Tally) -> None:
    """Count one line the reader could not hold (longer than its buffer) as bad."""
    tally.lines += 1
    tally.bad += 1
    if tally.first_bad is None:
        tally.first_bad = tally.lines
        tally.first_bad_text = start[:200]


def _scan_line(
    line: bytes,
    tally: Tally,
    by_sport: bool,
    local: frozenset[bytes],
    ephemeral: tuple[int, int] | None,
    addresses: Addresses | None,
) -> bool:
    tokens = line.split()
    i = 0
    family: bytes | None = None
    if tokens[0] in _L3 and not (
        tokens[0] == b"unknown" and len(tokens) > 2 and tokens[2].isdigit()
    ):
        if len(tokens) < 2 or _number(tokens[1], 255) is None:
            return False
        family, i = tokens[0], 2
    if len(tokens) < i + 2:
        return False
    proto = _number(tokens[i + 1], 255)
    if proto is None or b"=" in tokens[i]:
        return False
    i += 2
    remaining = None
    if i < len(tokens) and tokens[i].isdigit():
        remaining = _number(tokens[i], _MAX_U32 - 1)
        if remaining is None:
            return False
        i += 1
    state = 0
    if i < len(tokens) and b"=" not in tokens[i] and not tokens[i].startswith(b"["):
        state = STATE_IDS.get(tokens[i], OTHER_STATE)
        i += 1
    tuples: list[dict[bytes, bytes]] = []
    unreplied = False
    flag = 0
    mark = 0
    zone = 0
    for token in tokens[i:]:
        key, eq, value = token.partition(b"=")
        if not eq:
            if token == b"[UNREPLIED]":
                unreplied = True
            elif token in FLAG_IDS:
                flag = FLAG_IDS[token]
            continue
        if key == b"src":
            tuples.append({})
        if key in (b"sport", b"dport") and _port(value) is None:
            return False
        if key in (b"src", b"dst", b"sport", b"dport"):
            if tuples:
                tuples[-1].setdefault(key, value)
        elif key == b"mark":
            found = _number(value, _MAX_U32)
            if found is None:
                return False
            mark = found
        elif key == b"zone":
            found = _number(value, 0xFFFF)
            if found is None:
                return False
            zone = found
    if len(tuples) < 2 or any(b"dst" not in t for t in tuples[:2]):
        return False
    orig, reply = tuples[0], tuples[1]
    src_key, dst_key = address_key(orig[b"src"]), address_key(orig[b"dst"])
    if src_key is None or dst_key is None:
        return False
    ipv6 = family == b"ipv6" if family is not None else b":" in orig[b"src"]
    sport = _port(orig.get(b"sport"))
    dport = _port(orig.get(b"dport"))
    nat = (
        reply[b"src"] != orig[b"dst"]
        or reply[b"dst"] != orig[b"src"]
        or _port(reply.get(b"sport")) != dport
        or _port(reply.get(b"dport")) != sport
    )
    nat_port = _port(reply.get(b"sport"))
    src_local, dst_local = orig[b"src"] in local, orig[b"dst"] in local
    fixed = src_local and outside(sport, ephemeral)
    shape = shape_key(ipv6, proto, state, dport, unreplied, flag, nat, src_local, dst_local, fixed)
    _count(tally.shapes, shape)
    if nat and nat_port is not None:
        _count(tally.nat_ports, nat_port_key(proto, nat_port))
    if remaining is not None and not tally.exact_timeouts:
        remaining = bucketed(remaining)
    _count(tally.timeouts, timeout_key(proto, state, flag, remaining))
    if by_sport:
        _count(tally.sports, sport_key(proto, sport))
    _count(tally.markzones, markzone_key(mark, zone))
    if addresses is not None:
        addresses.sources[src_key] = addresses.sources.get(src_key, 0) + 1
        addresses.destinations[dst_key] = addresses.destinations.get(dst_key, 0) + 1
    tally.entries += 1
    return True


def _port(token: bytes | None) -> int | None:
    return None if token is None else _number(token, 0xFFFF)


def _count(counts: dict[int, int], key: int) -> None:
    counts[key] = counts.get(key, 0) + 1
