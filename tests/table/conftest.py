"""The ``scanner`` fixture: every scanner test runs once per implementation.

``python`` is the pure-Python scanner (forced); ``c`` is the C extension (a test fails if it
is not built, see tablescan.make_scan). Both must give the same Tally for the same bytes.
"""

from __future__ import annotations

import pytest
from tablescan import KINDS, Scan, make_scan


@pytest.fixture(params=KINDS)
def scanner(request: pytest.FixtureRequest) -> Scan:
    """``scan(data: bytes, by_sport=True) -> Tally`` with one implementation."""
    return make_scan(request.param)
