"""`ctguard notrack` with the nft backend untracks IPv4 only when IPv6 cannot get its accept,
and the kernel keeps tracking IPv6 (issue 16, item 6).

The namespace (fixture ``netns``) gets an IPv4 filter in native nft (``ip filter``) and an
IPv6 filter in ip6tables, both stateful: input policy drop, accept established,related and
new connections to 8983. ``notrack --direction both`` (on loopback both ends are local)
runs with a PATH that has every tool but ``ip6tables-restore``, so the ip6tables accept an
IPv6 NOTRACK needs cannot be added: the plan must untrack IPv4 only (``meta nfproto
ipv4``). A server answers on 127.0.0.1:8983 and [::1]:8983 (loopback only); every
connection has a 2 s timeout and the server exits after 60 s at most. --remove must leave
the ruleset as it was.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import ctguard_bin
from netns_helpers import Netns, echo_connects, echo_server

pytestmark = pytest.mark.kernel

PORT = 8983
NFT_IPV4 = f"""table ip filter {{
    chain input {{
        type filter hook input priority 0; policy drop;
        ct state established,related accept
        tcp dport {PORT} ct state new accept
    }}
}}
"""
IP6T_FILTER = f"""*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p tcp -m tcp --dport {PORT} -m conntrack --ctstate NEW -j ACCEPT
COMMIT
"""
# every tool ctguard runs, except ip6tables-restore
TOOLS = ("nft", "iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save",
         "conntrack", "ip", "uname", "ps")  # fmt: skip


@pytest.fixture
def server(netns: Netns) -> Iterator[None]:
    with echo_server(netns.name, [("127.0.0.1", PORT), ("::1", PORT)]):
        yield


def without_ip6tables_restore(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH has the tools ctguard runs, but not ip6tables-restore."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in TOOLS:
        found = subprocess.run(["sh", "-c", f"command -v {name}"], capture_output=True,
                               text=True, check=False).stdout.strip()  # fmt: skip
        if not found:
            pytest.skip(f"{name} is not installed")
        (tools / name).symlink_to(found)
    return {**os.environ, "PATH": str(tools)}


def connects(netns: Netns, host: str) -> bool:
    return echo_connects(netns.name, host, PORT)


def entries_on_port(netns: Netns) -> tuple[int, int]:
    """(IPv4, IPv6) conntrack entries whose original destination port is PORT."""
    counts = []
    for family in ("ipv4", "ipv6"):
        listed = netns.run("conntrack", "-L", "-f", family).stdout.splitlines()
        counts.append(sum(1 for line in listed if f"dport={PORT} " in line))
    return counts[0], counts[1]


def ruleset(netns: Netns) -> str:
    text = netns.run("nft", "--stateless", "list", "ruleset").stdout
    saved = netns.run("ip6tables-save").stdout
    return text + "\n".join(
        re.sub(r"\[\d+:\d+\]", "", line) for line in saved.splitlines() if not line.startswith("#")
    )


def test_ipv6_stays_tracked_when_only_ipv4_is_untracked(
    netns: Netns, server: None, tmp_path: Path
) -> None:
    netns.run("nft", "delete", "table", "inet", "ctguard_test")
    netns.run("nft", "-f", "-", input=NFT_IPV4)
    netns.run("ip6tables-restore", input=IP6T_FILTER)
    assert connects(netns, "127.0.0.1") and connects(netns, "::1")
    assert entries_on_port(netns) >= (1, 1), "before: both families are tracked"
    before = ruleset(netns)

    env = without_ip6tables_restore(tmp_path)
    state = tmp_path / "state"
    argv = [
        ctguard_bin(),
        "notrack",
        "--netns",
        netns.name,
        "--state-dir",
        str(state),
        "--port",
        str(PORT),
        "--direction",
        "both",
    ]  # loopback: both ends are local
    done = subprocess.run([*argv, "--apply", "--yes"], capture_output=True, text=True,
                          timeout=90, check=False, env=env)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "backend: nft" in done.stdout
    assert "IPv4 only: ip6tables-restore is not installed" in done.stdout
    listed = netns.run("nft", "list", "table", "inet", "ctguard").stdout
    notracks = [line.strip() for line in listed.splitlines() if " notrack " in line]
    assert len(notracks) == 4 and all(r.startswith("meta nfproto ipv4 ") for r in notracks)
    assert not any(line.lstrip().startswith("ip6tables") for line in done.stdout.splitlines())

    netns.run("conntrack", "-F")
    assert all(connects(netns, "127.0.0.1") for _ in range(3))
    assert all(connects(netns, "::1") for _ in range(3))
    v4, v6 = entries_on_port(netns)
    assert v4 == 0, "IPv4 to the port is untracked"
    assert v6 >= 3, "IPv6 to the port is still tracked: its filter never got an accept"

    removed = subprocess.run([*argv[:-4], "--remove", "--yes"], capture_output=True, text=True,
                             timeout=90, check=False, env=env)  # fmt: skip
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert ruleset(netns) == before
    assert connects(netns, "127.0.0.1")
    assert entries_on_port(netns)[0] >= 1, "after --remove IPv4 is tracked again"
