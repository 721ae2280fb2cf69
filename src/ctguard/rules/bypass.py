"""CT501-CT504: bypassing conntrack (NOTRACK, blacklist, unused module) done wrong."""

from __future__ import annotations

import re

from ctguard.facts import Facts
from ctguard.findings import Severity
from ctguard.missing import Missing
from ctguard.model.firewall import (
    FILTER_HOOK,
    Packet,
    conntrack_users,
    families_meet,
    nat_overlap,
    notrack_rules,
    packet_of,
)
from ctguard.model.ipv6_filter import ipv6_filter_unread
from ctguard.model.notrack_effect import (
    CLOSED,
    DROPPED,
    UNCHANGED,
    Effect,
    Loss,
    loss_evidence,
    notrack_effect,
)
from ctguard.model.notrack_rules import ACCEPT, OurRule, paste_order, untracked_accept
from ctguard.model.thresholds import Thresholds
from ctguard.model.values import NF_CONNTRACK, hooks_on_demand, load_blocked
from ctguard.rules import Outcome, found, passed, rule, skipped
from ctguard.sources.local_port_range import ephemeral_range
from ctguard.sources.modprobe_conf import ModprobeConfig
from ctguard.sources.modules import SILENT_USERS
from ctguard.sources.ruleset import Chain, PortSet, Rule, Ruleset, describe


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


def _accepts_for(chain: Chain, loss: Loss) -> list[str]:
    """Untracked accepts for the packets ``loss`` lost (``untracked_accept``: the NOTRACK's
    class under the conditions of the accept that took them while tracked, right before
    it), or why there is none to paste."""
    shown: list[str] = []
    for ours in _untracked_accepts(chain, loss.region):
        got = untracked_accept(chain, loss, ours)
        if isinstance(got, str):
            return [f"# no rule to paste for {chain.label}: {got}"]
        if got is not None:
            shown.append(got.shown())
    return shown


def _ipv6_unread(facts: Facts) -> str | None:
    modules = None if isinstance(facts.modules, Missing) else frozenset(facts.modules)
    return ipv6_filter_unread(facts.ruleset_gaps, modules)


def _ephemeral(facts: Facts) -> PortSet:
    """Where this host's own connections start from: ip_local_port_range (read with or
    without the table), else the kernel's default."""
    return PortSet.of(ephemeral_range(facts.local_ports))


@rule("CT501")
def notrack_without_accept(facts: Facts, _limits: Thresholds) -> Outcome:
    got = _notracks(facts)
    if isinstance(got, Outcome):
        return got
    rs, notracks = got
    evidence: list[str] = []
    fixes: list[str] = []
    notes: list[str] = []
    worst = Severity.OK
    hidden_ipv6 = _ipv6_unread(facts)
    for notrack, hook in notracks:
        packet = packet_of(notrack)
        named = hidden_ipv6 is not None and families_meet(packet.family, "ip6")
        if named:
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
        effects = [
            notrack_effect(rs, filter_hook, packet, _ephemeral(facts))
            for filter_hook in _filter_hooks(facts, hook, packet)
        ]
        # "no effect" only when the filter closes every hook its packets cross; a hook that
        # closes them next to one where the NOTRACK works (FORWARD beside INPUT) says nothing
        closed = all(effect.outcome == CLOSED for effect in effects)
        shown = [e for e in effects if e.outcome not in (UNCHANGED, CLOSED) or closed][
            : 1 if closed else None
        ]
        if shown and not named:
            evidence.append(f"NOTRACK {describe(notrack)}")
        for effect in shown:
            severity = _note_effect(effect, evidence)
            unknown = _locality_unknown(facts, effect.hook, packet)
            if unknown and not closed:
                # maybe never forwarded: a drop there is not sure enough to page, and an
                # accept added to FORWARD on a guess may open a path closed on purpose
                severity = min(severity, Severity.WARNING, key=lambda s: s.rank)
                evidence.append(f"  (only if forwarded: {unknown})")
                notes.append(_forward_note(packet, unknown))
            elif not closed:
                fixes += [
                    line for chain, loss in effect.losses for line in _accepts_for(chain, loss)
                ]
            worst = max(worst, severity, key=lambda s: s.rank)
    if not evidence:
        return passed(
            f"{len(notracks)} NOTRACK rule(s): the filter accepts their packets untracked"
            " wherever it accepted them tracked"
        )
    text = [_HOW_TO_ACCEPT, *paste_order(_by_source(list(dict.fromkeys(fixes))))] if fixes else []
    text += list(dict.fromkeys(notes))
    return found(worst, evidence, "\n".join(text) if text else _NOTHING_TO_ACCEPT)


_SOURCE = re.compile(r"^((?:ip6?tables) .*? )-s ([^\s,]+) (.*)$")
_SOURCES_PER_LINE = 20


def _by_source(commands: list[str]) -> list[str]:
    """iptables commands that differ only in their source address, as one command per 20
    sources (``-s a,b,c``: iptables adds one rule per address), in first-seen order: an
    allow-list of 5000 addresses is 250 lines to paste, not 5000."""
    groups: dict[tuple[str, str], list[str]] = {}
    order: list[str | tuple[str, str]] = []
    for command in commands:
        match = _SOURCE.match(command)
        if match is None or " -s " in match.group(3):
            order.append(command)
            continue
        key = (match.group(1), match.group(3))
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(match.group(2))
    out: list[str] = []
    for item in order:
        if isinstance(item, str):
            out.append(item)
            continue
        sources = groups[item]
        out += [
            f"{item[0]}-s {','.join(sources[i : i + _SOURCES_PER_LINE])} {item[1]}"
            for i in range(0, len(sources), _SOURCES_PER_LINE)
        ]
    return out


_HOW_TO_ACCEPT = (
    "Untracked packets never match ESTABLISHED,RELATED: accept them explicitly"
    " (ctguard notrack --port PORT --apply adds the NOTRACK rules with these accepts,"
    " journalled):"
)
_NOTHING_TO_ACCEPT = (
    "Nothing to accept: the filter dropped these packets while they were tracked too, and an"
    " accept would open what it closes. Remove the NOTRACK rule if it is left over; if the"
    " port is meant to be open, open it on purpose (accept its NEW and UNTRACKED packets)."
)


def _forward_note(packet: Packet, unknown: str) -> str:
    where = ", ".join(sorted(packet.daddrs or ())) or "the destination"
    return (
        f"If {where} is not one of this host's addresses, these packets are forwarded and"
        " FORWARD needs the same untracked accept; ctguard does not suggest one, since"
        f" {unknown}."
    )


_LOSSES_SHOWN = 10  # per NOTRACK and hook: a 5000-entry allow-list is not 15,000 lines


def _note_effect(effect: Effect, evidence: list[str]) -> Severity:
    """Evidence for what untracking changes on a hook; its severity."""
    if effect.outcome == CLOSED:
        closed = next(c for c in effect.chains if c.outcome == CLOSED)
        evidence.append(
            f"  {closed.chain.label}: the filter drops these packets whether tracked or not;"
            " the NOTRACK rule has no effect on them"
        )
        evidence += [f"    {line}" for line in closed.tracked.evidence]
        return Severity.INFO
    losses = effect.losses
    # sure losses first: they decide the severity and are the ones to read
    shown = sorted(losses, key=lambda cl: (bool(cl[1].assumption), cl[1].outcome != DROPPED))
    for chain, loss in shown[:_LOSSES_SHOWN]:
        which = "these packets" if loss.covers(effect.packet) else "some of these packets"
        if loss.outcome == DROPPED:
            evidence.append(
                f"  {chain.label} accepted {which} while tracked and drops them untracked:"
            )
        else:
            evidence.append(
                f"  {chain.label} accepted {which} while tracked, and untracked only under"
                " conditions ctguard cannot decide, else drops them:"
            )
        evidence += [f"    {line}" for line in loss_evidence(loss)]
        if loss.assumption:
            evidence.append(f"    only {loss.assumption} (outside ip_local_port_range)")
    if len(losses) > _LOSSES_SHOWN:
        evidence.append(
            f"  ... and {len(losses) - _LOSSES_SHOWN} more accepts that took some of these"
            " packets while tracked (the fix lists an untracked accept for each)"
        )
    # a loss that rests on a guess about this host's own UDP source port never pages
    return Severity.CRITICAL if effect.surely_dropped else Severity.WARNING


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
