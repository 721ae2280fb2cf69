"""Real-kernel fixture for any test that asks for it: a fresh network namespace, always
deleted (netns_helpers.tracking_netns)."""

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
