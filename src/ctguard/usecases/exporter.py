"""``ctguard exporter``: one reading of the target as plain numbers, for the metrics.

``Sampler.sample()`` reads the target on each call (a scrape; there is no background
loop): table size, counters, memory and timeouts every time, through the same homes
``status`` uses; the CT301 drift of those running values from the sysctl files; and the
findings of the doctor rules that need no table scan. The findings and the sysctl files are
re-read at most every ``doctor_interval`` seconds and kept in between. A source that cannot
be read is reported as down, never as a failed sample.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from ctguard.facts import read_safely
from ctguard.findings import Status
from ctguard.host.target import Opened
from ctguard.missing import Missing
from ctguard.model.values import setting_drift
from ctguard.rules import run_rules
from ctguard.sources.kernel import read_kernel
from ctguard.sources.meminfo import read_meminfo
from ctguard.sources.modules import ConntrackPresence, read_conntrack_presence
from ctguard.sources.slab import read_slab
from ctguard.sources.stats import ConntrackStats, read_stats, stats_source
from ctguard.sources.sysctl_conf import SysctlConfig, read_sysctl_config
from ctguard.sources.sysctl_runtime import MAX_FILE, ConntrackSysctls, read_conntrack_sysctls
from ctguard.table.whatif import current_timeouts
from ctguard.usecases.exporter_netns import NamespacesReader, NamespacesSample
from ctguard.usecases.read_facts import read_facts, snapshot_netns
from ctguard.usecases.status import StatusInputs, build_status

DEFAULT_DOCTOR_INTERVAL = 300.0  # seconds the findings are kept between evaluations
# seconds a scrape waits for the rules before serving the last findings; with --netns all's
# budget (exporter_netns.BUDGET) a scrape stays under Prometheus' default 10 s timeout
DOCTOR_WAIT = 4.0
SYSCTL_PREFIX = "net.netfilter."


@dataclass(frozen=True)
class ExporterSample:
    """What one scrape found; None / absent keys where the input was not there."""

    entries: int | None
    max: int | None
    buckets: int | None
    stats: Mapping[str, int]  # canonical column -> sum over CPUs
    stats_source: str  # "procfs", "netlink" or "none"
    memory_bytes: int | None
    full_memory_bytes: int | None
    full_memory_ratio: float | None
    timeouts: Mapping[str, int]  # "tcp_timeout_established" -> seconds
    drift: Mapping[str, bool]  # "net.netfilter.nf_conntrack_max" -> differs (CT301)
    findings: tuple[tuple[str, str], ...]  # (id, severity) of the rules that found something
    sources_up: Mapping[str, bool]  # source -> read
    duration: float  # seconds this sample took
    namespaces: NamespacesSample | None = None  # --netns all: the other namespaces


def timeouts_of(sysctls: ConntrackSysctls | Missing) -> dict[str, int]:
    """The running flow timeouts, named without the prefix (whatif.current_timeouts)."""
    if isinstance(sysctls, Missing):
        return {}
    return current_timeouts(sysctls.values)


def _presence(opened: Opened) -> ConntrackPresence:
    read = read_safely(read_conntrack_presence, opened.host)
    if isinstance(read, Missing):
        return ConntrackPresence("unknown", opened.host.exists(MAX_FILE), evidence=read.reason)
    return read


Findings = tuple[tuple[str, str], ...]


class Sampler:
    """Reads the opened target on each ``sample()``; findings are cached for
    ``doctor_interval`` seconds and waited for at most ``doctor_wait`` seconds."""

    def __init__(
        self,
        opened: Opened,
        doctor_interval: float = DEFAULT_DOCTOR_INTERVAL,
        doctor_wait: float = DOCTOR_WAIT,
        clock: Callable[[], float] = time.monotonic,
        namespaces: NamespacesReader | None = None,
    ) -> None:
        self.opened = opened
        self.namespaces = namespaces
        # once: Opened.commands makes a new LiveCommands, a copy of the environment, per call
        self.commands = opened.commands
        self.doctor_interval = doctor_interval
        self.doctor_wait = doctor_wait
        self.clock = clock
        self.netns = None if opened.target.live else snapshot_netns(opened.host)
        self._findings: Findings | None = None
        self._evaluated: float | None = None
        self._pending: Future[Findings] | None = None
        self._config: SysctlConfig | Missing = Missing("not read yet")
        self._config_read: float | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ctguard-doctor")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self.namespaces is not None:
            self.namespaces.close()

    def _evaluate(self) -> Findings:
        facts = read_facts(self.opened, table=False)
        return tuple((f.id, f.severity.value) for f in run_rules(facts) if f.status is Status.FOUND)

    def findings(self) -> tuple[Findings, bool]:
        """The findings and whether they are fresh (evaluated within the interval)."""
        now = self.clock()
        due = self._evaluated is None or now - self._evaluated >= self.doctor_interval
        if due and self._pending is None:
            self._pending = self._pool.submit(self._evaluate)
        if self._pending is not None:
            try:
                result = self._pending.result(timeout=self.doctor_wait)
            except FutureTimeout:
                return self._findings or (), False  # still running: served next time
            except Exception:  # the rules could not run: the cache stays, marked down
                self._pending = None
                self._evaluated = now
                return self._findings or (), False
            self._pending = None
            self._findings, self._evaluated = result, now
        return self._findings or (), True

    def sysctl_config(self) -> SysctlConfig | Missing:
        """The sysctl files, re-read at most every ``doctor_interval`` seconds.

        They change when an admin edits them; what drifts (CT301) is the running values,
        read on every scrape. Listing and parsing the files was the largest part of a scrape
        (0.2 of 0.9 ms, bench/exporter.py), and the drift alert waits 10 minutes, longer
        than the default interval, so files just edited raise no alert."""
        now = self.clock()
        if self._config_read is None or now - self._config_read >= self.doctor_interval:
            self._config = read_safely(read_sysctl_config, self.opened.host)
            self._config_read = now
        return self._config

    def sample(self) -> ExporterSample:
        start = time.perf_counter()
        host, commands = self.opened.host, self.commands
        presence = _presence(self.opened)
        sysctls = read_safely(read_conntrack_sysctls, host)
        stats: ConntrackStats | Missing = Missing("conntrack not loaded")
        if presence.loaded:
            stats = read_safely(read_stats, host, commands)
        meminfo = read_safely(read_meminfo, host)
        config = self.sysctl_config()
        inputs = StatusInputs(
            sysctls=sysctls,
            presence=presence,
            meminfo=meminfo,
            slab=read_safely(read_slab, host),
            kernel=read_safely(read_kernel, host, commands),
            first=stats,
            last=stats,
            elapsed=0.0,
        )
        report = build_status(inputs, self.netns)
        memory = report.memory
        full_ratio = None
        if memory is not None and memory.at_max is not None and memory.mem_total:
            full_ratio = memory.at_max / memory.mem_total
        # CT301 compares the files with the initial namespace only (see rules/persistence)
        drift = {} if self.netns is not None else setting_drift(config, sysctls)
        findings, fresh = self.findings()
        up = {
            "meminfo": not isinstance(meminfo, Missing),
            "sysctl_files": not isinstance(config, Missing),
            "doctor": fresh,
        }
        if presence.loaded:  # nothing to read while conntrack is not loaded
            up["sysctls"] = not isinstance(sysctls, Missing)
            up["stats"] = not isinstance(stats, Missing)
        others = self.namespaces.sample() if self.namespaces is not None else None
        return ExporterSample(
            entries=report.count,
            max=report.max,
            buckets=report.buckets,
            stats=dict(stats.totals) if isinstance(stats, ConntrackStats) else {},
            stats_source=stats_source(stats),
            memory_bytes=None if memory is None else memory.at_count,
            full_memory_bytes=None if memory is None else memory.at_max,
            full_memory_ratio=full_ratio,
            timeouts=timeouts_of(sysctls) if presence.loaded else {},
            drift={SYSCTL_PREFIX + name: d for name, d in drift.items()},
            findings=findings,
            sources_up=dict(sorted(up.items())),
            duration=time.perf_counter() - start,
            namespaces=others,
        )
