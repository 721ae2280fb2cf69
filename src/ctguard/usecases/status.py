"""``ctguard status``: one reading of the table's size, memory and counter rates.

``status(target, interval)`` is the command. ``gather`` reads the host (twice,
``interval`` apart, for rates); ``build_status`` is pure and turns those readings into a
``StatusReport`` that the renderers only format.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from ctguard.errors import CtguardError
from ctguard.host.commands import Commands
from ctguard.host.ct_events import NewEvents, count_new_events
from ctguard.host.root import HostRoot
from ctguard.host.target import Target, open_target
from ctguard.missing import Missing
from ctguard.model.rates import STAT_COUNTERS, counter_rates, per_second
from ctguard.model.sizing import entry_cost, table_bytes
from ctguard.sources.kernel import KernelVersion, read_kernel
from ctguard.sources.meminfo import Meminfo, read_meminfo
from ctguard.sources.modules import (
    ConntrackPresence,
    ctnetlink_absent_reason,
    read_conntrack_presence,
)
from ctguard.sources.slab import SlabSizes, read_slab
from ctguard.sources.stats import ConntrackStats, read_stats
from ctguard.sources.sysctl_runtime import ConntrackSysctls, read_conntrack_sysctls

# Counters shown as rates. "new" comes from ctnetlink NEW events where they could be
# counted (host/ct_events.py); the procfs `new` column only counts before 5.10.
NOT_MEASURED = Missing("not measured")


@dataclass(frozen=True)
class StatusInputs:
    sysctls: ConntrackSysctls | Missing
    presence: ConntrackPresence
    meminfo: Meminfo | Missing
    slab: SlabSizes | Missing
    kernel: KernelVersion | Missing
    first: ConntrackStats | Missing
    last: ConntrackStats | Missing
    elapsed: float  # seconds between the two counter readings; 0 = totals
    new_events: NewEvents | Missing = NOT_MEASURED

    def with_globals(self, globals_: ConntrackSysctls | Missing) -> StatusInputs:
        """Replace global keys (max, buckets) by the initial namespace's values."""
        if isinstance(globals_, Missing) or isinstance(self.sysctls, Missing):
            return self
        return replace(self, sysctls=self.sysctls.with_globals_of(globals_))


def _sleep_only(seconds: float, why: str = "not counted from a snapshot") -> NewEvents | Missing:
    time.sleep(seconds)
    return Missing(why)


def gather(
    host: HostRoot,
    commands: Commands,
    interval: float,
    wait: Callable[[float], NewEvents | Missing] = _sleep_only,
) -> StatusInputs:
    """Read everything status needs; counters twice when ``interval`` > 0.

    ``wait`` passes the interval (live: counting ctnetlink NEW events meanwhile).
    """
    sysctls = read_conntrack_sysctls(host)
    presence = read_conntrack_presence(host)
    first = read_stats(host, commands) if presence.loaded else Missing("conntrack not loaded")
    last, elapsed = first, 0.0
    new_events: NewEvents | Missing = Missing("totals mode")
    if interval > 0 and not isinstance(first, Missing):
        start = time.monotonic()
        blocked = ctnetlink_absent_reason(host) if host.is_live else None
        new_events = _sleep_only(interval, blocked) if blocked else wait(interval)
        last = read_stats(host, commands)
        elapsed = time.monotonic() - start
        if not isinstance(last, Missing):
            # the count is read after the second sample so it is as fresh as the rates
            sysctls = read_conntrack_sysctls(host)
    return StatusInputs(
        sysctls=sysctls,
        presence=presence,
        meminfo=read_meminfo(host),
        slab=read_slab(host),
        kernel=read_kernel(host, commands),
        first=first,
        last=last,
        elapsed=elapsed,
        new_events=new_events,
    )


@dataclass(frozen=True)
class MemoryEstimate:
    mem_total: int
    entry_bytes: int
    entry_source: str
    at_count: int | None
    at_max: int | None

    def percent(self, value: int | None) -> float | None:
        return None if value is None else round(100.0 * value / self.mem_total, 2)


@dataclass(frozen=True)
class Counters:
    source: str
    mode: str  # "rate" (per second over interval) or "total" (since boot/netns creation)
    interval: float
    values: Mapping[str, float | None]


@dataclass(frozen=True)
class StatusReport:
    netns: str | None
    kernel: str | None
    presence: ConntrackPresence
    count: int | None
    max: int | None
    buckets: int | None
    memory: MemoryEstimate | None
    counters: Counters | None
    sysctls: Mapping[str, int]
    notes: tuple[str, ...]

    @property
    def usage_percent(self) -> float | None:
        if self.count is None or not self.max:
            return None
        return round(100.0 * self.count / self.max, 2)

    @property
    def entries_per_bucket(self) -> float | None:
        if self.max is None or not self.buckets:
            return None
        return round(self.max / self.buckets, 2)


def _new_value(inputs: StatusInputs, notes: list[str]) -> float | None:
    """Entries created: events per second when counted, else the pre-5.10 counter."""
    events = inputs.new_events
    sysctls = inputs.sysctls
    events_off = isinstance(sysctls, ConntrackSysctls) and sysctls.get("nf_conntrack_events") == 0
    if inputs.elapsed > 0 and events_off:
        events = Missing("nf_conntrack_events is 0, the kernel announces no new entries")
    if inputs.elapsed > 0 and isinstance(events, NewEvents):
        if events.lower_bound:
            notes.append("new: ctnetlink dropped events, the rate is a lower bound")
        return round(events.count / inputs.elapsed, 2)
    kernel = inputs.kernel
    old_counter = isinstance(kernel, KernelVersion) and not kernel.at_least(5, 10)
    first, last = inputs.first, inputs.last
    if old_counter and isinstance(first, ConntrackStats) and isinstance(last, ConntrackStats):
        a, b = first.get("new"), last.get("new")
        if a is not None and b is not None:
            rate = per_second(a, b, inputs.elapsed)
            return round(rate, 2) if rate is not None else b
    if inputs.elapsed > 0 and isinstance(events, Missing):
        notes.append(f"new: not measured ({events.reason})")
    return None


def _counters(inputs: StatusInputs, notes: list[str]) -> Counters | None:
    first, last = inputs.first, inputs.last
    if isinstance(first, Missing) or isinstance(last, Missing):
        reason = first.reason if isinstance(first, Missing) else getattr(last, "reason", "")
        notes.append(f"counters unavailable: {reason}")
        return None
    if first.fallback_reason:
        notes.append(f"counters read from {first.source}: {first.fallback_reason}")
    values: dict[str, float | None] = {"new": _new_value(inputs, notes)}
    if inputs.elapsed > 0:
        before = {name: v for name in STAT_COUNTERS if (v := first.get(name)) is not None}
        after = {name: v for name in STAT_COUNTERS if (v := last.get(name)) is not None}
        rates = counter_rates(before, after, inputs.elapsed, STAT_COUNTERS)
        values.update({name: None if r is None else round(r, 2) for name, r in rates.items()})
    else:
        values.update({name: last.get(name) for name in STAT_COUNTERS})
    mode = "rate" if inputs.elapsed > 0 else "total"
    return Counters(first.source, mode, round(inputs.elapsed, 3), values)


def build_status(inputs: StatusInputs, netns: str | None = None) -> StatusReport:
    notes: list[str] = []
    sysctls = inputs.sysctls
    values: Mapping[str, int] = {}
    count = maximum = buckets = None
    if isinstance(sysctls, ConntrackSysctls):
        values = sysctls.values
        count, maximum, buckets = sysctls.count, sysctls.max, sysctls.buckets
        notes += sysctls.notes  # a negative max read as unsigned, as the kernel does
    elif inputs.presence.loaded:
        notes.append(f"sysctls unavailable: {sysctls.reason}")
    if count is None:
        stats = inputs.last if not isinstance(inputs.last, Missing) else None
        count = stats.entries if stats else None
    if maximum == 0:
        notes.append("nf_conntrack_max is 0: the table is unlimited, only memory bounds it")
    memory = None
    if isinstance(inputs.meminfo, Meminfo) and inputs.presence.loaded:
        cost = entry_cost(inputs.slab, inputs.kernel, sysctls)
        if isinstance(inputs.slab, Missing):
            notes.append(f"entry size estimated: {inputs.slab.reason}")
        memory = MemoryEstimate(
            mem_total=inputs.meminfo.mem_total,
            entry_bytes=cost.bytes,
            entry_source=cost.source,
            at_count=table_bytes(count, buckets or 0, cost) if count is not None else None,
            at_max=table_bytes(maximum, buckets or 0, cost) if maximum else None,
        )
    elif isinstance(inputs.meminfo, Missing):
        notes.append(f"memory unknown: {inputs.meminfo.reason}")
    counters = _counters(inputs, notes) if inputs.presence.loaded else None
    if not inputs.presence.loaded:
        notes.append("nf_conntrack is not loaded: nothing is tracked")
    kernel = inputs.kernel.release if isinstance(inputs.kernel, KernelVersion) else None
    return StatusReport(
        netns=netns,
        kernel=kernel,
        presence=inputs.presence,
        count=count,
        max=maximum,
        buckets=buckets,
        memory=memory,
        counters=counters,
        sysctls=values,
        notes=tuple(notes),
    )


def status(target: Target, interval: float = 1.0) -> StatusReport:
    """Size, memory and counters of the target; rates over ``interval`` seconds when live
    (a snapshot has totals only)."""
    from ctguard.sources.manifest import read_manifest

    try:
        with open_target(target) as opened:
            if not target.live:
                manifest = read_manifest(opened.host)
                inputs = gather(opened.host, opened.commands, interval=0)
                return build_status(inputs, netns=manifest.netns if manifest else None)
            if target.netns is not None:
                inside = opened.run(
                    lambda host, commands: gather(host, commands, interval, count_new_events),
                    timeout=interval + 60,
                )
                init = read_conntrack_sysctls(opened.host)  # the initial namespace
                return build_status(inside.with_globals(init), netns=target.netns)
            return build_status(gather(opened.host, opened.commands, interval, count_new_events))
    except OSError as exc:
        raise CtguardError(f"{exc.filename or 'reading host'}: {exc.strerror or exc}") from None
