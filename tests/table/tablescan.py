"""Scan functions for the table tests: one per scanner implementation."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ctguard.table import scanner as scanner_module
from ctguard.table.scanner import scan_into
from ctguard.table.tally import Tally

Scan = Callable[..., Tally]
KINDS = ("python", "c")
FIELDS = ("lines", "entries", "bad", "first_bad", "first_bad_text", "shapes", "timeouts",
          "sports", "markzones", "sources", "destinations")  # fmt: skip


def c_built() -> bool:
    return scanner_module._scan is not None


def make_scan(kind: str) -> Scan:
    """``scan(data: bytes, by_sport=True) -> Tally``; skips the test for an unbuilt C."""
    if kind == "c" and not c_built():
        pytest.skip("C scanner not built yet")
    force_python = kind == "python"

    def scan(data: bytes, by_sport: bool = True) -> Tally:
        tally = Tally()
        scan_into(data, tally, by_sport, force_python=force_python)
        return tally

    return scan
