"""NOTRACK candidates fit the direction of a port's entries (issue 16 item 7): a host's own
DNS queries are a client port, a served port a server one, a router's mixed port both ways,
and a forwarded, NATed or ephemeral port, a small sample or unknown addresses none."""

from __future__ import annotations

import pytest
from tablescan import KINDS, make_scan

from ctguard.sources.local_addresses import LocalAddresses
from ctguard.table.candidates import notrack_candidates
from ctguard.table.summary import summarize

HOST = "10.0.0.10"
HOST6 = "2001:db8::10"
LOCAL = LocalAddresses(frozenset({HOST, HOST6, "127.0.0.1"})).spellings()
EPHEMERAL = (32768, 60999)


def udp(src: str, dst: str, sport: int, dport: int, reply_src: str | None = None) -> str:
    return (
        f"ipv4     2 udp      17 25 src={src} dst={dst} sport={sport} dport={dport} "
        f"src={reply_src or dst} dst={src} sport={dport} dport={sport} mark=0 zone=0 use=2"
    )


def own_queries(n: int, port: int = 53) -> list[str]:
    """The host asking resolvers: from its address and an ephemeral port."""
    return [udp(HOST, f"192.0.2.{1 + i % 2}", 33000 + i, port) for i in range(n)]


def served(n: int, port: int = 53) -> list[str]:
    """Clients asking the host's own service."""
    return [udp(f"198.51.100.{1 + i % 200}", HOST, 40000 + i, port) for i in range(n)]


def filler(n: int) -> list[str]:
    return [udp(f"198.51.100.{1 + i % 200}", HOST, 20000 + i, 7000 + i % 97) for i in range(n)]


def candidates(lines: list[str], kind: str = "python", local: frozenset[bytes] | None = LOCAL):
    # as analyze and doctor scan: with the host's addresses and its ip_local_port_range
    tally = make_scan(kind)(("\n".join(lines) + "\n").encode(), True, local, EPHEMERAL)
    return notrack_candidates(summarize(tally), EPHEMERAL)


@pytest.mark.parametrize("kind", KINDS)
def test_own_dns_queries_are_a_client_port(kind: str) -> None:
    found = candidates(own_queries(800) + filler(400), kind)
    assert [(c.port, c.direction) for c in found.rows] == [(53, "client")]
    assert found.rows[0].command == "ctguard notrack --port 53 --proto udp --direction client"
    assert found.rows[0].split == (("client", 800),)


@pytest.mark.parametrize("kind", KINDS)
def test_a_served_port_is_a_server_port(kind: str) -> None:
    found = candidates(served(800) + filler(400), kind)
    assert [(c.port, c.direction) for c in found.rows] == [(53, "server")]


def test_a_port_served_and_queried_is_both_ways_in_one_candidate() -> None:
    # a router's resolver: half the LAN's queries to it, half its own queries upstream
    found = candidates(served(500) + own_queries(500) + filler(200))
    assert [(c.port, c.direction, c.entries) for c in found.rows] == [(53, "both", 1000)]
    assert dict(found.rows[0].split) == {"server": 500, "client": 500}


def test_loopback_needs_both() -> None:
    lines = [udp("127.0.0.1", "127.0.0.1", 33000 + i, 53) for i in range(800)] + filler(400)
    assert [(c.port, c.direction) for c in candidates(lines).rows] == [(53, "both")]


def test_forwarded_entries_pass_the_port_over() -> None:
    forwarded = [udp(f"192.168.1.{i % 200 + 1}", "192.0.2.1", 33000 + i, 53) for i in range(300)]
    found = candidates(served(500) + forwarded + filler(300))
    assert found.rows == ()
    assert [p.port for p in found.passed_over] == [53]
    assert "300 of its entries are forwarded" in found.passed_over[0].why


def test_nated_port_is_passed_over() -> None:
    nated = [udp(HOST, "192.0.2.1", 33000 + i, 53, reply_src="192.0.2.99") for i in range(600)]
    found = candidates(nated + filler(600))
    assert found.rows == ()
    assert "NATed" in found.passed_over[0].why


def test_an_ephemeral_port_is_never_proposed() -> None:
    # the two-entry sample of the issue proposed 38205; even a large one is no service
    lines = [udp(f"198.51.100.{i % 200 + 1}", HOST, 53, 38205) for i in range(800)] + filler(400)
    found = candidates(lines)
    assert found.rows == ()
    assert "ip_local_port_range 32768-60999" in found.passed_over[0].why


def test_a_small_sample_proposes_nothing() -> None:
    found = candidates([udp(HOST, "192.0.2.1", 38000, 53), udp("192.0.2.7", HOST, 53, 38205)])
    assert found.rows == () and found.passed_over == ()
    assert found.skipped == "2 entries: too few to propose NOTRACK (from 1,000)"


def test_unknown_addresses_propose_nothing() -> None:
    found = candidates(own_queries(800) + filler(400), local=None)
    assert found.rows == ()
    assert found.skipped.startswith("no --direction can be chosen")


@pytest.mark.parametrize("kind", KINDS)
def test_procfs_spells_ipv6_in_full_and_still_matches(kind: str) -> None:
    full = "2001:0db8:0000:0000:0000:0000:0000:0010"
    lines = [
        f"ipv6     10 udp      17 25 src={full} dst=2001:0db8:0000:0000:0000:0000:0000:0053 "
        f"sport={33000 + i} dport=53 src=2001:0db8:0000:0000:0000:0000:0000:0053 dst={full} "
        f"sport=53 dport={33000 + i} mark=0 zone=0 use=2"
        for i in range(800)
    ]
    found = candidates(lines + filler(400), kind)
    assert [(c.port, c.direction) for c in found.rows] == [(53, "client")]


@pytest.mark.parametrize("kind", KINDS)
def test_own_connections_from_a_fixed_port_pass_the_port_over(kind: str) -> None:
    # ntpd asks its servers from udp/123 to udp/123: the host's own (client) entries, but
    # --direction client untracks only replies to ip_local_port_range, so the replies to
    # port 123 would stay tracked while the queries are not: no candidate, and why
    ntp = [udp(HOST, f"192.0.2.{1 + i % 200}", 123, 123) for i in range(800)]
    found = candidates(ntp + filler(400), kind)
    assert found.rows == ()
    (passed,) = found.passed_over
    assert (passed.protocol, passed.port, passed.entries) == ("udp", 123, 800)
    assert passed.why.startswith(
        "800 of the host's own connections to it leave from source ports outside"
        " ip_local_port_range 32768-60999"
    )


def test_a_resolver_with_its_own_port_range_is_passed_over_for_the_ports_outside() -> None:
    # unbound's outgoing-port-permit 1024-65535: most queries leave from the kernel's range
    # too, but the 200 that do not would have their replies tracked and dropped
    inside = [udp(HOST, "192.0.2.1", 33000 + i, 53) for i in range(600)]
    outside = [udp(HOST, "192.0.2.1", 2000 + i, 53) for i in range(100)]
    outside += [udp(HOST, "192.0.2.1", 61000 + i, 53) for i in range(100)]
    found = candidates(inside + outside + filler(300))
    assert found.rows == ()
    assert found.passed_over[0].why.startswith("200 of the host's own connections")


def test_served_entries_from_any_client_port_stay_a_server_port() -> None:
    # the peers' source ports are theirs (Windows uses 49152-65535): not the host's range
    lines = [udp(f"198.51.100.{1 + i % 200}", HOST, 1024 + i, 53) for i in range(800)]
    found = candidates(lines + filler(400))
    assert [(c.port, c.direction) for c in found.rows] == [(53, "server")]
