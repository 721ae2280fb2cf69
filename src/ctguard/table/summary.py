"""Turn a Tally's packed counts into the breakdowns an operator reads.

Everything here works on the (small) dicts of distinct keys, never on entries, so it
costs the same for a 1,000-entry and a 10-million-entry table; the addresses, which can
be one per entry, are ranked in C (AddressCounts.top) and only the shown ones decoded.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from ctguard.table.keys import (
    FLAG_ASSURED,
    FLAG_HW_OFFLOAD,
    FLAG_OFFLOAD,
    HISTOGRAM_BOUNDS,
    protocol_name,
    state_name,
)
from ctguard.table.tally import Tally

BREAKDOWNS: tuple[str, ...] = (
    "protocol", "state", "dport", "sport", "src", "dst", "zone", "mark", "flags", "nat",
    "timeout",
)  # fmt: skip
DEFAULT_BREAKDOWNS: tuple[str, ...] = tuple(b for b in BREAKDOWNS if b != "sport")


def counts_addresses(breakdowns: tuple[str, ...]) -> bool:
    """Whether a scan for ``breakdowns`` must count entries per address (src, dst): up to
    one key per entry, so ``--by protocol`` alone does not pay for them."""
    return "src" in breakdowns or "dst" in breakdowns


@dataclass(frozen=True)
class Shape:
    """The decoded low-cardinality part of an entry (see keys.shape_key)."""

    family: str
    protocol: str
    state: str
    dport: int | None
    unreplied: bool
    flag: int
    nat: bool
    src_local: bool = False  # the original source is the host's own address
    dst_local: bool = False  # the original destination is the host's own address
    # the host's own connection, from a source port outside ip_local_port_range
    fixed_sport: bool = False

    @property
    def direction(self) -> str:
        """Who opened the flow, seen from the host (meaningful when the scan knew the
        host's addresses): ``server`` (to it), ``client`` (by it), ``local`` (both ends
        its own: loopback), ``forwarded`` (through it)."""
        if self.dst_local:
            return "local" if self.src_local else "server"
        return "client" if self.src_local else "forwarded"


DIRECTIONS: tuple[str, ...] = ("server", "client", "local", "forwarded")


def decode_shape(key: int) -> Shape:
    port = key >> 15 & 0x1FFFF
    return Shape(
        family="ipv6" if key & 1 else "ipv4",
        protocol=protocol_name(key >> 1 & 0xFF),
        state=state_name(key >> 9 & 0x3F),
        dport=port - 1 if port else None,
        unreplied=bool(key >> 32 & 1),
        flag=key >> 33 & 3,
        nat=bool(key >> 35 & 1),
        src_local=bool(key >> 53 & 1),
        dst_local=bool(key >> 54 & 1),
        fixed_sport=bool(key >> 55 & 1),
    )


@dataclass(frozen=True)
class TimeoutKey:
    protocol: str
    state: str
    flag: int
    remaining: int | None  # None: the entry shows no timeout (offloaded)


REMAINING_BITS = 33  # keys.timeout_key: remaining + 1 in the low bits, the kind above
REMAINING_MASK = (1 << REMAINING_BITS) - 1


def decode_timeout(key: int) -> TimeoutKey:
    remaining = key & REMAINING_MASK
    head = key >> REMAINING_BITS
    return TimeoutKey(
        protocol=protocol_name(head >> 8 & 0xFF),
        state=state_name(head >> 2 & 0x3F),
        flag=head & 3,
        remaining=remaining - 1 if remaining else None,
    )


@dataclass(frozen=True)
class TableSummary:
    entries: int
    lines: int
    bad_lines: int
    first_bad_line: int | None
    first_bad_text: str
    families: dict[str, int]
    protocols: dict[str, int]
    states: dict[tuple[str, str], int]  # (protocol, state); stateless protocols absent
    dports: dict[tuple[str, int], int]  # (protocol, original-direction dport)
    dports_nat: dict[tuple[str, int], int]  # of which NATed
    nat_targets: dict[tuple[str, int], int]  # NATed entries by the port translated to
    # (protocol, dport, Shape.direction); empty when ``no_local_addresses`` says why
    dport_directions: dict[tuple[str, int, str], int]
    no_local_addresses: str  # "": entries' directions are known
    # (protocol, dport): the host's own connections to it from source ports outside
    # ip_local_port_range (keys.shape_key bit 55; empty when the scan had no range)
    client_fixed_sports: dict[tuple[str, int], int]
    sports: list[tuple[tuple[str, int], int]]  # top N ((protocol, port), count), most first
    sources: list[tuple[str, int]]  # top N, most first (exact counts)
    destinations: list[tuple[str, int]]
    distinct_sources: int | None  # exact; None: not counted (no src/dst breakdown asked)
    distinct_destinations: int | None
    zones: dict[int, int]
    marks: dict[int, int]
    assured: int
    unreplied: int
    offloaded: int  # [OFFLOAD] and [HW_OFFLOAD]
    hw_offloaded: int
    nated: int
    unreplied_udp: int
    timeouts: dict[tuple[str, str], tuple[int, ...]]  # (protocol, state) -> histogram
    no_timeout: int


def summarize(tally: Tally, top: int | None = 10) -> TableSummary:
    """``top``: how many sources/destinations to keep (None: all)."""
    families: dict[str, int] = {}
    protocols: dict[str, int] = {}
    states: dict[tuple[str, str], int] = {}
    dports: dict[tuple[str, int], int] = {}
    dports_nat: dict[tuple[str, int], int] = {}
    nat_targets: dict[tuple[str, int], int] = {}
    directions: dict[tuple[str, int, str], int] = {}
    fixed: dict[tuple[str, int], int] = {}
    known = not tally.no_local_addresses
    assured = unreplied = offloaded = hw_offloaded = nated = unreplied_udp = 0
    for key, count in tally.shapes.items():
        shape = decode_shape(key)
        _add(families, shape.family, count)
        _add(protocols, shape.protocol, count)
        if shape.state:
            _add(states, (shape.protocol, shape.state), count)
        if shape.dport is not None:
            _add(dports, (shape.protocol, shape.dport), count)
            if shape.nat:
                _add(dports_nat, (shape.protocol, shape.dport), count)
            if known:
                _add(directions, (shape.protocol, shape.dport, shape.direction), count)
                if shape.fixed_sport and shape.direction == "client":
                    _add(fixed, (shape.protocol, shape.dport), count)
        assured += count if shape.flag == FLAG_ASSURED else 0
        offloaded += count if shape.flag in (FLAG_OFFLOAD, FLAG_HW_OFFLOAD) else 0
        hw_offloaded += count if shape.flag == FLAG_HW_OFFLOAD else 0
        unreplied += count if shape.unreplied else 0
        unreplied_udp += count if shape.unreplied and shape.protocol == "udp" else 0
        nated += count if shape.nat else 0
    for key, count in tally.nat_ports.items():  # keys.nat_port_key
        _add(nat_targets, (protocol_name(key >> 17), (key & 0x1FFFF) - 1), count)
    sports = _top_ports(tally.sports, top)
    zones: dict[int, int] = {}
    marks: dict[int, int] = {}
    for key, count in tally.markzones.items():
        _add(zones, key & 0xFFFF, count)
        _add(marks, key >> 16, count)
    timeouts, no_timeout = _histograms(tally.timeouts)
    sources, destinations = tally.sources, tally.destinations
    return TableSummary(
        entries=tally.entries,
        lines=tally.lines,
        bad_lines=tally.bad,
        first_bad_line=tally.first_bad,
        first_bad_text=tally.first_bad_text.decode("utf-8", "replace"),
        families=families,
        protocols=protocols,
        states=states,
        dports=dports,
        dports_nat=dports_nat,
        nat_targets=nat_targets,
        dport_directions=directions,
        no_local_addresses=tally.no_local_addresses,
        client_fixed_sports=fixed,
        sports=sports,
        sources=sources.top(top) if sources.counted else [],
        destinations=destinations.top(top) if destinations.counted else [],
        distinct_sources=sources.distinct if sources.counted else None,
        distinct_destinations=destinations.distinct if destinations.counted else None,
        zones=zones,
        marks=marks,
        assured=assured,
        unreplied=unreplied,
        offloaded=offloaded,
        hw_offloaded=hw_offloaded,
        nated=nated,
        unreplied_udp=unreplied_udp,
        timeouts=timeouts,
        no_timeout=no_timeout,
    )


def _histograms(
    timeouts: Mapping[int, int],
) -> tuple[dict[tuple[str, str], tuple[int, ...]], int]:
    """Remaining-timeout histograms per (protocol, state), and the entries showing none.

    Up to one key per distinct remaining second: kept to plain int work per key."""
    by_head: dict[int, list[int]] = {}
    width = len(HISTOGRAM_BOUNDS) + 1
    no_timeout = 0
    for key, count in timeouts.items():
        stored = key & REMAINING_MASK  # remaining + 1; 0: no timeout shown
        if not stored:
            no_timeout += count
            continue
        state = key >> (REMAINING_BITS + 2)  # (protocol, state) without the flag
        histogram = by_head.get(state)
        if histogram is None:
            histogram = by_head[state] = [0] * width
        histogram[bisect_left(HISTOGRAM_BOUNDS, stored - 1)] += count
    merged: dict[tuple[str, str], tuple[int, ...]] = {}
    for head, histogram in by_head.items():
        name = (protocol_name(head >> 6 & 0xFF), state_name(head & 0x3F))
        previous = merged.get(name, (0,) * width)
        merged[name] = tuple(a + b for a, b in zip(previous, histogram, strict=True))
    return merged, no_timeout


def _add(counts: dict[Any, int], key: object, count: int) -> None:
    counts[key] = counts.get(key, 0) + count


def _top_ports(counts: Mapping[int, int], top: int | None) -> list[tuple[tuple[str, int], int]]:
    """Top source ports from packed sport keys: sorted as ints, decoded only when shown
    (a busy host has one key per ephemeral port). Ties by protocol number, then port."""
    items = [item for item in counts.items() if item[0] & 0x1FFFF]
    if top is None:
        ordered = sorted(items)
        ordered.sort(key=itemgetter(1), reverse=True)
    else:
        ordered = heapq.nsmallest(top, items, key=lambda item: (-item[1], item[0]))
    return [((protocol_name(key >> 17), (key & 0x1FFFF) - 1), count) for key, count in ordered]
