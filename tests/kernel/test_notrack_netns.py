"""`ctguard notrack` against the real kernel, for the nft and the iptables backend.

Each test makes its own namespace (fixture ``netns``) with a stateful filter: input policy
drop, accept established,related, and new connections to the two service ports (the
RHEL idiom ``-m conntrack --ctstate NEW ... -j ACCEPT``). A TCP server answers on
127.0.0.1:8983 (the port to untrack) and 127.0.0.1:8984 (traffic that must stay
tracked). Every connection attempt has a 2 s timeout; the servers exit after 120 s at
most. Only loopback addresses are used.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import run_ctguard
from netns_helpers import Netns, echo_connects, echo_server

pytestmark = pytest.mark.kernel

PORT, OTHER = 8983, 8984


NFT_FILTER = """table inet filter {
    chain input {
        type filter hook input priority 0; policy drop;
        ct state established,related accept
        tcp dport { 8983, 8984 } ct state new accept
    }
}
"""
NFT_NAIVE = f"""table inet naive {{
    chain pre {{ type filter hook prerouting priority raw; tcp dport {PORT} notrack; tcp sport {PORT} notrack; }}
    chain out {{ type filter hook output priority raw; tcp dport {PORT} notrack; tcp sport {PORT} notrack; }}
}}
"""  # noqa: E501
NFT_DNAT = f"""table ip nat {{
    chain out {{ type nat hook output priority -100; tcp dport 9999 dnat to 127.0.0.1:{PORT}; }}
}}
"""
IPT_FILTER = """*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p tcp -m multiport --dports 8983,8984 -m conntrack --ctstate NEW -j ACCEPT
COMMIT
"""
IPT_NAIVE = f"""*raw
-A PREROUTING -p tcp --dport {PORT} -j NOTRACK
-A PREROUTING -p tcp --sport {PORT} -j NOTRACK
-A OUTPUT -p tcp --dport {PORT} -j NOTRACK
-A OUTPUT -p tcp --sport {PORT} -j NOTRACK
COMMIT
"""
IPT_DNAT = f"""*nat
-A OUTPUT -p tcp --dport 9999 -j DNAT --to-destination 127.0.0.1:{PORT}
COMMIT
"""
BACKENDS = ("nft", "iptables")


@pytest.fixture
def server(netns: Netns) -> Iterator[None]:
    with echo_server(netns.name, [("127.0.0.1", PORT), ("127.0.0.1", OTHER)]):
        yield


def firewall(netns: Netns, backend: str) -> None:
    """The stateful filter; for iptables the test table of the fixture goes (so the ruleset
    is iptables only and auto-detection has to pick iptables)."""
    if backend == "nft":
        netns.run("nft", "-f", "-", input=NFT_FILTER)
    else:
        netns.run("nft", "delete", "table", "inet", "ctguard_test")
        netns.run("iptables-restore", input=IPT_FILTER)


def ruleset(netns: Netns, backend: str) -> str:
    """``nft list ruleset``, or iptables-save and ip6tables-save without comments/counters."""
    if backend == "nft":
        return netns.run("nft", "--stateless", "list", "ruleset").stdout  # no counters
    text = netns.run("iptables-save").stdout + netns.run("ip6tables-save").stdout
    lines = [re.sub(r"\[\d+:\d+\]", "", line) for line in text.splitlines()]
    return "\n".join(line for line in lines if not line.startswith("#"))


def connects(netns: Netns, port: int) -> bool:
    return echo_connects(netns.name, "127.0.0.1", port)


def entries(netns: Netns) -> list[str]:
    done = netns.run("conntrack", "-L")
    return [line for line in done.stdout.splitlines() if line.strip()]


def on_port(lines: list[str], port: int) -> list[str]:
    return [line for line in lines if f"port={port} " in line + " "]


def ct501(netns: Netns) -> str:
    done = run_ctguard("doctor", "--netns", netns.name, "--format", "json", "--only", "CT501")
    findings = json.loads(done.stdout)["findings"]
    (finding,) = [f for f in findings if f["id"] == "CT501"]
    return str(finding["status"])


def notrack(netns: Netns, state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_ctguard(
        "notrack", "--netns", netns.name, "--state-dir", str(state), *args, timeout=90
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_notrack_port_end_to_end(netns: Netns, server: None, backend: str, tmp_path: Path) -> None:
    firewall(netns, backend)
    assert connects(netns, PORT) and connects(netns, OTHER)
    assert on_port(entries(netns), PORT), "before: the port is tracked"
    netns.run("conntrack", "-F")

    # a naive NOTRACK alone blackholes the service behind the stateful filter
    if backend == "nft":
        netns.run("nft", "-f", "-", input=NFT_NAIVE)
    else:
        netns.run("iptables-restore", "--noflush", input=IPT_NAIVE)
    assert not connects(netns, PORT)
    assert ct501(netns) == "found"
    if backend == "nft":
        netns.run("nft", "delete", "table", "inet", "naive")
    else:
        netns.run("iptables", "-t", "raw", "-F")
        netns.run("nft", "delete", "table", "ip", "raw")  # iptables-nft: as before the naive rules
    before = ruleset(netns, backend)

    done = notrack(netns, tmp_path, "--port", str(PORT), "--direction", "both", "--apply", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"backend: {backend}" in done.stdout
    assert "added" in done.stdout and "ctguard rollback" in done.stdout
    netns.run("conntrack", "-F")
    assert all(connects(netns, PORT) for _ in range(3))
    assert connects(netns, OTHER)
    table = entries(netns)
    assert on_port(table, PORT) == []
    assert on_port(table, OTHER), "other traffic is still tracked"
    assert ct501(netns) == "passed"

    # idempotent: a rerun adds nothing
    again = notrack(netns, tmp_path, "--port", str(PORT), "--direction", "both", "--apply", "--yes")
    assert again.returncode == 0 and "Nothing to add" in again.stdout

    removed = notrack(netns, tmp_path, "--remove", "--yes")
    assert removed.returncode == 0, removed.stderr
    assert ruleset(netns, backend) == before
    assert connects(netns, PORT)
    assert on_port(entries(netns), PORT), "after --remove the port is tracked again"


@pytest.mark.parametrize("backend", BACKENDS)
def test_notrack_refuses_a_dnat_to_the_port(netns: Netns, backend: str, tmp_path: Path) -> None:
    firewall(netns, backend)
    if backend == "nft":
        netns.run("nft", "-f", "-", input=NFT_DNAT)
    else:
        netns.run("iptables-restore", "--noflush", input=IPT_DNAT)
    before = ruleset(netns, backend)
    done = notrack(netns, tmp_path, "--port", str(PORT), "--direction", "both", "--apply", "--yes")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "REFUSED" in done.stdout and "NAT" in done.stdout
    assert "9999" in done.stdout  # the conflicting rule is shown
    assert ruleset(netns, backend) == before
    assert not (tmp_path / "journal").exists() or not any((tmp_path / "journal").iterdir())


@pytest.mark.parametrize("backend", BACKENDS)
def test_notrack_all_without_nat(netns: Netns, server: None, backend: str, tmp_path: Path) -> None:
    """A stateful rule for ssh only (so conntrack is in use): --all keeps port 22 tracked
    and untracks the rest; traffic to the service flows and creates no entry."""
    netns.run("nft", "delete", "table", "inet", "ctguard_test")
    if backend == "nft":
        netns.run("nft", "-f", "-", input=(
            "table inet filter { chain input { type filter hook input priority 0;"
            " policy accept; tcp dport 22 ct state new accept; }; }"
        ))  # fmt: skip
    else:
        netns.run("iptables", "-A", "INPUT", "-p", "tcp", "--dport", "22",
                  "-m", "conntrack", "--ctstate", "NEW", "-j", "ACCEPT")  # fmt: skip
    assert connects(netns, PORT)
    assert netns.count() > 0, "before: conntrack tracks this namespace"
    before = ruleset(netns, backend)
    done = notrack(netns, tmp_path, "--all", "--apply", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"backend: {backend}" in done.stdout
    netns.run("conntrack", "-F")
    assert all(connects(netns, port) for port in (PORT, OTHER, PORT))
    assert netns.count() == 0
    rolled = run_ctguard("rollback", "--state-dir", str(tmp_path), "--yes", timeout=60)
    assert rolled.returncode == 0, rolled.stderr
    assert ruleset(netns, backend) == before


def test_notrack_all_refuses_nat(netns: Netns, tmp_path: Path) -> None:
    netns.run("nft", "-f", "-", input=NFT_DNAT)
    done = notrack(netns, tmp_path, "--all", "--apply", "--yes")
    assert done.returncode == 2
    assert "NAT is in use" in done.stdout


TRAFFIC = """
import socket, sys, time
ports = [int(p) for p in sys.argv[1:]]
deadline = time.monotonic() + 8
for n in range(400):
    if time.monotonic() > deadline:
        break
    for port in ports:
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=1)
            c.sendall(b"x"); c.recv(1); c.close()
        except OSError:
            pass
    time.sleep(0.05)
"""


def verify_with_traffic(netns: Netns, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`notrack --verify` for 3 s while both ports get new connections (bounded: 8 s)."""
    traffic = subprocess.Popen(
        ["ip", "netns", "exec", netns.name, "python3", "-c", TRAFFIC, str(PORT), str(OTHER)]
    )
    try:
        return notrack(netns, tmp_path, "--port", str(PORT), "--direction", "both",
                       "--verify", "--window", "3")  # fmt: skip
    finally:
        traffic.kill()
        traffic.wait(timeout=10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_verify_proves_the_bypass(netns: Netns, server: None, backend: str, tmp_path: Path) -> None:
    firewall(netns, backend)
    # before: the port is tracked, so verify fails (exit 2) and says why
    failed = verify_with_traffic(netns, tmp_path)
    assert failed.returncode == 2, failed.stdout + failed.stderr
    assert "FAILED" in failed.stdout and "still tracked" in failed.stdout
    done = notrack(netns, tmp_path, "--port", str(PORT), "--direction", "both", "--apply", "--yes")
    assert done.returncode == 0, done.stderr
    verified = verify_with_traffic(netns, tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "0 on the untracked ports" in verified.stdout
    assert "OK: the ports create no entries while other traffic still does" in verified.stdout
    assert "accepted on input" in verified.stdout


def test_rollback_never_deletes_a_rule_that_reused_a_handle(netns: Netns, tmp_path: Path) -> None:
    """nft handles are reused once freed: after the admin recreates the filter table, the
    handle ctguard's accept had belongs to their rule, and rollback must leave it alone."""
    firewall(netns, "nft")
    done = notrack(netns, tmp_path, "--port", str(PORT), "--apply", "--yes")
    assert done.returncode == 0, done.stderr
    assert 'ct state untracked accept comment "ctguard"' in ruleset(netns, "nft")
    netns.run("nft", "delete", "table", "inet", "filter")
    netns.run("nft", "-f", "-", input=(
        "table inet filter { chain input { type filter hook input priority 0; policy accept;\n"
        "tcp dport 22 accept\ntcp dport 2222 accept\ntcp dport 443 accept\n}\n}\n"
    ))  # fmt: skip
    before = ruleset(netns, "nft")
    rolled = run_ctguard("rollback", "--state-dir", str(tmp_path), "--yes", timeout=60)
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    after = ruleset(netns, "nft")
    for port in (22, 2222, 443):
        assert f"tcp dport {port} accept" in after
    assert "table inet ctguard {" in before
    # ctguard's own table went, and nothing else changed
    assert after == re.sub(r"table inet ctguard \{\n.*?\n\}\n", "", before, flags=re.S)
