"""Cases a review of `notrack` found: restrictions reached through a jump, IPv6 NAT
targets, the multiport limit, client replies limited to the ephemeral ports, and what
`--verify` counts as an entry on the untracked ports."""

from __future__ import annotations

import json

from ctguard.host.flow_watch import NewFlow
from ctguard.remediation.notrack import NotrackRequest, flows_for, translated_ports
from ctguard.sources.ruleset import PortSet, parse_iptables_save, parse_nft_json
from ctguard.usecases.notrack import is_untracked_entry
from notrack_samples import PORT, plan, sample, shown

EPHEMERAL = PortSet.of((32768, 60999))

JUMP = """*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:SVC - [0:0]
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -s 10.0.0.0/8 -j SVC
-A SVC -p tcp -m tcp --dport 8983 -j ACCEPT
COMMIT
"""


NEW_ONLY = "-A SVC -p tcp -m tcp --dport 8983 -m conntrack --ctstate NEW -j ACCEPT"


def test_an_accept_reached_through_a_restricted_jump_refuses():
    save = JUMP.replace("-A SVC -p tcp -m tcp --dport 8983 -j ACCEPT", NEW_ONLY)
    refused = plan(parse_iptables_save(save))
    (refusal,) = refused.refusals
    assert refusal.rules == (
        f"iptables -t filter {NEW_ONLY} (reached through iptables -t filter -A INPUT"
        " -s 10.0.0.0/8 -j SVC)",
    )
    assert "only under conditions" in refusal.reason
    assert plan(parse_iptables_save(save), force=True).refusals == ()


def test_a_stateless_accept_behind_a_restricted_jump_needs_nothing():
    # untracked packets from 10.0.0.0/8 take the same path to the same accept
    planned = plan(parse_iptables_save(JUMP))
    assert planned.refusals == ()
    assert [rule.action for rule in planned.add] == ["notrack"] * 4


def test_an_unrestricted_jump_does_not_refuse():
    save = JUMP.replace("-A INPUT -s 10.0.0.0/8 -j SVC", "-A INPUT -p tcp -j SVC").replace(
        "-A SVC -p tcp -m tcp --dport 8983 -j ACCEPT", NEW_ONLY
    )
    assert plan(parse_iptables_save(save)).refusals == ()


def _nft_dnat6(to: dict[str, object]) -> str:
    return json.dumps({"nftables": [
        {"table": {"family": "ip6", "name": "nat", "handle": 1}},
        {"chain": {"family": "ip6", "table": "nat", "name": "pre", "handle": 1, "type": "nat",
                   "hook": "prerouting", "prio": -100, "policy": "accept"}},
        {"rule": {"family": "ip6", "table": "nat", "chain": "pre", "handle": 2, "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                       "right": 80}},
            {"dnat": {"family": "ip6", **to}}]}},
    ]})  # fmt: skip


def test_an_ipv6_dnat_to_the_port_is_refused():
    rs = parse_nft_json(_nft_dnat6({"addr": "fd00::5", "port": 8983}))
    (rule,) = rs.rules()
    assert rule.target == "[fd00::5]:8983"
    (refusal,) = plan(rs).refusals
    assert "NAT rule" in refusal.reason
    (shown_rule,) = refusal.rules
    assert "dnat" in shown_rule and "[fd00::5]:8983" in shown_rule


def test_an_ipv6_dnat_without_port_is_not_a_dnat_to_the_port():
    rs = parse_nft_json(_nft_dnat6({"addr": "fd00::8983"}))
    assert translated_ports("fd00::8983") is None
    assert plan(rs).refusals == ()


def test_more_than_fifteen_iptables_ports_are_refused_before_apply():
    ports = PortSet.of(*range(9000, 9032, 2))  # 16 single ports
    refused = plan(parse_iptables_save(sample("ipt-stateful.iptables-save")), ports=ports)
    (refusal,) = refused.refusals
    assert "at most 15 ports" in refusal.reason and "counts 16" in refusal.reason
    ranges = PortSet.of((9000, 9015))  # one range counts two
    stateful = parse_iptables_save(sample("ipt-stateful.iptables-save"))
    assert plan(stateful, ports=ranges).refused is False


def test_nft_takes_any_number_of_ports():
    ports = PortSet.of(*range(9000, 9040))
    done = plan(parse_nft_json(sample("nft-stateful.json")), ports=ports)
    assert not done.refused


def test_client_replies_are_untracked_and_accepted_only_on_the_ephemeral_ports():
    request = NotrackRequest(PortSet.of(53), ("udp",), "client", local_ports=EPHEMERAL)
    back = [f for f in flows_for(request) if f.hook == "prerouting"]
    assert [(str(f.sports), str(f.dports)) for f in back] == [("53", "32768-60999")]
    done = plan(parse_iptables_save(sample("ipt-stateful.iptables-save")), ports=PortSet.of(53),
                protos=("udp",), direction="client", local_ports=EPHEMERAL)  # fmt: skip
    accepts = [r for r in shown(done.add) if "UNTRACKED" in r]
    assert accepts == [
        "iptables -t filter -I INPUT 1 -p udp -m udp --sport 53 --dport 32768:60999"
        " -m conntrack --ctstate UNTRACKED -m comment --comment ctguard -j ACCEPT"
    ]


def test_verify_counts_entries_by_their_original_destination_port():
    request = NotrackRequest(PORT, ("tcp",), "server")
    assert is_untracked_entry(NewFlow("tcp", 40000, 8983), request)  # to the service
    assert not is_untracked_entry(NewFlow("tcp", 8983, 443), request)  # ephemeral, by chance
    assert not is_untracked_entry(NewFlow("udp", 40000, 8983), request)  # another protocol


def test_verify_of_an_ipv4_only_bypass_expects_ipv6_entries():
    # IPv6 stays tracked when only IPv4 is untracked: its new entries prove nothing wrong
    request = NotrackRequest(PORT, ("tcp",), "server")
    v6 = NewFlow("tcp", 40000, 8983, ipv6=True)
    assert not is_untracked_entry(v6, request, "ip")
    assert is_untracked_entry(NewFlow("tcp", 40000, 8983), request, "ip")
    assert is_untracked_entry(v6, request, "inet")
