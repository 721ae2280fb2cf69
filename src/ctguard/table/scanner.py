"""Pick the scanner: the C extension when it was built, else the pure-Python one.

Both are used the same way: ``acc = Accumulator(by_sport, local=...)``, ``acc.feed(data)``
any number of times with whole lines, then ``acc.tally()`` once.
"""

from __future__ import annotations

from ctguard.table import scan_py
from ctguard.table.address_counts import AddressCounts
from ctguard.table.keys import MAX_LINE
from ctguard.table.tally import Tally

try:
    from ctguard.table import _scan  # type: ignore[attr-defined]
except ImportError:  # installed without a compiler: same answers, slower
    _scan = None

IMPLEMENTATION = "c" if _scan is not None else "python"
_NOT_COUNTED = AddressCounts(counted=False)


class Accumulator:
    def __init__(
        self,
        by_sport: bool = True,
        force_python: bool = False,
        exact_timeouts: bool = True,
        max_line: int = MAX_LINE,
        local: frozenset[bytes] | None = None,
        ephemeral: tuple[int, int] | None = None,
        by_address: bool = True,
    ) -> None:
        """``local``: the host's own addresses as tables spell them (LocalAddresses.spellings);
        None: not known, so no entry's direction is told. ``ephemeral``: the host's
        ip_local_port_range (low, high), to mark its own connections that leave from
        another source port (keys.shape_key bit 55); None: not marked. ``by_address``
        False: entries per source and destination are not counted (nor paid for)."""
        self.by_sport = by_sport
        self.by_address = by_address
        self.local = local
        self.ephemeral = ephemeral
        self.exact_timeouts = exact_timeouts
        self.max_line = max_line
        c = (
            None
            if _scan is None or force_python
            else _scan.Accumulator(by_sport, exact_timeouts, max_line, local, ephemeral, by_address)
        )
        self._c = c
        self._py = Tally(exact_timeouts=exact_timeouts) if c is None else None
        self._addresses = scan_py.Addresses() if c is None and by_address else None
        if self._py is not None and local is not None:
            self._py.no_local_addresses = ""

    def feed(self, data: bytes | memoryview) -> None:
        if self._c is not None:
            self._c.feed(data)
        else:
            assert self._py is not None
            scan_py.scan(
                bytes(data),
                self._py,
                self.by_sport,
                self.max_line,
                self.local or frozenset(),
                self.ephemeral,
                self._addresses,
            )

    def absorb(self, sources: AddressCounts, destinations: AddressCounts) -> None:
        """Count another scan's addresses here, as if its lines had been fed (the parent
        of a parallel scan takes its children's this way: no table is built twice)."""
        if self._c is not None:
            self._c.absorb(sources.records, destinations.records)
            return
        found = self._addresses
        if found is None:
            raise RuntimeError("absorb(): this accumulator does not count addresses")
        for mine, theirs in ((found.sources, sources), (found.destinations, destinations)):
            for key, count in theirs.keyed():
                mine[key] = mine.get(key, 0) + count

    def bad_line(self, start: bytes) -> None:
        """One line too long to hold: counted as bad, ``start`` kept as its text."""
        if self._c is not None:
            self._c.bad_line(start)
        else:
            assert self._py is not None
            scan_py.bad_line(start, self._py)

    def tally(self) -> Tally:
        """The counts; once (the C scanner gives its address records away)."""
        if self._c is None:
            assert self._py is not None
            found = self._addresses
            self._py.sources = AddressCounts.from_keys(found.sources) if found else _NOT_COUNTED
            self._py.destinations = (
                AddressCounts.from_keys(found.destinations) if found else _NOT_COUNTED
            )
            return self._py
        (lines, entries, bad, first_bad, text, shapes, timeouts, sports, markzones, nat_ports,
         src, dst) = self._c.result()  # fmt: skip
        tally = Tally(
            exact_timeouts=self.exact_timeouts,
            lines=lines,
            entries=entries,
            bad=bad,
            first_bad=first_bad or None,
            first_bad_text=text or b"",
            shapes=shapes,
            timeouts=timeouts,
            sports=sports,
            markzones=markzones,
            nat_ports=nat_ports,
            sources=_NOT_COUNTED if src is None else AddressCounts(src),
            destinations=_NOT_COUNTED if dst is None else AddressCounts(dst),
        )
        if self.local is not None:
            tally.no_local_addresses = ""
        return tally


def scan_into(
    data: bytes,
    tally: Tally,
    by_sport: bool = True,
    force_python: bool = False,
    local: frozenset[bytes] | None = None,
    ephemeral: tuple[int, int] | None = None,
    by_address: bool = True,
) -> None:
    """Count the whole lines in ``data`` into ``tally`` (a convenience for small inputs)."""
    accumulator = Accumulator(
        by_sport, force_python, tally.exact_timeouts, local=local, ephemeral=ephemeral,
        by_address=by_address,
    )  # fmt: skip
    accumulator.feed(data)
    tally.add(accumulator.tally())
