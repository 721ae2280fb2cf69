"""``ctguard top``: frames of counters, rates and table composition, at a bounded cost.

``TopSampler`` turns three readers (counters, table, busiest namespaces) into a
``TopFrame`` per refresh. Counters are cheap (one stat file and one sysctl) and are read
on every refresh. The table is not: reading /proc/net/nf_conntrack costs about 2 us per
entry in the kernel plus the scan, ~0.5 s of CPU at 262,144 entries. So a full read is
scheduled adaptively:

    after a table read that started at ``t`` and took ``cost`` seconds, the next one is
    due no sooner than ``t + max(interval, cost / TABLE_DUTY)``

which keeps table reading at no more than ``TABLE_DUTY`` (15 %) of one core on average,
whatever the table's size: a 1,000-entry table is re-read on every refresh, a 10-million
entry one every minute or so. The namespace scan (one fork per namespace) has its own
schedule under the same rule. Readers and clocks are parameters, so tests drive the
sampler without a kernel.

The live readers run in a ``ProbeProcess``: one helper process forked at start that
joins the namespace once (setns) and then answers requests over a socket pair. It also
holds the ctnetlink NEW-event listener that the ``new`` rate counts (since 5.10 no
counter counts created entries, see host/ct_events.py), and drains it between requests,
so no event is missed between refreshes and no process is forked per refresh.
"""

from __future__ import annotations

import errno
import os
import pickle
import select
import signal
import socket
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from ctguard.errors import CtguardError, HostAccessError
from ctguard.host.commands import Commands, LiveCommands
from ctguard.host.ct_events import count_messages, open_new_events_socket
from ctguard.host.root import SMALL_FILE_BYTES, HostRoot
from ctguard.missing import Missing
from ctguard.model.rates import RATE_COUNTERS, STAT_COUNTERS, counter_rates
from ctguard.sources.sysctl_runtime import COUNT_FILE, read_global_max

if TYPE_CHECKING:
    from ctguard.table.summary import TableSummary

T = TypeVar("T")

TABLE_DUTY = 0.15  # share of one core that table reads (and namespace scans) may take
EVENTS_SYSCTL = "/proc/sys/net/netfilter/nf_conntrack_events"


# -- records ------------------------------------------------------------------------------


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


# -- pure helpers -------------------------------------------------------------------------


def next_due(start: float, cost: float, interval: float, duty: float = TABLE_DUTY) -> float:
    """When the next read may start, so that reads take at most ``duty`` of the time.

    >>> next_due(100.0, 0.12, 2.0)  # cheap: every refresh
    102.0
    >>> round(next_due(100.0, 0.6, 2.0), 6)  # 0.6 s a read: every 4 s (15 %)
    104.0
    """
    return start + max(interval, cost / duty)


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


# -- the sampler --------------------------------------------------------------------------

CounterReader = Callable[[], CounterSample]
TableReader = Callable[[], "TableView | Missing"]
NamespaceReader = Callable[[], Sequence[NamespaceShare]]


@dataclass
class _Schedule:
    """One adaptively scheduled reading (the table, or the namespace scan)."""

    due: float | None = None  # clock time; None: never read, due now
    started: float | None = None
    cost: float | None = None

    def is_due(self, now: float) -> bool:
        return self.due is None or now >= self.due


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
    _table: _Schedule = field(default_factory=_Schedule, init=False)
    _scan: _Schedule = field(default_factory=_Schedule, init=False)
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

    def _timed(self, schedule: _Schedule, read: Callable[[], T]) -> T:
        start = self.clock()
        try:
            return read()
        finally:
            cost = self.clock() - start
            schedule.started, schedule.cost = start, cost
            schedule.due = next_due(start, cost, self.interval, self.duty)

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


# -- live readers: run in the namespace being watched -------------------------------------


class NewEventCounter:
    """Counts ctnetlink NEW events, one per entry the kernel creates, while it is open."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.total = 0
        self.overflows = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def drain(self) -> None:
        """Count what is queued, without blocking."""
        while True:
            try:
                data = self.sock.recv(1 << 17, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                self.overflows += 1  # the kernel dropped events: the rate is a lower bound
                continue
            self.total += count_messages(data)

    def close(self) -> None:
        self.sock.close()


def open_new_events(host: HostRoot) -> NewEventCounter | Missing:
    """A listener on NFNLGRP_CONNTRACK_NEW in the caller's namespace, or why not."""
    from ctguard.sources.modules import ctnetlink_absent_reason

    blocked = ctnetlink_absent_reason(host)
    if blocked:
        return Missing(blocked)
    setting = host.try_read_text(EVENTS_SYSCTL, SMALL_FILE_BYTES)
    if not isinstance(setting, Missing) and setting.strip() == "0":
        return Missing("nf_conntrack_events is 0, the kernel announces no new entries")
    sock = open_new_events_socket()
    return sock if isinstance(sock, Missing) else NewEventCounter(sock)


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


# -- the helper process -------------------------------------------------------------------

_LENGTH = struct.Struct("!Q")
_JOBS = {b"c": "counters", b"t": "table"}


def _serve(conn: socket.socket, probe: Probe, label: str) -> None:
    """The helper's loop: drain events while idle, answer one request at a time."""
    while True:
        watched: list[Any] = [conn]
        events = probe.fileno()
        if events is not None:
            watched.append(events)
        ready, _, _ = select.select(watched, [], [])
        if events is not None and events in ready:
            probe.drain()
        if conn not in ready:
            continue
        request = conn.recv(1)
        if not request or request not in _JOBS:
            return  # the parent closed its end (or exited): so do we
        try:
            reply: tuple[str, object] = ("ok", getattr(probe, _JOBS[request])())
        except CtguardError as exc:
            reply = ("error", str(exc))
        except Exception as exc:
            reply = ("error", f"in {label}: {type(exc).__name__}: {exc}")
        payload = pickle.dumps(reply)
        conn.sendall(_LENGTH.pack(len(payload)) + payload)


class ProbeProcess:
    """A ``Probe`` in a helper process, inside a network namespace or in ours.

    Forked once; the child joins the namespace (``ns_path``, an nsfs file) with setns(2)
    and serves requests until the parent closes its socket, exits or is killed (the
    child then reads end-of-file), so ctguard's own process never changes namespace.
    """

    def __init__(self, source: str, top: int, ns_path: str | None = None, label: str = "") -> None:
        from ctguard.host.netns_child import enter_netns, open_netns_fd

        self.label = label or "this namespace"
        ns_fd = open_netns_fd(ns_path, self.label) if ns_path else None
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            pid = os.fork()
        except BaseException:
            for s in (parent, child):
                s.close()
            if ns_fd is not None:
                os.close(ns_fd)
            raise
        if pid == 0:  # child: whatever happens, it ends here with os._exit
            status = 1
            try:
                # Ctrl-C reaches the whole process group: the parent decides, we follow
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGHUP, signal.SIG_DFL)
                parent.close()
                start_error = None
                try:
                    if ns_fd is not None:
                        enter_netns(ns_fd)
                        os.close(ns_fd)
                    probe = Probe(source, top)
                except Exception as exc:
                    start_error = f"cannot read inside {self.label}: {exc}"
                if start_error is not None:
                    payload = pickle.dumps(("error", start_error))
                    child.sendall(_LENGTH.pack(len(payload)) + payload)
                else:
                    payload = pickle.dumps(("ok", None))
                    child.sendall(_LENGTH.pack(len(payload)) + payload)
                    _serve(child, probe, self.label)
                status = 0
            except BaseException:  # noqa: S110 - the parent reports a helper that died
                pass
            finally:
                os._exit(status)
        child.close()
        if ns_fd is not None:
            os.close(ns_fd)
        self.pid: int | None = pid
        self.conn = parent
        try:
            self._reply(30.0)  # started, in the namespace
        except CtguardError:
            self.close()
            raise

    def _recv_exactly(self, size: int, deadline: float) -> bytes:
        chunks: list[bytes] = []
        while size > 0:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.conn], [], [], max(0.0, left))
            if not ready:
                raise CtguardError(f"reading inside {self.label} timed out")
            chunk = self.conn.recv(min(size, 1 << 20))
            if not chunk:
                raise CtguardError(f"reading inside {self.label} failed (the helper died)")
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def _reply(self, timeout: float) -> object:
        """The next answer; a failed job raises its message, a failed helper is stopped
        (its state is unknown, it is never reused) and raises why."""
        deadline = time.monotonic() + timeout
        try:
            (size,) = _LENGTH.unpack(self._recv_exactly(_LENGTH.size, deadline))
            kind, value = pickle.loads(self._recv_exactly(size, deadline))  # noqa: S301
        except BaseException:
            self.close()
            raise
        if kind == "error":
            raise CtguardError(str(value))
        return value

    def _call(self, request: bytes, timeout: float) -> object:
        try:
            self.conn.sendall(request)
        except OSError as exc:
            raise CtguardError(f"reading inside {self.label} failed (the helper died)") from exc
        return self._reply(timeout)

    def counters(self) -> CounterSample:
        sample = self._call(b"c", 30.0)
        assert isinstance(sample, CounterSample)
        return sample

    def table(self) -> TableView | Missing:
        view = self._call(b"t", 600.0)
        assert isinstance(view, TableView | Missing)
        return view

    def close(self) -> None:
        """Stop the helper: EOF first, then SIGTERM, then SIGKILL."""
        self.conn.close()
        pid, self.pid = self.pid, None
        if pid is None:
            return
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            if os.waitpid(pid, os.WNOHANG) != (0, 0):
                return
            time.sleep(0.01)
        os.kill(pid, signal.SIGTERM)
        time.sleep(0.2)
        if os.waitpid(pid, os.WNOHANG) == (0, 0):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)

    def __enter__(self) -> ProbeProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def with_global_max(read: CounterReader, host: HostRoot | None = None) -> CounterReader:
    """``read``, with the global max read here (in the initial namespace) each time."""
    root = host or HostRoot("/")

    def counters() -> CounterSample:
        return replace(read(), max=read_global_max(root))

    return counters


def busiest_namespaces(maximum: Callable[[], int | None], top: int) -> NamespaceReader:
    """A reader of the ``top`` namespaces with the most entries (a fork per namespace)."""

    def scan() -> list[NamespaceShare]:
        from ctguard.host.namespaces import list_namespaces, namespace_usage

        limit = maximum() or 0
        try:
            usages = namespace_usage(list_namespaces(), limit, each=2.0, total=10.0)
        except OSError as exc:
            raise HostAccessError(f"listing namespaces: {exc.strerror or exc}") from exc
        shares = []
        for u in usages[:top]:
            ns = u.namespace
            shares.append(NamespaceShare(ns.holder, ns.inode, u.count, u.share(), u.error))
        return shares

    return scan
