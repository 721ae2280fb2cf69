"""Queries over rulesets: notrack rules, the fate of untracked packets, NAT overlap, users.

Rulesets are real iptables-save / nft -j outputs from tests/data/rulesets (see its README);
variants add rules the way ``iptables -A`` would, at the end of a table's chain list.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctguard.model.firewall import (
    Fate,
    Packet,
    conntrack_users,
    ineffective_notrack_rules,
    nat_overlap,
    nat_rules,
    notrack_rules,
    packet_of,
    untracked_fate,
)
from ctguard.sources.ruleset import (
    PortSet,
    Rule,
    Ruleset,
    describe,
    merge_rulesets,
    parse_iptables_save,
    parse_nft_json,
)

DATA = Path(__file__).parent / "data" / "rulesets"
NAIVE = (DATA / "iptables-naive-notrack.iptables-save").read_text()
CHAINS = (DATA / "iptables-user-chains.iptables-save").read_text()
POLICY_DROP = "policy drop of chain ip filter INPUT"


def nft(name: str) -> Ruleset:
    return parse_nft_json((DATA / name).read_text())


def add(save: str, table: str, *lines: str) -> str:
    """``save`` with ``lines`` appended to table ``table`` (before its COMMIT)."""
    head, marker, tail = save.partition(f"*{table}\n")
    body, commit, rest = tail.partition("COMMIT\n")
    return head + marker + body + "".join(line + "\n" for line in lines) + commit + rest


def notrack_on(rs: Ruleset, hook: str = "prerouting", index: int = 0) -> Rule:
    return [rule for rule, on in notrack_rules(rs) if on == hook][index]


def fate_after_notrack(save: str, hook: str = "prerouting") -> Fate:
    rs = parse_iptables_save(save)
    filter_hook = "input" if hook == "prerouting" else "output"
    return untracked_fate(rs, filter_hook, packet_of(notrack_on(rs, hook)))


# -- CT501: does an untracked packet survive the filter chains? ------------------------------
def test_naive_notrack_only_established_related_is_dropped():
    assert fate_after_notrack(NAIVE) == Fate("dropped", "ip filter INPUT", (POLICY_DROP,))


def test_ctstate_untracked_accept_saves_it():
    fixed = add(NAIVE, "filter", "-A INPUT -m conntrack --ctstate UNTRACKED -j ACCEPT")
    assert fate_after_notrack(fixed) == Fate(
        "accepted",
        "ip filter INPUT",
        ("iptables -t filter -A INPUT -m conntrack --ctstate UNTRACKED -j ACCEPT",),
    )


def test_port_accept_without_state_saves_it():
    fixed = add(NAIVE, "filter", "-A INPUT -p tcp -m tcp --dport 8983 -j ACCEPT")
    fate = fate_after_notrack(fixed)
    assert fate.outcome == "accepted"
    assert fate.evidence == ("iptables -t filter -A INPUT -p tcp -m tcp --dport 8983 -j ACCEPT",)


def test_source_limited_accept_is_conditional():
    rule = "-A INPUT -s 10.0.0.0/8 -p tcp -m tcp --dport 8983 -j ACCEPT"
    fate = fate_after_notrack(add(NAIVE, "filter", rule))
    assert fate == Fate(
        "conditional", "ip filter INPUT", (f"iptables -t filter {rule}", POLICY_DROP)
    )


def test_policy_accept_lets_it_through():
    fate = fate_after_notrack(NAIVE.replace(":INPUT DROP", ":INPUT ACCEPT"))
    assert fate == Fate("accepted", "ip filter INPUT", ("policy accept of chain ip filter INPUT",))


def test_state_new_accept_does_not_match_untracked():
    # the loopback accept does not rescue the service's traffic from real interfaces
    legacy = (DATA / "legacy-naive-notrack.iptables-save").read_text()
    fate = fate_after_notrack(legacy)
    assert fate == Fate("dropped", "ip filter INPUT", (POLICY_DROP,))


def test_an_earlier_reject_decides():
    save = add(NAIVE, "filter", "-A INPUT -p tcp -j REJECT --reject-with tcp-reset",
               "-A INPUT -m conntrack --ctstate UNTRACKED -j ACCEPT")  # fmt: skip
    fate = fate_after_notrack(save)
    assert fate.outcome == "dropped"
    assert fate.evidence == (
        "iptables -t filter -A INPUT -p tcp -j REJECT --reject-with tcp-reset",
    )


def test_output_notrack_meets_the_output_chain():
    assert fate_after_notrack(NAIVE, "output").outcome == "accepted"  # OUTPUT ACCEPT
    head, _, rest = NAIVE.partition("*filter\n")
    locked = head + "*filter\n" + rest.replace(":OUTPUT ACCEPT", ":OUTPUT DROP")
    locked = add(locked, "filter", "-A OUTPUT -m state --state ESTABLISHED -j ACCEPT")
    assert fate_after_notrack(locked, "output") == Fate(
        "dropped", "ip filter OUTPUT", ("policy drop of chain ip filter OUTPUT",)
    )


@pytest.mark.parametrize(
    ("notrack", "accept", "outcome"),
    [
        ("-i lo -j NOTRACK", "-i lo -j ACCEPT", "accepted"),
        ("-i eth0 -j NOTRACK", "-i eth+ -j ACCEPT", "accepted"),  # iptables wildcard
        ("-i eth0 -j NOTRACK", "-i lo -j ACCEPT", "dropped"),  # another interface
        ("-p tcp --dport 8983 -j NOTRACK", "-i lo -j ACCEPT", "dropped"),  # lo only
        ("-p tcp --dport 8983 -j NOTRACK", "-i eth1 -j ACCEPT", "conditional"),  # one NIC
        ("-p tcp --dport 8000:9000 -j NOTRACK", "-p tcp --dport 8983 -j ACCEPT", "conditional"),
        ("-p tcp --dport 8000:9000 -j NOTRACK", "-p tcp --dport 1:65535 -j ACCEPT", "accepted"),
        ("-p udp --dport 8983 -j NOTRACK", "-p tcp --dport 8983 -j ACCEPT", "dropped"),
        ("-i lo -j NOTRACK", "-p tcp -j ACCEPT", "conditional"),  # other protocols too
        ("-p tcp --dport 8983 -j NOTRACK", "-m mark --mark 0x1 -j ACCEPT", "conditional"),
        ("-p tcp --dport 8983 -j NOTRACK", "-m state ! --state NEW -j ACCEPT", "accepted"),
    ],
)
def test_which_accepts_cover_which_notracked_packets(notrack, accept, outcome):
    save = (
        "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        f"-A PREROUTING {notrack}\nCOMMIT\n"
        "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        "-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT\n"
        f"-A INPUT {accept}\nCOMMIT\n"
    )
    assert fate_after_notrack(save).outcome == outcome


def test_nft_naive_notrack_is_dropped():
    rs = nft("nft-notrack-naive.json")
    assert untracked_fate(rs, "input", packet_of(notrack_on(rs))) == Fate(
        "dropped", "inet filter input", ("policy drop of chain inet filter input",)
    )


def test_nft_untracked_accept_saves_it():
    rs = nft("nft-notrack-untracked-accept.json")
    assert untracked_fate(rs, "input", packet_of(notrack_on(rs))) == Fate(
        "accepted",
        "inet filter input",
        ("ct state untracked accept (table inet filter, chain input)",),
    )


def test_nft_another_tables_drop_still_drops():
    rs = nft("nft-notrack-two-tables.json")
    fate = untracked_fate(rs, "input", packet_of(notrack_on(rs)))
    assert fate == Fate(
        "dropped",
        "inet firewalld_like filter_INPUT",
        ("policy drop of chain inet firewalld_like filter_INPUT",),
    )


def test_nft_ct_state_vmap():
    accepting = nft("nft-notrack-vmap.json")
    fate = untracked_fate(accepting, "input", packet_of(notrack_on(accepting)))
    assert fate.outcome == "accepted"
    assert fate.evidence[0].startswith("ct state vmap { invalid : drop,")
    dropping = nft("nft-notrack-vmap-drop.json")
    fate = untracked_fate(dropping, "input", packet_of(notrack_on(dropping)))
    assert (fate.outcome, fate.chain) == ("dropped", "inet filter input")
    assert fate.evidence[0].endswith("untracked : drop } (table inet filter, chain input)")


def test_vmap_without_untracked_does_not_decide():
    rs = nft("nft-notrack-vmap.json")
    chain = rs.chain("inet", "filter", "input")
    assert chain is not None
    vmap, lo = chain.rules
    no_untracked = replace(vmap, vmap=tuple((s - {"untracked"}, v) for s, v in vmap.vmap))
    edited = replace(rs, chains=tuple(
        replace(c, rules=(no_untracked, lo)) if c is chain else c for c in rs.chains
    ))  # fmt: skip
    fate = untracked_fate(edited, "input", packet_of(notrack_on(edited)))
    assert fate == Fate(  # neither the vmap nor the loopback accept lets these packets in
        "dropped", "inet filter input", ("policy drop of chain inet filter input",)
    )


def test_user_chain_jump_and_return():
    # INPUT -p tcp -j SOLR; SOLR: --dport 8983 -j RETURN, then -p tcp -j ACCEPT
    assert fate_after_notrack(CHAINS) == Fate("dropped", "ip filter INPUT", (POLICY_DROP,))
    without_return = CHAINS.replace("-A SOLR -p tcp -m tcp --dport 8983 -j RETURN\n", "")
    assert fate_after_notrack(without_return) == Fate(
        "accepted", "ip filter INPUT", ("iptables -t filter -A SOLR -p tcp -j ACCEPT",)
    )


def test_goto_does_not_come_back():
    # INPUT -p tcp -m multiport --dports 80,443 -g WEB; WEB accepts 80 only
    save = CHAINS.replace("--dport 8983 -j NOTRACK", "--dport 443 -j NOTRACK")
    save = add(save, "filter", "-A INPUT -p tcp -m tcp --dport 443 -j ACCEPT")
    assert fate_after_notrack(save) == Fate("dropped", "ip filter INPUT", (POLICY_DROP,))
    jumped = save.replace("--dports 80,443 -g WEB", "--dports 80,443 -j WEB")
    assert fate_after_notrack(jumped).evidence == ("iptables -t filter -A SOLR -p tcp -j ACCEPT",)
    web = CHAINS.replace("--dport 8983 -j NOTRACK", "--dport 80 -j NOTRACK")
    assert fate_after_notrack(web).evidence == (
        "iptables -t filter -A WEB -p tcp -m tcp --dport 80 -j ACCEPT",
    )


def test_loops_end():
    # iptables-restore refuses loops; a damaged capture must still not hang us.
    save = (
        "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n"
        "-A PREROUTING -j A\n-A A -j B\n-A B -j A\n-A B -p tcp --dport 8983 -j NOTRACK\n"
        "COMMIT\n*filter\n:INPUT DROP [0:0]\n:A - [0:0]\n:B - [0:0]\n"
        "-A INPUT -j A\n-A A -g B\n-A B -j A\nCOMMIT\n"
    )
    rs = parse_iptables_save(save)
    (notrack,) = notrack_rules(rs)
    assert notrack[1] == "prerouting"
    assert untracked_fate(rs, "input", packet_of(notrack[0])).outcome == "dropped"


def test_families_ip_ip6_and_inet():
    ip = parse_iptables_save(NAIVE)
    ip6 = parse_iptables_save((DATA / "iptables-nft.ip6tables-save").read_text(), "ip6tables")
    merged = merge_rulesets(ip, ip6)
    assert isinstance(merged, Ruleset)
    ports = PortSet.of(8983)
    v4 = untracked_fate(merged, "input", Packet("ip", frozenset({"tcp"}), ports, None))
    v6 = untracked_fate(merged, "input", Packet("ip6", frozenset({"tcp"}), ports, None))
    both = untracked_fate(merged, "input", Packet("inet", frozenset({"tcp"}), ports, None))
    assert (v4.outcome, v4.chain) == ("dropped", "ip filter INPUT")
    assert (v6.outcome, v6.chain) == ("accepted", "ip6 filter INPUT")
    assert (both.outcome, both.chain) == ("dropped", "ip filter INPUT")


def test_no_filter_chain_on_the_hook():
    rs = nft("nft-notrack-ineffective.json")
    fate = untracked_fate(rs, "forward", Packet("inet", None, None, None))
    assert fate == Fate("accepted", "", ("no filtering base chain on hook forward",))


def test_packet_of_a_notrack_rule():
    rs = nft("nft-native.json")
    rules = [rule for rule, _ in notrack_rules(rs)]
    assert packet_of(rules[0]) == Packet("inet", frozenset({"tcp"}), PortSet.of(8983), None)
    assert packet_of(rules[2]) == Packet("inet", None, None, None, iif="lo")


# -- which notrack rules work ---------------------------------------------------------------
def test_notrack_rules_iptables():
    rs = parse_iptables_save(NAIVE)
    assert [(describe(r), hook) for r, hook in notrack_rules(rs)] == [
        ("iptables -t raw -A PREROUTING -p tcp -m tcp --dport 8983 -j NOTRACK", "prerouting"),
        ("iptables -t raw -A OUTPUT -p tcp -m tcp --sport 8983 -j NOTRACK", "output"),
    ]
    assert ineffective_notrack_rules(rs) == ()


def test_notrack_rules_nft_follow_jumps_and_skip_late_chains():
    rs = nft("nft-native.json")
    assert [(r.text, hook) for r, hook in notrack_rules(rs)] == [
        ("tcp dport 8983 notrack", "prerouting"),
        ("udp dport { 53, 5353 } notrack", "prerouting"),
        ('iifname "lo" notrack', "prerouting"),
        ("tcp sport 8983 notrack", "output"),
        ("th sport 11211 notrack", "output"),  # via "jump more_notrack"
    ]
    assert [describe(r) for r in ineffective_notrack_rules(rs)] == [
        "tcp dport 9999 notrack (table ip legacy_like, chain prerouting)"  # priority filter
    ]


def test_notrack_too_late_or_on_the_wrong_hook():
    rs = nft("nft-notrack-ineffective.json")
    assert [(r.text, r.chain) for r, _ in notrack_rules(rs)] == [
        ("udp dport 11211 notrack", "bypass"),  # jump from priority raw - 10
        ('iifname "lo" notrack', "loopback"),  # then goto
    ]
    assert [(r.text, r.chain) for r in ineffective_notrack_rules(rs)] == [
        ("tcp dport 8983 notrack", "prerouting"),  # priority filter: conntrack ran at -200
        ("udp dport 53 notrack", "input"),  # input: after conntrack, whatever the priority
    ]


def test_iptables_nft_copy_is_not_counted_twice():
    ipt = parse_iptables_save((DATA / "iptables-nft.iptables-save").read_text())
    ip6t = parse_iptables_save((DATA / "iptables-nft.ip6tables-save").read_text(), "ip6tables")
    copy = parse_nft_json((DATA / "iptables-nft.nft.json").read_text())
    merged = merge_rulesets(ipt, ip6t, copy)
    assert isinstance(merged, Ruleset)
    assert [(r.backend, r.chain, hook) for r, hook in notrack_rules(merged)] == [
        ("iptables", "PREROUTING", "prerouting"),
        ("iptables", "PREROUTING", "prerouting"),
        ("iptables", "OUTPUT", "output"),
        ("ip6tables", "PREROUTING", "prerouting"),
    ]
    assert len(conntrack_users(merged)) == len(conntrack_users(ipt)) + len(conntrack_users(ip6t))
    # nft -j alone cannot tell NOTRACK from CT --helper: no notrack rule is claimed
    assert notrack_rules(copy) == ()


# -- CT502: NAT on notracked packets ---------------------------------------------------------
def test_dnat_to_the_notracked_port_and_masquerade_overlap():
    rs = parse_iptables_save(CHAINS)
    overlap = [describe(r) for r in nat_overlap(rs, notrack_on(rs), "prerouting")]
    assert overlap == [
        "iptables -t nat -A PREROUTING -i eth0 -p tcp -m tcp --dport 8983 -j DNAT "
        "--to-destination 10.0.0.7:8983",
        "iptables -t nat -A POSTROUTING -o eth0 -j MASQUERADE",  # any port
    ]


def test_dnat_on_another_port_does_not_overlap():
    rs = parse_iptables_save(CHAINS.replace("--dport 8983 -j DNAT", "--dport 8984 -j DNAT"))
    overlap = nat_overlap(rs, notrack_on(rs), "prerouting")
    assert [r.verdict for r in overlap] == ["masquerade"]
    assert len(nat_rules(rs)) == 3


def test_nft_nat_overlap_by_range_and_hook():
    rs = nft("nft-notrack-nat.json")
    pre = [r.text for r in nat_overlap(rs, notrack_on(rs, "prerouting"), "prerouting")]
    # nft stores "{ 8000-9000 }" as a plain range and prints it so
    assert pre == ["tcp dport 8000-9000 dnat to 10.0.0.5", 'oifname "eth0" masquerade']
    out = [r.text for r in nat_overlap(rs, notrack_on(rs, "output"), "output")]
    assert out == ['oifname "eth0" masquerade']  # the prerouting DNAT never sees output


def test_nat_overlap_respects_families():
    ipt = parse_iptables_save((DATA / "iptables-nft.iptables-save").read_text())
    ip6t = parse_iptables_save((DATA / "iptables-nft.ip6tables-save").read_text(), "ip6tables")
    merged = merge_rulesets(ipt, ip6t)
    assert isinstance(merged, Ruleset)
    (v6,) = [r for r, _ in notrack_rules(merged) if r.family == "ip6"]
    assert [(r.family, r.verdict) for r in nat_overlap(merged, v6, "prerouting")] == [
        ("ip6", "masquerade")
    ]


def test_jump_conditions_narrow_nat_overlap():
    # kube-proxy: the service port is on the KUBE-SERVICES jump, the DNAT itself has none
    save = (
        "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        "-A PREROUTING -p tcp -m tcp --dport 8983 -j NOTRACK\n"
        "-A PREROUTING -p tcp -m tcp --dport 80 -j NOTRACK\nCOMMIT\n"
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        ":POSTROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-ERIFXISQEP7F7OF4 - [0:0]\n"
        ":KUBE-SEP-6E7XQMQ4RAYOWTTM - [0:0]\n"
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\n'
        '-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "default/web:http '
        'cluster IP" -m tcp --dport 80 -j KUBE-SVC-ERIFXISQEP7F7OF4\n'
        '-A KUBE-SVC-ERIFXISQEP7F7OF4 -m comment --comment "default/web:http" '
        "-j KUBE-SEP-6E7XQMQ4RAYOWTTM\n"
        '-A KUBE-SEP-6E7XQMQ4RAYOWTTM -p tcp -m comment --comment "default/web:http" -m tcp '
        "-j DNAT --to-destination 10.244.0.5:8080\nCOMMIT\n"
    )
    rs = parse_iptables_save(save)
    solr, web = (rule for rule, _ in notrack_rules(rs))
    assert nat_overlap(rs, solr, "prerouting") == ()
    assert [r.target for r in nat_overlap(rs, web, "prerouting")] == ["10.244.0.5:8080"]


# -- CT504: does anything need conntrack? ----------------------------------------------------
def test_port_filters_only_need_no_conntrack():
    save = (
        "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        "-A INPUT -i lo -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n"
        "-A INPUT -p tcp -m multiport --dports 80,443 -j ACCEPT\n-A INPUT -p icmp -j ACCEPT\n"
        "-A INPUT -p udp -m udp --sport 53 -j ACCEPT\nCOMMIT\n"
    )
    assert conntrack_users(parse_iptables_save(save)) == ()
    assert conntrack_users(nft("nft-notrack-ineffective.json")) == ()  # notrack does not count


def test_an_empty_nat_chain_is_a_user():
    (user,) = conntrack_users(nft("nft-empty-nat.json"))
    assert describe(user) == (
        "type nat hook postrouting priority 100; policy accept; (table ip nat, chain postrouting)"
    )
    empty_nat = parse_iptables_save(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        ":POSTROUTING ACCEPT [0:0]\nCOMMIT\n"
    )
    assert [describe(u) for u in conntrack_users(empty_nat)] == [
        "iptables -t nat -P PREROUTING ACCEPT",
        "iptables -t nat -P INPUT ACCEPT",
        "iptables -t nat -P OUTPUT ACCEPT",
        "iptables -t nat -P POSTROUTING ACCEPT",
    ]


def test_state_matches_and_ct_targets_are_users():
    users = conntrack_users(parse_iptables_save(NAIVE))
    assert [u.text for u in users] == [
        "-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT",
        "-A INPUT -p tcp -m tcp --dport 22 -m state --state NEW -j ACCEPT",
    ]
    raw = parse_iptables_save((DATA / "iptables-nft.iptables-save").read_text())
    helpers = [u.text for u in conntrack_users(raw) if u.table == "raw"]
    assert helpers == [
        "-A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp",
        "-A PREROUTING -i lo -j CT --zone 1",
    ]


# -- no ruleset makes a query raise or hang --------------------------------------------------
_RULE_WORDS = st.sampled_from([
    "-p tcp", "-p udp", "-i lo", "-i eth+", "-s 10.0.0.0/8", "--dport 8983", "--dport 1:100",
    "--sport 53", "-m state --state NEW", "-m conntrack --ctstate UNTRACKED",
    "-m conntrack ! --ctstate INVALID", "-m multiport --dports 80,8983",
])  # fmt: skip
_TARGETS = st.sampled_from([
    "-j ACCEPT", "-j DROP", "-j RETURN", "-j REJECT", "-j NOTRACK", "-j CT --notrack",
    "-j A", "-j B", "-g A", "-g B", "-j DNAT --to-destination 10.0.0.1", "-j MASQUERADE",
    "-j LOG", "",
])  # fmt: skip
_RULES = st.lists(
    st.tuples(st.sampled_from(["PREROUTING", "INPUT", "OUTPUT", "A", "B"]),
              st.lists(_RULE_WORDS, max_size=3), _TARGETS),
    max_size=12,
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(rules=_RULES, table=st.sampled_from(["raw", "filter", "nat"]))
def test_queries_on_any_ruleset(rules, table):
    save = (
        f"*{table}\n:PREROUTING ACCEPT [0:0]\n:INPUT DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        ":POSTROUTING ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n"
        + "".join(f"-A {chain} {' '.join(words)} {target}\n" for chain, words, target in rules)
        + "COMMIT\n"
    )
    rs = parse_iptables_save(save)
    for rule, hook in notrack_rules(rs):
        fate = untracked_fate(rs, "input", packet_of(rule))
        assert fate.outcome in ("accepted", "conditional", "dropped")
        assert all(r.verdict in ("dnat", "masquerade") for r in nat_overlap(rs, rule, hook))
    ineffective_notrack_rules(rs)
    conntrack_users(rs)
    fate = untracked_fate(rs, "input", Packet("ip", None, None, None))
    assert fate.outcome in ("accepted", "conditional", "dropped")


# -- address conditions: an accept implied by the NOTRACK's match covers it ------------------
NODELOCALDNS = (
    Path(__file__).parent / "realworld" / "firewall" / "nodelocaldns-169.254.20.10.iptables-save"
).read_text()


def test_nodelocaldns_accepts_equal_their_notracks():
    rs = parse_iptables_save(NODELOCALDNS)
    for notrack, hook in notrack_rules(rs):
        fate = untracked_fate(rs, "input" if hook == "prerouting" else "output", packet_of(notrack))
        assert fate.outcome == "accepted", (notrack.text, fate)


@pytest.mark.parametrize(
    ("accept", "outcome"),
    [
        ("-d 169.254.20.10/32", "accepted"),  # equal
        ("-d 169.254.0.0/16", "accepted"),  # wider: every notracked packet is in it
        ("-d 169.254.20.11/32", "dropped"),  # another address: cannot match
        ("-d 169.254.20.10/32 -s 10.0.0.0/8", "conditional"),  # narrower on the source
    ],
)
def test_an_accept_covers_a_notrack_when_its_addresses_are_implied(accept, outcome):
    save = NAIVE.replace(
        "-A PREROUTING -p tcp -m tcp --dport 8983 -j NOTRACK",
        "-A PREROUTING -d 169.254.20.10/32 -p tcp -m tcp --dport 8983 -j NOTRACK",
    )
    assert "169.254.20.10" in save
    fate = fate_after_notrack(
        add(save, "filter", f"-A INPUT {accept} -p tcp -m tcp --dport 8983 -j ACCEPT")
    )
    assert fate.outcome == outcome
