"""`ctguard status --netns` and `snapshot --netns` against the real kernel."""

from __future__ import annotations

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
