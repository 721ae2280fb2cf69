"""iptables-save / ip6tables-save / ``nft -j list ruleset`` parsing, merging and reading.

Inputs under tests/data/rulesets/ were captured from iptables 1.8.9 and nftables 1.0.6
(Debian 12) inside a throw-away network namespace; the README there says how.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctguard.errors import ParseError
from ctguard.host.commands import CapturedCommands
from ctguard.missing import Missing
from ctguard.sources.ruleset import (
    ALL_STATES,
    Chain,
    PortSet,
    Rule,
    RuleMatch,
    Ruleset,
    describe,
    merge_rulesets,
    parse_iptables_save,
    parse_nft_json,
    read_ruleset,
)

DATA = Path(__file__).parent.parent / "data" / "rulesets"


def data(name: str) -> str:
    return (DATA / name).read_text()


def only(rs: Ruleset, table: str, chain: str, index: int = 0) -> Rule:
    found = [r for r in rs.rules() if (r.table, r.chain) == (table, chain)]
    return found[index]


def by_text(rs: Ruleset, text: str) -> Rule:
    (rule,) = [r for r in rs.rules() if r.text == text]
    return rule


# -- PortSet ---------------------------------------------------------------------------------
def test_portset_merges_sorts_and_drops_impossible_ports():
    ports = PortSet.of(8100, (8000, 8099), 443, (80, 80), 70000, (-1, 5))
    assert ports.ranges == ((80, 80), (443, 443), (8000, 8100))


def test_portset_reversed_range_is_normalised():
    assert PortSet.of((1023, 1)).ranges == ((1, 1023),)


def test_portset_queries():
    web = PortSet.of(80, 443, (8000, 8100))
    assert web.contains(8000) and not web.contains(8101)
    assert web.overlaps(PortSet.of((8100, 9000)))
    assert not web.overlaps(PortSet.of((444, 7999)))
    assert web.covers(PortSet.of(80, (8010, 8020)))
    assert not web.covers(PortSet.of((8000, 8200)))
    assert str(PortSet.of(22).complement()) == "0-21,23-65535"
    assert PortSet.of((0, 65535)).complement().ranges == ()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 65535), st.integers(0, 65535)), max_size=8))
def test_portset_complement_partitions_ports(spans):
    ports = PortSet.of(*spans)
    rest = ports.complement()
    assert not ports.overlaps(rest)
    assert rest.complement() == ports
    for port in (0, 1, 80, 1023, 1024, 8983, 65534, 65535):
        assert ports.contains(port) != rest.contains(port)


_SPANS = st.lists(st.tuples(st.integers(0, 300), st.integers(0, 300)), max_size=6)


@settings(max_examples=200, deadline=None)
@given(_SPANS, _SPANS)
def test_portset_intersection_is_the_common_ports(a, b):
    left, right = PortSet.of(*a), PortSet.of(*b)
    common = left.intersection(right)
    assert common == PortSet.of(*(p for p in range(302) if left.contains(p) and right.contains(p)))
    assert left.overlaps(right) == bool(common.ranges)
    assert left.covers(common) and right.covers(common)


# -- iptables-save ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ipt() -> Ruleset:
    return parse_iptables_save(data("iptables-nft.iptables-save"))


def test_builtin_chains_get_hook_priority_type_and_policy(ipt):
    chains = {(c.table, c.name): c for c in ipt.chains}
    assert (chains["raw", "PREROUTING"].hook, chains["raw", "PREROUTING"].priority) == (
        "prerouting",
        -300,
    )
    assert chains["mangle", "FORWARD"].priority == -150
    assert (chains["nat", "PREROUTING"].priority, chains["nat", "POSTROUTING"].priority) == (
        -100,
        100,
    )
    assert chains["nat", "POSTROUTING"].type == "nat"
    assert chains["filter", "INPUT"] == Chain(
        "iptables", "ip", "filter", "INPUT", "input", 0, "filter", "drop",
        chains["filter", "INPUT"].rules,
    )  # fmt: skip
    assert chains["filter", "OUTPUT"].policy == "accept"


def test_user_chains_have_no_hook_or_policy(ipt):
    services = ipt.chain("ip", "filter", "SERVICES")
    assert services is not None
    assert (services.hook, services.priority, services.type, services.policy) == (
        None,
        None,
        None,
        None,
    )
    assert [r.verdict for r in services.rules] == ["accept", "return", "reject"]


def test_raw_targets(ipt):
    rules = ipt.chain("ip", "raw", "PREROUTING").rules
    assert [r.verdict for r in rules] == ["notrack", "notrack", "ct", "ct"]
    assert rules[0].text == "-A PREROUTING -p tcp -m tcp --dport 8983 -j NOTRACK"
    assert rules[0].line == 16
    assert rules[0].match == RuleMatch(protos=frozenset({"tcp"}), dports=PortSet.of(8983))
    assert rules[1].match.dports == PortSet.of(53, 5353, (6000, 6010))  # multiport
    assert rules[1].match.protos == frozenset({"udp"})
    # CT --helper / --zone create conntrack templates: they need conntrack, NOTRACK does not
    assert (rules[0].match.uses_conntrack, rules[2].match.uses_conntrack) == (False, True)
    assert rules[3].match.iif == "lo"
    output = only(ipt, "raw", "OUTPUT")
    assert (output.verdict, output.match.sports) == ("notrack", PortSet.of(8983))


def test_state_and_conntrack_matches(ipt):
    rules = ipt.chain("ip", "filter", "INPUT").rules
    assert rules[1].match.ct_states == {"established", "related"}  # -m state --state
    assert rules[2].match.ct_states == {"untracked"}  # -m conntrack --ctstate UNTRACKED
    # "! --ctstate INVALID,NEW,RELATED,ESTABLISHED" is the complement within ALL_STATES
    assert rules[3].match.ct_states == {"untracked"}
    assert rules[4].verdict == "drop" and rules[4].match.ct_states == {"invalid"}
    assert all(r.match.uses_conntrack for r in rules[1:5])
    assert not rules[0].match.uses_conntrack


def test_comment_is_not_a_condition_but_an_address_is(ipt):
    rule = ipt.chain("ip", "filter", "INPUT").rules[5]
    assert rule.text.endswith('-m comment --comment "ssh from the office" -j ACCEPT')
    assert rule.match.other == ()
    assert rule.match.saddrs == {"10.0.0.0/8"}
    assert (rule.match.protos, rule.match.dports) == (frozenset({"tcp"}), PortSet.of(22))


def test_ports_ranges_and_negation(ipt):
    rules = ipt.chain("ip", "filter", "INPUT").rules
    assert rules[6].match.dports == PortSet.of(80, 443, (8000, 8100))
    assert (rules[7].match.sports, rules[7].match.dports) == (
        PortSet.of(53),
        PortSet.of((1024, 65535)),
    )
    not_9300 = ipt.chain("ip", "filter", "SERVICES").rules[1]
    assert not_9300.match.dports == PortSet.of((0, 9299), (9301, 65535))


def test_jump_goto_and_other_targets(ipt):
    rules = ipt.chain("ip", "filter", "INPUT").rules
    assert (rules[9].verdict, rules[9].target) == ("jump", "SERVICES")
    assert (rules[10].verdict, rules[10].target) == ("jump", "LOGDROP")
    goto = ipt.chain("ip", "filter", "FORWARD").rules[1]
    assert (goto.verdict, goto.target, goto.match.iif, goto.match.oif) == (
        "goto",
        "SERVICES",
        "eth1",
        "eth0",
    )
    log = ipt.chain("ip", "filter", "LOGDROP").rules[0]
    assert (log.verdict, log.match.other) == ("other", ("-m limit --limit 5/min",))


def test_conntrack_options_we_do_not_model(ipt):
    rule = ipt.chain("ip", "filter", "FORWARD").rules[2]
    assert rule.match.other == (
        "-m conntrack --ctstatus CONFIRMED",
        "-m conntrack --ctorigdst 192.0.2.10",
    )
    assert rule.match.uses_conntrack and rule.match.ct_states is None


def test_connmark_mark_and_connmark_target(ipt):
    mangle = only(ipt, "mangle", "PREROUTING")
    assert mangle.match.other == ("-m connmark --mark 0x2",)
    assert mangle.match.uses_conntrack and mangle.verdict == "other"
    connmark = only(ipt, "filter", "OUTPUT")  # -m mark ... -j CONNMARK --save-mark
    assert connmark.match.other == ("-m mark --mark 0x1",)
    assert connmark.match.uses_conntrack
    tcpmss = only(ipt, "mangle", "FORWARD")
    assert tcpmss.match.other == ("-m tcp --tcp-flags SYN,RST SYN",)
    assert not tcpmss.match.uses_conntrack


def test_nat_targets(ipt):
    pre = ipt.chain("ip", "nat", "PREROUTING").rules
    assert [(r.verdict, r.target) for r in pre] == [("dnat", "10.0.0.5:80"), ("redirect", ":22")]
    assert pre[0].match.iif == "eth0" and pre[0].match.uses_conntrack
    out = only(ipt, "nat", "OUTPUT")
    assert (out.verdict, out.target, out.match.daddrs) == (
        "dnat",
        "127.0.0.1:53",
        {"127.0.0.1/32"},
    )
    post = ipt.chain("ip", "nat", "POSTROUTING").rules
    assert [(r.verdict, r.target, r.match.oif) for r in post] == [
        ("masquerade", None, "eth0"),
        ("snat", "203.0.113.1", "eth1"),
    ]


def test_ip6tables_family_and_backend():
    rs = parse_iptables_save(data("iptables-nft.ip6tables-save"), "ip6tables")
    assert {(c.backend, c.family) for c in rs.chains} == {("ip6tables", "ip6")}
    rule = rs.chain("ip6", "filter", "INPUT").rules[3]
    assert (
        rule.text
        == "-A INPUT -p tcp -m tcp --dport 8983 -m conntrack --ctstate UNTRACKED -j ACCEPT"
    )
    assert (rule.match.ct_states, rule.match.dports) == (frozenset({"untracked"}), PortSet.of(8983))
    icmp = rs.chain("ip6", "filter", "INPUT").rules[2]
    assert icmp.match.protos == {"ipv6-icmp"}
    assert describe(rule).startswith("ip6tables -t filter -A INPUT -p tcp")


def test_legacy_counters_are_not_part_of_the_rule():
    rs = parse_iptables_save(data("legacy-naive-notrack.iptables-save"))
    rule = only(rs, "raw", "PREROUTING")
    assert rule.text == "-A PREROUTING -p tcp -m tcp --dport 8983 -j NOTRACK"
    assert rule.verdict == "notrack"
    assert [r.match.ct_states for r in rs.chain("ip", "filter", "INPUT").rules][1:4] == [
        {"established", "related"},
        {"new"},
        {"new"},
    ]
    assert rs.warnings == ()


def _table(*lines: str, table: str = "filter") -> str:
    chains = ":INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    return f"*{table}\n{chains}" + "".join(line + "\n" for line in lines) + "COMMIT\n"


def test_protocol_numbers_and_all():
    rs = parse_iptables_save(_table(
        "-A INPUT -p 6 --dport 8983 -j ACCEPT",
        "-A INPUT -p all -j ACCEPT",
        "-A INPUT --protocol 17 -m udp --destination-port 53 -j ACCEPT",
    ))  # fmt: skip
    rules = rs.chain("ip", "filter", "INPUT").rules
    assert rules[0].match.protos == {"tcp"} and rules[0].match.dports == PortSet.of(8983)
    assert rules[1].match.protos is None
    assert rules[2].match == RuleMatch(protos=frozenset({"udp"}), dports=PortSet.of(53))


def test_negations_we_cannot_model_are_other():
    rs = parse_iptables_save(_table("-A INPUT ! -i lo -j DROP", "-A INPUT ! -p tcp -j ACCEPT",
                                    "-A INPUT ! -s 10.0.0.0/8 -j DROP"))  # fmt: skip
    other = [r.match.other for r in rs.chain("ip", "filter", "INPUT").rules]
    assert other == [("! -i lo",), ("! -p tcp",), ("! -s 10.0.0.0/8",)]
    assert all(r.match.iif is None and r.match.protos is None for r in rs.rules())


def test_old_style_negation_after_the_option():
    rs = parse_iptables_save(_table("-A INPUT -p tcp --dport ! 22 -j ACCEPT"))
    assert only(rs, "filter", "INPUT").match.dports == PortSet.of(22).complement()


def test_port_open_ranges():
    rs = parse_iptables_save(_table("-A INPUT -p tcp --dport :1023 -j DROP",
                                    "-A INPUT -p udp --sport 1024: -j ACCEPT"))  # fmt: skip
    rules = rs.chain("ip", "filter", "INPUT").rules
    assert rules[0].match.dports == PortSet.of((0, 1023))
    assert rules[1].match.sports == PortSet.of((1024, 65535))


def test_unreadable_ports_are_kept_as_other():
    rs = parse_iptables_save(_table("-A INPUT -p tcp --dport http -j ACCEPT"))
    rule = only(rs, "filter", "INPUT")
    assert (rule.match.dports, rule.match.other) == (None, ("--dport http",))


def test_ctstate_dnat_is_a_status_not_a_state():
    rs = parse_iptables_save(_table(
        "-A INPUT -m conntrack --ctstate DNAT,ESTABLISHED -j ACCEPT",
        "-A INPUT -m conntrack ! --ctstate DNAT -j ACCEPT",
    ))  # fmt: skip
    rules = rs.chain("ip", "filter", "INPUT").rules
    assert (rules[0].match.ct_states, rules[0].match.other) == (frozenset({"established"}), ())
    assert rules[1].match.ct_states == ALL_STATES
    assert rules[1].match.other == ("! --ctstate DNAT",)


def test_state_and_ctstate_together_intersect():
    rs = parse_iptables_save(_table(
        "-A INPUT -m state --state NEW,ESTABLISHED -m conntrack --ctstate ESTABLISHED -j ACCEPT"
    ))  # fmt: skip
    assert only(rs, "filter", "INPUT").match.ct_states == {"established"}


def test_nat_helpers_and_netmap():
    rs = parse_iptables_save(_table(
        "-A PREROUTING -d 192.0.2.0/24 -j NETMAP --to 10.0.0.0/24",
        "-A POSTROUTING -s 10.0.0.0/24 -j NETMAP --to 192.0.2.0/24",
        "-A POSTROUTING -o eth0 -p tcp -j MASQUERADE --to-ports 1024-65535",
        table="nat",
    ))  # fmt: skip
    assert [(r.verdict, r.target) for r in rs.rules()] == [
        ("dnat", "10.0.0.0/24"),
        ("snat", "192.0.2.0/24"),
        ("masquerade", ":1024-65535"),
    ]


def test_undeclared_uppercase_target_is_an_extension_not_a_chain():
    rs = parse_iptables_save(_table("-A INPUT -j NFLOG --nflog-prefix \"x y\"",
                                    "-A INPUT -j my-chain"))  # fmt: skip
    rules = rs.chain("ip", "filter", "INPUT").rules
    assert (rules[0].verdict, rules[1].verdict, rules[1].target) == ("other", "jump", "my-chain")


def test_bad_lines_become_counted_warnings():
    text = (
        "-A INPUT -j ACCEPT\n"  # before any table
        "*filter\n"
        ":INPUT DROP [0:0]\n"
        '-A INPUT -m comment --comment "unclosed -j ACCEPT\n'
        "-I INPUT 1 -j ACCEPT\n"
        "garbage\n"
        "-A INPUT -p tcp --dport 22 -j ACCEPT\n"
        ":\n"
        "*nat\n"  # filter had no COMMIT
        ":POSTROUTING ACCEPT [0:0]\n"
    )  # nat has no COMMIT either: truncated
    rs = parse_iptables_save(text)
    assert len(rs.warnings) == 6
    assert rs.warnings[0] == "iptables-save line 1: outside a *table section: '-A INPUT -j ACCEPT'"
    assert "line 4" in rs.warnings[1] and "quotation" in rs.warnings[1]
    assert rs.warnings[2] == "iptables-save line 5: not a -A rule: '-I INPUT 1 -j ACCEPT'"
    assert rs.warnings[-1] == "... and 2 more"
    # the good rule survives around them
    assert only(rs, "filter", "INPUT").match.dports == PortSet.of(22)


def test_empty_output_is_an_empty_ruleset():
    rs = parse_iptables_save("")
    assert rs == Ruleset("iptables", (), ())


# -- nft -j list ruleset ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def nft() -> Ruleset:
    return parse_nft_json(data("nft-native.json"))


def test_nft_chains(nft):
    chains = {c.label: c for c in nft.chains}
    assert chains["inet raw prerouting"].priority == -300
    assert chains["inet raw output"].priority == -310  # "priority raw - 10"
    assert chains["inet raw more_notrack"].hook is None
    assert (chains["inet filter input"].policy, chains["inet filter input"].type) == (
        "drop",
        "filter",
    )
    assert chains["ip nat postrouting"].type == "nat"
    assert chains["ip6 filter6 input"].priority == 10
    assert chains["netdev ingress_t ingress"].hook == "ingress"
    assert chains["bridge br forward"].family == "bridge"
    assert nft.warnings == ()


def test_nft_notrack_rules(nft):
    pre = nft.chain("inet", "raw", "prerouting").rules
    assert [r.text for r in pre] == [
        "tcp dport 8983 notrack",
        "udp dport { 53, 5353 } notrack",
        'iifname "lo" notrack',
    ]
    assert all(r.verdict == "notrack" and not r.match.uses_conntrack for r in pre)
    assert pre[1].match == RuleMatch(protos=frozenset({"udp"}), dports=PortSet.of(53, 5353))
    assert pre[2].match == RuleMatch(iif="lo")
    assert [r.line for r in pre] == [4, 6, 7]  # rule handles
    th = by_text(nft, "th sport 11211 notrack")
    assert (th.match.protos, th.match.sports) == (None, PortSet.of(11211))
    jump = by_text(nft, "jump more_notrack")
    assert (jump.verdict, jump.target) == ("jump", "more_notrack")


def test_nft_ct_state_forms(nft):
    first = nft.chain("inet", "filter", "input").rules[1]
    assert first.text == "ct state established,related accept"
    assert first.match.ct_states == {"established", "related"}
    assert by_text(nft, "ct state untracked accept").match.ct_states == {"untracked"}
    negated = by_text(nft, "ct state != { invalid, new } counter accept")
    assert negated.match.ct_states == {"established", "related", "untracked"}
    braces = by_text(nft, "tcp dport < 1024 ct state { established, related } accept")
    assert braces.match.ct_states == {"established", "related"}
    assert braces.match.dports == PortSet.of((0, 1023))


def test_nft_vmaps(nft):
    inline = next(r for r in nft.rules() if r.text.startswith("ct state vmap {"))
    assert inline.verdict == "vmap" and inline.match.uses_conntrack
    assert dict((v, s) for s, v in inline.vmap) == {
        "drop": {"invalid"},
        "accept": {"established", "related", "untracked"},
    }
    named = by_text(nft, "ct state vmap @state_verdicts")
    assert named.vmap == ((frozenset({"established", "related", "untracked"}), "accept"),)


def test_nft_port_forms(nft):
    assert by_text(nft, "tcp dport { 80, 443 } accept").match.dports == PortSet.of(80, 443)
    assert by_text(nft, "tcp dport @webports accept").match.dports == PortSet.of(80, 443)
    admin = by_text(nft, "tcp dport @admin_ports ip saddr 192.0.2.0/24 accept")
    assert admin.match.dports == PortSet.of(22, (9000, 9100))  # interval set
    assert admin.match.other == ()
    assert admin.match.saddrs == {"192.0.2.0/24"}
    th = by_text(nft, "meta l4proto { tcp, udp } th dport 53 accept")
    assert (th.match.protos, th.match.dports) == (frozenset({"tcp", "udp"}), PortSet.of(53))
    assert by_text(nft, "tcp dport 8000-8100 accept").match.dports == PortSet.of((8000, 8100))
    limited = next(r for r in nft.rules() if r.text.startswith("tcp dport != { 22, 80 }"))
    assert limited.match.dports == PortSet.of(22, 80).complement()
    assert limited.match.sports == PortSet.of((1, 1023))
    assert limited.match.other == ("limit rate 10 burst 5 per second",)


def test_nft_protocols_interfaces_and_comments(nft):
    assert by_text(nft, "meta l4proto icmp accept").match.protos == {"icmp"}
    assert by_text(nft, "meta l4proto ipv6-icmp accept").match.protos == {"ipv6-icmp"}
    v6 = next(r for r in nft.rules() if r.text.startswith("meta nfproto ipv6"))
    assert v6.text.endswith('accept comment "solr over v6"')
    # meta nfproto narrows an inet rule to one family: modelled, not an unknown condition
    assert (v6.match.nfproto, v6.match.other) == ("ip6", ())
    fwd = by_text(nft, 'iifname "eth1" oifname "eth0" ct state new accept')
    assert (fwd.match.iif, fwd.match.oif, fwd.match.ct_states) == ("eth1", "eth0", {"new"})


def test_nft_verdicts_and_conntrack_users(nft):
    goto = by_text(nft, "udp dport 6000-6010 goto services")
    assert (goto.verdict, goto.target) == ("goto", "services")
    reject = next(r for r in nft.rules() if r.text.startswith("log prefix"))
    assert reject.verdict == "reject" and reject.match.other == ()
    status = by_text(nft, "ct status dnat accept")
    assert status.match.other == ("ct status dnat",) and status.match.uses_conntrack
    ctmark = by_text(nft, "meta mark 1 ct mark set meta mark")
    assert (ctmark.verdict, ctmark.match.uses_conntrack) == ("other", True)
    helper = by_text(nft, 'ct helper set "ftp-standard"')
    zone = by_text(nft, "ct zone set 2")
    assert (helper.verdict, zone.verdict) == ("ct", "ct")
    assert helper.match.uses_conntrack and zone.match.uses_conntrack


def test_nft_nat_statements(nft):
    nat = [(r.verdict, r.target, r.match.dports) for r in nft.rules() if r.table == "nat"]
    assert nat == [
        ("dnat", "10.0.0.5:80", PortSet.of(8080)),
        ("redirect", ":22", PortSet.of(2222)),
        ("dnat", "10.0.0.6", PortSet.of((1000, 2000))),
        ("dnat", "127.0.0.1:53", PortSet.of(5353)),
        ("masquerade", None, None),
        ("snat", "203.0.113.1", None),
    ]
    assert describe(nft.chain("ip", "nat", "postrouting").rules[0]) == (
        'oifname "eth0" masquerade (table ip nat, chain postrouting)'
    )


def test_nft_ct_count_is_a_condition_and_ip_protocol_a_protocol():
    # nft -j of "tcp dport 22 ct count over 10 reject" and "ip protocol udp udp dport 53 accept"
    rs = parse_nft_json(
        '{"nftables": [{"rule": {"family": "inet", "table": "f", "chain": "input", "handle": 2,'
        ' "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field":'
        ' "dport"}}, "right": 22}}, {"ct count": {"val": 10, "inv": true}}, {"reject": {"type":'
        ' "icmpx", "expr": "port-unreachable"}}]}}, {"rule": {"family": "inet", "table": "f",'
        ' "chain": "input", "handle": 3, "expr": [{"match": {"op": "==", "left": {"payload":'
        ' {"protocol": "ip", "field": "protocol"}}, "right": "udp"}}, {"match": {"op": "==",'
        ' "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 53}},'
        ' {"accept": null}]}}]}'
    )
    count, dns = rs.rules()
    assert count.text == "tcp dport 22 ct count val 10 inv true reject with icmpx port-unreachable"
    assert (count.verdict, count.match.other) == ("reject", ("ct count val 10 inv true",))
    assert count.match.uses_conntrack
    assert dns.match == RuleMatch(protos=frozenset({"udp"}), dports=PortSet.of(53))


def test_iptables_nft_rules_seen_through_nft_are_opaque():
    rs = parse_nft_json(data("iptables-nft.nft.json"))
    notrack = only(rs, "raw", "PREROUTING")
    # nft -j prints "-j NOTRACK" as "xt target CT": notrack, helper or zone cannot be told
    assert notrack.text == "tcp dport 8983 counter xt target CT"
    assert (notrack.verdict, notrack.match.other) == ("ct", ("xt target CT",))
    state = rs.chain("ip", "filter", "INPUT").rules[1]
    assert state.match.other == ("xt match conntrack",) and state.match.uses_conntrack
    masq = only(rs, "nat", "POSTROUTING")
    assert (masq.verdict, masq.match.oif) == ("masquerade", "eth0")
    assert len(rs.warnings) == 1 and "(27)" in rs.warnings[0]


def test_nft_string_priorities():
    text = json.dumps({"nftables": [
        {"chain": {"family": "inet", "table": "t", "name": "a", "type": "filter",
                   "hook": "prerouting", "prio": "raw - 10", "policy": "accept"}},
        {"chain": {"family": "ip", "table": "t", "name": "b", "type": "nat",
                   "hook": "postrouting", "prio": "srcnat + 5"}},
        {"chain": {"family": "bridge", "table": "t", "name": "c", "type": "filter",
                   "hook": "forward", "prio": "filter"}},
        {"chain": {"family": "inet", "table": "t", "name": "d", "type": "filter",
                   "hook": "input", "prio": "nonsense"}},
    ]})  # fmt: skip
    rs = parse_nft_json(text)
    assert [c.priority for c in rs.chains] == [-310, 105, -200, None]
    assert rs.chains[1].policy == "accept"  # nft's default when the JSON has none


def test_nft_not_json_is_a_parse_error():
    with pytest.raises(ParseError, match=r"^nft -j list ruleset: not JSON"):
        parse_nft_json("Error: Could not process rule: Operation not permitted\n")
    with pytest.raises(ParseError, match='no "nftables" list'):
        parse_nft_json('{"ruleset": []}')
    with pytest.raises(ParseError, match="not JSON"):
        parse_nft_json("[" * 100_000)


def test_nft_bad_objects_are_warnings():
    text = json.dumps({"nftables": [
        {"chain": {"family": "inet", "name": "x"}},
        {"rule": {"family": "inet", "table": "t", "chain": "c"}},
        {"rule": {"family": "inet", "table": "t", "chain": "c", "handle": 2,
                  "expr": [{"accept": None}, "junk", {"a": 1, "b": 2}]}},
        {"rule": {"family": "inet", "table": "t", "chain": "c", "handle": 3,
                  "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp",
                            "field": "dport"}}, "right": 99999}}, {"accept": None}]}},
        {"rule": {"family": "inet", "table": "t", "chain": "c", "handle": 4,
                  "expr": [{"future_statement": {"x": 1}}, {"drop": None}]}},
        "not an object",
    ]})  # fmt: skip
    rs = parse_nft_json(text)
    assert len(rs.warnings) == 3
    assert rs.warnings[0].startswith("nft -j list ruleset: chain without family, table or name")
    rules = rs.rules()
    assert [r.verdict for r in rules] == ["accept", "accept", "drop"]
    assert rules[1].match.protos == {"tcp"} and rules[1].match.dports is None
    assert rules[1].match.other == ("tcp dport 99999",)  # no such port: kept as a condition
    assert rules[2].match.other == ("future_statement x 1",)
    assert rs.chains[0].hook is None  # a rule's chain that was never declared


# -- merging and reading ---------------------------------------------------------------------
def test_merge_drops_the_iptables_nft_copy():
    ipt = parse_iptables_save(data("iptables-nft.iptables-save"))
    ip6t = parse_iptables_save(data("iptables-nft.ip6tables-save"), "ip6tables")
    nft = parse_nft_json(data("iptables-nft.nft.json"))
    merged = merge_rulesets(ipt, ip6t, nft)
    assert isinstance(merged, Ruleset)
    assert merged.backend == "merged"
    assert {c.backend for c in merged.chains} == {"iptables", "ip6tables"}
    assert len(merged.rules()) == len(ipt.rules()) + len(ip6t.rules())
    assert merged.warnings == ()  # the xt warning was about the copies only


def test_merge_keeps_nft_tables_iptables_save_does_not_show():
    nft = parse_nft_json(data("iptables-nft.nft.json"))
    ipt = parse_iptables_save(data("iptables-nft.iptables-save"))
    merged = merge_rulesets(ipt, Missing("ip6tables-save is not installed"), nft)
    assert isinstance(merged, Ruleset)
    ip6 = [c.label for c in merged.chains if c.family == "ip6"]
    assert ip6 == ["ip6 raw PREROUTING", "ip6 filter INPUT", "ip6 nat POSTROUTING"]
    assert merged.missing == ("ip6tables-save is not installed",)
    assert merged.warnings == (
        "nft -j list ruleset: iptables-nft rules (4) hold xt expressions whose options nft "
        "does not print; iptables-save shows them in full",
    )


def test_merge_keeps_a_native_nft_table_that_only_shares_the_name():
    legacy = parse_iptables_save(data("legacy-naive-notrack.iptables-save"))
    native = parse_nft_json(json.dumps({"nftables": [
        {"chain": {"family": "ip", "table": "filter", "name": "input", "type": "filter",
                   "hook": "input", "prio": 0, "policy": "drop"}},
    ]}))  # fmt: skip
    merged = merge_rulesets(legacy, native)
    assert isinstance(merged, Ruleset)
    assert merged.chain("ip", "filter", "input") is not None
    assert merged.chain("ip", "filter", "INPUT") is not None


def test_merge_of_nothing_readable_is_missing():
    merged = merge_rulesets(Missing("iptables-save is not installed"), Missing("nft: no"))
    assert merged == Missing("iptables-save is not installed; nft: no")


def test_read_ruleset_from_a_snapshot(host, write):
    write("/ctguard_commands/iptables-save", data("legacy-naive-notrack.iptables-save"))
    write("/ctguard_commands/nft-json", data("nft-notrack-naive.json"))
    rs = read_ruleset(CapturedCommands(host))
    assert isinstance(rs, Ruleset)
    assert {c.backend for c in rs.chains} == {"iptables", "nft"}
    assert rs.missing == ("the snapshot has no ip6tables-save output",)


def test_read_ruleset_unparsable_nft_is_missing(fake_commands):
    commands = fake_commands({"nft-json": "Error: syntax error\n"})
    rs = read_ruleset(commands)
    assert isinstance(rs, Missing)
    assert rs.reason == (
        "iptables-save not captured; ip6tables-save not captured; "
        "nft -j list ruleset: not JSON (Expecting value: line 1 column 1 (char 0))"
    )
    assert commands.asked == ["iptables-save", "ip6tables-save", "nft-json"]


# -- no input makes a parser raise anything but ParseError -----------------------------------
_IPT_WORDS = st.sampled_from([
    "*filter", "*nat", "*raw", "COMMIT", ":INPUT", ":FOO", "DROP", "ACCEPT", "-", "[0:0]",
    "-A", "INPUT", "-p", "tcp", "6", "all", "-m", "multiport", "--dports", "80,443:", "--dport",
    "!", "8983", "1:2:3", "99999", ",", "--state", "--ctstate", "UNTRACKED,NEW", "DNAT", "",
    "-j", "-g", "CT", "--notrack", "NOTRACK", "DNAT", "--to-destination", "-i", "lo+", "-s",
    '"', '\\"', "--comment", "#", "-c", "--tcp-flags", "\x00", "\u00e9", "-1",
])  # fmt: skip
_SEPARATORS = st.sampled_from([" ", "  ", "\t", "\n", "\r\n", "\x0b", "\u2028", ""])
_IPT_SOUP = st.lists(st.tuples(_IPT_WORDS, _SEPARATORS), max_size=60).map(
    lambda pairs: "".join(word + sep for word, sep in pairs)
)
_JSON_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(-70000, 70000), st.floats(allow_nan=True),
    st.sampled_from([
        "inet", "ip", "ip6", "bridge", "filter", "nat", "raw", "input", "prerouting", "output",
        "tcp", "udp", "th", "dport", "sport", "state", "established", "untracked", "@s",
        "accept", "drop", "==", "!=", "in", "<", "raw - 10", "lo", "x", "ct", "iifname",
    ]),
)  # fmt: skip
_JSON_KEYS = st.sampled_from([
    "family", "table", "chain", "name", "hook", "prio", "policy", "type", "expr", "handle",
    "match", "op", "left", "right", "payload", "protocol", "field", "meta", "key", "ct",
    "set", "range", "prefix", "elem", "val", "vmap", "data", "jump", "goto", "target",
    "accept", "drop", "notrack", "dnat", "addr", "port", "xt", "mangle", "value", "rule",
    "ct helper", "limit", "&", "comment",
])  # fmt: skip
_JSON = st.recursive(
    _JSON_LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_JSON_KEYS, inner, max_size=4),
    max_leaves=40,
)
_NFT_DOC = st.lists(
    st.fixed_dictionaries({}, optional={"chain": _JSON, "rule": _JSON, "set": _JSON, "map": _JSON}),
    max_size=6,
).map(lambda items: json.dumps({"nftables": items}))
_STATEMENT = st.one_of(
    st.fixed_dictionaries({"match": st.fixed_dictionaries(
        {"op": st.sampled_from(["==", "!=", "in", "<", ">=", "~"]), "left": _JSON, "right": _JSON}
    )}),
    st.fixed_dictionaries({"vmap": st.fixed_dictionaries({"key": _JSON, "data": _JSON})}),
    st.dictionaries(_JSON_KEYS, _JSON, min_size=1, max_size=1),
)  # fmt: skip
_NAMES = st.sampled_from(["inet", "ip", "t", "c", "input"])
_RULE = st.fixed_dictionaries({
    "family": _NAMES, "table": _NAMES, "chain": _NAMES,
    "expr": st.lists(_STATEMENT, max_size=5), "handle": _JSON_LEAF,
})  # fmt: skip
_CHAIN = st.fixed_dictionaries(
    {"family": _NAMES, "table": _NAMES, "name": _NAMES},
    optional={"hook": _JSON_LEAF, "prio": _JSON_LEAF, "policy": _JSON_LEAF, "type": _JSON_LEAF},
)
_SET = st.fixed_dictionaries({"family": _NAMES, "table": _NAMES, "name": st.just("s"),
                              "elem": st.lists(_JSON, max_size=4)})  # fmt: skip
_NFT_SHAPED = st.lists(
    st.one_of(
        st.builds(lambda r: {"rule": r}, _RULE),
        st.builds(lambda c: {"chain": c}, _CHAIN),
        st.builds(lambda s: {"set": s}, _SET),
        st.builds(lambda s: {"map": s}, _SET),
    ),
    max_size=8,
).map(lambda items: json.dumps({"nftables": items}))
_IPT_SHAPED = st.lists(st.lists(_IPT_WORDS, max_size=12), max_size=8).map(
    lambda rules: (
        "*filter\n:INPUT DROP [0:0]\n:X - [0:0]\n"
        + "".join("-A INPUT " + " ".join(words) + "\n" for words in rules)
        + "COMMIT\n"
    )
)
_PROPERTY = settings(max_examples=300, deadline=None)


@_PROPERTY
@given(text=st.text() | st.binary(max_size=400).map(lambda b: b.decode("utf-8", "replace")))
def test_iptables_save_any_text(text):
    assert isinstance(parse_iptables_save(text), Ruleset)


@_PROPERTY
@given(text=_IPT_SOUP | _IPT_SHAPED)
def test_iptables_save_near_misses(text):
    rs = parse_iptables_save(text, "ip6tables")
    assert isinstance(rs, Ruleset) and len(rs.warnings) <= 6


@_PROPERTY
@given(text=st.text() | _NFT_DOC.map(lambda doc: doc[: len(doc) // 2]))
def test_nft_json_any_text(text):
    with contextlib.suppress(ParseError):
        assert isinstance(parse_nft_json(text), Ruleset)


@_PROPERTY
@given(text=_NFT_DOC | _NFT_SHAPED)
def test_nft_json_any_document(text):
    assert isinstance(parse_nft_json(text), Ruleset)
