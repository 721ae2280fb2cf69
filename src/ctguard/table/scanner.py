"""Pick the scanner: the C extension when it was built, else the pure-Python one."""

from __future__ import annotations

from ctguard.table import scan_py
from ctguard.table.tally import Tally

try:
    from ctguard.table import _scan  # type: ignore[attr-defined]
except (
    ImportError
):  # built without a compiler: same answers, slower (bench/analyze.py says how much)
    _scan = None

IMPLEMENTATION = "c" if _scan is not None else "python"


def scan_into(data: bytes, tally: Tally, by_sport: bool = True, force_python: bool = False) -> None:
    """Count the whole lines in ``data`` into ``tally``."""
    if _scan is None or force_python:
        part = Tally()
        scan_py.scan(data, part, by_sport)
    else:
        part = Tally()
        lines, entries, bad, first_bad, first_text = _scan.scan(
            data,
            part.shapes,
            part.timeouts,
            part.sports if by_sport else None,
            part.markzones,
            part.sources,
            part.destinations,
        )
        part.lines, part.entries, part.bad = lines, entries, bad
        part.first_bad = first_bad or None
        part.first_bad_text = first_text
    tally.add(part)
