"""Real-kernel fixture: a fresh network namespace per test, always deleted (netns_helpers)."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator

import pytest

from netns_helpers import TRACK_RULESET, Netns, why_no_kernel


@pytest.fixture
def netns() -> Iterator[Netns]:
    why = why_no_kernel()
    if why:
        pytest.skip(why)
    name = f"ctgt-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    try:
        ns = Netns(name)
        ns.run("ip", "link", "set", "lo", "up")
        # conntrack hooks register only when a rule needs them (kernel 4.10+)
        ns.run("nft", "-f", "-", input=TRACK_RULESET)
        # keep test flows alive for the whole test (UDP unreplied default: 30 s)
        ns.set_sysctl("net.netfilter.nf_conntrack_udp_timeout", 600)
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=30)
    assert (
        name
        not in subprocess.run(
            ["ip", "netns", "list"], capture_output=True, text=True, check=True, timeout=30
        ).stdout
    )
