"""``plan_disable`` (pure): the chain that keeps nf_conntrack loaded and the plan that keeps
it out, on the fixture roots of tests/roots/disable/ and on hand-made rulesets."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ctguard.facts import Facts, collect
from ctguard.findings import Status
from ctguard.host.commands import CapturedCommands
from ctguard.host.root import HostRoot
from ctguard.missing import Missing
from ctguard.remediation.changes import OURS
from ctguard.remediation.disable import (
    BLOCKER,
    DELETE,
    REPLACE,
    DisableInputError,
    DisablePlan,
    RuleFate,
    find_agents,
    module_chain,
    plan_disable,
    rule_fates,
    unload_order,
)
from ctguard.sources.agents import parse_ps
from ctguard.sources.boot_modules import BootModule
from ctguard.sources.modprobe_conf import ModprobeConfig, parse_modprobe_conf
from ctguard.sources.modules import ConntrackPresence, parse_proc_modules
from ctguard.sources.ruleset import Ruleset, merge_rulesets, parse_iptables_save, parse_nft_json
from ctguard.usecases.doctor import diagnose

ROOTS = Path(__file__).parents[1] / "roots"
DISABLE = ROOTS / "disable"
OUR_FILE = "/etc/modprobe.d/00-ctguard-disable-conntrack.conf"
HEADER = "# Written by 'ctguard disable': keeps nf_conntrack out. 'ctguard rollback' undoes it.\n"


def facts_of(root: Path) -> Facts:
    host = HostRoot(root)
    return collect(host, CapturedCommands(host), table=False)


def plan_of(scenario: str) -> DisablePlan:
    return plan_disable(facts_of(DISABLE / scenario))


def iptables(text: str, table: str = "filter", backend: str = "iptables") -> Ruleset:
    return parse_iptables_save(f"*{table}\n{text}\nCOMMIT\n", backend)


def fate_of(line: str, table: str = "filter", backend: str = "iptables") -> RuleFate:
    fates = [f for f in rule_fates(iptables(line, table, backend)) if "nat base" not in f.rule]
    assert len(fates) == 1, fates
    return fates[0]


# -- the fixture roots --------------------------------------------------------------------
def test_nat_masquerade_is_refused_with_the_whole_chain() -> None:
    plan = plan_of("modular-nat-masquerade")
    assert plan.refused
    assert [h.chain for h in plan.holders] == [
        ("nf_conntrack", "nf_nat"),
        ("nf_conntrack", "xt_MASQUERADE"),
        ("nf_conntrack", "xt_conntrack"),
        ("nf_conntrack", "nf_nat", "nft_chain_nat"),
    ]
    assert plan.refusals == (
        "iptables -t filter -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT:"
        " accepts ESTABLISHED,RELATED replies; a stateless firewall accepts them by port, which"
        " only you can write",
        "iptables -t nat (nat base chains PREROUTING, INPUT, OUTPUT, POSTROUTING): a nat table"
        " makes the kernel track every flow, and NAT needs conntrack",
        "iptables -t nat -A POSTROUTING -o eth0 -j MASQUERADE: NAT (MASQUERADE) lives in"
        " conntrack entries",
    )
    assert plan.unload_order == ()
    assert plan.modprobe_file is None


def test_idle_module_is_unloaded_and_kept_out_with_install_false() -> None:
    plan = plan_of("modular-idle")
    assert not plan.refused and not plan.nothing_to_do
    assert plan.holders == () and plan.rules == () and plan.agents == ()
    assert plan.unload_order == ("nf_conntrack",)
    file = plan.modprobe_file
    assert file is not None
    assert (file.path, file.mode, file.kind, file.before) == (OUR_FILE, 0o644, OURS, None)
    assert file.after.decode() == HEADER + "install nf_conntrack /bin/false\n"
    assert b"blacklist" not in file.after


def test_obvious_rules_are_replaced_or_deleted() -> None:
    plan = plan_of("modular-obvious-replacements")
    assert not plan.refused
    assert plan.rules == (
        RuleFate(
            "iptables -t filter -A INPUT -m state --state INVALID -j DROP",
            DELETE,
            "without conntrack no packet is INVALID; it never matches",
        ),
        RuleFate(
            "iptables -t filter -A INPUT -p tcp -m state --state NEW -m tcp --dport 22 -j ACCEPT",
            REPLACE,
            "accepts NEW packets; without conntrack the rule without its state match accepts"
            " the same packets, and the later packets of their flows",
            "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT",
        ),
    )
    assert plan.unload_order == ("xt_state", "nf_conntrack")
    assert plan.modprobe_file is not None
    assert plan.modprobe_file.after.decode() == (
        HEADER + "install nf_conntrack /bin/false\ninstall xt_state /bin/false\n"
    )
    assert any("xt_state: 2 reference(s) besides modules" in n.text for n in plan.notes)


def test_builtin_points_to_notrack_all() -> None:
    plan = plan_of("builtin")
    assert plan.presence == "builtin"
    assert len(plan.refusals) == 1
    assert "built into this kernel" in plan.refusals[0]
    assert "cannot be unloaded" in plan.refusals[0]
    assert plan.refusals[0].endswith("stop tracking instead: ctguard notrack --all")
    assert plan.unload_order == () and plan.modprobe_file is None
    assert [(r.verdict, r.rule) for r in plan.rules] == [
        (BLOCKER, "ct state established,related accept (table inet filter, chain input)")
    ]


def test_builtin_with_nothing_needing_it_is_nothing_to_do() -> None:
    facts = facts_of(DISABLE / "builtin")
    plan = plan_disable(replace(facts, ruleset=iptables(":INPUT ACCEPT [0:0]")))
    assert plan.nothing_to_do and not plan.refused
    assert plan.notes[0].text.startswith("nf_conntrack is built into this kernel and cannot be")
    assert plan.notes[0].text.endswith("(should a rule need it later: ctguard notrack --all)")
    old = replace(facts, ruleset=iptables(":INPUT ACCEPT [0:0]"), kernel=Missing("no uname"))
    assert plan_disable(old).refused  # kernel unknown: it may track everything


def test_agents_are_refused_by_name() -> None:
    plan = plan_of("modular-agents")
    assert [(a.program, a.pid) for a in plan.agents] == [("dockerd", 912), ("kube-proxy", 1402)]
    agent_lines = [r for r in plan.refusals if "is running" in r]
    assert [line.split(":")[0] for line in agent_lines] == [
        "dockerd (pid 912) is running",
        "kube-proxy (pid 1402) is running",
    ]
    assert any("-s 172.17.0.0/16 ! -o docker0 -j MASQUERADE" in r for r in plan.refusals)


@pytest.mark.parametrize(
    ("scenario", "rule_id"),
    [("ct503-blacklist-while-loaded", "CT503"), ("ct504-module-loaded-unused", "CT504")],
)
def test_doctor_fires_and_names_ctguard_disable(scenario: str, rule_id: str) -> None:
    finding = {f.id: f for f in diagnose(facts_of(ROOTS / "doctor" / scenario)).findings}[rule_id]
    assert finding.status is Status.FOUND
    assert "ctguard disable" in (finding.fix or "")
    assert "coming" not in (finding.fix or "")


def test_ct504_root_plans_nft_ct_before_nf_conntrack() -> None:
    # nft_ct holds nf_conntrack (refcount 0: its rules are gone), nothing needs it
    plan = plan_disable(facts_of(ROOTS / "doctor" / "ct504-module-loaded-unused"))
    assert not plan.refused
    assert plan.unload_order == ("nft_ct", "nf_conntrack")


def test_ct503_root_reports_the_blacklist_line() -> None:
    plan = plan_disable(facts_of(ROOTS / "doctor" / "ct503-blacklist-while-loaded"))
    assert plan.existing == (
        "/etc/modprobe.d/blacklist-conntrack.conf:2: blacklist nf_conntrack (blacklist only"
        " stops loading by alias; the install line does the job, this one can go)",
    )


# -- modules ------------------------------------------------------------------------------
RHEL6_MODULES = parse_proc_modules(
    "ipt_REDIRECT 2430 1 - Live 0xffffffffa04a5000\n"
    "iptable_nat 6158 1 - Live 0xffffffffa0498000\n"
    "nf_nat 22759 2 ipt_REDIRECT,iptable_nat, Live 0xffffffffa048c000\n"
    "nf_conntrack_ipv4 9218 4 iptable_nat,nf_nat, Live 0xffffffffa0485000\n"
    "nf_defrag_ipv4 1483 1 nf_conntrack_ipv4, Live 0xffffffffa0481000\n"
    "xt_state 1492 2 - Live 0xffffffffa047d000\n"
    "nf_conntrack 79758 5 nf_nat,nf_conntrack_ipv4,xt_state,nf_conntrack_ipv6,iptable_nat,"
    " Live 0xffffffffa0464000\n"
    "nf_conntrack_ipv6 7985 2 - Live 0xffffffffa045f000\n"
    "ip_tables 17831 1 iptable_nat, Live 0xffffffffa0455000\n"
)


def test_chain_follows_used_by_transitively() -> None:
    chains = {h.module: h.chain for h in module_chain(RHEL6_MODULES)}
    assert chains == {
        "iptable_nat": ("nf_conntrack", "iptable_nat"),
        "nf_conntrack_ipv4": ("nf_conntrack", "nf_conntrack_ipv4"),
        "nf_conntrack_ipv6": ("nf_conntrack", "nf_conntrack_ipv6"),
        "nf_nat": ("nf_conntrack", "nf_nat"),
        "xt_state": ("nf_conntrack", "xt_state"),
        "ipt_REDIRECT": ("nf_conntrack", "nf_nat", "ipt_REDIRECT"),
    }
    assert "ip_tables" not in chains and "nf_defrag_ipv4" not in chains  # used, not users


def test_sys_holders_join_the_chain() -> None:
    holders = module_chain(RHEL6_MODULES, ("nf_conntrack_netlink",))
    extra = [h for h in holders if h.module == "nf_conntrack_netlink"]
    assert extra[0].chain == ("nf_conntrack", "nf_conntrack_netlink")
    assert extra[0].refcount is None  # not in /proc/modules


def test_unload_order_puts_every_user_first() -> None:
    names = ["nf_conntrack", *(h.module for h in module_chain(RHEL6_MODULES))]
    order = unload_order(RHEL6_MODULES, names)
    assert order == (
        "ipt_REDIRECT",
        "iptable_nat",
        "nf_conntrack_ipv6",
        "xt_state",
        "nf_nat",
        "nf_conntrack_ipv4",
        "nf_conntrack",
    )
    for position, name in enumerate(order):
        for user in RHEL6_MODULES[name].used_by:
            assert order.index(user) < position, (user, name)


def test_unload_order_survives_a_cycle() -> None:
    looped = parse_proc_modules("a 1 1 b, Live 0x0\nb 1 1 a, Live 0x0\n")
    assert unload_order(looped, ["b", "a"]) == ("a", "b")


def test_silent_user_in_use_is_a_blocker() -> None:
    facts = facts_of(DISABLE / "modular-idle")
    modules = parse_proc_modules(
        "openvswitch 176128 3 - Live 0x0\nnf_conntrack 188416 1 openvswitch, Live 0x0\n"
    )
    plan = plan_disable(replace(facts, modules=modules))
    assert plan.refusals == (
        "module openvswitch is in use (refcount 3): it uses conntrack without any firewall rule"
        " (Open vSwitch, IPVS, flowtables, tc act_ct); stop what uses it first",
    )


# -- rules: iptables ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "replacement"),
    [
        (
            "-A INPUT -p tcp -m conntrack --ctstate NEW -m multiport --dports 80,443 -j ACCEPT",
            "-A INPUT -p tcp -m multiport --dports 80,443 -j ACCEPT",
        ),
        (
            "-A INPUT -p tcp -m state ! --state INVALID -m tcp --dport 22 -j ACCEPT",
            "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT",
        ),
        (
            '-A INPUT -p tcp -m comment --comment "ssh -m state" -m state --state NEW'
            " -m tcp --dport 22 -j ACCEPT",
            '-A INPUT -p tcp -m comment --comment "ssh -m state" -m tcp --dport 22 -j ACCEPT',
        ),
        (
            "-A INPUT -p tcp -m tcp --dport 8983 -m conntrack --ctstate UNTRACKED -j ACCEPT",
            "-A INPUT -p tcp -m tcp --dport 8983 -j ACCEPT",
        ),
        ("-A INPUT -p icmp -m state --state NEW -j ACCEPT", "-A INPUT -p icmp -j ACCEPT"),
    ],
)
def test_iptables_new_accepts_lose_only_the_state_match(line: str, replacement: str) -> None:
    fate = fate_of(line)
    assert (fate.verdict, fate.replacement) == (REPLACE, replacement)
    assert fate.rule == f"iptables -t filter {line}"


def test_ip6tables_replacement_keeps_its_backend() -> None:
    fate = fate_of("-A INPUT -p ipv6-icmp -m state --state NEW -j ACCEPT", backend="ip6tables")
    assert fate.rule.startswith("ip6tables -t filter ")
    assert fate.replacement == "-A INPUT -p ipv6-icmp -j ACCEPT"


@pytest.mark.parametrize(
    ("line", "verdict", "reason"),
    [
        ("-A INPUT -m state --state INVALID -j DROP", DELETE, "no packet is INVALID"),
        (
            "-A INPUT -m conntrack --ctstate INVALID -j REJECT --reject-with icmp-port-unreachable",
            DELETE,
            "no packet is INVALID",
        ),
        ("-A INPUT -m conntrack --ctstate NEW -j ACCEPT", BLOCKER, "no obvious stateless"),
        (
            "-A INPUT -p tcp -m conntrack --ctstate NEW --ctstatus SEEN_REPLY -m tcp --dport 22"
            " -j ACCEPT",
            BLOCKER,
            "uses -m conntrack --ctstatus SEEN_REPLY",
        ),
        (
            "-A INPUT -p tcp -m connlimit --connlimit-above 20 -m state --state NEW -m tcp"
            " --dport 80 -j ACCEPT",
            BLOCKER,
            "uses -m connlimit --connlimit-above 20",
        ),
        ("-A INPUT -p tcp -m state --state NEW -m tcp --dport 22 -j LOG", BLOCKER, "NEW;"),
        ("-A FORWARD -m state --state RELATED,ESTABLISHED -j ACCEPT", BLOCKER, "replies"),
    ],
)
def test_iptables_fates(line: str, verdict: str, reason: str) -> None:
    fate = fate_of(line)
    assert fate.verdict == verdict
    assert reason in fate.reason
    assert fate.replacement is None


@pytest.mark.parametrize(
    ("line", "verdict", "reason"),
    [
        ("-A PREROUTING -p udp -m udp --dport 53 -j CT --notrack", DELETE, "NOTRACK means"),
        ("-A OUTPUT -p udp -m udp --sport 53 -j NOTRACK", DELETE, "NOTRACK means"),
        ("-A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp", BLOCKER, "helper"),
    ],
)
def test_raw_table_fates(line: str, verdict: str, reason: str) -> None:
    fate = fate_of(line, table="raw")
    assert (fate.verdict, fate.rule) == (verdict, f"iptables -t raw {line}")
    assert reason in fate.reason


def test_a_nat_table_is_one_blocker_and_each_nat_rule_another() -> None:
    rs = iptables(
        ":PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
        "-A PREROUTING -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.5:8080",
        table="nat",
    )
    assert [(f.verdict, f.rule) for f in rule_fates(rs)] == [
        (BLOCKER, "iptables -t nat (nat base chains PREROUTING, POSTROUTING)"),
        (
            BLOCKER,
            "iptables -t nat -A PREROUTING -p tcp -m tcp --dport 80 -j DNAT"
            " --to-destination 10.0.0.5:8080",
        ),
    ]


# -- rules: nft ---------------------------------------------------------------------------
def _nft(*rules: str, chains: str = "") -> Ruleset:
    chain = (
        '{"chain": {"family": "inet", "table": "filter", "name": "input", "handle": 1,'
        ' "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}}'
    )
    body = ", ".join(
        [
            '{"table": {"family": "inet", "name": "filter", "handle": 1}}',
            chain,
            *(chains.split("|") if chains else []),
            *(
                f'{{"rule": {{"family": "inet", "table": "filter", "chain": "input",'
                f' "handle": {n}, "expr": [{expr}]}}}}'
                for n, expr in enumerate(rules, start=2)
            ),
        ]
    )
    return parse_nft_json(f'{{"nftables": [{body}]}}')


TCP22 = (
    '{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}},'
    ' "right": 22}}'
)
CT_NEW = '{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}}'
CT_SET = (
    '{"match": {"op": "in", "left": {"ct": {"key": "state"}},'
    ' "right": {"set": ["new", "untracked"]}}}'
)
CT_INVALID = '{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "invalid"}}'
CT_REPLIES = (
    '{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}'
)
CT_MARK = '{"match": {"op": "==", "left": {"ct": {"key": "mark"}}, "right": 1}}'
VMAP = (
    '{"vmap": {"key": {"ct": {"key": "state"}}, "data": {"set": [["established", {"accept":'
    ' null}], ["related", {"accept": null}], ["invalid", {"drop": null}]]}}}'
)


@pytest.mark.parametrize(
    ("expr", "verdict", "replacement"),
    [
        (f'{TCP22}, {CT_NEW}, {{"accept": null}}', REPLACE, "tcp dport 22 accept"),
        (
            f'{TCP22}, {CT_SET}, {{"counter": {{"packets": 0, "bytes": 0}}}}, {{"accept": null}}',
            REPLACE,
            "tcp dport 22 counter accept",
        ),
        (f'{CT_INVALID}, {{"drop": null}}', DELETE, None),
        (f'{CT_REPLIES}, {{"accept": null}}', BLOCKER, None),
        (f'{CT_MARK}, {TCP22}, {CT_NEW}, {{"accept": null}}', BLOCKER, None),
        (VMAP, BLOCKER, None),
        (f'{TCP22}, {{"notrack": null}}', DELETE, None),
    ],
)
def test_nft_fates(expr: str, verdict: str, replacement: str | None) -> None:
    (fate,) = rule_fates(_nft(expr))
    assert (fate.verdict, fate.replacement) == (verdict, replacement)
    assert fate.rule.endswith("(table inet filter, chain input)")


def test_nft_state_replacement_text() -> None:
    (fate,) = rule_fates(_nft(f'{TCP22}, {CT_NEW}, {{"accept": null}}'))
    assert fate.rule == "tcp dport 22 ct state new accept (table inet filter, chain input)"


def test_nft_nat_table() -> None:
    nat = (
        '{"chain": {"family": "ip", "table": "nat", "name": "postrouting", "handle": 5,'
        ' "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}|'
        '{"rule": {"family": "ip", "table": "nat", "chain": "postrouting", "handle": 6,'
        ' "expr": [{"masquerade": null}]}}'
    )
    fates = rule_fates(_nft(chains=nat))
    assert [(f.verdict, f.rule) for f in fates] == [
        (BLOCKER, "nft table ip nat (nat base chains postrouting)"),
        (BLOCKER, "masquerade (table ip nat, chain postrouting)"),
    ]


# -- agents -------------------------------------------------------------------------------
def test_agents_by_program_name() -> None:
    processes = parse_ps(
        "    PID COMMAND\n"
        "    701 /usr/bin/python3 -s /usr/sbin/firewalld --nofork --nopid\n"
        "    810 /usr/sbin/libvirtd --timeout 120\n"
        "    811 /usr/sbin/ovs-vswitchd unix:/var/run/openvswitch/db.sock -vconsole:emer\n"
        "    812 /usr/bin/docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 80\n"
        "    813 /usr/local/bin/hyperkube kube-proxy --v=2\n"
        "    814 /usr/bin/python3 /usr/local/bin/ctguard disable\n"
        "    815 vim /usr/sbin/dockerd\n"
    )
    assert [(a.pid, a.program) for a in find_agents(processes)] == [
        (701, "firewalld"),
        (810, "libvirtd"),
        (811, "ovs-vswitchd"),
        (813, "kube-proxy"),
    ]


# -- modprobe.d ---------------------------------------------------------------------------
def _with_modprobe(facts: Facts, *files: tuple[str, str]) -> Facts:
    directives = tuple(d for path, text in files for d in parse_modprobe_conf(text, path))
    return replace(facts, modprobe=ModprobeConfig(directives, tuple(p for p, _ in files)))


RIVAL = "install nf_conntrack /sbin/modprobe --ignore-install nf_conntrack && /sbin/sysctl -p\n"


def test_a_rival_install_line_read_first_moves_our_file_ahead() -> None:
    facts = _with_modprobe(facts_of(DISABLE / "modular-idle"), ("/etc/modprobe.d/00-a.conf", RIVAL))
    plan = plan_disable(facts)
    assert plan.modprobe_file is not None
    assert plan.modprobe_file.path == "/etc/modprobe.d/0-ctguard-disable-conntrack.conf"
    assert plan.existing == (
        "/etc/modprobe.d/00-a.conf:1: " + RIVAL.strip()
        + " (read after 0-ctguard-disable-conntrack.conf: ours wins)",
    )  # fmt: skip


def test_a_rival_read_later_leaves_our_name() -> None:
    facts = _with_modprobe(facts_of(DISABLE / "modular-idle"), ("/lib/modprobe.d/50-a.conf", RIVAL))
    plan = plan_disable(facts)
    assert plan.modprobe_file is not None and plan.modprobe_file.path == OUR_FILE


@pytest.mark.parametrize("path", ["/etc/modprobe.d/0-a.conf", "/etc/modprobe.conf"])
def test_a_rival_nothing_can_precede_refuses(path: str) -> None:
    plan = plan_disable(_with_modprobe(facts_of(DISABLE / "modular-idle"), (path, RIVAL)))
    assert plan.refused and plan.modprobe_file is None
    assert plan.refusals[-1].startswith("an install line for these modules is read before any")
    assert plan.existing[-1].endswith("(read before any file ctguard can name)")


def test_an_existing_install_false_is_reported() -> None:
    text = "install nf_conntrack /bin/false\n"
    facts = _with_modprobe(facts_of(DISABLE / "modular-idle"), ("/etc/modprobe.d/no-ct.conf", text))
    plan = plan_disable(facts)
    assert plan.existing == (
        "/etc/modprobe.d/no-ct.conf:1: install nf_conntrack /bin/false"
        " (already stops every load of nf_conntrack)",
    )
    assert plan.unload_order == ("nf_conntrack",)


def test_not_loaded_and_kept_out_is_nothing_to_do() -> None:
    facts = _with_modprobe(
        facts_of(DISABLE / "modular-idle"),
        ("/etc/modprobe.d/no-ct.conf", "install nf_conntrack /bin/true\n"),
    )
    facts = replace(facts, presence=ConntrackPresence("absent", False, evidence="not loaded"))
    plan = plan_disable(facts)
    assert plan.nothing_to_do and not plan.refused
    assert plan.notes[0].text.startswith("nf_conntrack is not loaded and an install line")


def test_not_loaded_without_install_plans_the_file_only() -> None:
    facts = facts_of(DISABLE / "modular-idle")
    plan = plan_disable(replace(facts, presence=ConntrackPresence("absent", False)))
    assert plan.unload_order == () and plan.holders == ()
    assert plan.modprobe_file is not None and plan.modprobe_file.path == OUR_FILE


def test_our_file_in_place_is_not_written_again() -> None:
    expected = (HEADER + "install nf_conntrack /bin/false\n").encode()
    plan = plan_disable(facts_of(DISABLE / "modular-idle"), {OUR_FILE: expected}.get)
    assert plan.modprobe_file is None
    assert plan.notes[0].text == f"{OUR_FILE} is already in place"
    assert plan.unload_order == ("nf_conntrack",)


def test_our_older_file_is_rewritten_with_its_old_bytes() -> None:
    old = HEADER.encode() + b"install nf_conntrack /bin/true\n"
    plan = plan_disable(facts_of(DISABLE / "modular-idle"), {OUR_FILE: old}.get)
    assert plan.modprobe_file is not None and plan.modprobe_file.before == old


def test_unreadable_modprobe_d_refuses() -> None:
    facts = facts_of(DISABLE / "modular-idle")
    unread = ModprobeConfig((), (), (), (("/etc/modprobe.d/x.conf", "permission denied"),))
    assert plan_disable(replace(facts, modprobe=unread)).refusals == (
        "modprobe.d not read (/etc/modprobe.d/x.conf: permission denied): an install line read"
        " before ours would win, unseen",
    )
    assert plan_disable(replace(facts, modprobe=Missing("boom"))).refused


def test_boot_lines_that_load_a_blocked_module_are_named() -> None:
    facts = facts_of(DISABLE / "modular-idle")
    boot = (BootModule("nf_conntrack", "/etc/modules-load.d/ct.conf", 1, "nf_conntrack"),)
    plan = plan_disable(replace(facts, boot_modules=boot))
    assert any(
        n.text.startswith("/etc/modules-load.d/ct.conf:1 loads nf_conntrack at boot")
        for n in plan.notes
    )


# -- inputs -------------------------------------------------------------------------------
def test_garbage_proc_modules_is_an_input_error() -> None:
    facts = replace(
        facts_of(DISABLE / "modular-idle"),
        modules=Missing("/proc/modules line 1: expected at least 5 fields, got 2"),
    )
    with pytest.raises(DisableInputError, match="/proc/modules line 1"):
        plan_disable(facts)


def test_unknown_presence_is_an_input_error() -> None:
    facts = replace(
        facts_of(DISABLE / "modular-idle"),
        presence=ConntrackPresence("unknown", True, evidence="module or built-in not recorded"),
    )
    with pytest.raises(DisableInputError, match="module or built-in not recorded"):
        plan_disable(facts)


def test_unreadable_rules_refuse() -> None:
    facts = facts_of(DISABLE / "modular-idle")
    missing = replace(facts, ruleset=Missing("iptables-save: permission denied (run as root)"))
    assert plan_disable(missing).refusals == (
        "rules not read (iptables-save: permission denied (run as root)): what needs conntrack"
        " is unknown",
    )
    partial = merge_rulesets(iptables(":INPUT ACCEPT [0:0]"), Missing("nft exited 1: no perm"))
    assert plan_disable(replace(facts, ruleset=partial)).refused
    installed = merge_rulesets(iptables(":INPUT ACCEPT [0:0]"), Missing("nft is not installed"))
    assert not plan_disable(replace(facts, ruleset=installed)).refused


def test_namespace_note_says_modules_are_global() -> None:
    facts = replace(facts_of(DISABLE / "modular-idle"), netns="web1")
    note = plan_disable(facts).notes[0].text
    assert note.startswith("rules were read in namespace web1 only; modules are global")


def test_unreadable_ip6tables_save_refuses_only_when_legacy_ipv6_rules_can_exist() -> None:
    facts = facts_of(DISABLE / "modular-idle")
    assert not isinstance(facts.modules, Missing) and "ip6_tables" not in facts.modules
    gap = Missing("ip6tables-save exited 1: can't initialize ip6tables table `filter'")
    nft = parse_nft_json('{"nftables": [{"metainfo": {"json_schema_version": 1}}]}')
    with_nft = merge_rulesets(iptables(":INPUT ACCEPT [0:0]"), gap, nft)
    # nft lists iptables-nft's IPv6 tables, and no legacy one exists without ip6_tables
    assert not plan_disable(replace(facts, ruleset=with_nft)).refused
    legacy = dict(facts.modules)
    legacy["ip6_tables"] = parse_proc_modules("ip6_tables 36864 0 - Live 0x0000000000000000\n")[
        "ip6_tables"
    ]
    assert plan_disable(replace(facts, ruleset=with_nft, modules=legacy)).refused
    no_nft = merge_rulesets(iptables(":INPUT ACCEPT [0:0]"), gap, Missing("nft exited 1: no"))
    assert plan_disable(replace(facts, ruleset=no_nft)).refused
    # a snapshot names the missing outputs its own way
    snap_gap = Missing("the snapshot has no ip6tables-save output")
    snap = merge_rulesets(iptables(":INPUT ACCEPT [0:0]"), snap_gap, nft)
    assert not plan_disable(replace(facts, ruleset=snap)).refused
    snap_no_nft = Missing("the snapshot has no nft-json output")
    both = merge_rulesets(iptables(":INPUT ACCEPT [0:0]"), snap_gap, snap_no_nft)
    assert plan_disable(replace(facts, ruleset=both)).refused
    unknown = replace(facts, ruleset=with_nft, modules=Missing("/proc/modules unreadable"))
    with pytest.raises(DisableInputError):
        plan_disable(unknown)
