"""Entries per address, kept as packed records (keys.ADDRESS_RECORD), never as one Python
object per address.

A busy host's table has up to one source per entry (a million clients behind a
load balancer); ``analyze`` shows ten of them. The scan hands over one bytes object of
24-byte records, merging two scans adds counts record by record, and ranking keeps the
best ``n`` while it walks the records: all of it in C (``_scan.merge_addresses``,
``_scan.top_addresses``), so only the shown addresses become Python objects, with their
exact counts, and the distinct count is exact (one record per address). The pure-Python
code below gives the same answers when the C scanner is not built.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from ctguard.table.keys import ADDRESS, ADDRESS_RECORD, address_text

try:
    from ctguard.table import _scan  # type: ignore[attr-defined]
except ImportError:  # installed without a compiler
    _scan = None


class AddressCounts:
    """Entries per address; ``counted`` False: the scan was not asked to count them
    (``analyze --by`` without src or dst), so nothing is known."""

    __slots__ = ("counted", "records")

    def __init__(self, records: bytes = b"", counted: bool = True) -> None:
        if len(records) % ADDRESS_RECORD:
            raise ValueError("address records: not a whole number of records")
        self.records = records
        self.counted = counted

    @classmethod
    def from_keys(cls, counts: dict[bytes, int]) -> AddressCounts:
        """From ``{keys.address_key(...): count}`` (the pure-Python scanner's counts)."""
        return cls(b"".join(ADDRESS.pack(key[:16], n << 8 | key[16]) for key, n in counts.items()))

    @property
    def distinct(self) -> int:
        """How many addresses (exact: one record each)."""
        return len(self.records) // ADDRESS_RECORD

    def merged(self, other: AddressCounts, force_python: bool = False) -> AddressCounts:
        """Both scans' counts, every address once."""
        counted = self.counted and other.counted
        if not counted or not other.records:
            return AddressCounts(self.records if counted else b"", counted)
        if not self.records:
            return AddressCounts(other.records)
        if _scan is not None and not force_python:
            return AddressCounts(_scan.merge_addresses(self.records, other.records))
        counts = dict(self.keyed())
        for key, n in other.keyed():
            counts[key] = counts.get(key, 0) + n
        return AddressCounts.from_keys(counts)

    def top(self, n: int | None, force_python: bool = False) -> list[tuple[str, int]]:
        """The ``n`` addresses with most entries (None: all), most first; ties IPv4 before
        IPv6, then in numeric address order, so the answer is stable."""
        if _scan is not None and not force_python:
            rows = _scan.top_addresses(self.records, -1 if n is None else n)
            return [(address_text(family, packed), count) for family, packed, count in rows]
        ranked = ((-count, key[16], key[:16], count) for key, count in self.keyed())
        best = sorted(ranked) if n is None else heapq.nsmallest(n, ranked)
        return [(address_text(family, packed), count) for _, family, packed, count in best]

    def as_dict(self) -> dict[str, int]:
        """Every address and its count (for tests and small tables: one object each)."""
        return {address_text(key[16], key[:16]): count for key, count in self.keyed()}

    def keyed(self) -> Iterator[tuple[bytes, int]]:
        """(keys.address_key, count) per address, one object each: small tables only."""
        for packed, tail in ADDRESS.iter_unpack(self.records):
            yield packed + bytes((tail & 0xFF,)), tail >> 8

    def __eq__(self, other: object) -> bool:
        """The same addresses with the same counts, in whatever record order."""
        if not isinstance(other, AddressCounts):
            return NotImplemented
        return self.counted == other.counted and dict(self.keyed()) == dict(other.keyed())

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if not self.counted:
            return "AddressCounts(counted=False)"
        return f"AddressCounts({self.distinct} addresses)"

    def __getstate__(self) -> tuple[bytes, bool]:
        return self.records, self.counted

    def __setstate__(self, state: tuple[bytes, bool]) -> None:
        self.records, self.counted = state
