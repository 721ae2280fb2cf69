"""The ``ctguard notrack`` planner on real rulesets (tests/data/notrack, see its README).

What the plan must hold (docs/design.md §4 CT501/CT502, §7 NOTRACK): notrack rules for the direction
asked; one untracked accept first in every filter chain that would drop those packets, in
that chain's own tool; nothing when NAT could match them, when an agent owns the chain, or
when the chain admits the port only under conditions (unless ``force``).
"""

from __future__ import annotations

import json

import pytest

from ctguard.model.notrack_rules import ACCEPT, is_ours
from ctguard.remediation.notrack import (
    Flow,
    NotrackRequest,
    Refusal,
    Tools,
    check_flows,
    choose_backend,
    describe_flow,
    flows_for,
    translated_ports,
    wider_flows,
    with_rules,
)
from ctguard.remediation.notrack_script import add_commands
from ctguard.sources.ruleset import PortSet, Ruleset, parse_iptables_save, parse_nft_json
from helpers import ROOTS
from notrack_samples import (
    ALL_TOOLS,
    PORT,
    ip6t,
    ipt,
    merged,
    nft,
    nft_objects,
    plan,
    sample,
    shown,
    with_lines,
)

NFT_NOTRACK_IN = 'nft add rule inet ctguard prerouting tcp dport 8983 notrack comment "ctguard"'
NFT_NOTRACK_OUT = 'nft add rule inet ctguard output tcp sport 8983 notrack comment "ctguard"'


def nft_accept(chain: str, selector: str, before: int | None = None) -> str:
    """The untracked accept, right before the rule of handle ``before`` (the accept it
    mirrors); None: as an accept already in place is listed."""
    accept = 'ct state untracked accept comment "ctguard"'
    where = f" position {before}" if before is not None else ""
    return f"nft insert rule inet filter {chain}{where} {selector} {accept}"


# nft-stateful: right before tcp dport 8983 ct state new accept (handle 6)
NFT_ACCEPT_IN = nft_accept("input", "tcp dport 8983", 6)
NFT_ACCEPT_IN_PRESENT = nft_accept("input", "tcp dport 8983")
RAW_IN = "-t raw -I PREROUTING 1 -p tcp -m tcp --dport 8983 -m comment --comment ctguard"
RAW_OUT = "-t raw -I OUTPUT 1 -p tcp -m tcp --sport 8983 -m comment --comment ctguard"
UNTRACKED = "-m conntrack --ctstate UNTRACKED -m comment --comment ctguard -j ACCEPT"
FILTER_IN = f"-t filter -I INPUT 1 -p tcp -m tcp --dport 8983 {UNTRACKED}"  # as listed in place
# right before the accept it mirrors: ipt-stateful's 4th INPUT rule (--dport 8983 NEW),
# ip6t-stateful's 3rd
IPT_ACCEPT_IN = f"iptables {FILTER_IN.replace('-I INPUT 1', '-I INPUT 4')}"
IP6T_ACCEPT_IN = f"ip6tables {FILTER_IN.replace('-I INPUT 1', '-I INPUT 3')}"
IPT_NOTRACKS = [
    f"iptables {RAW_IN} -j CT --notrack",
    f"ip6tables {RAW_IN} -j CT --notrack",
    f"iptables {RAW_OUT} -j CT --notrack",
    f"ip6tables {RAW_OUT} -j CT --notrack",
]
NAT_REASON = (
    "a NAT rule can match these packets; untracked packets are never NATed, so it would"
    " silently stop working"
)
NAT_FIX = ("untrack other ports, or narrow the NAT rule so it cannot match them",)
SOURCE_ONLY = (
    "iptables -t filter -A INPUT -s 10.0.0.0/8 -p tcp -m tcp --dport 8983"
    " -m conntrack --ctstate NEW -j ACCEPT"
)
NONE_INSTALLED = Tools(nft=False, iptables=False, ip6tables=False)


def accepts_in(rs: Ruleset, family: str, table: str, chain: str) -> list[str]:
    found = rs.chain(family, table, chain)
    assert found is not None, (family, table, chain)
    return [rule.text for rule in found.rules if is_ours(rule)]


# -- which packets -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("direction", "expected"),
    [
        ("server", ["tcp dport 8983 coming in", "tcp sport 8983 going out"]),
        ("client", ["tcp dport 8983 going out", "tcp sport 8983 coming in"]),
        (
            "both",
            [
                "tcp dport 8983 coming in",
                "tcp sport 8983 going out",
                "tcp dport 8983 going out",
                "tcp sport 8983 coming in",
            ],
        ),
    ],
)
def test_flows_of_each_direction(direction, expected):
    flows = flows_for(NotrackRequest(PORT, ("tcp",), direction))
    assert [describe_flow(flow) for flow in flows] == expected


def test_flows_of_udp_port_ranges():
    ports = PortSet.of((9200, 9300), 53)
    flows = flows_for(NotrackRequest(ports, ("udp",), "server"))
    assert flows == (Flow("prerouting", "udp", dports=ports), Flow("output", "udp", sports=ports))
    assert [describe_flow(flow) for flow in flows] == [
        "udp dport 53,9200-9300 coming in",
        "udp sport 53,9200-9300 going out",
    ]


def test_flows_of_two_protocols_in_the_order_asked():
    flows = flows_for(NotrackRequest(PORT, ("udp", "tcp"), "client"))
    assert [(flow.proto, flow.hook) for flow in flows] == [
        ("udp", "output"),
        ("udp", "prerouting"),
        ("tcp", "output"),
        ("tcp", "prerouting"),
    ]


def test_every_packet_is_one_flow_per_hook():
    flows = flows_for(NotrackRequest(None, every_packet=True))
    assert flows == (Flow("prerouting", None), Flow("output", None))
    assert [describe_flow(flow) for flow in flows] == [
        "every packet coming in",
        "every packet going out",
    ]


# -- which backend -------------------------------------------------------------------------
def test_native_nft_chains_choose_nft():
    assert choose_backend(nft("stateful"), "auto", ALL_TOOLS) == (
        "nft",
        "the ruleset is nft (2 native nft base chain(s))",
    )


def test_iptables_rules_only_choose_iptables():
    tools = Tools(nft=True, iptables=True, ip6tables=True, iptables_variant="nft")
    assert choose_backend(ipt("stateful"), "auto", tools) == (
        "iptables",
        "the ruleset is iptables (4 rules, iptables-nft)",
    )


def test_no_rules_and_nft_installed_choose_nft():
    assert choose_backend(Ruleset("merged", ()), "auto", ALL_TOOLS) == (
        "nft",
        "no firewall rules yet; nft is installed",
    )


def test_no_rules_and_no_nft_choose_iptables():
    tools = Tools(nft=False, iptables=True, ip6tables=True, iptables_variant="legacy")
    assert choose_backend(Ruleset("merged", ()), "auto", tools) == (
        "iptables",
        "no firewall rules yet; nft is not installed, iptables-legacy",
    )


def test_no_tool_at_all_is_an_error():
    with pytest.raises(ValueError, match=r"^neither nft nor iptables-restore is installed$"):
        choose_backend(Ruleset("merged", ()), "auto", NONE_INSTALLED)


def test_ctguards_own_table_keeps_nft_even_beside_iptables_rules():
    own_table = nft_objects(
        "stateful-applied", lambda body: body.get("table", body.get("name")) == "ctguard"
    )
    assert {c.table for c in own_table.chains} == {"ctguard"}
    rs = merged(ipt("stateful"), own_table)
    assert choose_backend(rs, "auto", ALL_TOOLS) == (
        "nft",
        "ctguard's table inet ctguard is already there",
    )


@pytest.mark.parametrize(
    ("backend", "tools", "reason"),
    [
        ("nft", Tools(False, True, True), "--backend nft: nft is not installed"),
        (
            "iptables",
            Tools(True, False, False),
            "--backend iptables: iptables-restore is not installed",
        ),
        ("auto", NONE_INSTALLED, "neither nft nor iptables-restore is installed"),
    ],
)
def test_a_backend_that_cannot_run_is_a_refusal(backend, tools, reason):
    refused = plan(nft("stateful"), backend=backend, tools=tools)
    assert refused.refusals == (Refusal(reason),)
    assert (refused.backend, refused.add, refused.flows) == ("none", (), ())


# -- accepts for the untracked packets -----------------------------------------------------
def test_nft_stateful_filter_gets_one_accept_right_before_the_accept_it_mirrors():
    rs = nft("stateful")
    planned = plan(rs)
    assert (planned.backend, planned.refusals) == ("nft", ())
    assert shown(planned.add) == [NFT_NOTRACK_IN, NFT_NOTRACK_OUT, NFT_ACCEPT_IN]
    after = with_rules(rs, planned.add)
    rules = after.chain("inet", "filter", "input").rules  # type: ignore[union-attr]
    ours = 'tcp dport 8983 ct state untracked accept comment "ctguard"'
    assert [r.text for r in rules[3:]] == [ours, "tcp dport 8983 ct state new accept"]
    assert accepts_in(after, "inet", "filter", "input") == [ours]
    assert accepts_in(after, "inet", "filter", "output") == []  # policy accept: none needed


def test_iptables_stateful_filter_gets_one_accept_per_family():
    rs = merged(ipt("stateful"), ip6t("stateful"))
    planned = plan(rs)
    assert (planned.backend, planned.refusals) == ("iptables", ())
    assert shown(planned.add) == [*IPT_NOTRACKS, IPT_ACCEPT_IN, IP6T_ACCEPT_IN]
    after = with_rules(rs, planned.add)
    accept = f"-A INPUT -p tcp -m tcp --dport 8983 {UNTRACKED}"
    for family, at in (("ip", 3), ("ip6", 2)):  # 0-based: the 4th and 3rd rule
        assert after.chain(family, "filter", "INPUT").rules[at].text == accept  # type: ignore[union-attr]
        assert accepts_in(after, family, "filter", "INPUT") == [accept]
        assert accepts_in(after, family, "filter", "OUTPUT") == []


def test_an_output_chain_with_policy_drop_gets_the_outgoing_accept():
    nft_plan = plan(nft("output-drop"))
    # each right before the accept that took the packets tracked: tcp dport 8983 ct state
    # new (handle 4) coming in, ct state established,related (handle 5) going out
    assert shown(nft_plan.add)[2:] == [
        nft_accept("input", "tcp dport 8983", 4),
        nft_accept("output", "tcp sport 8983", 5),
    ]
    ipt_plan = plan(ipt("output-drop"))
    assert shown(ipt_plan.add)[4:] == [
        f"iptables -t filter -I INPUT 2 -p tcp -m tcp --dport 8983 {UNTRACKED}",
        f"iptables -t filter -I OUTPUT 1 -p tcp -m tcp --sport 8983 {UNTRACKED}",
    ]
    assert nft_plan.refusals == ipt_plan.refusals == ()


def test_client_direction_accepts_the_replies_coming_in():
    planned = plan(nft("stateful"), direction="client")
    assert shown(planned.add) == [
        'nft add rule inet ctguard output tcp dport 8983 notrack comment "ctguard"',
        'nft add rule inet ctguard prerouting tcp sport 8983 notrack comment "ctguard"',
        # replies, accepted tracked by ct state established,related (handle 3)
        nft_accept("input", "tcp sport 8983", 3),
    ]


def _nft_stateful_with_udp_open() -> Ruleset:
    """nft-stateful with ``udp dport { 53, 9200-9300 } ct state new accept`` in its input."""
    items = json.loads(sample("nft-stateful.json"))["nftables"]
    ports = {"set": [53, {"range": [9200, 9300]}]}
    items.append({"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 99,
                           "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}},
                   "right": ports}},
        {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}},
        {"accept": None}]}})  # fmt: skip
    return parse_nft_json(json.dumps({"nftables": items}))


def test_udp_port_ranges_in_nft_and_iptables_syntax():
    ports = PortSet.of((9200, 9300), 53)
    nft_plan = plan(_nft_stateful_with_udp_open(), ports, protos=("udp",))
    ranges = "{ 53, 9200-9300 }"
    assert shown(nft_plan.add) == [
        f'nft add rule inet ctguard prerouting udp dport {ranges} notrack comment "ctguard"',
        f'nft add rule inet ctguard output udp sport {ranges} notrack comment "ctguard"',
        nft_accept("input", f"udp dport {ranges}", 99),
    ]
    udp_open = "-A INPUT -p udp -m udp --dport 9200:9300 -m conntrack --ctstate NEW -j ACCEPT"
    open_save = with_lines(sample("ipt-stateful.iptables-save"), "filter", udp_open)
    ipt_plan = plan(parse_iptables_save(open_save), PortSet.of((9200, 9300)), protos=("udp",))
    assert shown(ipt_plan.add)[-1] == (
        # right before the udp accept, appended as the 5th INPUT rule
        "iptables -t filter -I INPUT 5 -p udp -m udp --dport 9200:9300 -m conntrack --ctstate"
        " UNTRACKED -m comment --comment ctguard -j ACCEPT"
    )
    multiport = plan(ipt("stateful"), ports, protos=("udp",))
    assert shown(multiport.add)[0] == (
        "iptables -t raw -I PREROUTING 1 -p udp -m multiport --dports 53,9200:9300"
        " -m comment --comment ctguard -j CT --notrack"
    )


def test_each_chain_gets_an_accept_in_its_own_tool():
    rs = merged(ipt("stateful"), nft("stateful"))
    by_nft = plan(rs)
    assert by_nft.backend == "nft"
    assert shown(by_nft.add) == [NFT_NOTRACK_IN, NFT_NOTRACK_OUT, IPT_ACCEPT_IN, NFT_ACCEPT_IN]
    by_iptables = plan(rs, backend="iptables")
    assert by_iptables.backend == "iptables"
    assert shown(by_iptables.add) == [*IPT_NOTRACKS, IPT_ACCEPT_IN, NFT_ACCEPT_IN]
    assert by_iptables.notes == ("native nft chains exist too: their accepts are added with nft",)
    assert by_nft.refusals == by_iptables.refusals == ()


# -- the check of the resulting ruleset ----------------------------------------------------
@pytest.mark.parametrize(
    ("make", "direction"),
    [
        (lambda: nft("stateful"), "server"),
        (lambda: nft("stateful"), "both"),
        (lambda: nft("output-drop"), "server"),
        (lambda: nft("stateful"), "client"),
        (lambda: merged(ipt("stateful"), ip6t("stateful")), "server"),
        (lambda: ipt("stateful"), "both"),
        (lambda: merged(ipt("stateful"), nft("stateful")), "server"),
    ],
    ids=["nft", "nft-both", "nft-out-drop", "nft-client", "ipt", "ipt-both", "mixed"],
)
def test_the_accepts_make_every_flow_accepted_and_without_them_it_is_not(make, direction):
    rs = make()
    planned = plan(rs, direction=direction)
    assert planned.refusals == ()
    fates, dropped = check_flows(with_rules(rs, planned.add), planned.flows)
    assert dropped == ()
    assert [fate.rsplit(": ", 1)[1] for fate in fates] == [
        f"accepted on {'input' if flow.hook == 'prerouting' else 'output'}"
        for flow in planned.flows
    ]
    assert planned.fates == fates
    notracks_only = [rule for rule in planned.add if rule.action != ACCEPT]
    _, control = check_flows(with_rules(rs, notracks_only), planned.flows)
    assert control, "without the untracked accepts the filter must drop them"


@pytest.mark.parametrize("make", [lambda: nft("output-drop"), lambda: ipt("output-drop")])
def test_a_client_port_let_out_only_as_replies_is_refused(make):
    """output-drop lets out NEW packets to 53/80/443 (nft) or udp 53 (iptables) only: tracked,
    this host could not start a connection to 8983, and its packets to 8983 went out only as
    replies. Untracked, they cannot be told apart from new ones: an accept would open it."""
    planned = plan(make(), direction="client")
    (refusal,) = planned.refusals
    assert "let tcp dport 8983 going out through only as replies" in refusal.reason
    assert not any(r.action == ACCEPT and r.hook == "output" for r in planned.add)


def test_a_server_port_let_in_only_as_replies_is_refused():
    """40000 is in the ephemeral range: tracked, packets to it came in only as replies to
    this host's own connections (RELATED,ESTABLISHED); no rule let a new one in."""
    planned = plan(ipt("stateful"), PortSet.of(40000))
    (refusal,) = planned.refusals
    assert refusal.reason.startswith(
        "chain ip filter INPUT let tcp dport 40000 coming in through only as replies"
        " (iptables -t filter -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT)"
    )
    assert not any(r.action == ACCEPT for r in planned.add)


def test_the_control_names_the_accept_lost_and_the_policy_that_drops():
    rs = nft("stateful")
    notracks_only = [rule for rule in plan(rs).add if rule.action != ACCEPT]
    flows = flows_for(NotrackRequest(PORT))
    dropped = "tcp dport 8983 coming in: dropped on input"
    assert check_flows(with_rules(rs, notracks_only), flows) == (
        (dropped, "tcp sport 8983 going out: accepted on output"),
        (
            f"{dropped}: accepted while tracked by: tcp dport 8983 ct state new accept"
            " (table inet filter, chain input); untracked: policy drop of chain inet filter"
            " input",
        ),
    )


def test_a_port_the_filter_closes_gets_no_accept():
    # nft-stateful accepts 22 and 8983, not 9200: tracked or not, 9200 is dropped, and an
    # untracked accept would open it; the plan says so and is not refused
    planned = plan(nft("stateful"), PortSet.of(9200))
    assert planned.refusals == ()
    assert [rule.action for rule in planned.add] == ["notrack", "notrack"]
    assert planned.notes[0] == (
        "tcp dport 9200 coming in: inet filter input drops these packets whether tracked or"
        " not; no accept added (it would open what the filter closes)"
    )
    assert planned.fates[0] == (
        "tcp dport 9200 coming in: dropped tracked or not (the filter closes them) on input"
    )


# -- refusals: NAT -------------------------------------------------------------------------
IPT_NAT_LINES = [line for line in sample("ipt-nat.iptables-save").splitlines() if line[:3] == "-A "]


@pytest.mark.parametrize(
    ("name", "evidence"),
    [
        ("dnat", "tcp dport 8983 dnat to 10.0.0.5:8983 (table ip nat, chain prerouting)"),
        ("redirect", "tcp dport 8000-9000 redirect to :8080 (table ip nat, chain prerouting)"),
        # a DNAT *to* the port: its packets carry 8983 once translated (and the replies do)
        ("dnat-to-port", "tcp dport 9999 dnat to 127.0.0.1:8983 (table ip nat, chain output)"),
        # over-reports by design: no interface is known for the untracked packets
        ("masquerade", 'oifname "eth0" masquerade (table ip nat, chain postrouting)'),
    ],
)
def test_nft_nat_that_can_match_is_refused(name, evidence):
    refused = plan(nft(name))
    assert refused.refusals == (Refusal(NAT_REASON, (evidence,), NAT_FIX),)
    assert refused.refused


@pytest.mark.parametrize(
    "line",
    IPT_NAT_LINES,
    ids=["dnat", "redirect", "dnat-to-port", "masquerade"],
)
def test_iptables_nat_that_can_match_is_refused(line):
    rs = parse_iptables_save(with_lines(sample("ipt-stateful.iptables-save"), "nat", line))
    refused = plan(rs)
    assert refused.refusals == (Refusal(NAT_REASON, (f"iptables -t nat {line}",), NAT_FIX),)


def test_nat_on_other_ports_is_no_reason_to_refuse():
    dnat = "-A PREROUTING -p tcp -m tcp --dport 9999 -j DNAT --to-destination 10.0.0.5:9000"
    rs = parse_iptables_save(with_lines(sample("ipt-stateful.iptables-save"), "nat", dnat))
    planned = plan(rs)
    assert planned.refusals == ()
    assert shown(planned.add)[-1] == IPT_ACCEPT_IN


def test_dnat_to_the_port_of_another_protocol_is_no_reason_to_refuse():
    dnat = "-A PREROUTING -p udp -m udp --dport 53 -j DNAT --to-destination 10.0.0.5:8983"
    rs = parse_iptables_save(with_lines(sample("ipt-stateful.iptables-save"), "nat", dnat))
    assert plan(rs).refusals == ()


def test_snat_source_port_range_is_no_reason_to_refuse():
    snat = "-A POSTROUTING -p udp -j SNAT --to-source 192.0.2.1:1024-65535"
    rs = parse_iptables_save(with_lines(sample("ipt-stateful.iptables-save"), "nat", snat))
    assert plan(rs).refusals == ()


# -- refusals: agents and conditions -------------------------------------------------------
def test_a_firewalld_chain_is_not_edited():
    refused = plan(nft("firewalld"), force=True)  # --force does not override an agent
    fix = (
        "add through that agent the equivalent of: nft insert rule inet firewalld filter_INPUT"
        ' tcp dport 8983 ct state untracked accept comment "ctguard"'
    )
    assert refused.refusals == (
        Refusal(
            "chain inet firewalld filter_INPUT drops these untracked packets and belongs to"
            " firewalld (add it with firewall-cmd, e.g. a rich rule or policy); ctguard does not"
            " edit it",
            (
                "accepted while tracked by: tcp dport 8983 ct state new accept"
                " (table inet firewalld, chain filter_INPUT)",
                "untracked: reject with icmpx admin-prohibited (table inet firewalld, chain"
                " filter_INPUT)",
            ),
            (fix,),
        ),
    )
    assert [rule.action for rule in refused.add] == ["notrack", "notrack"]


def test_a_kube_proxy_chain_is_not_edited():
    refused = plan(nft("kube-proxy"))
    (refusal,) = refused.refusals
    assert refusal.reason == (
        "chain ip kube-proxy filter-input drops these untracked packets and belongs to"
        " kube-proxy (it rewrites this table on every sync); ctguard does not edit it"
    )
    assert refusal.rules == (
        "accepted while tracked by: tcp dport 8983 ct state new accept"
        " (table ip kube-proxy, chain filter-input)",
        "untracked: policy drop of chain ip kube-proxy filter-input",
    )


def test_a_port_admitted_only_from_some_sources_is_refused_unless_forced():
    rs = ipt("source-only")
    refused = plan(rs)
    assert refused.refusals == (
        Refusal(
            "chain ip filter INPUT lets these ports in only under conditions (addresses,"
            " interfaces...); an untracked accept for the whole port would open it wider",
            (SOURCE_ONLY,),
            # the source condition of the accept it stands beside, never the bare port
            ("add it yourself with those conditions:"
             " iptables -t filter -I INPUT 2 -s 10.0.0.0/8 -p tcp -m tcp --dport 8983"
             " -m conntrack --ctstate UNTRACKED -m comment --comment ctguard -j ACCEPT",
             "or accept the wider rule: --force"),
        ),
    )  # fmt: skip
    assert IPT_ACCEPT_IN not in shown(refused.add)
    forced = plan(rs, force=True)
    assert forced.refusals == ()
    # forced: still right before the accept it widens (the 2nd rule)
    assert shown(forced.add)[-1] == IPT_ACCEPT_IN.replace("-I INPUT 4", "-I INPUT 2")
    assert forced.fates == (
        "tcp dport 8983 coming in: accepted on input",
        "tcp sport 8983 going out: accepted on output",
    )


def test_a_port_admitted_only_on_one_interface_is_refused():
    save = sample("ipt-source-only.iptables-save").replace(
        "-s 10.0.0.0/8 -p tcp -m tcp --dport 8983",
        "-i eth1 -p tcp -m tcp --dport 8983",
    )
    (refusal,) = plan(parse_iptables_save(save)).refusals
    assert refusal.rules == (
        "iptables -t filter -A INPUT -i eth1 -p tcp -m tcp --dport 8983"
        " -m conntrack --ctstate NEW -j ACCEPT",
    )


def test_a_stateless_accept_on_one_interface_needs_nothing():
    # it accepts the untracked packets on eth1 as it did the tracked ones; elsewhere they
    # were dropped tracked too: nothing to add, nothing to refuse
    save = sample("ipt-source-only.iptables-save").replace(
        "-s 10.0.0.0/8 -p tcp -m tcp --dport 8983 -m conntrack --ctstate NEW",
        "-i eth1 -p tcp -m tcp --dport 8983",
    )
    planned = plan(parse_iptables_save(save))
    assert planned.refusals == ()
    assert [rule.action for rule in planned.add] == ["notrack"] * 4


def test_client_direction_is_not_refused_for_accepts_of_other_ports():
    save = (ROOTS / "doctor/ct501-notrack-iptables/ctguard_commands/iptables-save").read_text()
    planned = plan(parse_iptables_save(save), direction="client")
    assert planned.refusals == ()
    assert shown(planned.add)[-1] == (
        f"iptables -t filter -I INPUT 1 -p tcp -m tcp --sport 8983 {UNTRACKED}"
    )


def test_own_accept_does_not_block_another_direction_later():
    planned = plan(nft("stateful-applied"), direction="client")
    assert planned.refusals == ()
    # right before ct state established,related accept (handle 3), which took the replies
    assert shown(planned.add)[-1] == nft_accept("input", "tcp sport 8983", 3)


# -- idempotence ---------------------------------------------------------------------------
def test_nft_rules_already_in_place_are_present_not_added():
    rs = nft("stateful-applied")
    again = plan(rs)
    assert (again.add, again.refusals) == ((), ())
    assert shown(again.present) == [NFT_NOTRACK_IN, NFT_NOTRACK_OUT, NFT_ACCEPT_IN_PRESENT]
    assert add_commands(rs, again.add) == ()


def test_iptables_rules_already_in_place_are_present_not_added():
    again = plan(merged(ipt("stateful-applied"), ip6t("stateful-applied")))
    assert (again.add, again.refusals) == ((), ())
    in_place = [f"iptables {FILTER_IN}", f"ip6tables {FILTER_IN}"]
    assert shown(again.present) == [*IPT_NOTRACKS, *in_place]


def test_only_the_missing_rule_is_added():
    rs = nft_objects(  # ctguard's table without its output chain
        "stateful-applied",
        lambda body: not (body.get("table") == "ctguard" and "output" in body.values()),
    )
    partial = plan(rs)
    assert shown(partial.add) == [NFT_NOTRACK_OUT]
    assert shown(partial.present) == [NFT_NOTRACK_IN, NFT_ACCEPT_IN_PRESENT]


# -- notrack --all -------------------------------------------------------------------------
GENERAL = "ct state established,related accept (table inet filter, chain input)"


def test_all_with_nat_is_refused():
    refused = plan(nft("dnat"), None, every_packet=True)
    nat = refused.refusals[0]
    assert nat == Refusal(
        "NAT is in use: NAT lives in the conntrack entry, so untracked packets are never NATed",
        (
            "tcp dport 8983 dnat to 10.0.0.5:8983 (table ip nat, chain prerouting)",
            "nat base chain ip nat prerouting (hook prerouting)",
        ),
        ("remove the NAT rules first, or untrack only ports no NAT rule matches",),
    )


def test_all_with_an_empty_nat_chain_is_refused():
    empty_nat = nft_objects("dnat", lambda body: body.get("table") == "nat" and "expr" not in body)
    refused = plan(merged(nft("all-port"), empty_nat), None, every_packet=True)
    assert [r.rules for r in refused.refusals] == [
        ("nat base chain ip nat prerouting (hook prerouting)",)
    ]


def test_all_with_a_general_stateful_rule_is_refused_listing_it():
    refused = plan(nft("stateful"), None, every_packet=True)
    assert refused.refusals == (
        Refusal(
            "these rules look at the conntrack state of all traffic; with everything untracked"
            " they would never match (replies would be dropped)",
            (GENERAL,),
            ("make them stateless, or untrack only named ports: ctguard notrack --port PORT",),
        ),
    )


def test_all_keeps_port_specific_stateful_services_tracked():
    planned = plan(nft("all-port"), None, every_packet=True)
    assert planned.refusals == ()
    assert shown(planned.add) == [
        'nft insert rule inet ctguard prerouting tcp dport 22 return comment "ctguard"',
        'nft insert rule inet ctguard output tcp sport 22 return comment "ctguard"',
        'nft add rule inet ctguard prerouting notrack comment "ctguard"',
        'nft add rule inet ctguard output notrack comment "ctguard"',
    ]
    assert planned.fates == ()  # stateless rules decide untracked packets as before


IPT_ALL_PORT = """# Generated by iptables-save v1.8.9 (nf_tables) on (date)
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT
-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT
COMMIT
# Completed on (date)
"""


def test_all_on_iptables_returns_before_the_catch_all():
    planned = plan(parse_iptables_save(IPT_ALL_PORT), None, every_packet=True)
    tag = "-m comment --comment ctguard"
    assert shown(planned.add) == [
        f"iptables -t raw -I PREROUTING 1 -p tcp -m tcp --dport 22 {tag} -j RETURN",
        f"ip6tables -t raw -I PREROUTING 1 -p tcp -m tcp --dport 22 {tag} -j RETURN",
        f"iptables -t raw -I OUTPUT 1 -p tcp -m tcp --sport 22 {tag} -j RETURN",
        f"ip6tables -t raw -I OUTPUT 1 -p tcp -m tcp --sport 22 {tag} -j RETURN",
        f"iptables -t raw -I PREROUTING 1 {tag} -j CT --notrack",
        f"ip6tables -t raw -I PREROUTING 1 {tag} -j CT --notrack",
        f"iptables -t raw -I OUTPUT 1 {tag} -j CT --notrack",
        f"ip6tables -t raw -I OUTPUT 1 {tag} -j CT --notrack",
    ]


def test_the_modelled_ruleset_keeps_the_planned_order():
    rs = nft("all-port")
    after = with_rules(rs, plan(rs, None, every_packet=True).add)
    own = after.chain("inet", "ctguard", "prerouting")
    assert own is not None
    assert [rule.verdict for rule in own.rules] == ["return", "notrack"]


# -- translated_ports ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("127.0.0.1:8983", "8983"),
        ("10.0.0.5:8000-8010", "8000-8010"),
        (":8080", "8080"),
        (":8080-8090", "8080-8090"),
        ("[2001:db8::1]:8983", "8983"),
        ("10.0.0.5-10.0.0.9:53", "53"),
        ("10.0.0.1", None),
        ("10.0.0.5-10.0.0.9", None),
        ("", None),
        (None, None),
    ],
)
def test_translated_ports(target, expected):
    got = translated_ports(target)
    assert (None if got is None else str(got)) == expected


def test_translated_ports_of_an_ipv6_address_without_port():
    assert translated_ports("fd00::53") is None


def test_no_ipv6_notrack_without_the_ipv6_filter():
    # ip6tables-save unread: an IPv6 NOTRACK would meet an IPv6 filter ctguard cannot see
    # (and cannot add the accept to): CT501's trap for IPv6. IPv4 only, and the plan says why.
    from ctguard.missing import Missing

    why = "ip6tables-save exited 1: Permission denied (you must be root)"
    rs = merged(ipt("stateful"), Missing(why))
    planned = plan(rs, PortSet.of(123), protos=("udp",))
    assert planned.refusals == ()
    assert {rule.backend for rule in planned.add} == {"iptables"}
    assert any(note.startswith(f"IPv4 only: {why}") for note in planned.notes)
    # read (even empty: no IPv6 filter, nothing drops): both families
    both = plan(merged(ipt("stateful"), ip6t("stateful")), PortSet.of(123), protos=("udp",))
    assert {rule.backend for rule in both.add} == {"iptables", "ip6tables"}


def test_an_accept_whose_condition_cannot_be_copied_gives_no_rule_to_paste():
    # a mark is a condition the model keeps only as text: a copy without it would admit
    # every source, so no copy-paste rule is offered, and the text says why
    mark = (
        "-A INPUT -p tcp -m tcp --dport 8983 -m mark --mark 0x4000/0x4000"
        " -m conntrack --ctstate NEW -j ACCEPT"
    )
    open_to_all = "-A INPUT -p tcp -m tcp --dport 8983 -m conntrack --ctstate NEW -j ACCEPT"
    save = sample("ipt-stateful.iptables-save")
    assert open_to_all in save
    rs = parse_iptables_save(save.replace(open_to_all, mark))
    (refusal,) = plan(rs).refusals
    assert refusal.fix[0].startswith("no rule to paste: iptables -t filter " + mark)
    assert "cannot copy faithfully" in refusal.fix[0]
    assert not any(line.startswith("iptables") for line in refusal.fix)


def test_a_stateless_allow_list_needs_no_accept():
    # makhomed/nftables-tool: 80/443 accepted only from @allowed_ipv6, with no state
    # condition: those accepts take the untracked packets too, the rest was dropped tracked
    text = (ROOTS / "doctor" / "ct501-allowlist-nft" / "ctguard_commands" / "nft-json").read_text()
    planned = plan(parse_nft_json(text), PortSet.of(80, 443))
    assert planned.refusals == ()
    assert [rule.action for rule in planned.add] == ["notrack", "notrack"]
    assert planned.fates == (
        "tcp dport 80,443 coming in: accepted where tracked ones were (the rest dropped"
        " tracked too) on input",
        "tcp sport 80,443 going out: accepted on output",
    )


def test_an_allow_list_accept_for_new_only_is_copied_with_its_set():
    # the same allow-list, accepting only NEW packets: untracked ones from it would be lost
    text = (ROOTS / "doctor" / "ct501-allowlist-nft" / "ctguard_commands" / "nft-json").read_text()
    items = json.loads(text)["nftables"]
    new = {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}}
    for item in items:
        rule = item.get("rule")
        if rule and "allowed_ipv6" in json.dumps(rule["expr"]):
            rule["expr"].insert(-1, new)
    refused = plan(parse_nft_json(json.dumps({"nftables": items})), PortSet.of(80, 443))
    fixes = [line for r in refused.refusals for line in r.fix]
    assert (
        "add it yourself with those conditions:"
        " nft insert rule inet filter input position 14 ip6 saddr @allowed_ipv6"
        " tcp dport { 80, 443 }"
        ' ct state untracked accept comment "ctguard"'
    ) in fixes
    assert not any("nft insert rule inet filter input tcp dport" in line for line in fixes)


def test_a_port_open_to_all_tracked_gets_the_plain_accept_beside_an_allow_list():
    # NEW accepted from anywhere, and a stateless accept from 10.0.0.0/8: the plain untracked
    # accept gives back exactly what untracking takes away, nothing wider
    allow = "-A INPUT -s 10.0.0.0/8 -p tcp -m tcp --dport 8983 -j ACCEPT"
    rs = parse_iptables_save(with_lines(sample("ipt-stateful.iptables-save"), "filter", allow))
    planned = plan(rs)
    assert planned.refusals == ()
    assert shown(planned.add)[-1] == IPT_ACCEPT_IN


# -- untracked accepts never open more than the tracked path did -----------------------------
DROP_FIRST = """*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
-A INPUT -s 10.0.0.0/8 -j DROP
-A INPUT -p tcp -m tcp --dport 8983 -m conntrack --ctstate NEW -j ACCEPT
COMMIT
"""
OURS_FIRST = f"-A INPUT -p tcp -m tcp --dport 8983 {UNTRACKED}"


def test_the_accept_goes_after_a_drop_that_came_before_the_tracked_accept():
    """10.0.0.0/8 is dropped before 8983's NEW accept: inserted first, the untracked accept
    would open 8983 to it; right before the accept it mirrors (3rd), it does not."""
    rs = parse_iptables_save(DROP_FIRST)
    planned = plan(rs)
    assert planned.refusals == ()
    assert shown(planned.add)[-1] == IPT_ACCEPT_IN.replace("-I INPUT 4", "-I INPUT 3")
    rules = with_rules(rs, planned.add).chain("ip", "filter", "INPUT").rules  # type: ignore[union-attr]
    assert [r.text for r in rules][1:3] == ["-A INPUT -s 10.0.0.0/8 -j DROP", OURS_FIRST]
    assert wider_flows(with_rules(rs, planned.add), planned.flows, PORT) == ()


def test_an_untracked_accept_ahead_of_a_drop_is_refused():
    """An accept ctguard left first in the chain (as versions before placed it) skips the
    drop of 10.0.0.0/8 that tracked packets met: the check of the resulting ruleset finds it
    and the plan is refused, though every flow is accepted."""
    lines = DROP_FIRST.splitlines()
    lines.insert(4, OURS_FIRST)
    planned = plan(parse_iptables_save("\n".join(lines) + "\n"))
    (refusal,) = planned.refusals
    assert refusal.reason == (
        "the filter would accept untracked packets of these ports where it did not accept"
        " them tracked"
    )
    assert refusal.rules == (
        "tcp dport 8983 coming in: ip filter INPUT: iptables -t filter"
        f" {OURS_FIRST} accepts untracked packets past iptables -t filter -A INPUT"
        " -s 10.0.0.0/8 -j DROP, which tracked ones meet first",
    )
    assert refusal.rules[0] in planned.fates


def test_an_accept_behind_a_conditioned_jump_gets_the_rule_ct501_shows():
    """The accept sits in C0, reached only from eth0: the rule to paste carries the jump's
    -i eth0 and goes right before that jump (INPUT's 2nd rule), as CT501 shows it (one
    function builds both), instead of no rule at all."""
    save = (
        "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:C0 - [0:0]\n"
        "-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT\n"
        "-A INPUT -i eth0 -j C0\n"
        "-A C0 -p tcp -m tcp --dport 8983 -m state --state NEW -j ACCEPT\nCOMMIT\n"
    )
    planned = plan(parse_iptables_save(save))
    (refusal,) = planned.refusals
    assert refusal.fix == (
        "add it yourself with those conditions: iptables -t filter -I INPUT 2 -i eth0 -p tcp"
        f" -m tcp --dport 8983 {UNTRACKED}",
        "or accept the wider rule: --force",
    )
