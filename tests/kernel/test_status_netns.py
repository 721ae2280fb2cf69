"""`ctguard status --netns` and `snapshot --netns` against the real kernel."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from helpers import assert_one_line_error, ctguard_bin, run_ctguard, run_json
from netns_helpers import Netns

pytestmark = pytest.mark.kernel

FLOWS = 3000


def test_status_count_equals_conntrack_C(netns: Netns) -> None:
    netns.udp_flows(FLOWS)
    expected = netns.count()
    assert expected == FLOWS
    report = run_json("status", "--netns", netns.name, "--json", "--interval", "0")
    assert report["netns"] == netns.name
    assert report["table"]["count"] == expected
    assert report["counters"]["source"] == "procfs"
    # per-namespace value comes from inside the namespace ...
    assert report["sysctls"]["nf_conntrack_udp_timeout"] == 600
    # ... global ones from the initial namespace
    init_max = int(Path("/proc/sys/net/netfilter/nf_conntrack_max").read_text())
    assert report["table"]["max"] == init_max
    assert report["table"]["usage_percent"] == round(100 * expected / init_max, 2)


def test_status_rate_counts_new_entries(netns: Netns) -> None:
    created = 2000
    sender = threading.Thread(target=lambda: (time.sleep(0.7), netns.udp_flows(created, 30000)))
    sender.start()
    report = run_json("status", "--netns", netns.name, "--json", "--interval", "3")
    sender.join(timeout=60)
    counters = report["counters"]
    assert counters["mode"] == "rate"
    measured = counters["new"] * counters["interval_seconds"]
    assert abs(measured - created) <= 2, counters
    assert netns.count() == created


@pytest.mark.parametrize("target", ["snap/", "snap.tar.gz"])
def test_snapshot_of_netns_round_trips(netns: Netns, tmp_path: Path, target: str) -> None:
    netns.udp_flows(1500)
    out = str(tmp_path) + "/" + target
    done = run_ctguard("snapshot", "--netns", netns.name, "-o", out, "--json")
    assert done.returncode == 0, done.stderr
    live = run_json("status", "--netns", netns.name, "--json", "--interval", "0")
    offline = run_json("status", "--root", out, "--json", "--interval", "0")
    assert offline == live
    assert offline["table"]["count"] == 1500


def test_unknown_netns_is_one_line_error() -> None:
    done = run_ctguard("status", "--netns", "ctguard-no-such-ns")
    assert_one_line_error(done, "not found")


def test_netns_needs_root(netns: Netns) -> None:
    # in a new user namespace ctguard runs with euid 65534 and no capabilities
    done = subprocess.run(
        ["unshare", "--user", ctguard_bin(), "status", "--netns", netns.name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert_one_line_error(done, "needs root")


def test_netlink_counters_equal_procfs(netns: Netns) -> None:
    """The pyroute2 path (used where procfs stats are compiled out) reads the same counters."""
    from ctguard.host.commands import netlink_stats_text
    from ctguard.host.netns import run_in_netns
    from ctguard.missing import Missing
    from ctguard.sources.stats import STAT_FILE, parse_conntrack_s, parse_stat_file

    netns.udp_flows(500)

    def both() -> tuple[str, str | Missing]:
        return Path(STAT_FILE).read_text(), netlink_stats_text()

    procfs_text, netlink_text = run_in_netns(netns.name, both)
    assert not isinstance(netlink_text, Missing), netlink_text
    procfs, netlink = parse_stat_file(procfs_text), parse_conntrack_s(netlink_text, "netlink")
    assert netlink.cpus == procfs.cpus == os.cpu_count()
    shared = set(procfs.totals) & set(netlink.totals)
    assert {"found", "invalid", "insert_failed", "drop", "early_drop", "error"} <= shared
    assert {k: netlink.totals[k] for k in shared} == {k: procfs.totals[k] for k in shared}


def test_events_off_gives_no_new_rate(netns: Netns) -> None:
    netns.set_sysctl("net.netfilter.nf_conntrack_events", 0)
    sender = threading.Thread(target=lambda: (time.sleep(0.5), netns.udp_flows(1000, 40000)))
    sender.start()
    report = run_json("status", "--netns", netns.name, "--json", "--interval", "2")
    sender.join(timeout=60)
    assert netns.count() == 1000  # entries were created ...
    assert report["counters"]["new"] is None  # ... but nothing announced them: no fake 0
    assert any("nf_conntrack_events is 0" in note for note in report["notes"])
