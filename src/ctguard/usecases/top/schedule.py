"""When ``top`` may read the table again, so that reading it never becomes the load.

Reading /proc/net/nf_conntrack costs about 2 us per entry in the kernel plus the scan,
~0.5 s of CPU at 262,144 entries. So a full read is scheduled adaptively:

    after a read that started at ``t`` and took ``cost`` seconds, the next one is due
    no sooner than ``t + max(interval, cost / TABLE_DUTY)``

which keeps table reading at no more than ``TABLE_DUTY`` (15 %) of one core on average,
whatever the table's size: a 1,000-entry table is re-read on every refresh, a 10-million
entry one every minute or so. The namespace scan (one fork per namespace) has its own
schedule under the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass

TABLE_DUTY = 0.15  # share of one core that table reads (and namespace scans) may take


def next_due(start: float, cost: float, interval: float, duty: float = TABLE_DUTY) -> float:
    """When the next read may start, so that reads take at most ``duty`` of the time.

    >>> next_due(100.0, 0.12, 2.0)  # cheap: every refresh
    102.0
    >>> round(next_due(100.0, 0.6, 2.0), 6)  # 0.6 s a read: every 4 s (15 %)
    104.0
    """
    return start + max(interval, cost / duty)


@dataclass
class Schedule:
    """One adaptively scheduled reading (the table, or the namespace scan)."""

    due: float | None = None  # clock time; None: never read, due now
    started: float | None = None
    cost: float | None = None

    def is_due(self, now: float) -> bool:
        return self.due is None or now >= self.due

    def record(self, start: float, cost: float, interval: float, duty: float) -> None:
        self.started, self.cost = start, cost
        self.due = next_due(start, cost, interval, duty)
