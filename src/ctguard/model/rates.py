"""Counter rates, computed one way for ``status`` and ``top``.

``new`` is entries created (from ctnetlink NEW events, or the stat file's ``new`` column,
which counts only before 5.10); the others are the stat file's per-CPU sums.
"""

from __future__ import annotations

from collections.abc import Mapping

# every counter shown as a rate, in display order
RATE_COUNTERS = ("new", "drop", "early_drop", "insert_failed", "invalid")
STAT_COUNTERS = RATE_COUNTERS[1:]  # read from the stat file (or ctnetlink's stats)


def per_second(before: int | None, after: int | None, seconds: float) -> float | None:
    """The counter's increase per second; a counter that went down (the namespace was
    recreated, a counter wrapped) counts 0; None when either reading is missing.

    >>> per_second(4, 10, 2.0), per_second(10, 4, 2.0), per_second(None, 4, 2.0)
    (3.0, 0.0, None)
    """
    if before is None or after is None or seconds <= 0:
        return None
    return max(0, after - before) / seconds


def counter_rates(
    before: Mapping[str, int], after: Mapping[str, int], seconds: float, names: tuple[str, ...]
) -> dict[str, float | None]:
    """``per_second`` of each named counter, in the order given.

    >>> counter_rates({"drop": 4}, {"drop": 10}, 2.0, ("drop", "invalid"))
    {'drop': 3.0, 'invalid': None}
    """
    return {name: per_second(before.get(name), after.get(name), seconds) for name in names}
