"""`ctguard doctor --netns` against the real kernel: a table filled for real
(docs/design.md §10)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from helpers import run_ctguard
from netns_helpers import ASSURED_TCP, SEND_UDP, UNREPLIED_UDP, Netns, fill, stat_totals

pytestmark = pytest.mark.kernel


def doctor(netns: Netns) -> tuple[int, dict[str, dict[str, object]]]:
    done = run_ctguard("doctor", "--netns", netns.name, "--format", "json")
    report = json.loads(done.stdout)
    assert report["netns"] == netns.name
    return done.returncode, {f["id"]: f for f in report["findings"]}


def test_full_table_of_assured_entries_is_ct101_and_ct102(netns: Netns, tmp_path: Path) -> None:
    entries = fill(netns, tmp_path, ASSURED_TCP)
    refused = int(netns.run("python3", "-c", SEND_UDP, "5").stdout)
    assert refused == 5  # every new flow was dropped: nothing assured could be evicted
    drops = stat_totals(netns)["drop"]
    assert drops >= 5
    inode = os.stat(f"/run/netns/{netns.name}").st_ino

    code, findings = doctor(netns)

    assert code == 2
    ct101 = findings["CT101"]
    assert (ct101["status"], ct101["severity"]) == ("found", "critical")
    assert f"nf_conntrack_count = {entries}, nf_conntrack_max = {entries}" in ct101["evidence"][0]
    ct102 = findings["CT102"]
    assert (ct102["status"], ct102["severity"]) == ("found", "critical")
    counted = f"stat drop = {drops} - (insert_failed 0 - chaintoolong 0): {drops} packets"
    assert ct102["evidence"][0].startswith(counted)
    logged = [e for e in ct102["evidence"] if e.startswith("dmesg: ")]
    assert logged, ct102["evidence"]
    assert re.search(rf"table full in netns {inode}, dropping packet$", logged[0])
    assert findings["CT103"]["status"] == "passed"


def test_full_table_of_unreplied_udp_is_ct103_not_ct102(netns: Netns, tmp_path: Path) -> None:
    fill(netns, tmp_path, UNREPLIED_UDP)
    refused = int(netns.run("python3", "-c", SEND_UDP, "20").stdout)
    assert refused == 0  # unassured entries were evicted to make room
    totals = stat_totals(netns)
    assert totals["early_drop"] >= 20 and totals["drop"] == 0

    code, findings = doctor(netns)

    assert code == 2  # still 100 % full: CT101 critical
    ct103 = findings["CT103"]
    assert (ct103["status"], ct103["severity"]) == ("found", "warning")
    assert ct103["evidence"][0].startswith(f"stat early_drop = {totals['early_drop']} ")
    assert findings["CT102"]["status"] == "passed"
    # lines of other namespaces (earlier tests) may be mentioned, none counted as ours
    assert not any("'table full' lines" in e for e in findings["CT102"]["evidence"])


def test_namespace_timeouts_differ_from_the_hosts_is_ct307(netns: Netns) -> None:
    # the fixture set the namespace's UDP timeout to 600 s; the host keeps its own
    host_value = int(Path("/proc/sys/net/netfilter/nf_conntrack_udp_timeout").read_text())
    assert host_value != 600
    _code, findings = doctor(netns)
    ct307 = findings["CT307"]
    assert (ct307["status"], ct307["severity"]) == ("found", "info")
    assert (
        f"namespace {netns.name}: nf_conntrack_udp_timeout = 600, initial namespace: {host_value}"
        in ct307["evidence"]
    )
    netns.set_sysctl("net.netfilter.nf_conntrack_udp_timeout", host_value)
    _code, findings = doctor(netns)
    assert findings["CT307"]["status"] == "passed", findings["CT307"]


def test_snapshot_of_a_namespace_gives_the_same_doctor(netns: Netns, tmp_path: Path) -> None:
    netns.udp_flows(500)
    out = tmp_path / "snap.tar.gz"
    done = run_ctguard("snapshot", "--netns", netns.name, "-o", str(out))  # with the table
    assert done.returncode == 0, done.stderr
    live = json.loads(run_ctguard("doctor", "--netns", netns.name, "--format", "json").stdout)
    offline = json.loads(run_ctguard("doctor", "--root", str(out), "--format", "json").stdout)
    assert (live.pop("source"), offline.pop("source")) == ("live", "snapshot")
    # when each was read: the snapshot's manifest time, then the live run's (same format)
    taken, now = offline.pop("created_utc"), live.pop("created_utc")
    assert taken <= now and len(taken) == len(now)
    assert offline == live


def test_live_doctor_compares_named_namespaces(netns: Netns) -> None:
    """On the host, CT307 enters each named namespace (ip netns) and compares timeouts."""
    host_value = int(Path("/proc/sys/net/netfilter/nf_conntrack_udp_timeout").read_text())
    done = run_ctguard("doctor", "--format", "json", "--only", "CT307")
    ct307 = json.loads(done.stdout)["findings"][0]
    assert (ct307["status"], ct307["severity"]) == ("found", "info")
    line = (
        f"namespace {netns.name}: nf_conntrack_udp_timeout = 600, initial namespace: {host_value}"
    )
    assert line in ct307["evidence"]
    assert (
        f"ip netns exec {netns.name} sysctl -w net.netfilter.nf_conntrack_udp_timeout="
        in (ct307["fix"])
    )
