"""CT501-CT504: bypassing conntrack (NOTRACK, blacklist, unused module) done wrong."""

from __future__ import annotations

from dataclasses import replace

from ctguard.facts import Facts
from ctguard.findings import Severity
from ctguard.missing import Missing
from ctguard.model.firewall import (
    FILTER_HOOK,
    Fate,
    Packet,
    conntrack_users,
    families_meet,
    nat_overlap,
    notrack_rules,
    packet_of,
    reachable_rules,
    untracked_fate,
)
from ctguard.model.ipv6_filter import ipv6_filter_unread
from ctguard.model.notrack_rules import ACCEPT, OurRule, beside
from ctguard.model.thresholds import Thresholds
from ctguard.model.values import NF_CONNTRACK, hooks_on_demand, load_blocked
from ctguard.rules import Outcome, found, passed, rule, skipped
from ctguard.sources.modprobe_conf import ModprobeConfig
from ctguard.sources.modules import SILENT_USERS
from ctguard.sources.ruleset import Chain, Rule, Ruleset, describe


def _filter_hooks(facts: Facts, hook: str, packet: Packet) -> tuple[str, ...]:
    """Where packets notracked on ``hook`` are filtered: locally delivered ones on input,
    locally sent ones on output; a prerouting NOTRACK also meets the forward hook when this
    namespace routes (ip_forward = 1), unless every destination it selects is one of this
    host's own addresses (delivered locally, so never forwarded)."""
    if hook == "prerouting" and facts.ip_forward == 1 and not _to_this_host(facts, packet):
        return ("input", "forward")
    return (FILTER_HOOK[hook],)


def _locality_unknown(facts: Facts, hook: str, packet: Packet) -> str:
    """Why it is unknown whether a NOTRACK's packets reach the forward hook ("" if known):
    its destinations might be this host's own addresses, which were not read."""
    local = facts.local_addresses
    if hook != "forward" or not packet.daddrs or not isinstance(local, Missing):
        return ""
    return f"this host's addresses were not read ({local.reason})"


def _to_this_host(facts: Facts, packet: Packet) -> bool:
    local = facts.local_addresses
    if isinstance(local, Missing) or not packet.daddrs:
        return False
    return all(addr in local.cidrs() for addr in packet.daddrs)


def _rules(facts: Facts) -> Ruleset | Outcome:
    if isinstance(facts.ruleset, Missing):
        if facts.ruleset_gaps and all("root" in gap for gap in facts.ruleset_gaps):
            return skipped("reading the rulesets (iptables-save, ip6tables-save, nft) needs root")
        return skipped(f"no ruleset readable: {facts.ruleset.reason}")
    return facts.ruleset


def _notracks(facts: Facts) -> tuple[Ruleset, tuple[tuple[Rule, str], ...]] | Outcome:
    """The ruleset and its effective NOTRACK rules (with their hook), or the outcome."""
    rs = _rules(facts)
    if isinstance(rs, Outcome):
        return rs
    notracks = notrack_rules(rs)
    return (rs, notracks) if notracks else passed("no NOTRACK rules")


def _untracked_accepts(chain: Chain, packet: Packet) -> list[OurRule]:
    protos = sorted(packet.protos) if packet.protos else [None]
    return [
        OurRule(
            chain.backend,
            chain.family,
            chain.table,
            chain.name,
            str(chain.hook),
            ACCEPT,
            proto,
            packet.dports,
            packet.sports,
            packet.iif,
            packet.oif,
            packet.saddrs,
            packet.daddrs,
            # never wider than the NOTRACK: an IPv4-only one gets an IPv4-only accept
            packet.family if chain.family == "inet" and packet.family != "inet" else None,
        )
        for proto in protos
    ]


def untracked_accept_command(chain: Chain, packet: Packet) -> list[str]:
    """The accept for untracked packets of exactly this class, first in the dropping chain:
    the rule `ctguard notrack` adds (one renderer for both)."""
    return [ours.shown() for ours in _untracked_accepts(chain, packet)]


def _accepts_beside(rs: Ruleset, chain: Chain, packet: Packet, fate: Fate) -> list[str]:
    """For a chain that accepts these packets only under conditions: untracked accepts with
    the conditions of each accept that admits some of them (never wider: an accept without
    its source list would open the port to everyone), or why there is none to paste."""
    partial = set(fate.evidence[:-1])
    accepts = {describe(r): r for r in reachable_rules(rs, chain) if describe(r) in partial}
    shown: list[str] = []
    for evidence in fate.evidence[:-1]:
        accept = accepts.get(evidence)
        if accept is None or accept.verdict != "accept" or accept.chain != chain.name:
            return [f"# no rule to paste for {chain.label}: {evidence} admits some of these"
                    " packets behind a jump or map; add an untracked accept with exactly its"
                    " conditions beside it"]  # fmt: skip
        for ours in _untracked_accepts(chain, packet):
            narrowed = beside(accept, _without_conditions(ours))
            if narrowed is None:
                continue
            if isinstance(narrowed, str):
                return [f"# no rule to paste for {chain.label}: {evidence}: {narrowed}"]
            shown.append(narrowed.shown())
    return shown or [
        f"# no rule to paste for {chain.label}: copy the conditions of the accepts above"
    ]


def _ipv6_unread(facts: Facts) -> str | None:
    modules = None if isinstance(facts.modules, Missing) else frozenset(facts.modules)
    return ipv6_filter_unread(facts.ruleset_gaps, modules)


def _without_conditions(ours: OurRule) -> OurRule:
    return replace(ours, iif=None, oif=None, saddrs=None, daddrs=None)


@rule("CT501")
def notrack_without_accept(facts: Facts, _limits: Thresholds) -> Outcome:
    got = _notracks(facts)
    if isinstance(got, Outcome):
        return got
    rs, notracks = got
    evidence: list[str] = []
    fixes: list[str] = []
    worst = Severity.OK
    hidden_ipv6 = _ipv6_unread(facts)
    for notrack, hook in notracks:
        packet = packet_of(notrack)
        if hidden_ipv6 is not None and families_meet(packet.family, "ip6"):
            # the notrack plan's own rule: no IPv6 NOTRACK beside an IPv6 filter not read
            evidence += [
                f"NOTRACK {describe(notrack)}",
                f"  also untracks IPv6, and the IPv6 filter was not read: {hidden_ipv6}",
            ]
            fixes.append(
                "# read the IPv6 filter (ip6tables-save, as root) and run doctor"
                " again, or limit the NOTRACK to IPv4 (nft: meta nfproto ipv4)"
            )
            worst = max(worst, Severity.WARNING, key=lambda s: s.rank)
        for filter_hook in _filter_hooks(facts, hook, packet):
            fate = untracked_fate(rs, filter_hook, packet)
            if fate.outcome == "accepted":
                continue
            severity = _note_fate(notrack, fate, evidence)
            unknown = _locality_unknown(facts, filter_hook, packet)
            if unknown:  # maybe never forwarded: a drop there is not sure enough to page
                severity = min(severity, Severity.WARNING, key=lambda s: s.rank)
                evidence.append(f"  (only if forwarded: {unknown})")
            worst = max(worst, severity, key=lambda s: s.rank)
            family, table, name = fate.chain.split(" ", 2)
            chain = rs.chain(family, table, name)
            if chain is None:
                continue
            if fate.outcome == "conditional":
                fixes += _accepts_beside(rs, chain, packet, fate)
            else:
                fixes += untracked_accept_command(chain, packet)
    if not evidence:
        return passed(f"{len(notracks)} NOTRACK rule(s), each accepted as UNTRACKED by the filter")
    fix = (
        "Untracked packets never match ESTABLISHED,RELATED: accept them explicitly"
        " (ctguard notrack --port PORT --apply adds the NOTRACK rules with these accepts,"
        " journalled):\n" + "\n".join(dict.fromkeys(fixes))
    )
    return found(worst, evidence, fix)


def _note_fate(notrack: Rule, fate: Fate, evidence: list[str]) -> Severity:
    """Evidence for a NOTRACK rule whose packets a filter chain may drop; its severity."""
    evidence.append(f"NOTRACK {describe(notrack)}")
    if fate.outcome == "dropped":
        evidence += [f"  then {fate.chain} drops it: {line}" for line in fate.evidence]
        return Severity.CRITICAL
    # accepted only by rules with conditions we do not model (interface, address)
    evidence.append(f"  {fate.chain} accepts it only under conditions, else drops it:")
    evidence += [f"    {line}" for line in fate.evidence]
    return Severity.WARNING


def _delete_command(rule_: Rule) -> str:
    if rule_.backend == "nft":
        where = f"{rule_.family} {rule_.table} {rule_.chain}"
        if rule_.line is None:  # no handle in the capture: list the chain with -a to see it
            return f"nft -a list chain {where}    # then: nft delete rule {where} handle N"
        return f"nft delete rule {where} handle {rule_.line}"
    tool = "ip6tables" if rule_.backend == "ip6tables" else "iptables"
    spec = rule_.text.replace("-A ", "-D ", 1)
    return f"{tool} -t {rule_.table} {spec}"


@rule("CT502")
def notrack_on_nat(facts: Facts, _limits: Thresholds) -> Outcome:
    got = _notracks(facts)
    if isinstance(got, Outcome):
        return got
    rs, notracks = got
    evidence: list[str] = []
    fixes: list[str] = []
    for notrack, hook in notracks:
        clashes = nat_overlap(rs, notrack, hook)
        if not clashes:
            continue
        evidence.append(f"NOTRACK {describe(notrack)}")
        evidence += [f"  overlaps NAT {describe(nat)}" for nat in clashes]
        fixes.append(_delete_command(notrack))
    if not evidence:
        return passed("no NOTRACK rule overlaps a NAT rule")
    fix = (
        "Untracked packets are never NATed: remove the NOTRACK rule, or narrow it to traffic no"
        " NAT rule matches:\n" + "\n".join(fixes)
    )
    return found(Severity.CRITICAL, evidence, fix)


@rule("CT503")
def blacklist_ineffective(facts: Facts, _limits: Thresholds) -> Outcome:
    if not isinstance(facts.modprobe, ModprobeConfig):
        return skipped(f"modprobe.d unreadable: {facts.modprobe.reason}")
    blacklist = facts.modprobe.for_module(NF_CONNTRACK, "blacklist")
    if not blacklist:
        return passed("nf_conntrack is not blacklisted")
    blocked = load_blocked(facts)
    if blocked is not None:
        return passed(f"{blocked}: stops every load")
    if not facts.presence.loaded:
        return passed("blacklisted and not loaded (yet: a dependency can still load it)")
    evidence = [f"{d.path}:{d.line}: {d.text.strip()}" for d in blacklist]
    evidence.append(f"yet nf_conntrack is loaded ({facts.presence.evidence})")
    if facts.presence.kind == "builtin":
        evidence.append("it is built into this kernel: no modprobe.d line can keep it out")
    fix = (
        "blacklist only stops loading by alias; a module that depends on nf_conntrack still"
        " loads it. To keep it out (after removing its users: ctguard disable shows them and"
        " plans it):\n"
        "/etc/modprobe.d/00-ctguard-disable-conntrack.conf:\ninstall nf_conntrack /bin/false"
    )
    return found(Severity.WARNING, evidence, fix)


@rule("CT504")
def loaded_for_nothing(facts: Facts, _limits: Thresholds) -> Outcome:
    if not facts.presence.loaded:
        return passed("nf_conntrack is not loaded")
    rs = _rules(facts)
    if isinstance(rs, Outcome):
        return rs
    users = conntrack_users(rs)
    if users:
        return passed(f"{len(users)} rule(s) need conntrack, e.g. {describe(users[0])}")
    silent = [h for h in facts.presence.holders if h.startswith(SILENT_USERS)]
    if silent:
        return passed(f"used by {', '.join(silent)}")
    evidence = ["no rule uses state/ctstate/ct, NAT or the CT target"]
    evidence += [f"not read: {gap}" for gap in facts.ruleset_gaps]
    if facts.presence.holders:
        evidence.append(f"modules holding it: {', '.join(facts.presence.holders)}")
    if facts.presence.kind == "builtin":
        if hooks_on_demand(facts):
            return passed("built in, and with no rule needing it this kernel tracks nothing")
        evidence.append("built in: it cannot be unloaded")
        fix = (
            "It cannot be unloaded; stop tracking instead (ctguard notrack --all plans it):\n"
            "iptables -t raw -A PREROUTING -j NOTRACK\niptables -t raw -A OUTPUT -j NOTRACK"
        )
        return found(Severity.INFO, evidence, fix)
    fix = (
        "Unload it (after the modules holding it) and keep it out; ctguard disable shows"
        " what holds it and plans both:\n"
        "modprobe -r nf_conntrack\n"
        "echo 'install nf_conntrack /bin/false' > /etc/modprobe.d/00-ctguard-disable-conntrack.conf"
    )
    return found(Severity.INFO, evidence, fix)
