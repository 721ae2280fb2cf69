"""Questions the conntrack rules ask of a firewall ruleset (pure: a Ruleset in, answers out).

- Which rules NOTRACK packets, and which try to but run too late (``notrack_rules``,
  ``ineffective_notrack_rules``)?
- Does an untracked packet survive the filter chains, or does a drop policy that only
  lets ``ESTABLISHED,RELATED`` through eat it (``untracked_fate``, doctor rule CT501)?
- Would a notracked packet have needed NAT (``nat_overlap``, CT502)?
- Does anything need conntrack at all (``conntrack_users``, CT504)?

Kernel facts behind the answers (docs/design.md §7): conntrack sees a packet at priority -200
(NF_IP_PRI_CONNTRACK) on prerouting and output, so only a notrack before that has an effect;
an untracked packet has ctstate UNTRACKED, never ESTABLISHED or RELATED; NAT needs a
conntrack entry, so an untracked packet is never NATed; and in nftables every base chain on
a hook must accept a packet: an accept in one table does not stop another table's drop.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache

from ctguard.sources.ruleset import NAT_VERDICTS, Chain, PortSet, Rule, RuleMatch, Ruleset, describe

# net/netfilter: NF_IP_PRI_CONNTRACK (and NF_IP6_PRI_CONNTRACK) = -200.
CONNTRACK_PRIORITY = -200
NOTRACK_HOOKS = ("prerouting", "output")
# Where packets untracked on a hook are filtered next.
FILTER_HOOK = {"prerouting": "input", "output": "output"}
# The kernel limits nested jumps too (NFT_JUMP_STACK_SIZE is 16); a deeper walk is a loop.
MAX_JUMP_DEPTH = 16
_FILTERING_TYPES = (None, "filter", "route")  # nat chains never see untracked packets
_IP_FAMILIES = ("ip", "ip6", "inet")


@dataclass(frozen=True)
class Packet:
    """A class of packets: what a notrack rule selects."""

    family: str  # "ip" | "ip6" | "inet" (both)
    protos: frozenset[str] | None
    dports: PortSet | None
    sports: PortSet | None
    iif: str | None = None
    oif: str | None = None
    saddrs: frozenset[str] | None = None
    daddrs: frozenset[str] | None = None


def packet_of(rule: Rule) -> Packet:
    """The packets a (notrack) rule selects.

    Conditions the model does not hold (marks, negated addresses) are dropped, so the class
    can be wider than what the rule selects; ``untracked_fate`` may then say "conditional"
    where a full analysis would say "accepted".
    """
    m = rule.match
    return Packet(rule_family(rule), m.protos, m.dports, m.sports, m.iif, m.oif, m.saddrs,
                  m.daddrs)  # fmt: skip


def rule_family(rule: Rule) -> str:
    """The family of the packets ``rule`` can see: its table's, narrowed by ``meta nfproto``
    in an inet table (``meta nfproto ipv4 ... notrack`` untracks IPv4 only)."""
    return rule.match.nfproto if rule.family == "inet" and rule.match.nfproto else rule.family


def narrowed(packet: Packet, match: RuleMatch) -> Packet | None:
    """The packets of ``packet`` that ``match`` also selects, as far as the model holds it
    (None when none are). Conditions it does not hold (``other``) are not applied; where two
    address lists cannot be intersected (two sets by name), the rule's list is kept.

    >>> web = Packet("inet", frozenset({"tcp"}), PortSet.of(80, 443), None)
    >>> allow = RuleMatch(dports=PortSet.of(443, 8443), saddrs=frozenset({"ip @allowed"}))
    >>> got = narrowed(web, allow)
    >>> str(got.dports), sorted(got.saddrs)
    ('443', ['ip @allowed'])
    """
    family = packet.family
    if match.nfproto is not None:
        if not families_meet(family, match.nfproto):
            return None
        family = match.nfproto
    protos = match.protos if packet.protos is None else packet.protos
    if packet.protos is not None and match.protos is not None:
        protos = packet.protos & match.protos
    dports = _both_ports(packet.dports, match.dports)
    sports = _both_ports(packet.sports, match.sports)
    iif, oif = _both_ifaces(packet.iif, match.iif), _both_ifaces(packet.oif, match.oif)
    saddrs = _both_addrs(packet.saddrs, match.saddrs)
    daddrs = _both_addrs(packet.daddrs, match.daddrs)
    empty = (
        (protos is not None and not protos)
        or any(ports is not None and not ports.ranges for ports in (dports, sports))
        or "" in (iif, oif)
        or frozenset() in (saddrs, daddrs)
    )
    if empty:
        return None
    return Packet(family, protos, dports, sports, iif, oif, saddrs, daddrs)


def mirrored(packet: Packet) -> Packet:
    """The packets going the other way: the replies to these, or what these reply to."""
    return Packet(packet.family, packet.protos, packet.sports, packet.dports,
                  packet.oif, packet.iif, packet.daddrs, packet.saddrs)  # fmt: skip


def _both_ports(a: PortSet | None, b: PortSet | None) -> PortSet | None:
    return b if a is None else a if b is None else a.intersection(b)


def _both_ifaces(a: str | None, b: str | None) -> str | None:
    """The narrower of two interface conditions; "" when no interface meets both."""
    if a is None or b is None:
        return b if a is None else a
    if _iface_covers(a, b):
        return b
    return a if _iface_covers(b, a) else ""


def _both_addrs(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    if a is None or b is None:
        return b if a is None else a
    both: set[str] = set()
    for x in a:
        for y in b:
            if _addr_within(x, y) or _addr_within(y, x):
                both.add(x if _addr_within(x, y) else y)
            elif _network(x) is None or _network(y) is None:
                return b  # a set by name: what it holds is not known
    return frozenset(both)


@lru_cache(maxsize=65536)  # rulesets repeat their addresses; parsing one is slow
def _network(addr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(addr)
    except ValueError:  # a named set ("ip @allow")
        return None


def _addr_within(inner: str, outer: str) -> bool:
    """``inner`` is provably part of ``outer``: the same text (a CIDR, or an nft set by name:
    its contents may change, its name does not), or a CIDR inside a CIDR of its family."""
    if inner == outer:
        return True
    a, b = _network(inner), _network(outer)
    return a is not None and b is not None and a.version == b.version and a.subnet_of(b)  # type: ignore[arg-type]


def addrs_cover(rule: frozenset[str] | None, packet: frozenset[str] | None) -> bool:
    """Every address the packet class may have is one the rule's condition admits."""
    if rule is None:
        return True
    return packet is not None and all(any(_addr_within(p, r) for r in rule) for p in packet)


def _addrs_disjoint(rule: frozenset[str] | None, packet: frozenset[str] | None) -> bool:
    """Provably no address in common: CIDRs that do not nest, or addresses of two families
    (a set's contents are unknown, its family is: "ip6 @allowed" holds no IPv4 address)."""
    if rule is None or packet is None:
        return False
    return all(_addr_apart(p, r) for p in packet for r in rule)


def _addr_apart(a: str, b: str) -> bool:
    fa, fb = _addr_family(a), _addr_family(b)
    if fa is not None and fb is not None and fa != fb:
        return True
    if _network(a) is None or _network(b) is None:
        return False
    return not (_addr_within(a, b) or _addr_within(b, a))


def _addr_family(addr: str) -> int | None:
    """4 or 6: a CIDR's version, or a named set's family ("ip @x", "ip6 @x"; inet: None)."""
    net = _network(addr)
    if net is not None:
        return net.version
    family = addr.partition(" ")[0]
    return {"ip": 4, "ip6": 6}.get(family)


def families_meet(a: str, b: str) -> bool:
    """Can packets of family ``a`` meet a chain or rule of family ``b``? (inet is both)."""
    if a in _IP_FAMILIES and b in _IP_FAMILIES:
        return a == b or "inet" in (a, b)
    return a == b


# -- reachability ----------------------------------------------------------------------------
def _jump_targets(rule: Rule) -> Iterator[str]:
    if rule.verdict in ("jump", "goto") and rule.target:
        yield rule.target
    for _, verdict in rule.vmap:
        kind, _, target = verdict.partition(" ")
        if kind in ("jump", "goto") and target:
            yield target


def reachable_rules(rs: Ruleset, base: Chain) -> Iterator[Rule]:
    """Every rule a packet entering ``base`` may meet, following jump and goto (each chain
    once, so loops and shared chains cost nothing)."""
    seen = {base.name}
    queue: deque[tuple[Chain, int]] = deque([(base, 0)])
    while queue:
        chain, depth = queue.popleft()
        for rule in chain.rules:
            yield rule
            for name in _jump_targets(rule):
                target = rs.chain_of(rule, name)
                if target is not None and name not in seen and depth < MAX_JUMP_DEPTH:
                    seen.add(name)
                    queue.append((target, depth + 1))


def _rules_by_hook(rs: Ruleset, verdicts: frozenset[str]) -> Iterator[tuple[Rule, Chain]]:
    for chain in rs.chains:
        if chain.hook is not None:
            for rule in reachable_rules(rs, chain):
                if rule.verdict in verdicts:
                    yield rule, chain


def _unique(pairs: Iterator[tuple[Rule, str]]) -> tuple[tuple[Rule, str], ...]:
    return tuple(dict.fromkeys(pairs))


def _notracks_before_conntrack(chain: Chain) -> bool:
    return (
        chain.hook in NOTRACK_HOOKS
        and chain.priority is not None
        and chain.priority < CONNTRACK_PRIORITY
    )


def notrack_rules(rs: Ruleset) -> tuple[tuple[Rule, str], ...]:
    """(rule, hook) for each notrack rule that runs before conntrack on prerouting or output.

    Reached from a base chain on that hook with priority < -200, through jump/goto.
    """
    return _unique(
        (rule, str(chain.hook))
        for rule, chain in _rules_by_hook(rs, frozenset({"notrack"}))
        if _notracks_before_conntrack(chain)
    )


def ineffective_notrack_rules(rs: Ruleset) -> tuple[Rule, ...]:
    """Notrack rules reached only from chains where conntrack has already run (priority
    >= -200, or a hook after prerouting/output): they change nothing."""
    effective = {rule for rule, _ in notrack_rules(rs)}
    late = (
        rule
        for rule, chain in _rules_by_hook(rs, frozenset({"notrack"}))
        if not _notracks_before_conntrack(chain) and rule not in effective
    )
    return tuple(dict.fromkeys(late))


def nat_rules(rs: Ruleset) -> tuple[tuple[Rule, str], ...]:
    """(rule, hook) for DNAT/SNAT/MASQUERADE/REDIRECT rules reached from NAT base chains."""
    return _unique(
        (rule, str(chain.hook))
        for rule, chain in _rules_by_hook(rs, NAT_VERDICTS)
        if chain.type == "nat"
    )


# -- NAT versus notrack ----------------------------------------------------------------------
# Which NAT hooks see the packets a notrack rule on a hook selects, and which NAT verdicts
# act there. Locally delivered packets also pass the nat INPUT chain (source NAT).
_NAT_MEETS: dict[str, dict[str, frozenset[str]]] = {
    "prerouting": {
        "prerouting": frozenset({"dnat", "redirect"}),
        "input": frozenset({"snat", "masquerade"}),
        "postrouting": frozenset({"snat", "masquerade"}),
    },
    "output": {
        "output": frozenset({"dnat", "redirect"}),
        "postrouting": frozenset({"snat", "masquerade"}),
    },
}


@dataclass(frozen=True)
class _Selected:
    """Protocols and ports the packets on one jump path can still have."""

    protos: frozenset[str] | None
    dports: PortSet | None
    sports: PortSet | None

    def narrowed(self, match: RuleMatch) -> _Selected | None:
        """What is left after ``match`` too must hold; None when nothing is."""
        protos = _narrow(self.protos, match.protos)
        dports = _narrow_ports(self.dports, match.dports)
        sports = _narrow_ports(self.sports, match.sports)
        if (protos is not None and not protos) or any(
            p is not None and not p.ranges for p in (dports, sports)
        ):
            return None
        return _Selected(protos, dports, sports)


def _narrow(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    return b if a is None else a if b is None else a & b


def _narrow_ports(a: PortSet | None, b: PortSet | None) -> PortSet | None:
    return b if a is None else a if b is None else a.intersection(b)


def _nat_on_paths(
    rs: Ruleset, base: Chain, start: _Selected, verdicts: frozenset[str]
) -> Iterator[Rule]:
    """NAT rules of ``verdicts`` that packets of ``start`` can reach from ``base``.

    The protocol and port conditions of every jump on the way count too: kube-proxy puts
    the service port on the KUBE-SERVICES jump and a bare DNAT in each KUBE-SEP chain.
    """
    seen: set[tuple[str, _Selected]] = set()
    stack: list[tuple[Chain, _Selected, int]] = [(base, start, 0)]
    while stack:
        chain, selected, depth = stack.pop()
        if (chain.name, selected) in seen or depth > MAX_JUMP_DEPTH:
            continue
        seen.add((chain.name, selected))
        for rule in chain.rules:
            left = selected.narrowed(rule.match)
            if left is None:
                continue
            if rule.verdict in verdicts:
                yield rule
            for name in _jump_targets(rule):
                target = rs.chain_of(rule, name)
                if target is not None:
                    stack.append((target, left, depth + 1))


def nat_overlap(rs: Ruleset, notrack: Rule, hook: str) -> tuple[Rule, ...]:
    """NAT rules whose packets can be packets that ``notrack`` leaves untracked.

    Untracked packets are never NATed (NAT lives in the conntrack entry), so such NAT
    silently stops working. A prerouting notrack meets DNAT/REDIRECT on prerouting and
    SNAT/MASQUERADE on input and postrouting; an output notrack meets DNAT/REDIRECT on
    output and SNAT/MASQUERADE on postrouting. Overlap means: compatible families, and
    protocol, destination and source port sets that intersect (no condition = any), also
    with the conditions of the jumps that lead to the NAT rule. Interfaces, addresses and
    other conditions are ignored, so this can over-report (a MASQUERADE on eth0 overlaps a
    notrack on lo); it does not under-report.
    """
    meets = _NAT_MEETS.get(hook, {})
    m = notrack.match
    start = _Selected(m.protos, m.dports, m.sports)
    found = {
        rule
        for chain in rs.chains
        if chain.type == "nat"
        and chain.hook in meets
        and families_meet(rule_family(notrack), chain.family)
        for rule in _nat_on_paths(rs, chain, start, meets[str(chain.hook)])
    }
    return tuple(rule for rule in rs.rules() if rule in found)  # in ruleset order


# -- conntrack users ---------------------------------------------------------------------
def _nat_chain_entry(chain: Chain) -> Rule:
    """A NAT base chain as evidence: even empty, it makes the kernel track every packet."""
    if chain.backend == "nft":
        text = f"type nat hook {chain.hook} priority {chain.priority}; policy {chain.policy};"
    else:
        text = f"-P {chain.name} {str(chain.policy).upper()}"  # iptables-save's ":NAME POLICY"
    return Rule(chain.backend, chain.family, chain.table, chain.name,
                RuleMatch(uses_conntrack=True), "other", None, text, None)  # fmt: skip


def conntrack_users(rs: Ruleset) -> tuple[Rule, ...]:
    """Everything that needs conntrack: state/ct matches, NAT and CT rules, and each NAT
    base chain (as a pseudo-rule whose text is the chain's declaration)."""
    users: list[Rule] = []
    for chain in rs.chains:
        if chain.type == "nat" and chain.hook is not None:
            users.append(_nat_chain_entry(chain))
        users.extend(rule for rule in chain.rules if needs_conntrack(rule))
    return tuple(users)


def needs_conntrack(rule: Rule) -> bool:
    """A state/ct match, a NAT verdict or a CT target (helper, zone): nothing without a
    conntrack entry. A ct state match implies ``uses_conntrack``; notrack does not count."""
    return rule.match.uses_conntrack or rule.verdict in NAT_VERDICTS or rule.verdict == "ct"


# -- the fate of an untracked packet ---------------------------------------------------------
@dataclass(frozen=True)
class Fate:
    outcome: str  # "accepted" | "dropped" | "conditional" (accepted only if conditions hold)
    chain: str  # "family table chain" of the base chain that decides
    evidence: tuple[str, ...]  # rule texts / "policy drop of chain X" that decided, in order
    # Where the chain accepts packets of the class: for each accept met, the rules that lead
    # to it (the jumps, then the accept), every one matching those packets; () is the policy.
    accepts: tuple[tuple[Rule, ...], ...] = field(default=(), compare=False)


_SEVERITY = {"accepted": 0, "conditional": 1, "dropped": 2}


def _iface_covers(pattern: str, name: str) -> bool:
    """iptables ``eth+`` and nft ``eth*`` match by prefix; a pattern covers a narrower one."""
    if pattern[-1:] in ("+", "*"):
        return name.rstrip("+*").startswith(pattern[:-1])
    return pattern == name


def _disjoint(a: frozenset[str] | None, b: frozenset[str] | None) -> bool:
    return a is not None and b is not None and not a & b


def _ports_disjoint(rule: PortSet | None, packet: PortSet | None) -> bool:
    return rule is not None and packet is not None and not rule.overlaps(packet)


def _ifaces_disjoint(rule: str | None, packet: str | None) -> bool:
    if rule is None or packet is None:
        return False
    return not (_iface_covers(rule, packet) or _iface_covers(packet, rule))


def _other_family(match: RuleMatch, packet: Packet) -> bool:
    """``meta nfproto`` names one family and the packets are of the other."""
    return match.nfproto is not None and not families_meet(packet.family, match.nfproto)


def _cannot_apply(match: RuleMatch, packet: Packet, state: str) -> bool:
    return (
        _other_family(match, packet)
        or (match.ct_states is not None and state not in match.ct_states)
        or _disjoint(match.protos, packet.protos)
        or _ports_disjoint(match.dports, packet.dports)
        or _ports_disjoint(match.sports, packet.sports)
        or _ifaces_disjoint(match.iif, packet.iif)
        or _ifaces_disjoint(match.oif, packet.oif)
        or _addrs_disjoint(match.saddrs, packet.saddrs)
        or _addrs_disjoint(match.daddrs, packet.daddrs)
    )


def _covers(rule: frozenset[str] | None, packet: frozenset[str] | None) -> bool:
    return rule is None or (packet is not None and packet <= rule)


def _covers_ports(rule: PortSet | None, packet: PortSet | None) -> bool:
    return rule is None or (packet is not None and rule.covers(packet))


def _covers_iface(rule: str | None, packet: str | None) -> bool:
    return rule is None or (packet is not None and _iface_covers(rule, packet))


def _surely_applies(match: RuleMatch, packet: Packet) -> bool:
    return (
        not match.other
        and match.nfproto in (None, packet.family)
        and _covers(match.protos, packet.protos)
        and _covers_ports(match.dports, packet.dports)
        and _covers_ports(match.sports, packet.sports)
        and _covers_iface(match.iif, packet.iif)
        and _covers_iface(match.oif, packet.oif)
        and addrs_cover(match.saddrs, packet.saddrs)
        and addrs_cover(match.daddrs, packet.daddrs)
    )


@dataclass
class Candidates:
    """The rules of each chain that may decide for some packet of ``packet`` in conntrack
    ``state``, found once: a walk of a part of that class need look at no other (a rule that
    cannot apply to the class cannot apply to a part of it). 5000 allow-list accepts limited
    to NEW are then not met again by each untracked walk."""

    packet: Packet
    state: str
    by_chain: dict[tuple[str, str, str], tuple[tuple[Rule, str], ...]] = field(default_factory=dict)

    # per chain and "iif"/"oif": the positions of the rules naming each interface exactly,
    # and of the others (no interface, or a wildcard)
    by_iface: dict[tuple[str, str, str, str], tuple[dict[str, list[int]], list[int]]] = field(
        default_factory=dict
    )

    def of(self, chain: Chain, part: Packet | None = None) -> tuple[tuple[Rule, str], ...]:
        """The chain's rules that may decide for the class; for ``part`` of it, without
        those that name another interface than the one ``part`` is narrowed to (one jump
        per interface: Calico's 1500 workload chains)."""
        key = (chain.family, chain.table, chain.name)
        got = self.by_chain.get(key)
        if got is None:
            got = tuple(
                (rule, verdict)
                for rule in chain.rules
                if (verdict := _verdict_in_state(rule, self.state)) is not None
                and not _cannot_apply(rule.match, self.packet, self.state)
            )
            self.by_chain[key] = got
        for attr in ("iif", "oif"):
            name = None if part is None else getattr(part, attr)
            if name is not None and name[-1:] not in ("+", "*"):
                return self._on_iface(key, got, attr, name)
        return got

    def _on_iface(
        self,
        key: tuple[str, str, str],
        rules: tuple[tuple[Rule, str], ...],
        attr: str,
        name: str,
    ) -> tuple[tuple[Rule, str], ...]:
        index = self.by_iface.get((*key, attr))
        if index is None:
            exact: dict[str, list[int]] = {}
            rest: list[int] = []
            for i, (rule, _) in enumerate(rules):
                value = getattr(rule.match, attr)
                if value is None or value[-1:] in ("+", "*"):
                    rest.append(i)
                else:
                    exact.setdefault(value, []).append(i)
            index = (exact, rest)
            self.by_iface[(*key, attr)] = index
        exact, rest = index
        return tuple(rules[i] for i in sorted([*exact.get(name, ()), *rest]))


@dataclass
class _Walk:
    """One base chain's walk for packets in one conntrack ``state``: its decision, and the
    partial accepts met before it. Rules in ``given`` are known to match every packet of the
    class (it was cut out by them), whatever conditions they have."""

    rs: Ruleset
    packet: Packet
    state: str = "untracked"
    given: frozenset[Rule] = frozenset()
    partial: list[str] = field(default_factory=list)
    accepts: list[tuple[Rule, ...]] = field(default_factory=list)
    candidates: Candidates | None = None  # of a class ``packet`` is part of, in ``state``
    # per (chain, sure): its decision, and the accept paths met in it, relative to the
    # chain (the jumps inside it, then the accept); each entry prefixes its own jumps
    memo: dict[tuple[str, bool], tuple[tuple[str, str] | None, tuple[tuple[Rule, ...], ...]]] = (
        field(default_factory=dict)
    )

    def chain(
        self, chain: Chain, sure: bool, path: frozenset[str], via: tuple[Rule, ...] = ()
    ) -> tuple[str, str] | None:
        """("accept"|"drop", evidence) when the chain decides; None when it falls through or
        returns. ``sure`` is False inside a jump that only part of the packets take; ``via``
        holds the jumps that led here."""
        key = (chain.name, sure)
        if key not in self.memo:
            start = len(self.accepts)
            decided = self._rules(chain, sure, path | {chain.name}, ())
            inside = tuple(dict.fromkeys(self.accepts[start:]))
            del self.accepts[start:]
            self.memo[key] = (decided, inside)
        decided, inside = self.memo[key]
        self.accepts.extend((*via, *accept) for accept in inside)
        return decided

    def _rules(
        self, chain: Chain, sure: bool, path: frozenset[str], via: tuple[Rule, ...]
    ) -> tuple[str, str] | None:
        rules: Iterable[tuple[Rule, str | None]] = (
            self.candidates.of(chain, self.packet)
            if self.candidates is not None
            else ((rule, _verdict_in_state(rule, self.state)) for rule in chain.rules)
        )
        for rule, verdict in rules:
            if verdict is None or _cannot_apply(rule.match, self.packet, self.state):
                continue
            certain = sure and (rule in self.given or _surely_applies(rule.match, self.packet))
            decided = self._verdict(rule, verdict, certain, path, via)
            if decided is not None:
                return None if decided[0] == "return" else decided
        return None

    def _verdict(
        self, rule: Rule, verdict: str, certain: bool, path: frozenset[str], via: tuple[Rule, ...]
    ) -> tuple[str, str] | None:
        kind, _, target = verdict.partition(" ")
        if kind == "accept":
            self.accepts.append((*via, rule))
        if kind in ("accept", "drop", "reject", "return"):
            if certain:
                return ("drop" if kind == "reject" else kind, describe(rule))
            if kind in ("accept", "return") and not _loopback_only(rule.match, self.packet):
                self.partial.append(describe(rule))
            return None
        if kind in ("jump", "goto") and target:
            return self._enter(rule, kind, target, certain, path, via)
        if kind == "vmap":  # a vmap we cannot read may accept some of these packets
            self.partial.append(describe(rule))
        return None

    def _enter(
        self,
        rule: Rule,
        kind: str,
        target: str,
        certain: bool,
        path: frozenset[str],
        via: tuple[Rule, ...],
    ) -> tuple[str, str] | None:
        chain = self.rs.chain_of(rule, target)
        if chain is None or target in path or len(path) > MAX_JUMP_DEPTH:
            return None
        decided = self.chain(chain, certain, path, (*via, rule))
        if decided is not None:
            return decided
        # goto: the end of the target ends the calling chain too (for a base chain, its
        # policy applies); a partial goto leaves the other packets where they were.
        return ("return", describe(rule)) if kind == "goto" and certain else None


def _loopback_only(match: RuleMatch, packet: Packet) -> bool:
    """An accept limited to ``lo`` does not rescue a class that arrives on any interface.

    NOTRACK for a service is about its network traffic: every packet of it that comes in
    (or goes out) on a real interface still meets the drop, so ``iif "lo" accept`` at the
    top of a ruleset must not turn "dropped" into "conditional".
    """
    return (match.iif == "lo" and packet.iif is None) or (match.oif == "lo" and packet.oif is None)


def _verdict_in_state(rule: Rule, state: str) -> str | None:
    """The verdict a packet in conntrack ``state`` gets from ``rule``; None if the rule
    cannot decide."""
    if rule.verdict == "vmap" and rule.vmap:
        return next((v for states, v in rule.vmap if state in states), None)
    if rule.verdict in ("accept", "drop", "reject", "return", "vmap"):
        return rule.verdict
    if rule.verdict in ("jump", "goto") and rule.target:
        return f"{rule.verdict} {rule.target}"
    return None  # notrack, log, mark, NAT (untracked packets are never NATed)...


def chain_fate(
    rs: Ruleset,
    chain: Chain,
    packet: Packet,
    state: str = "untracked",
    given: frozenset[Rule] = frozenset(),
    candidates: Candidates | None = None,
) -> Fate:
    """What one base chain does with packets of the class in conntrack ``state`` ("new",
    "established", "untracked"...), the rules of ``given`` matching them all (see
    ``untracked_fate``). ``Fate.accepts`` lists every accept met on the way. ``candidates``:
    the rules found for a class these packets are part of, in the same state."""
    if candidates is not None and candidates.state != state:
        raise ValueError(f"candidates for state {candidates.state}, walk in state {state}")
    walk = _Walk(rs, packet, state, given, candidates=candidates)
    decided = walk.chain(chain, True, frozenset())
    if decided is None:
        policy = chain.policy or "accept"
        decided = (policy, f"policy {policy} of chain {chain.label}")
        if policy == "accept":
            walk.accepts.append(())
    kind, evidence = decided
    accepts = tuple(dict.fromkeys(walk.accepts))
    if kind == "accept":
        return Fate("accepted", chain.label, (evidence,), accepts)
    if walk.partial:
        return Fate("conditional", chain.label, (*walk.partial, evidence), accepts)
    return Fate("dropped", chain.label, (evidence,), accepts)


def filtering_chains(rs: Ruleset, hook: str, family: str) -> tuple[Chain, ...]:
    """The base chains on ``hook`` that filter packets of ``family``, in priority order."""
    return tuple(
        chain
        for chain in rs.base_chains(hook)
        if chain.type in _FILTERING_TYPES and families_meet(family, chain.family)
    )


def untracked_fate(rs: Ruleset, hook: str, packet: Packet) -> Fate:
    """Would an UNTRACKED packet of this class survive every filtering base chain on ``hook``
    ("input" after a prerouting notrack, "output" after an output notrack)?

    Each base chain of type filter (or route) whose family meets the packet's is walked in
    priority order: iptables' raw, mangle, filter and security chains alike, and every nft
    table's chain on the hook, since an accept in one does not spare the packet another's
    drop. Rules that cannot match an untracked packet of the class are skipped (other
    protocol or ports, a ct state list without "untracked", another interface). A rule that
    surely matches decides; a rule that matches only part of the class (an address, a mark,
    some of its ports) and accepts is remembered, and a later drop gives "conditional"
    listing those rules. The worst chain wins: dropped > conditional > accepted.
    """
    fates = [chain_fate(rs, chain, packet) for chain in filtering_chains(rs, hook, packet.family)]
    if not fates:
        return Fate("accepted", "", (f"no filtering base chain on hook {hook}",))
    worst = max(fates, key=lambda f: _SEVERITY[f.outcome])
    if worst.outcome != "accepted":
        return worst
    evidence = tuple(e for fate in fates for e in fate.evidence)
    return Fate("accepted", fates[-1].chain, evidence)
