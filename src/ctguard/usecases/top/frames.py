"""What ``top`` reads and shows: counter samples, rates, table views, frames.

Plain frozen records (they cross the socket from the probe's worker as pickles) and the
two pure functions that derive them: ``compute_rates`` and ``table_view``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ctguard.model.rates import RATE_COUNTERS, counter_rates

if TYPE_CHECKING:
    from ctguard.table.summary import TableSummary


@dataclass(frozen=True)
class CounterSample:
    """One reading of the cheap numbers, taken on every refresh.

    ``totals`` are cumulative (since boot, namespace creation, or, for ``new``, since the
    event listener started); a name is absent when it cannot be measured here.
    """

    count: int | None
    max: int | None  # the global nf_conntrack_max; 0: unlimited
    totals: Mapping[str, int]
    source: str  # where drop/early_drop/insert_failed come from: procfs, netlink, ""
    new_overflows: int = 0  # times the event socket overflowed: ``new`` is a lower bound
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rates:
    seconds: float  # between the two counter readings
    values: Mapping[str, float | None]  # per second, RATE_COUNTERS order; None: not measured
    new_lower_bound: bool = False


@dataclass(frozen=True)
class TableView:
    """What ``top`` shows of one table read: the top rows of three breakdowns."""

    source: str
    entries: int
    bad_lines: int
    ports: tuple[tuple[str, int, int], ...]  # (protocol, original dport, entries)
    sources: tuple[tuple[str, int], ...]  # (address, entries)
    states: tuple[tuple[str, str, int], ...]  # (protocol, state; "" for stateless, entries)


@dataclass(frozen=True)
class NamespaceShare:
    label: str  # "initial namespace", "netns web1", "pid 42 nginx, container ..."
    inode: int
    count: int | None
    share: float | None  # % of the global max
    error: str = ""


@dataclass(frozen=True)
class TopFrame:
    time: float  # wall clock, seconds since the epoch, of the counter reading
    netns: str | None
    count: int | None
    max: int | None
    rates: Rates | None  # None on the first frame or when counters are missing
    counter_source: str
    table: TableView | None  # None until the first successful table read
    table_age: float | None  # seconds from that read's start to this frame
    table_cost: float | None  # seconds it took
    table_next: float | None  # seconds from this frame until the next read is due
    namespaces: tuple[NamespaceShare, ...] | None  # busiest first; None: not scanned
    notes: tuple[str, ...] = ()

    @property
    def usage_percent(self) -> float | None:
        if self.count is None or not self.max:
            return None
        return round(100.0 * self.count / self.max, 2)


def compute_rates(first: CounterSample, last: CounterSample, seconds: float) -> Rates | None:
    """Per-second increase of each counter between two readings.

    A counter that went down (the namespace was recreated, a counter wrapped) counts 0.

    >>> a = CounterSample(5, 10, {"drop": 4, "new": 100}, "procfs")
    >>> b = CounterSample(5, 10, {"drop": 10, "new": 300}, "procfs")
    >>> compute_rates(a, b, 2.0).values
    {'new': 100.0, 'drop': 3.0, 'early_drop': None, 'insert_failed': None, 'invalid': None}
    """
    if seconds <= 0 or not (first.totals and last.totals):
        return None
    values = counter_rates(first.totals, last.totals, seconds, RATE_COUNTERS)
    return Rates(seconds, values, last.new_overflows > first.new_overflows)


def table_view(summary: TableSummary, source: str, top: int) -> TableView:
    """The rows ``top`` shows from a ``TableSummary`` (most first, ties by key)."""
    ports = sorted(summary.dports.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    states: dict[tuple[str, str], int] = dict(summary.states)
    stateful: dict[str, int] = {}
    for (protocol, _state), count in summary.states.items():
        stateful[protocol] = stateful.get(protocol, 0) + count
    for protocol, count in summary.protocols.items():
        rest = count - stateful.get(protocol, 0)
        if rest > 0:
            states[(protocol, "")] = rest
    ranked_states = sorted(states.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return TableView(
        source=source,
        entries=summary.entries,
        bad_lines=summary.bad_lines,
        ports=tuple((proto, port, count) for (proto, port), count in ports),
        sources=tuple(summary.sources[:top]),
        states=tuple((proto, state, count) for (proto, state), count in ranked_states),
    )
