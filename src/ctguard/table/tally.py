"""The raw counts a scan produces: plain dicts of packed keys (see ``keys``), mergeable.

A Tally is what crosses process boundaries (parallel scans, a scan inside a network
namespace), so it holds only ints, bytes and dicts of them; the addresses, up to one per
entry, as packed records (AddressCounts), not as a dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ctguard.table.address_counts import AddressCounts


@dataclass
class Tally:
    exact_timeouts: bool = True  # False: remaining timeouts rounded up to histogram bounds
    # why the scan could not tell the host's own addresses ("": it could, and the shape
    # keys carry each entry's direction, keys.shape_key bits 53-54)
    no_local_addresses: str = "the host's addresses were not read"
    lines: int = 0  # every line read, blank and bad ones included
    entries: int = 0
    bad: int = 0
    first_bad: int | None = None  # 1-based line number in the whole input
    first_bad_text: bytes = b""
    shapes: dict[int, int] = field(default_factory=dict)
    timeouts: dict[int, int] = field(default_factory=dict)
    sports: dict[int, int] = field(default_factory=dict)
    markzones: dict[int, int] = field(default_factory=dict)
    nat_ports: dict[int, int] = field(default_factory=dict)  # NATed entries only
    sources: AddressCounts = field(default_factory=AddressCounts)
    destinations: AddressCounts = field(default_factory=AddressCounts)

    def add(self, other: Tally) -> None:
        """Fold ``other``, which scanned the lines right after ours, into this tally."""
        if self.first_bad is None and other.first_bad is not None:
            self.first_bad = self.lines + other.first_bad
            self.first_bad_text = other.first_bad_text
        self.exact_timeouts = self.exact_timeouts and other.exact_timeouts
        if not self.lines:  # nothing scanned yet: take the other's knowledge of addresses
            self.no_local_addresses = other.no_local_addresses
        else:
            self.no_local_addresses = self.no_local_addresses or other.no_local_addresses
        self.lines += other.lines
        self.entries += other.entries
        self.bad += other.bad
        for mine, theirs in (
            (self.shapes, other.shapes),
            (self.timeouts, other.timeouts),
            (self.sports, other.sports),
            (self.markzones, other.markzones),
            (self.nat_ports, other.nat_ports),
        ):
            _merge(mine, theirs)
        self.sources = self.sources.merged(other.sources)
        self.destinations = self.destinations.merged(other.destinations)


def _merge(into: dict[Any, int], more: dict[Any, int]) -> None:
    get = into.get
    for key, count in more.items():
        into[key] = get(key, 0) + count
