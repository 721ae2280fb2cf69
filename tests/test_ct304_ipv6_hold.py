"""CT304 on a RHEL 6 host whose IPv6 rules keep nf_conntrack loaded.

The iptables init script's stop flushes IPv4 rules only, then ``rmmod_r`` each module of
NF_MODULES_COMMON: it removes the users ``lsmod`` names, then ``modprobe -r`` the module,
ignoring failures. The stock RHEL 6 ip6tables rules match on state, and each such rule
holds xt_state and nf_conntrack_ipv6 by a reference no module names ("Used by 2" with an
empty list), so their ``modprobe -r`` fails and nf_conntrack stays, values and all, until
ip6tables is stopped too. What an operator expects, decided from reading the script:
CT304 stays a WARNING (stopping both services, as a shutdown or "restart the firewall"
does, still resets the values, and the fix is the same), and its evidence says that
``service iptables stop`` alone fails to unload the module, and why, only when the
snapshot shows such a hold.

The host is tests/roots/doctor/ct304-load-list-misses-netfilter (RHEL 6.10 web03: 2 state
rules in ip6tables-save, nf_conntrack_ipv6 "used by 2" with no module named).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ctguard.facts import collect
from ctguard.host.commands import CapturedCommands
from ctguard.host.root import HostRoot
from ctguard.missing import Missing
from ctguard.model.rhel_iptables import ipv6_hold
from ctguard.output.doctor_json import doctor_dict
from ctguard.sources.manifest import read_manifest
from ctguard.sources.modules import parse_proc_modules
from ctguard.sources.ruleset import Ruleset, merge_rulesets, parse_iptables_save
from ctguard.usecases.doctor import diagnose

BASE = Path(__file__).parent / "roots/doctor/ct304-load-list-misses-netfilter"
HOLD = "right now IPv6 rules hold nf_conntrack"

STATE_V4 = (
    "*filter\n:INPUT ACCEPT [0:0]\n"
    "-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT\nCOMMIT\n"
)
PLAIN_V6 = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p ipv6-icmp -j ACCEPT\nCOMMIT\n"
STATE_V6 = (
    "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p ipv6-icmp -j ACCEPT\n"
    "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\nCOMMIT\n"
)
NOTRACK_V6 = "*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p udp --dport 53 -j NOTRACK\nCOMMIT\n"
L3_UNUSED = "nf_conntrack_ipv6 7985 0 - Live 0xffffffffa031d000\n"
L3_RULES = "nf_conntrack_ipv6 7985 2 - Live 0xffffffffa031d000\n"
L3_NAMED = "nf_conntrack_ipv6 7985 1 nf_nat_ipv6, Live 0xffffffffa031d000\n"


def rules(v4: str, v6: str) -> Ruleset:
    return merge_rulesets(parse_iptables_save(v4), parse_iptables_save(v6, "ip6tables"))


# -- the judgement (model/rhel_iptables.ipv6_hold) ----------------------------------------
def test_ipv6_state_rule_holds() -> None:
    hold = ipv6_hold(rules(STATE_V4, STATE_V6), parse_proc_modules(L3_UNUSED))
    assert hold is not None and hold.module is None
    assert [rule.text for rule in hold.rules] == [
        "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
    ]
    assert hold.shown == (
        "ip6tables -t filter -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
    )


def test_ipv4_state_rules_do_not_hold() -> None:
    # the iptables service flushes its own (IPv4) rules before it unloads
    assert ipv6_hold(rules(STATE_V4, PLAIN_V6), parse_proc_modules(L3_UNUSED)) is None


def test_ipv6_notrack_holds() -> None:
    # xt_NOTRACK (and xt_CT --notrack) use nf_conntrack: the rule keeps it loaded too
    hold = ipv6_hold(rules(PLAIN_V6, NOTRACK_V6), Missing("not read"))
    assert hold is not None and len(hold.rules) == 1


def test_unnamed_references_on_nf_conntrack_ipv6_hold() -> None:
    # ip6tables-save not read: /proc/modules alone shows the references rules take
    hold = ipv6_hold(Missing("ip6tables-save: not captured"), parse_proc_modules(L3_RULES))
    assert hold is not None and hold.rules == ()
    assert hold.shown == "/proc/modules: nf_conntrack_ipv6 used by 2 (no module named)"


def test_named_users_alone_do_not_hold() -> None:
    # rmmod_r removes every user lsmod names before modprobe -r: those do not stop it
    assert ipv6_hold(rules(STATE_V4, PLAIN_V6), parse_proc_modules(L3_NAMED)) is None
    assert ipv6_hold(Missing("no"), Missing("no")) is None


# -- doctor on the RHEL 6 root and its near miss -------------------------------------------
def ct304(root: Path) -> dict[str, Any]:
    host = HostRoot(root)
    manifest = read_manifest(host)
    facts = collect(host, CapturedCommands(host), manifest.netns if manifest else None)
    found: dict[str, Any] = next(
        f for f in doctor_dict(diagnose(facts))["findings"] if f["id"] == "CT304"
    )
    return found


def without_ipv6_state(tmp_path: Path) -> Path:
    """The same host with ip6tables rules that never match on state (the stock RHEL 6
    rules minus both ``-m state`` ones): nothing references xt_state or nf_conntrack_ipv6
    for IPv6, so /proc/modules shows nf_conntrack_ipv6 used by 0 and xt_state by the 3
    IPv4 state rules only."""
    root = tmp_path / "root"
    shutil.copytree(BASE, root, symlinks=True)
    save = root / "ctguard_commands/ip6tables-save"
    save.write_text("".join(ln for ln in save.read_text().splitlines(True) if "-m state" not in ln))
    modules = root / "proc/modules"
    text = modules.read_text()
    for before, after in (
        ("nf_conntrack_ipv6 7985 2 -", "nf_conntrack_ipv6 7985 0 -"),
        ("xt_state 1492 5 -", "xt_state 1492 3 -"),
    ):
        assert before in text
        text = text.replace(before, after)
    modules.write_text(text)
    return root


def test_rhel6_stock_ipv6_rules_hold_nf_conntrack() -> None:
    finding = ct304(BASE)
    assert (finding["status"], finding["severity"]) == ("found", "warning")
    held = [line for line in finding["evidence"] if line.startswith(HOLD)]
    assert len(held) == 1
    line = held[0]
    assert "ip6tables -t filter -A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT" in line
    assert "and 1 more ip6tables rule;" in line  # the NEW tcp/22 rule
    assert "/proc/modules: nf_conntrack_ipv6 used by 2 (no module named)" in line
    assert "'service iptables stop' alone fails to unload it" in line
    assert "stopping ip6tables too" in line


def test_near_miss_without_ipv6_state_rules(tmp_path: Path) -> None:
    near = ct304(without_ipv6_state(tmp_path))
    # the trap and the fix are unchanged: only the hold line goes
    assert (near["status"], near["severity"]) == ("found", "warning")
    assert not any(line.startswith(HOLD) for line in near["evidence"])
    base = ct304(BASE)
    assert near["evidence"] == [line for line in base["evidence"] if not line.startswith(HOLD)]
    assert near["fix"] == base["fix"]
