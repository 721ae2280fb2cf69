"""The probe: reads the namespace it runs in, and its face in the process that asks.

``Probe`` runs inside a ``NetnsWorker`` (host/netns_worker.py): the worker's child joins
the namespace once and keeps the probe, with its ctnetlink NEW-event listener, for as
long as ``top`` runs. The child drains that listener whenever no call is pending, so no
event is missed between refreshes and no process is forked per refresh. ``RemoteProbe``
asks it for counters and the table, with a timeout each.
"""

from __future__ import annotations

from ctguard.host.commands import Commands, LiveCommands
from ctguard.host.netns_worker import NetnsWorker
from ctguard.host.root import SMALL_FILE_BYTES, HostRoot
from ctguard.missing import Missing
from ctguard.model.rates import STAT_COUNTERS
from ctguard.sources.sysctl_runtime import COUNT_FILE
from ctguard.usecases.top.frames import CounterSample, TableView, table_view
from ctguard.usecases.top.new_events import NewEventCounter, open_new_events

COUNTERS_TIMEOUT = 30.0  # seconds: one stat file and one sysctl
TABLE_TIMEOUT = 600.0  # seconds: a 10-million entry table, read and scanned


class Probe:
    """Reads the namespace the calling process is in: counters, events, the table."""

    def __init__(self, source: str, top: int, host: HostRoot | None = None) -> None:
        from ctguard.sources.kernel import KernelVersion, read_kernel

        self.source = source
        self.top = top
        self.host = host or HostRoot("/")
        self.commands: Commands = LiveCommands()
        self.events = open_new_events(self.host)
        kernel = read_kernel(self.host, self.commands)
        # the procfs `new` column counts created entries only before 5.10 and stays 0
        # after (as status.py notes), so it stands in for events only on older kernels
        self.old_new_counter = isinstance(kernel, KernelVersion) and not kernel.at_least(5, 10)

    def fileno(self) -> int | None:
        return self.events.fileno() if isinstance(self.events, NewEventCounter) else None

    def drain(self) -> None:
        if isinstance(self.events, NewEventCounter):
            self.events.drain()

    def counters(self) -> CounterSample:
        from ctguard.sources.stats import read_stats

        notes: list[str] = []
        stats = read_stats(self.host, self.commands)
        totals: dict[str, int] = {}
        source = ""
        count: int | None = None
        if isinstance(stats, Missing):
            notes.append(f"counters unavailable: {stats.reason}")
        else:
            source = stats.source
            count = stats.entries
            for name in STAT_COUNTERS:
                value = stats.get(name)
                if value is not None:
                    totals[name] = value
            old = stats.get("new")
            if (
                self.old_new_counter
                and old is not None
                and not isinstance(self.events, NewEventCounter)
            ):
                totals["new"] = old
        overflows = 0
        if isinstance(self.events, NewEventCounter):
            self.events.drain()
            totals["new"] = self.events.total
            overflows = self.events.overflows
        elif "new" not in totals:
            notes.append(f"new: not measured ({self.events.reason})")
        text = self.host.try_read_text(COUNT_FILE, SMALL_FILE_BYTES)
        if not isinstance(text, Missing) and text.strip().isdigit():
            count = int(text.strip())  # fresher than the stat file's, same number
        return CounterSample(count, None, totals, source, overflows, tuple(notes))

    def table(self) -> TableView | Missing:
        from ctguard.table.source import read_table
        from ctguard.table.summary import summarize

        read = read_table(self.host, self.commands, self.source, False, False)
        if isinstance(read, Missing):
            return read
        return table_view(summarize(read.tally, self.top), read.source, self.top)

    def close(self) -> None:
        if isinstance(self.events, NewEventCounter):
            self.events.close()


class RemoteProbe:
    """A ``Probe`` in ``worker``'s child, asked over its socket."""

    def __init__(self, worker: NetnsWorker) -> None:
        self.worker = worker

    def counters(self) -> CounterSample:
        sample = self.worker.call("counters", COUNTERS_TIMEOUT)
        if not isinstance(sample, CounterSample):
            raise TypeError(f"counters returned {type(sample).__name__}")
        return sample

    def table(self) -> TableView | Missing:
        view = self.worker.call("table", TABLE_TIMEOUT)
        if not isinstance(view, TableView | Missing):
            raise TypeError(f"table returned {type(view).__name__}")
        return view
