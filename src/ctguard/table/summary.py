"""Turn a Tally's packed counts into the breakdowns an operator reads.

Everything here works on the (small) dicts of distinct keys, never on entries, so it
costs the same for a 1,000-entry and a 10-million-entry table.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ctguard.table.keys import (
    FLAG_ASSURED,
    FLAG_HW_OFFLOAD,
    FLAG_OFFLOAD,
    protocol_name,
    state_name,
)
from ctguard.table.tally import Tally

# upper bounds (seconds) of the remaining-timeout histogram; the last bucket is open
HISTOGRAM_BOUNDS: tuple[int, ...] = (10, 60, 300, 3600, 86400)

BREAKDOWNS: tuple[str, ...] = (
    "protocol", "state", "dport", "sport", "src", "dst", "zone", "mark", "flags", "nat",
    "timeout",
)  # fmt: skip
DEFAULT_BREAKDOWNS: tuple[str, ...] = tuple(b for b in BREAKDOWNS if b != "sport")


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
    )


@dataclass(frozen=True)
class TimeoutKey:
    protocol: str
    state: str
    flag: int
    remaining: int | None  # None: the entry shows no timeout (offloaded)


def decode_timeout(key: int) -> TimeoutKey:
    remaining = key & ((1 << 33) - 1)
    head = key >> 33
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
    sports: dict[tuple[str, int], int]
    sources: list[tuple[str, int]]  # top N, most first
    destinations: list[tuple[str, int]]
    distinct_sources: int
    distinct_destinations: int
    zones: dict[int, int]
    marks: dict[int, int]
    assured: int
    unreplied: int
    offloaded: int  # [OFFLOAD] and [HW_OFFLOAD]
    hw_offloaded: int
    nated: int
    timeouts: dict[tuple[str, str], tuple[int, ...]]  # (protocol, state) -> histogram
    no_timeout: int


def summarize(tally: Tally, top: int = 10) -> TableSummary:
    families: dict[str, int] = {}
    protocols: dict[str, int] = {}
    states: dict[tuple[str, str], int] = {}
    dports: dict[tuple[str, int], int] = {}
    dports_nat: dict[tuple[str, int], int] = {}
    assured = unreplied = offloaded = hw_offloaded = nated = 0
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
        assured += count if shape.flag == FLAG_ASSURED else 0
        offloaded += count if shape.flag in (FLAG_OFFLOAD, FLAG_HW_OFFLOAD) else 0
        hw_offloaded += count if shape.flag == FLAG_HW_OFFLOAD else 0
        unreplied += count if shape.unreplied else 0
        nated += count if shape.nat else 0
    sports: dict[tuple[str, int], int] = {}
    for key, count in tally.sports.items():
        port = key & 0x1FFFF
        if port:
            _add(sports, (protocol_name(key >> 17), port - 1), count)
    zones: dict[int, int] = {}
    marks: dict[int, int] = {}
    for key, count in tally.markzones.items():
        _add(zones, key & 0xFFFF, count)
        _add(marks, key >> 16, count)
    timeouts: dict[tuple[str, str], list[int]] = {}
    no_timeout = 0
    for key, count in tally.timeouts.items():
        decoded = decode_timeout(key)
        if decoded.remaining is None:
            no_timeout += count
            continue
        histogram = timeouts.setdefault(
            (decoded.protocol, decoded.state), [0] * (len(HISTOGRAM_BOUNDS) + 1)
        )
        histogram[_bucket(decoded.remaining)] += count
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
        sports=sports,
        sources=_top(tally.sources, top),
        destinations=_top(tally.destinations, top),
        distinct_sources=len(tally.sources),
        distinct_destinations=len(tally.destinations),
        zones=zones,
        marks=marks,
        assured=assured,
        unreplied=unreplied,
        offloaded=offloaded,
        hw_offloaded=hw_offloaded,
        nated=nated,
        timeouts={k: tuple(v) for k, v in timeouts.items()},
        no_timeout=no_timeout,
    )


def _bucket(remaining: int) -> int:
    for index, bound in enumerate(HISTOGRAM_BOUNDS):
        if remaining <= bound:
            return index
    return len(HISTOGRAM_BOUNDS)


def _add(counts: dict[object, int], key: object, count: int) -> None:  # type: ignore[misc]
    counts[key] = counts.get(key, 0) + count


def _top(counts: Mapping[bytes, int], top: int) -> list[tuple[str, int]]:
    """The ``top`` largest counts; ties in address order, so the answer is stable."""
    best = heapq.nsmallest(top, counts.items(), key=lambda item: (-item[1], item[0]))
    return [(address.decode("ascii", "replace"), count) for address, count in best]


def ranked(counts: Mapping[object, int], top: int | None = None) -> list[tuple[object, int]]:
    """Most first, ties by key, for renderers that list a dict."""
    rows: Iterable[tuple[object, int]] = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    return list(rows)[:top] if top is not None else list(rows)
