"""Scan functions for the table tests: one per scanner implementation."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from ctguard.table import scanner as scanner_module
from ctguard.table.scanner import scan_into
from ctguard.table.tally import Tally

Scan = Callable[..., Tally]
KINDS = ("python", "c")
FIELDS = ("lines", "entries", "bad", "first_bad", "first_bad_text", "shapes", "timeouts",
          "sports", "markzones", "nat_ports", "sources", "destinations",
          "no_local_addresses")  # fmt: skip


def c_built() -> bool:
    return scanner_module._scan is not None


def make_scan(kind: str) -> Scan:
    """``scan(data: bytes, by_sport=True, local=None, ephemeral=None) -> Tally``.

    An unbuilt C scanner fails the test (scripts/install builds it; CI must test it), unless
    CTGUARD_PURE_PYTHON=1 says this machine has no compiler on purpose."""
    if kind == "c" and not c_built():
        if os.environ.get("CTGUARD_PURE_PYTHON") == "1":
            pytest.skip("CTGUARD_PURE_PYTHON=1: the C scanner is not built here")
        pytest.fail("the C scanner (ctguard.table._scan) is not built: run scripts/install")
    force_python = kind == "python"

    def scan(
        data: bytes,
        by_sport: bool = True,
        local: frozenset[bytes] | None = None,
        ephemeral: tuple[int, int] | None = None,
    ) -> Tally:
        tally = Tally()
        scan_into(data, tally, by_sport, force_python=force_python, local=local,
                  ephemeral=ephemeral)  # fmt: skip
        return tally

    return scan
