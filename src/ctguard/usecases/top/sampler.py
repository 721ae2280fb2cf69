"""The sampler: one ``TopFrame`` per refresh from three readers, each on its schedule.

Counters are cheap (one stat file and one sysctl) and are read on every refresh; the
table and the namespace scan only when their schedule (schedule.py) says they are due.
Readers and clocks are parameters, so tests drive the sampler without a kernel.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from ctguard.errors import CtguardError
from ctguard.missing import Missing
from ctguard.usecases.top.frames import (
    CounterSample,
    NamespaceShare,
    TableView,
    TopFrame,
    compute_rates,
)
from ctguard.usecases.top.schedule import TABLE_DUTY, Schedule

T = TypeVar("T")

CounterReader = Callable[[], CounterSample]
TableReader = Callable[[], TableView | Missing]
NamespaceReader = Callable[[], Sequence[NamespaceShare]]


@dataclass
class TopSampler:
    """Produces a ``TopFrame`` per call: counters always, the table when due.

    ``clock`` is monotonic seconds (schedules, rates); ``wall`` stamps frames.
    """

    counters: CounterReader
    table: TableReader
    interval: float
    namespaces: NamespaceReader | None = None
    netns: str | None = None
    duty: float = TABLE_DUTY
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    _last: tuple[float, CounterSample] | None = field(default=None, init=False)
    _view: TableView | None = field(default=None, init=False)
    _table: Schedule = field(default_factory=Schedule, init=False)
    _scan: Schedule = field(default_factory=Schedule, init=False)
    _shares: tuple[NamespaceShare, ...] | None = field(default=None, init=False)
    _table_note: str | None = field(default=None, init=False)
    _scan_note: str | None = field(default=None, init=False)

    def sample(self, table: bool | None = None) -> TopFrame:
        """One frame. ``table``: None reads the table (and scans namespaces) when due,
        True reads it now, False never (the first half of a rate measurement)."""
        now = self.clock()
        stamp = self.wall()
        counters = self.counters()
        rates = None
        if self._last is not None:
            rates = compute_rates(self._last[1], counters, now - self._last[0])
        self._last = (now, counters)
        if table or (table is None and self._table.is_due(self.clock())):
            self._read_table()
        if self.namespaces is not None and (
            table or (table is None and self._scan.is_due(self.clock()))
        ):
            self._scan_namespaces(self.namespaces)
        after = self.clock()
        notes = list(counters.notes)
        notes += [n for n in (self._table_note, self._scan_note) if n]
        t = self._table
        return TopFrame(
            time=stamp,
            netns=self.netns,
            count=counters.count,
            max=counters.max,
            rates=rates,
            counter_source=counters.source,
            table=self._view,
            table_age=None if t.started is None else max(0.0, after - t.started),
            table_cost=t.cost,
            table_next=None if t.due is None else max(0.0, t.due - after),
            namespaces=self._shares,
            notes=tuple(notes),
        )

    def _timed(self, schedule: Schedule, read: Callable[[], T]) -> T:
        start = self.clock()
        try:
            return read()
        finally:
            schedule.record(start, self.clock() - start, self.interval, self.duty)

    def _read_table(self) -> None:
        try:
            result = self._timed(self._table, self.table)
        except CtguardError as exc:
            self._table_note = f"table not read: {exc}"
            return
        if isinstance(result, Missing):
            self._table_note = f"table not read: {result.reason}"
            return
        self._view, self._table_note = result, None
        if result.bad_lines:
            self._table_note = f"{result.bad_lines:,} table lines not understood"

    def _scan_namespaces(self, scan: NamespaceReader) -> None:
        try:
            self._shares = tuple(self._timed(self._scan, scan))
            self._scan_note = None
        except CtguardError as exc:
            self._scan_note = f"namespaces not scanned: {exc}"


def one_frame(
    sampler: TopSampler, interval: float, sleep: Callable[[float], None] = time.sleep
) -> TopFrame:
    """The frame ``top --once`` prints: counters, ``interval`` seconds later counters
    again (for rates; none when 0) and the table, read then whatever its schedule."""
    if interval > 0:
        sampler.sample(table=False)
        sleep(interval)
    return sampler.sample(table=True)
