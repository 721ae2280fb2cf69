"""`ctguard analyze --netns` against the real kernel: real flows inside a namespace the test
creates (TCP to two ports, UDP, ICMP, DNAT on loopback), then the analysis must equal what
was created (docs/design.md §6, §10)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helpers import run_ctguard
from netns_helpers import Netns

pytestmark = pytest.mark.kernel

# Locally generated packets are DNATed in the nat OUTPUT hook; 127.0.0.1 -> 127.0.0.1 needs
# no route_localnet. The conftest's `ct state new counter` table already makes the
# namespace track; this table needs conntrack too.
NAT_RULESET = """table ip ctguard_test_nat {
    chain out {
        type nat hook output priority -100; policy accept;
        ip daddr 127.0.0.1 tcp dport 8080 dnat to 127.0.0.1:8983
    }
}
"""

# Real flows on 127.0.0.1, held open until stdin closes. Bounded: a fixed number of
# sockets, 5 s socket timeouts, and SIGALRM ends the process after 60 s whatever happens.
# Prints one JSON line once every flow exists: the local (source) ports it used.
FLOWS = r"""
import json, signal, socket, struct, sys
signal.alarm(60)
held = []

def listener(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(64)
    s.settimeout(5)
    held.append(s)
    return s

solr, elastic = listener(8983), listener(9200)
ports = {"tcp": [], "udp": []}
for port, n in ((8983, 5), (9200, 3), (8080, 2)):  # 8080: DNATed to 8983
    for _ in range(n):
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        held.append(c)
        ports["tcp"].append(c.getsockname()[1])
for server, n in ((solr, 7), (elastic, 3)):
    for _ in range(n):
        held.append(server.accept()[0])  # the handshake is complete: ESTABLISHED
for _ in range(4):  # no listener on 53: the replies are ICMP errors, never UDP
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    u.sendto(b"q", ("127.0.0.1", 53))
    held.append(u)
    ports["udp"].append(u.getsockname()[1])

def checksum(data):
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF

raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)  # root
raw.settimeout(5)
for ident in (0x1111, 0x2222):  # two echo requests, two ids: two entries
    header = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"ctguard!"
    raw.sendto(header[:2] + struct.pack("!H", checksum(header)) + header[4:], ("127.0.0.1", 0))
replies = 0
while replies < 2:  # the raw socket sees our requests and the kernel's replies
    packet = raw.recv(256)
    replies += packet[(packet[0] & 15) * 4] == 0
print(json.dumps(ports), flush=True)
sys.stdin.readline()
"""

TCP_PORTS = {8983: 5, 9200: 3, 8080: 2}
UDP_53 = 4
ICMP = 2
ENTRIES = sum(TCP_PORTS.values()) + UDP_53 + ICMP


@dataclass
class Flows:
    netns: Netns
    ports: dict[str, list[int]]  # local ports of the client sockets, by protocol


def diagnostics(netns: Netns) -> str:
    done = subprocess.run(
        ["ip", "netns", "exec", netns.name, "conntrack", "-L"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return f"conntrack -L in {netns.name}:\n{done.stdout}{done.stderr}"


@pytest.fixture
def flows(netns: Netns) -> Iterator[Flows]:
    netns.run("nft", "-f", "-", input=NAT_RULESET)
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns.name, "python3", "-c", FLOWS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # bounded by the script's own alarm and timeouts
        if not line:
            proc.wait(timeout=10)
            pytest.fail(f"flow script failed: {proc.stderr.read() if proc.stderr else ''}")
        yield Flows(netns, json.loads(line))
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def analyze(*args: str) -> dict[str, Any]:
    done = run_ctguard("analyze", *args, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return json.loads(done.stdout)


def histogram(bucket: str, count: int) -> dict[str, int]:
    labels = ("<=10s", "<=60s", "<=300s", "<=1h", "<=1d", ">1d")
    assert bucket in labels
    return {label: count if label == bucket else 0 for label in labels}


def expected_by(flows: Flows) -> dict[str, Any]:
    """Every breakdown of the flows the fixture created, as ctguard.analyze/1 spells it."""
    tcp = sum(TCP_PORTS.values())
    sports = [("tcp", p) for p in flows.ports["tcp"]] + [("udp", p) for p in flows.ports["udp"]]
    return {
        "family": [{"family": "ipv4", "count": ENTRIES}],
        "protocol": [
            {"protocol": "tcp", "count": tcp},
            {"protocol": "udp", "count": UDP_53},
            {"protocol": "icmp", "count": ICMP},
        ],
        "state": [{"protocol": "tcp", "state": "ESTABLISHED", "count": tcp}],
        "dport": [
            {"protocol": "tcp", "port": 8983, "count": 5, "nat": 0},
            {"protocol": "udp", "port": 53, "count": UDP_53, "nat": 0},
            {"protocol": "tcp", "port": 9200, "count": 3, "nat": 0},
            {"protocol": "tcp", "port": 8080, "count": 2, "nat": 2},
        ],
        "sport": [
            {"protocol": p, "port": n, "count": 1}
            for p, n in sorted(sports, key=lambda s: ({"tcp": 6, "udp": 17}[s[0]], s[1]))
        ],
        "src": [{"address": "127.0.0.1", "count": ENTRIES}],
        "dst": [{"address": "127.0.0.1", "count": ENTRIES}],
        "zone": [{"zone": 0, "count": ENTRIES}],
        "mark": [{"mark": 0, "count": ENTRIES}],
        # TCP saw replies on a finished handshake: assured; UDP never got a UDP reply
        "flags": {"assured": tcp, "unreplied": UDP_53, "offload": 0, "hw_offload": 0},
        "nat": {"nated": 2, "not_nated": ENTRIES - 2},
        # remaining: ESTABLISHED ~5 days, UDP under the fixture's 600 s, ICMP under 30 s
        "timeout": [
            {"protocol": "tcp", "state": "ESTABLISHED", "histogram": histogram(">1d", tcp)},
            {"protocol": "udp", "state": None, "histogram": histogram("<=1h", UDP_53)},
            {"protocol": "icmp", "state": None, "histogram": histogram("<=60s", ICMP)},
        ],
    }


def test_analyze_netns_equals_the_flows_created(flows: Flows) -> None:
    ns = flows.netns
    assert ns.count() == ENTRIES, diagnostics(ns)

    doc = analyze("--netns", ns.name, "--format", "json", "--top", "0", "--by", "all")

    assert doc["schema"] == "ctguard.analyze/1"
    assert doc["netns"] == ns.name
    assert doc["source"] == "/proc/net/nf_conntrack"
    assert (doc["entries"], doc["lines"]) == (ENTRIES, ENTRIES), diagnostics(ns)
    assert doc["bad_lines"] == {"count": 0, "first_line": None, "first_text": ""}
    assert doc["by"] == expected_by(flows), diagnostics(ns)
    assert doc["no_timeout"] == 0
    assert doc["distinct"] == {"src": 1, "dst": 1}
    # a few dozen entries are no sample to bypass conntrack on: no candidate (the ports'
    # directions and NAT are weighed in tests/table/test_candidates.py)
    assert doc["notrack_candidates"] == []
    assert doc["notrack_skipped"].startswith(f"{ENTRIES} entries: too few")
    assert "what_if" not in doc

    netlink = analyze(
        "--netns", ns.name, "--source", "netlink", "--format", "json", "--top", "0", "--by", "all"
    )
    assert netlink["source"].startswith("conntrack -L")
    assert {**netlink, "source": doc["source"]} == doc, diagnostics(ns)


def test_netns_all_lists_the_namespace_once_with_its_count(flows: Flows) -> None:
    ns = flows.netns
    inode = os.stat(f"/run/netns/{ns.name}").st_ino

    doc = analyze("--netns", "all", "--format", "json")
    count = int(ns.run("cat", "/proc/sys/net/netfilter/nf_conntrack_count").stdout)

    assert count == ENTRIES, diagnostics(ns)
    rows = [row for row in doc["namespaces"] if row["inode"] == inode]
    assert len(rows) == 1, doc["namespaces"]
    (row,) = rows
    assert row["entries"] == count
    assert row["names"] == [ns.name]
    assert row["holder"] == f"netns {ns.name}"
    assert row["initial"] is False
    assert row["error"] is None
    assert doc["global_max"] == int(Path("/proc/sys/net/netfilter/nf_conntrack_max").read_text())
    assert row["share_of_max"] == round(100 * count / doc["global_max"], 2)
    assert len({r["inode"] for r in doc["namespaces"]}) == len(doc["namespaces"])
    assert sum(r["initial"] for r in doc["namespaces"]) == 1
    entries = [r["entries"] for r in doc["namespaces"] if r["entries"] is not None]
    assert entries == sorted(entries, reverse=True)  # busiest first
    if doc.get("netns") == ns.name:  # the analysis is of the busiest (others may be busier)
        assert doc["entries"] == ENTRIES
        assert doc["by"]["dport"][0] == {"protocol": "tcp", "port": 8983, "count": 5, "nat": 0}


# (timeout given to conntrack -I, how many entries)
TIME_WAIT = ((20, 3), (40, 2), (150, 4), (190, 1))
UDP = ((100, 3), (550, 2))
TIME_WAIT_CURRENT = 200  # set inside the namespace: differs from the initial one's 120
PROPOSED = {"tcp_timeout_time_wait": 100, "udp_timeout": 300}


def insert_entries(ns: Netns) -> None:
    lines = []
    port = 30000
    for timeout, n in TIME_WAIT:
        for _ in range(n):
            port += 1
            lines.append(
                f"-I -p tcp -s 127.0.0.2 -d 127.0.0.1 --sport {port} --dport 80"
                f" --state TIME_WAIT --status ASSURED,SEEN_REPLY -t {timeout}"
            )
    for _ in range(2):  # governed by tcp_timeout_established: never in the time_wait row
        port += 1
        lines.append(
            f"-I -p tcp -s 127.0.0.2 -d 127.0.0.1 --sport {port} --dport 443"
            " --state ESTABLISHED --status ASSURED,SEEN_REPLY -t 30"
        )
    for timeout, n in UDP:  # unreplied, not assured: udp_timeout
        for _ in range(n):
            port += 1
            lines.append(
                f"-I -p udp -s 127.0.0.3 -d 127.0.0.1 --sport {port} --dport 53 -t {timeout}"
            )
    ns.run("conntrack", "-R", "-", input="\n".join(lines) + "\n")


def expired(current: int, proposed: int, rows: tuple[tuple[int, int], ...]) -> int:
    """The design's formula: remaining r under current T expired under P when T - r >= P."""
    return sum(n for remaining, n in rows if current - remaining >= proposed)


def test_what_if_uses_the_namespace_timeouts(netns: Netns) -> None:
    netns.set_sysctl("net.netfilter.nf_conntrack_tcp_timeout_time_wait", TIME_WAIT_CURRENT)
    insert_entries(netns)
    sysctl = "/proc/sys/net/netfilter/nf_conntrack_{}"
    current = {name: int(netns.run("cat", sysctl.format(name)).stdout) for name in PROPOSED}
    assert current["tcp_timeout_time_wait"] == TIME_WAIT_CURRENT
    # every entry is at least 40 s from its boundary: a few seconds of drift change nothing
    for name, rows in (("tcp_timeout_time_wait", TIME_WAIT), ("udp_timeout", UDP)):
        assert all(abs(current[name] - r - PROPOSED[name]) >= 40 for r, _ in rows), current

    spec = ",".join(f"{name}={value}" for name, value in PROPOSED.items())
    doc = analyze("--netns", netns.name, "--format", "json", "--what-if", spec)

    total = sum(n for _, n in TIME_WAIT) + 2 + sum(n for _, n in UDP)
    assert doc["entries"] == total, diagnostics(netns)
    wanted = []
    for name, rows in (("tcp_timeout_time_wait", TIME_WAIT), ("udp_timeout", UDP)):
        gone = expired(current[name], PROPOSED[name], rows)
        wanted.append(
            {
                "timeout": name,
                "current": current[name],
                "proposed": PROPOSED[name],
                "affected": sum(n for _, n in rows),
                "expired": gone,
                "expired_share": round(100 * gone / total, 2),
            }
        )
    assert doc["what_if"] == wanted, diagnostics(netns)
    assert [row["expired"] for row in wanted] == [5, 3]  # the formula, worked by hand


def test_ipv6_sources_agree_between_procfs_and_netlink(netns: Netns) -> None:
    netns.run(
        "conntrack", "-I", "-p", "tcp", "-s", "::1", "-d", "::1", "--sport", "40000",
        "--dport", "443", "--state", "ESTABLISHED", "--status", "ASSURED,SEEN_REPLY",
        "-t", "300",
    )  # fmt: skip
    args = ("--netns", netns.name, "--format", "json", "--by", "src,dst", "--top", "0")

    procfs = analyze(*args, "--source", "procfs")
    netlink = analyze(*args, "--source", "netlink")

    assert procfs["by"]["family"] == [{"family": "ipv6", "count": 1}]
    assert procfs["by"] == netlink["by"]
