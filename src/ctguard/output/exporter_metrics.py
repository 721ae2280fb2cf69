"""The exporter's metrics: a prometheus_client collector that takes one ``ExporterSample``
per scrape and renders it under the names of ``metric_names`` (docs/exporter.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ctguard import __version__
from ctguard.output import metric_names as names
from ctguard.usecases.exporter import ExporterSample

STATS_SOURCES = ("procfs", "netlink", "none")

_STAT_HELP = {
    "found": "Lookups that found an entry",
    "invalid": "Packets conntrack could not track (malformed, out of window)",
    "ignore": "Packets already tracked or untracked (NOTRACK)",
    "insert": "Entries inserted into the table",
    "insert_failed": "Entries that could not be inserted (clash not resolved)",
    "drop": "Packets dropped because a new entry could not be allocated (table full)",
    "early_drop": "Entries evicted early to make room in a full table",
    "error": "ICMP errors that matched no entry, or malformed ones",
    "search_restart": "Lookups restarted after a concurrent table resize",
    "clash_resolve": "Insert clashes resolved without a drop",
    "chaintoolong": "Inserts refused because a hash chain was too long",
}


def _gauge(name: str, doc: str, value: float | None) -> Iterator[Metric]:
    if value is not None:
        family = GaugeMetricFamily(name, doc)
        family.add_metric([], value)
        yield family


def _labelled(
    name: str, doc: str, label: str, rows: Iterable[tuple[str, float]]
) -> GaugeMetricFamily:
    """A gauge with one label, a series per (label value, value) row."""
    family = GaugeMetricFamily(name, doc, labels=[label])
    for key, value in rows:
        family.add_metric([key], value)
    return family


NETNS_LABELS = ("netns", "container_id", "pod_uid")
HOST = ("", "", "")  # the namespace the exporter runs in: no netns label


@dataclass(frozen=True)
class NamespaceReading:
    entries: int | None
    stats: Mapping[str, int]
    stats_source: str


def _per_netns(sample: ExporterSample) -> Iterator[tuple[tuple[str, ...], NamespaceReading]]:
    """(netns label values, reading) for the host, then each namespace read (--netns all)."""
    yield HOST, NamespaceReading(sample.entries, sample.stats, sample.stats_source)
    if sample.namespaces is not None:
        for ns in sample.namespaces.namespaces:
            yield (
                (ns.netns, ns.container, ns.pod),
                NamespaceReading(ns.entries, ns.stats, ns.stats_source),
            )


def _table_metrics(sample: ExporterSample) -> Iterator[Metric]:
    """Entries, counters and their source: per namespace with --netns all (labelled
    netns, container_id, pod_uid; "" for the exporter's own), else unlabelled."""
    extra = list(NETNS_LABELS) if sample.namespaces is not None else []
    rows = [(values if extra else (), reading) for values, reading in _per_netns(sample)]
    entries = GaugeMetricFamily(names.ENTRIES, "Conntrack entries in the table now", labels=extra)
    for values, reading in rows:
        if reading.entries is not None:
            entries.add_metric(list(values), reading.entries)
    if entries.samples:
        yield entries
    yield from _gauge(names.MAX, "nf_conntrack_max: entries the table may hold", sample.max)
    yield from _gauge(names.BUCKETS, "nf_conntrack_buckets: hash table size", sample.buckets)
    for column, metric in zip(names.STAT_COLUMNS, names.STAT_TOTALS, strict=True):
        counter = CounterMetricFamily(
            metric, f"{_STAT_HELP[column]}, summed over CPUs (kernel column {column})",
            labels=extra,
        )  # fmt: skip
        for values, reading in rows:
            if column in reading.stats:
                counter.add_metric(list(values), reading.stats[column])
        if counter.samples:
            yield counter
    source = GaugeMetricFamily(
        names.STATS_SOURCE,
        "Where the conntrack counters were read: 1 for the source used (none: not read)",
        labels=["source", *extra],
    )
    for values, reading in rows:
        if not reading.stats_source:
            continue  # not read at all: ctguard_source_up says so, not a missing source
        for name in STATS_SOURCES:
            source.add_metric([name, *values], 1 if name == reading.stats_source else 0)
    yield source


def _source_up(sample: ExporterSample) -> Iterator[Metric]:
    doc = "1 when the source was read, 0 when it failed (source netns: that namespace)"
    if sample.namespaces is None:
        yield _labelled(
            names.SOURCE_UP, doc, "source",
            ((name, 1 if ok else 0) for name, ok in sorted(sample.sources_up.items())),
        )  # fmt: skip
        return
    family = GaugeMetricFamily(names.SOURCE_UP, doc, labels=["source", *NETNS_LABELS])
    for name, ok in sorted(sample.sources_up.items()):
        family.add_metric([name, *HOST], 1 if ok else 0)
    for ns in sample.namespaces.namespaces:
        family.add_metric(["netns", ns.netns, ns.container, ns.pod], 1 if ns.up else 0)
    yield family
    yield from _gauge(
        names.NETNS_FOUND,
        "Network namespaces found besides the exporter's own (--netns all)",
        sample.namespaces.found,
    )
    yield from _gauge(
        names.NETNS_LEFT_OUT,
        "Namespaces found but not exported: past --max-netns",
        sample.namespaces.left_out,
    )


def sample_metrics(sample: ExporterSample) -> Iterator[Metric]:
    """Every metric of one sample; a value that was not read is left out, never 0."""
    yield from _table_metrics(sample)
    yield from _gauge(
        names.MEMORY_BYTES, "Kernel memory of the table now (ctguard's model)", sample.memory_bytes
    )
    yield from _gauge(
        names.FULL_MEMORY_BYTES,
        "Kernel memory of the table at nf_conntrack_max (ctguard's model)",
        sample.full_memory_bytes,
    )
    yield from _gauge(
        names.FULL_MEMORY_RATIO,
        "Memory of a full table as a share of MemTotal (0-1)",
        sample.full_memory_ratio,
    )
    if sample.timeouts:
        yield _labelled(
            names.TIMEOUT_SECONDS,
            "Running nf_conntrack_*timeout* values in seconds",
            "timeout",
            sorted(sample.timeouts.items()),
        )
    if sample.drift:
        yield _labelled(
            names.SETTING_DRIFT,
            "1 when the running value differs from what the sysctl files configure (CT301)",
            "key",
            ((key, 1 if differs else 0) for key, differs in sorted(sample.drift.items())),
        )
    finding = GaugeMetricFamily(
        names.FINDING,
        "1 per doctor finding (rules that need no table scan; see ctguard explain ID)",
        labels=["id", "severity"],
    )
    for finding_id, severity in sample.findings:
        finding.add_metric([finding_id, severity], 1)
    yield finding
    yield from _source_up(sample)
    yield from _gauge(names.SCRAPE_DURATION, "Seconds this scrape took", sample.duration)
    yield _labelled(names.BUILD_INFO, "ctguard exporter version", "version", [(__version__, 1)])


class ExporterCollector(Collector):
    """Reads the target on each scrape (``sample`` is called by ``collect``)."""

    def __init__(self, sample: Callable[[], ExporterSample]) -> None:
        self._sample = sample

    def collect(self) -> Iterator[Metric]:
        # one scrape at a time without a lock: MetricsServer answers requests in one thread
        yield from sample_metrics(self._sample())
