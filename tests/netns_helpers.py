"""Real-kernel fixtures: a fresh network namespace per test, always deleted.

Traffic goes only to loopback addresses inside the namespace; every loop is bounded
in count and time; only the namespace's own sysctls are written, never the initial
namespace's, and nothing under the machine's /etc.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# Sends one UDP datagram to each of N ports of 127.0.0.1 (one conntrack entry per port),
# bounded by count and by a deadline.
UDP_FLOWS = """
import socket, sys, time
n, first = int(sys.argv[1]), int(sys.argv[2])
deadline = time.monotonic() + 20
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for port in range(first, first + n):
    if time.monotonic() > deadline:
        sys.exit("deadline passed")
    s.sendto(b"x", ("127.0.0.1", port))
"""


# A TCP echo server on loopback addresses inside a namespace: arguments are HOST PORT pairs.
# It serves at most 500 connections and exits after 120 s at the latest.
_ECHO_SERVER = """
import socket, sys, time, select
pairs = list(zip(sys.argv[1::2], (int(p) for p in sys.argv[2::2])))
socks = []
for host, port in pairs:
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port)); s.listen(64); socks.append(s)
print("ready", flush=True)
deadline = time.monotonic() + 120
served = 0
while time.monotonic() < deadline and served < 500:
    ready, _, _ = select.select(socks, [], [], 1)
    for s in ready:
        conn, _ = s.accept(); conn.settimeout(2)
        try:
            conn.sendall(conn.recv(1))
        except OSError:
            pass
        conn.close(); served += 1
"""
# One connection (2 s timeout) that must get its byte echoed: exit 0, else a reason.
_ECHO_CLIENT = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
    c.sendall(b"x"); ok = c.recv(1) == b"x"; c.close()
except OSError as exc:
    sys.exit(f"failed: {exc}")
sys.exit(0 if ok else "no echo")
"""


@contextmanager
def echo_server(name: str, listens: list[tuple[str, int]]) -> Iterator[None]:
    """Run the echo server in namespace ``name`` on each loopback (host, port) while inside."""
    for host, _port in listens:
        assert host == "::1" or host.startswith("127."), f"{host} is not loopback"
    args = [str(part) for pair in listens for part in pair]
    child = subprocess.Popen(
        ["ip", "netns", "exec", name, "python3", "-c", _ECHO_SERVER, *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        yield
    finally:
        child.kill()
        child.wait(timeout=10)


def echo_connects(name: str, host: str, port: int) -> bool:
    """Whether one connection from inside namespace ``name`` to (host, port) is echoed."""
    done = subprocess.run(
        ["ip", "netns", "exec", name, "python3", "-c", _ECHO_CLIENT, host, str(port)],
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip
    return done.returncode == 0


TRACK_RULESET = """table inet ctguard_test {
    chain out {
        type filter hook output priority 0; policy accept;
        ct state new counter
    }
}
"""


def why_no_kernel() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    for tool in ("ip", "nft", "conntrack"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install iproute2 nftables conntrack)"
    if not Path("/proc/sys/net/netfilter/nf_conntrack_max").exists():
        return "this kernel has no nf_conntrack"
    return None


@dataclass
class Netns:
    name: str

    def run(
        self, *argv: str, timeout: float = 60, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
            input=input,
        )

    def count(self) -> int:
        return int(self.run("conntrack", "-C").stdout.strip())

    def udp_flows(self, n: int, first_port: int = 20000) -> None:
        self.run("python3", "-c", UDP_FLOWS, str(n), str(first_port), timeout=60)

    def set_sysctl(self, key: str, value: int) -> None:
        """Per-namespace sysctl, written inside the namespace only."""
        self.run("sysctl", "-q", "-w", f"{key}={value}")


@contextmanager
def tracking_netns(prefix: str) -> Iterator[Netns]:
    """A fresh namespace that tracks every flow, always deleted: lo up, a rule that needs
    conntrack (hooks register only when a rule needs them, kernel 4.10+), and unreplied UDP
    kept for 600 s so test flows live through the whole test. Callers skip first when
    ``why_no_kernel()`` says so."""
    name = f"{prefix}-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    try:
        ns = Netns(name)
        ns.run("ip", "link", "set", "lo", "up")
        ns.run("nft", "-f", "-", input=TRACK_RULESET)
        ns.set_sysctl("net.netfilter.nf_conntrack_udp_timeout", 600)
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=30)
    listed = subprocess.run(  # bytes: another namespace's name need not be UTF-8
        ["ip", "netns", "list"], capture_output=True, check=True, timeout=30
    ).stdout.decode("utf-8", "replace")
    assert name not in listed, f"{name} was not deleted"


# One conntrack -R line per entry; tuples differ by source address and port.
ASSURED_TCP = (
    "-I -p tcp -s 127.0.{a}.2 -d 127.0.0.1 --sport {port} --dport 8983"
    " --state ESTABLISHED --status ASSURED,SEEN_REPLY -t 3600\n"
)
UNREPLIED_UDP = "-I -p udp -s 127.0.{a}.3 -d 127.0.0.1 --sport {port} --dport 53 -t 600\n"
SEND_UDP = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
refused = 0
for port in range(40000, 40000 + int(sys.argv[1])):  # bounded: a few datagrams
    try:
        s.sendto(b"x", ("127.0.0.1", port))
    except PermissionError:  # the kernel dropped it: no room in the table
        refused += 1
print(refused)
"""


def global_max() -> int:
    return int(Path("/proc/sys/net/netfilter/nf_conntrack_max").read_text())


def fill(netns: Netns, tmp_path: Path, line: str) -> int:
    """Fill the namespace's table with ``line`` (ASSURED_TCP, UNREPLIED_UDP) up to the global
    max, design §10's recipe (about 3 s for 262144)."""
    entries = global_max()
    load = tmp_path / "fill.txt"
    with load.open("w") as out:
        for i in range(entries):
            a, port = divmod(i, 60000)
            out.write(line.format(a=a, port=1024 + port))
    netns.run("conntrack", "-R", str(load), timeout=120)
    assert netns.count() == entries
    return entries


def stat_totals(netns: Netns) -> dict[str, int]:
    """The namespace's /proc/net/stat/nf_conntrack columns, summed over CPUs."""
    lines = netns.run("cat", "/proc/net/stat/nf_conntrack").stdout.split("\n")
    names = lines[0].split()
    totals = dict.fromkeys(names, 0)
    for row in filter(None, lines[1:]):
        for name, value in zip(names, row.split(), strict=True):
            totals[name] += int(value, 16)
    return totals
