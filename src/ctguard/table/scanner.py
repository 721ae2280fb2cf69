"""Pick the scanner: the C extension when it was built, else the pure-Python one.

Both are used the same way: ``acc = Accumulator(by_sport, local=...)``, ``acc.feed(data)``
any number of times with whole lines, then ``acc.tally()``.
"""

from __future__ import annotations

from ctguard.table import scan_py
from ctguard.table.keys import MAX_LINE
from ctguard.table.tally import Tally

try:
    from ctguard.table import _scan  # type: ignore[attr-defined]
except ImportError:  # installed without a compiler: same answers, slower
    _scan = None

IMPLEMENTATION = "c" if _scan is not None else "python"


class Accumulator:
    def __init__(
        self,
        by_sport: bool = True,
        force_python: bool = False,
        exact_timeouts: bool = True,
        max_line: int = MAX_LINE,
        local: frozenset[bytes] | None = None,
        ephemeral: tuple[int, int] | None = None,
    ) -> None:
        """``local``: the host's own addresses as tables spell them (LocalAddresses.spellings);
        None: not known, so no entry's direction is told. ``ephemeral``: the host's
        ip_local_port_range (low, high), to mark its own connections that leave from
        another source port (keys.shape_key bit 55); None: not marked."""
        self.by_sport = by_sport
        self.local = local
        self.ephemeral = ephemeral
        self.exact_timeouts = exact_timeouts
        self.max_line = max_line
        c = (
            None
            if _scan is None or force_python
            else _scan.Accumulator(by_sport, exact_timeouts, max_line, local, ephemeral)
        )
        self._c = c
        self._py = Tally(exact_timeouts=exact_timeouts) if c is None else None
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
            )

    def bad_line(self, start: bytes) -> None:
        """One line too long to hold: counted as bad, ``start`` kept as its text."""
        if self._c is not None:
            self._c.bad_line(start)
        else:
            assert self._py is not None
            scan_py.bad_line(start, self._py)

    def tally(self) -> Tally:
        if self._c is None:
            assert self._py is not None
            return self._py
        lines, entries, bad, first_bad, text, shapes, timeouts, sports, markzones, src, dst = (
            self._c.result()
        )
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
            sources=src,
            destinations=dst,
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
) -> None:
    """Count the whole lines in ``data`` into ``tally`` (a convenience for small inputs)."""
    accumulator = Accumulator(
        by_sport, force_python, tally.exact_timeouts, local=local, ephemeral=ephemeral
    )
    accumulator.feed(data)
    tally.add(accumulator.tally())
