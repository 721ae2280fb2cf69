"""How ``--netns all`` readings become series: one family per metric, the exporter's own
namespace with empty netns labels (no labels at all in Prometheus), each other namespace
labelled, a namespace that could not be read shown down and never given a value."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from ctguard.host.namespaces import Namespace
from ctguard.host.target import Target, open_target
from ctguard.missing import Missing
from ctguard.output.exporter_metrics import ExporterCollector
from ctguard.usecases.exporter import Sampler
from ctguard.usecases.exporter_netns import NamespaceSample, NamespacesReader, NamespacesSample

ROOT = Path(__file__).parent.parent / "examples" / "rhel6-table-full"
POD = "dc380811-8168-4a9e-9b4a-56ded1b6fe9c"


def render(namespaces: NamespacesSample | None) -> str:
    with open_target(Target(str(ROOT))) as opened:
        sampler = Sampler(opened, doctor_interval=0)
        try:
            sample = dataclasses.replace(sampler.sample(), namespaces=namespaces)
        finally:
            sampler.close()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ExporterCollector(lambda: sample))
    return generate_latest(registry).decode()


def series(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_without_netns_all_nothing_carries_a_netns_label() -> None:
    text = render(None)
    assert "netns=" not in text and "ctguard_netns_" not in text


def test_each_namespace_is_labelled_and_a_down_one_has_no_values() -> None:
    web = NamespaceSample(
        "cni-0d2f", "57a3158f637c", POD, entries=900, stats={"drop": 4, "insert": 10},
        stats_source="procfs", up=True,
    )  # fmt: skip
    gone = NamespaceSample("4026532999", "", "", error="netns 4026532999 vanished")
    text = render(NamespacesSample(found=3, left_out=1, namespaces=(web, gone)))
    got = series(text)
    host = (("container_id", ""), ("netns", ""), ("pod_uid", ""))
    web_labels = (("container_id", "57a3158f637c"), ("netns", "cni-0d2f"), ("pod_uid", POD))
    assert got[("ctguard_conntrack_entries", host)] == 97315  # the example's own count
    assert got[("ctguard_conntrack_entries", web_labels)] == 900
    assert got[("ctguard_conntrack_stat_drop_total", web_labels)] == 4
    assert ("ctguard_conntrack_stat_found_total", web_labels) not in got  # not read: absent
    assert got[("ctguard_source_up", (*web_labels[:2], ("pod_uid", POD), ("source", "netns")))] == 1
    gone_labels = (("container_id", ""), ("netns", "4026532999"), ("pod_uid", ""))
    assert got[("ctguard_source_up", (*gone_labels, ("source", "netns")))] == 0
    # not read is not "no counters there": no stats-source series to page CT601 with
    assert not [
        k for k in got if k[0] == "ctguard_conntrack_stats_source" and k[1][:3] == gone_labels
    ]
    assert not [k for k in got if k[0] == "ctguard_conntrack_entries" and k[1] == gone_labels]
    assert got[("ctguard_netns_found", ())] == 3 and got[("ctguard_netns_left_out", ())] == 1
    # one global max, never per namespace
    assert [k for k in got if k[0] == "ctguard_conntrack_max"] == [("ctguard_conntrack_max", ())]


def test_max_netns_keeps_the_namespaces_seen_longest() -> None:
    """A new namespace with a lower (reused) inode number does not push out one already
    exported; a gone one frees its place."""

    def ns(inode: int, name: str = "") -> Namespace:
        return Namespace(inode, (name,) if name else (), (), "", "/proc/self/ns/net", False)

    listings = [
        [ns(500), ns(600, "web")],
        [ns(100), ns(500), ns(600, "web")],  # 100: a freed number handed out again
        [ns(100), ns(600, "web")],  # 500 gone: 100 takes its place
    ]
    reader = NamespacesReader(
        max_netns=2, own_inode=lambda: None, lister=lambda: listings.pop(0),
        read=lambda: (1, Missing("no counters here")),  # not reached: the inodes are made up
    )  # fmt: skip
    try:
        first, second, third = (reader.sample() for _ in range(3))
    finally:
        reader.close()
    assert [n.netns for n in first.namespaces] == ["web", "500"]  # seen together: named first
    assert [n.netns for n in second.namespaces] == ["web", "500"] and second.left_out == 1
    assert [n.netns for n in third.namespaces] == ["web", "100"] and third.left_out == 0
