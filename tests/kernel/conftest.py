"""Real-kernel fixture: a fresh network namespace per test, always deleted (netns_helpers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from netns_helpers import Netns, tracking_netns, why_no_kernel


@pytest.fixture
def netns() -> Iterator[Netns]:
    why = why_no_kernel()
    if why:
        pytest.skip(why)
    with tracking_netns("ctgt") as ns:
        yield ns
