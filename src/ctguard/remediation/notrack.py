"""``ctguard notrack``: plan a conntrack bypass that cannot blackhole or un-NAT (pure).

A NOTRACK rule alone is a trap (docs/design.md §4 CT501, CT502): an untracked packet is never
ESTABLISHED, so a stateful firewall (policy drop, ``ct state established,related accept``)
drops it, and an untracked packet is never NATed. The plan therefore holds, for each
direction asked for:

- the notrack rules, at raw priority on prerouting (packets coming in) and output (going
  out): ``server`` untracks ``dport P`` coming in and ``sport P`` going out, ``client`` the
  mirror image, ``both`` all four (on loopback both ends are local);
- an accept for untracked packets of exactly those ports in every filtering base chain on
  the input (or output) hook that would otherwise drop them, in that chain's own tool (an
  nft chain gets an nft rule, an iptables chain an iptables one), right before the accept
  that took them tracked (``-I CHAIN N``, ``insert rule ... position H``): inserted first,
  it would let untracked packets past the drops that stopped tracked ones before it;

and it is refused, with the rule to show, when a NAT rule can match those packets, when a
chain that drops them belongs to an agent that rewrites its table (firewalld, kube-proxy),
or when the chain lets these ports in only under conditions ctguard would not copy (a
source address, an interface): a blanket accept would open the port wider than the
operator did. The ruleset the plan would make is checked again with the doctor's own
logic (``notrack_effect``: the fates of tracked and untracked packets compared) before
anything is proposed, both ways: untracked packets must be accepted wherever tracked ones
were, and only there (``wider_flows``). A chain that drops the packets tracked or not gets
no accept: it would open a port the filter closes; one that accepted a flow the operator
named as the start of connections only as replies (ESTABLISHED/RELATED) is refused: an
untracked packet cannot be told apart from a new one.

``notrack --all`` untracks every packet except the protocol/port classes that stateful
rules look at (those stay tracked); it is refused when NAT is in use or a stateful rule
applies to all traffic (``ct state established,related accept``): untracking everything
would drop every reply such a rule lets in.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, replace

from ctguard.model.firewall import (
    FILTER_HOOK,
    MAX_JUMP_DEPTH,
    Packet,
    chain_fate,
    families_meet,
    filtering_chains,
    narrowed,
    nat_overlap,
    nat_rules,
    needs_conntrack,
    reachable_rules,
    untracked_fate,
)
from ctguard.model.ipv6_filter import ipv6_filter_unread
from ctguard.model.notrack_effect import (
    CLOSED,
    DEFAULT_EPHEMERAL,
    UNCHANGED,
    Effect,
    loss_evidence,
    notrack_effect,
)
from ctguard.model.notrack_rules import (
    ACCEPT,
    IPTABLES_RAW_CHAINS,
    NOTRACK,
    OWN_TABLE,
    RAW_PRIORITY,
    RETURN,
    OurRule,
    is_ours,
    is_own,
    paste_order,
    placed,
    reply_only,
    same_rule,
    untracked_accept,
)
from ctguard.sources.ruleset import NAT_VERDICTS, Chain, PortSet, Rule, Ruleset, describe

PROTOS = ("tcp", "udp")
_FAMILY_NAMES = {"ip": "IPv4", "ip6": "IPv6"}
DIRECTIONS = ("server", "client", "both")
BACKENDS = ("auto", "nft", "iptables")
_FILTERING = (None, "filter", "route")
# nft tables an agent owns and rewrites: a rule ctguard put there would vanish, or fight.
AGENT_TABLES = {
    "firewalld": "firewalld (add it with firewall-cmd, e.g. a rich rule or policy)",
    "kube-proxy": "kube-proxy (it rewrites this table on every sync)",
    "netavark": "podman/netavark (it rewrites this table)",
    "libvirt_network": "libvirt (it rewrites this table)",
}


@dataclass(frozen=True)
class NotrackRequest:
    ports: PortSet | None  # None with every_packet
    protos: tuple[str, ...] = ("tcp",)
    direction: str = "server"
    backend: str = "auto"
    every_packet: bool = False  # notrack --all
    force: bool = False  # add accepts even where the chain restricts these ports
    # ip_local_port_range read from the target (None: unread): where this host's own
    # connections start from, to judge untracked fates with; with --direction client a
    # client's replies come back to these, and only these are untracked and accepted (else
    # "udp sport 53 accept" lets any packet from port 53 in)
    local_ports: PortSet | None = None


@dataclass(frozen=True)
class Tools:
    """What this host can run: decides the backend when ``--backend auto``."""

    nft: bool
    iptables: bool
    ip6tables: bool
    iptables_variant: str | None = None  # "nft" | "legacy" (from `iptables -V`)


@dataclass(frozen=True)
class Flow:
    """Packets ctguard will untrack on one hook: a protocol and a port condition."""

    hook: str  # prerouting | output
    proto: str | None
    dports: PortSet | None = None
    sports: PortSet | None = None
    family: str = "inet"  # "ip": IPv4 only (the IPv6 filter was not read)

    def packet(self, family: str = "inet") -> Packet:
        """The flow's packets as a chain of ``family`` sees them."""
        protos = None if self.proto is None else frozenset({self.proto})
        return Packet(family if self.family == "inet" else self.family, protos, self.dports,
                      self.sports)  # fmt: skip


@dataclass(frozen=True)
class Refusal:
    reason: str
    rules: tuple[str, ...] = ()  # the rules that make it impossible, as evidence
    fix: tuple[str, ...] = ()  # what the operator could do instead


@dataclass(frozen=True)
class NotrackPlan:
    backend: str  # where the notrack rules go: "nft" | "iptables"
    backend_why: str
    flows: tuple[Flow, ...]
    add: tuple[OurRule, ...]  # in the order they are added
    present: tuple[OurRule, ...]  # already in place (a rerun adds nothing)
    refusals: tuple[Refusal, ...] = ()
    notes: tuple[str, ...] = ()
    fates: tuple[str, ...] = ()  # the check of the resulting ruleset

    @property
    def refused(self) -> bool:
        return bool(self.refusals)


# -- which packets -------------------------------------------------------------------------
def flows_for(request: NotrackRequest, family: str = "inet") -> tuple[Flow, ...]:
    """The (hook, ports) classes a request untracks (``family`` "ip": IPv4 only).

    >>> [(f.hook, str(f.dports), str(f.sports)) for f in
    ...  flows_for(NotrackRequest(PortSet.of(8983), ("tcp",), "server"))]
    [('prerouting', '8983', 'None'), ('output', 'None', '8983')]
    """
    if request.every_packet:
        return (Flow("prerouting", None, family=family), Flow("output", None, family=family))
    ports = request.ports
    out: list[Flow] = []
    for proto in request.protos:
        if request.direction in ("server", "both"):
            out += [Flow("prerouting", proto, dports=ports, family=family),
                    Flow("output", proto, sports=ports, family=family)]  # fmt: skip
        if request.direction in ("client", "both"):
            back = Flow("prerouting", proto, request.local_ports, ports, family)
            out += [Flow("output", proto, dports=ports, family=family), back]
    return tuple(out)


def ipv6_unread(rs: Ruleset, tools: Tools, modules: Collection[str] | None) -> str | None:
    """Why IPv6 is not untracked, or None: an IPv6 NOTRACK is added only beside an IPv6
    filter ctguard has read (else it is CT501's trap for IPv6); the plan and ``--verify``
    both ask this, so they check the same packets."""
    return ipv6_filter_unread(rs.missing, modules, tools.iptables_variant)


# -- which backend -------------------------------------------------------------------------
def _native_nft_chains(rs: Ruleset) -> list[Chain]:
    return [c for c in rs.chains if c.backend == "nft" and c.hook and not is_own(c.family, c.table)]


def _iptables_rules(rs: Ruleset) -> list[Rule]:
    return [r for c in rs.chains if c.backend in ("iptables", "ip6tables") for r in c.rules]


def choose_backend(rs: Ruleset, wanted: str, tools: Tools) -> tuple[str, str]:
    """("nft" | "iptables", why), or ValueError saying why the wanted one cannot be used."""
    if wanted == "nft":
        if not tools.nft:
            raise ValueError("--backend nft: nft is not installed")
        return "nft", "asked for (--backend nft)"
    if wanted == "iptables":
        if not tools.iptables:
            raise ValueError("--backend iptables: iptables-restore is not installed")
        return "iptables", f"asked for (--backend iptables{_variant(tools)})"
    ours = [c for c in rs.chains if c.backend == "nft" and is_own(c.family, c.table)]
    if ours and tools.nft:
        return "nft", f"ctguard's table inet {OWN_TABLE} is already there"
    native = _native_nft_chains(rs)
    legacy_rules = _iptables_rules(rs)
    if native and tools.nft:
        return "nft", f"the ruleset is nft ({len(native)} native nft base chain(s))"
    if legacy_rules and tools.iptables:
        return "iptables", f"the ruleset is iptables ({len(legacy_rules)} rules{_variant(tools)})"
    if legacy_rules and tools.nft:
        return "nft", "iptables rules exist but iptables-restore is not installed; nft is"
    if tools.nft:
        return "nft", "no firewall rules yet; nft is installed"
    if tools.iptables:
        return "iptables", f"no firewall rules yet; nft is not installed{_variant(tools)}"
    raise ValueError("neither nft nor iptables-restore is installed")


def _variant(tools: Tools) -> str:
    return f", iptables-{tools.iptables_variant}" if tools.iptables_variant else ""


# -- the plan ------------------------------------------------------------------------------
def plan_notrack(
    rs: Ruleset, request: NotrackRequest, tools: Tools, modules: Collection[str] | None = None
) -> NotrackPlan:
    """The rules to add (or why not), for the ruleset ``rs`` of the target namespace.
    ``modules``: the names in /proc/modules (None: unread), which tell whether legacy
    ip6tables tables nft cannot list may exist."""
    try:
        backend, why = choose_backend(rs, request.backend, tools)
    except ValueError as exc:
        return NotrackPlan("none", str(exc), (), (), (), (Refusal(str(exc)),))
    family, unread = _untracked_family(rs, request, backend, tools, modules)
    ipv4_only = family == "ip"
    flows = flows_for(request, family)
    refusals = list(_nat_refusals(rs, flows, request))
    if ipv4_only:
        tools = replace(tools, ip6tables=False)
    notracks = list(_raw_rules(backend, flows, NOTRACK, tools))
    if request.every_packet:
        exemptions, general = _stateful_needs(rs, flows[0].family)
        if general:
            refusals.append(
                Refusal(
                    "these rules look at the conntrack state of all traffic; with everything"
                    " untracked they would never match (replies would be dropped)",
                    tuple(describe(r) for r in general),
                    ("make them stateless, or untrack only named ports:"
                     " ctguard notrack --port PORT",),
                )
            )  # fmt: skip
        notracks = list(_raw_rules(backend, exemptions, RETURN, tools)) + notracks
    accepts, more, closed = _accepts(rs, flows, request)
    refusals += more
    wanted = notracks + accepts
    if any(r.backend != "nft" for r in wanted):
        refusals += _multiport_limit(request)
    present = [r for r in wanted if any(same_rule(r, got) for got in rs.rules())]
    add = [r for r in wanted if r not in present]
    after = with_rules(rs, add)
    fates, unaccepted = check_flows(after, flows, ephemeral_ports(request))
    if unaccepted and not refusals:
        refusals.append(
            Refusal("the filter would still drop untracked packets of these ports", unaccepted)
        )
    wider = wider_flows(after, flows, request.ports)
    fates += wider
    if wider and not refusals:
        refusals.append(
            Refusal(
                "the filter would accept untracked packets of these ports where it did not"
                " accept them tracked",
                wider,
            )
        )
    notes = (*closed, *_notes(rs, backend))
    if ipv4_only:
        notes += (
            f"IPv4 only: {unread}, so ctguard cannot see whether the IPv6 filter would drop"
            " untracked packets, nor add the IPv6 accept they need; read it (as root, with"
            " ip6tables installed) and run again to untrack IPv6 too",
        )
    return NotrackPlan(
        backend, why, flows, tuple(add), tuple(present), tuple(refusals), notes, fates
    )


def untracked_family(
    rs: Ruleset, request: NotrackRequest, tools: Tools, modules: Collection[str] | None
) -> str:
    """The family ``plan_notrack`` untracks for this ruleset: "inet" (both) or "ip" (IPv4
    only); ``--verify`` checks that family's packets, as CT501 checks the rules' own."""
    try:
        backend, _ = choose_backend(rs, request.backend, tools)
    except ValueError:
        return "inet"
    return _untracked_family(rs, request, backend, tools, modules)[0]


def _untracked_family(
    rs: Ruleset, request: NotrackRequest, backend: str, tools: Tools,
    modules: Collection[str] | None,
) -> tuple[str, str | None]:  # fmt: skip
    """("ip", why) when IPv6 must stay tracked: its filter was not read, or its accept
    cannot be added; else ("inet", None). Without ip6tables-restore the iptables backend
    adds no IPv6 rule anyway (and says nothing: there is nothing to read)."""
    unread = ipv6_unread(rs, tools, modules)
    if unread is None:
        unread = _ip6tables_cannot_accept(rs, request, backend, tools)
    if unread is not None and (backend == "nft" or tools.ip6tables):
        return "ip", unread
    return "inet", None


def _ip6tables_cannot_accept(
    rs: Ruleset, request: NotrackRequest, backend: str, tools: Tools
) -> str | None:
    """Why the IPv6 accept cannot be added (nft backend, an ip6tables chain that drops these
    packets and no ip6tables-restore to add the accept there), or None."""
    if backend != "nft" or tools.ip6tables:
        return None
    accepts, _, _ = _accepts(rs, flows_for(request), request)
    if any(rule.backend == "ip6tables" for rule in accepts):
        return (
            "ip6tables-restore is not installed, and the ip6tables filter needs an accept for"
            " these untracked packets"
        )
    return None


def _nat_refusals(rs: Ruleset, flows: Sequence[Flow], request: NotrackRequest) -> Iterator[Refusal]:
    if request.every_packet:
        shown = [describe(rule) for rule, _ in nat_rules(rs)]
        shown += [
            f"nat base chain {c.family} {c.table} {c.name} (hook {c.hook})"
            for c in rs.chains
            if c.type == "nat" and c.hook is not None
        ]
        if shown:
            yield Refusal(
                "NAT is in use: NAT lives in the conntrack entry, so untracked packets are"
                " never NATed",
                tuple(dict.fromkeys(shown)),
                ("remove the NAT rules first, or untrack only ports no NAT rule matches",),
            )
        return
    clashes: dict[str, None] = {}
    for flow in flows:
        for nat in nat_overlap(rs, _probe(flow).as_rule(), flow.hook):
            clashes[describe(nat)] = None
    # A DNAT/REDIRECT *to* one of these ports: the translated flow's packets carry the
    # port (the replies come from it), though the rule matches the original port.
    for nat, _ in nat_rules(rs):
        if nat.verdict not in ("dnat", "redirect") or request.ports is None:
            continue  # SNAT's ports are source ports it picks, not the service's
        if nat.match.protos is not None and not nat.match.protos & set(request.protos):
            continue
        to = translated_ports(nat.target)
        if to is not None and to.overlaps(request.ports):
            clashes[describe(nat)] = None
    if clashes:
        yield Refusal(
            "a NAT rule can match these packets; untracked packets are never NATed, so it"
            " would silently stop working",
            tuple(clashes),
            ("untrack other ports, or narrow the NAT rule so it cannot match them",),
        )


# "10.0.0.5:8983", ":8000-8010", "[fd00::5]:53"; a bare IPv6 address ("fd00::53") has none
_TO_PORTS = re.compile(r"(?:^|[\d.]|\]):(\d{1,5})(?:-(\d{1,5}))?$")


def translated_ports(target: str | None) -> PortSet | None:
    """The ports a NAT rule translates to (``10.0.0.5:8983``, ``:8000-8010``), if any.

    >>> str(translated_ports("127.0.0.1:8983")), translated_ports("10.0.0.1")
    ('8983', None)
    >>> translated_ports("fd00::53"), str(translated_ports("[fd00::5]:53"))
    (None, '53')
    """
    text = target or ""
    m = _TO_PORTS.search(text)
    if m is None or (text.count(":") > 1 and "]:" not in text and not text.startswith(":")):
        return None
    lo = int(m.group(1))
    return PortSet.of((lo, int(m.group(2) or lo)))


MULTIPORT_MAX = 15  # xt_multiport: 15 ports, a range counting as two


def _multiport_limit(request: NotrackRequest) -> list[Refusal]:
    """An iptables rule takes at most 15 ports (a range counts as two); nft sets do not
    care. Refused here rather than failing at apply."""
    ports = request.ports
    if ports is None:
        return []
    weight = sum(1 if lo == hi else 2 for lo, hi in ports.ranges)
    if weight <= MULTIPORT_MAX:
        return []
    return [
        Refusal(
            f"iptables' multiport match takes at most {MULTIPORT_MAX} ports, a range counting"
            f" as two; {ports} counts {weight}",
            (),
            ("merge the ports into ranges, or run notrack once per group of ports",),
        )
    ]


def _probe(flow: Flow) -> OurRule:
    return OurRule("nft", "inet", OWN_TABLE, flow.hook, flow.hook, NOTRACK, flow.proto,
                   flow.dports, flow.sports, nfproto=_nfproto(flow, "inet"))  # fmt: skip


def _raw_rules(backend: str, flows: Sequence[Flow], action: str, tools: Tools) -> Iterator[OurRule]:
    """A raw-priority rule per flow (NOTRACK, or a RETURN exemption): in ctguard's own nft
    table, or in iptables' (and ip6tables') raw table."""
    for flow in flows:
        f = flow
        if backend == "nft":
            yield OurRule("nft", "inet", OWN_TABLE, f.hook, f.hook, action, f.proto, f.dports,
                          f.sports, nfproto=_nfproto(f, "inet"))  # fmt: skip
            continue
        chain = IPTABLES_RAW_CHAINS[f.hook]
        yield OurRule("iptables", "ip", "raw", chain, f.hook, action, f.proto, f.dports, f.sports)
        if tools.ip6tables:
            yield OurRule("ip6tables", "ip6", "raw", chain, f.hook, action, f.proto, f.dports,
                          f.sports)  # fmt: skip


def _nfproto(flow: Flow, table_family: str) -> str | None:
    """``meta nfproto`` for a rule of ``flow`` in a table of ``table_family``: the flow's
    family when the table sees both and the flow is one."""
    return flow.family if table_family == "inet" and flow.family != "inet" else None


def _stateful_needs(rs: Ruleset, family: str = "inet") -> tuple[list[Flow], list[Rule]]:
    """For ``--all``: the classes stateful rules need tracked, and the rules that need all.

    A stateful rule with a protocol and ports met on the input side (``tcp dport 22 ct
    state new accept``) keeps that service tracked both ways: ``dport 22`` coming in and
    ``sport 22`` going out; met on the output side, the mirror image.
    """
    exempt: list[Flow] = []
    general: list[Rule] = []
    for chain in rs.chains:
        if chain.hook is None or is_own(chain.family, chain.table):
            continue
        incoming = chain.hook in ("prerouting", "input", "forward")
        for rule in reachable_rules(rs, chain):
            if is_ours(rule) or rule.verdict == "notrack" or not needs_conntrack(rule):
                continue
            if rule.verdict in NAT_VERDICTS or chain.type == "nat":
                continue  # NAT refuses --all on its own
            m = rule.match
            if not m.protos or (m.dports is None and m.sports is None):
                general.append(rule)
                continue
            there, back = ("prerouting", "output") if incoming else ("output", "prerouting")
            for proto in sorted(m.protos):
                exempt.append(Flow(there, proto, m.dports, m.sports, family))
                exempt.append(Flow(back, proto, m.sports, m.dports, family))
    return list(dict.fromkeys(exempt)), list(dict.fromkeys(general))


def _filtering_chains(rs: Ruleset, hook: str, family: str) -> list[Chain]:
    return [
        c
        for c in rs.base_chains(hook)
        if c.type in _FILTERING
        and families_meet(family, c.family)
        and not is_own(c.family, c.table)
    ]


def _accepts(
    rs: Ruleset, flows: Sequence[Flow], request: NotrackRequest
) -> tuple[list[OurRule], list[Refusal], list[str]]:
    """An untracked accept, right before the accept it stands for, in every chain that would
    drop a flow's packets it accepted while tracked (``notrack_effect``); none where the
    chain dropped them tracked too (an accept there would open a port the filter closes): a
    note says so instead."""
    if request.every_packet:
        return [], [], []  # stateless rules decide untracked packets as they did tracked ones
    accepts: list[OurRule] = []
    refusals: list[Refusal] = []
    notes: list[str] = []
    ephemeral = ephemeral_ports(request)
    for flow in flows:
        hook = FILTER_HOOK[flow.hook]
        for chain in _filtering_chains(rs, hook, flow.family):
            rule = _accept_rule(chain, hook, flow)
            if any(same_rule(rule, got) for got in chain.rules):
                accepts.append(rule)  # ours, from an earlier run: listed as in place
                continue
            effect = notrack_effect(_only(rs, chain), hook, flow.packet(chain.family), ephemeral)
            if effect.outcome == CLOSED:
                notes.append(
                    f"{describe_flow(flow)}: {chain.label} drops these packets whether tracked"
                    " or not; no accept added (it would open what the filter closes)"
                )
                continue
            if effect.outcome == UNCHANGED:
                continue
            guesses = [loss.assumption for _, loss in effect.losses]
            if all(guesses):
                # lost only as replies to this host's own fixed-port sends (ntpd 123<->123): an
                # accept for the whole port would open what the filter closes to others
                notes.append(
                    f"{describe_flow(flow)}: {chain.label} accepted these packets only as"
                    f" replies, {guesses[0]}; no accept for the whole port added (it would"
                    " open what the filter closes): doctor CT501 shows the narrow one"
                )
                continue
            evidence = tuple(line for _, loss in effect.losses for line in loss_evidence(loss))
            replies = _replies_only(flow, request, effect)
            if replies is not None:
                refusals.append(
                    Refusal(
                        f"chain {chain.label} let {describe_flow(flow)} through only as replies"
                        f" ({describe(replies)}); untracked, they cannot be told apart from"
                        " new packets, so an untracked accept would admit unsolicited ones",
                        evidence,
                        ("keep these packets tracked, or open the port on purpose first"
                         " (accept its NEW packets), then run notrack again",),
                    )
                )  # fmt: skip
                continue
            owner = AGENT_TABLES.get(chain.table) if chain.backend == "nft" else None
            if owner is not None:
                refusals.append(
                    Refusal(
                        f"chain {chain.label} drops these untracked packets and belongs to"
                        f" {owner}; ctguard does not edit it",
                        evidence,
                        (f"add through that agent the equivalent of: {rule.shown()}",),
                    )
                )
                continue
            # Only accepts that name these ports with extra conditions count: a "conditional"
            # fate from rules about other ports (tcp dport 22 accept) says nothing about them;
            # and none when the chain accepted the whole flow tracked (the plain accept only
            # gives back what it took away).
            whole = any(loss.covers(effect.packet) for _, loss in effect.losses)
            restricted = {} if whole else _restrictions(rs, chain, flow)
            if restricted and not request.force:
                refusals.append(
                    Refusal(
                        f"chain {chain.label} lets these ports in only under conditions"
                        " (addresses, interfaces...); an untracked accept for the whole port"
                        " would open it wider",
                        tuple(restricted),
                        (*_conditioned_accepts(chain, effect, rule),
                         "or accept the wider rule: --force"),
                    )
                )  # fmt: skip
                continue
            where = placed(chain, _earliest(chain, effect), rule)
            if isinstance(where, str):
                refusals.append(Refusal(f"chain {chain.label}: {where}", evidence))
                continue
            accepts.append(where)
    return list(dict.fromkeys(accepts)), refusals, list(dict.fromkeys(notes))


def ephemeral_ports(request: NotrackRequest) -> PortSet:
    """Where this host's own connections start from (ip_local_port_range)."""
    return request.local_ports or DEFAULT_EPHEMERAL


def _only(rs: Ruleset, chain: Chain) -> Ruleset:
    """The ruleset with ``chain`` as its only base chain (so one chain's fate is asked)."""
    return Ruleset(rs.backend, tuple(c for c in rs.chains if c is chain or c.hook is None))


def _replies_only(flow: Flow, request: NotrackRequest, effect: Effect) -> Rule | None:
    """The rule that took the packets of a flow the operator named as the start of
    connections (the ports asked for, as destination: a server's requests coming in, a
    client's going out) only as replies (ESTABLISHED/RELATED), or None. The other flows are
    replies by the request itself: untracking them is what was asked for."""
    if request.ports is None or flow.dports != request.ports:
        return None
    return next(
        (rule for _, loss in effect.losses if (rule := reply_only(loss.accept)) is not None),
        None,
    )


def _earliest(chain: Chain, effect: Effect) -> tuple[Rule, ...]:
    """The path (jumps, then accept) of the loss whose first rule comes first in ``chain``:
    the untracked accept goes right before it (a policy accept, (), comes last)."""
    order = {id(rule): index for index, rule in enumerate(chain.rules)}
    paths = [loss.accept for _, loss in effect.losses]
    return min(paths, key=lambda p: order.get(id(p[0]), len(order)) if p else len(order) + 1)


def _conditioned_accepts(chain: Chain, effect: Effect, wide: OurRule) -> list[str]:
    """The untracked accepts an operator can paste, one per accept that took these packets
    tracked, with its conditions and those of the jumps to it (``untracked_accept``, as
    CT501 shows them); or, when one of them cannot be written faithfully, no rule and why (a
    rule without those conditions would open the ports to everyone)."""
    shown: list[str] = []
    for _, loss in effect.losses:
        got = untracked_accept(chain, loss, wide)
        if isinstance(got, str):
            return [f"no rule to paste: {got}"]
        if got is not None:
            shown.append(got.shown())
    if not shown:
        return ["no rule to paste: add the untracked accept with exactly those conditions"]
    return [
        f"add it yourself with those conditions: {line}"
        for line in paste_order(list(dict.fromkeys(shown)))
    ]


def _restrictions(rs: Ruleset, chain: Chain, flow: Flow) -> dict[str, Rule | None]:
    """Accepts for these ports (tracked or not) that carry conditions ctguard does not copy
    (an address, a mark, an interface), on the rule itself or on a jump that leads to it:
    ``ip saddr 10.0.0.0/8 jump svc`` restricts every accept in ``svc``. Each as evidence,
    with the rule when it carries the conditions itself (None when a jump does)."""
    found: dict[str, Rule | None] = {}
    packet = flow.packet(chain.family)
    seen: set[tuple[str, str]] = set()
    stack: list[tuple[Chain, str | None, int]] = [(chain, None, 0)]  # chain, restricting jump
    while stack:
        current, via, depth = stack.pop()
        if (current.name, via or "") in seen or depth > MAX_JUMP_DEPTH:
            continue
        seen.add((current.name, via or ""))
        for rule in current.rules:
            if is_ours(rule) or not _may_carry(rule, packet):
                continue
            if rule.verdict in ("jump", "goto") and rule.target:
                target = rs.chain_of(rule, rule.target)
                if target is not None:
                    stack.append((target, via or _conditioned(rule), depth + 1))
            elif rule.verdict == "accept" and _names_ports(rule, packet):
                if via is not None:
                    found.setdefault(f"{describe(rule)} (reached through {via})", None)
                elif _conditioned(rule, packet.family) is not None:
                    found.setdefault(describe(rule), rule)
    return found


def _may_carry(rule: Rule, packet: Packet) -> bool:
    m = rule.match
    return m.protos is None or packet.protos is None or bool(m.protos & packet.protos)


def _names_ports(rule: Rule, packet: Packet) -> bool:
    m = rule.match
    pairs = ((m.dports, packet.dports), (m.sports, packet.sports))
    return any(a is not None and b is not None and a.overlaps(b) for a, b in pairs)


def _conditioned(rule: Rule, family: str = "inet") -> str | None:
    """The rule, as evidence, when it has conditions ctguard would not copy (for packets
    of ``family``: an accept of IPv4 only restricts a port untracked for both)."""
    m = rule.match
    if (
        m.other
        or m.nfproto not in (None, family)
        or m.saddrs is not None
        or m.daddrs is not None
        or m.iif not in (None, "lo")
        or m.oif not in (None, "lo")
    ):
        return describe(rule)
    return None


def _accept_rule(chain: Chain, hook: str, flow: Flow) -> OurRule:
    return OurRule(chain.backend, chain.family, chain.table, chain.name, hook, ACCEPT,
                   flow.proto, flow.dports, flow.sports,
                   nfproto=_nfproto(flow, chain.family))  # fmt: skip


def with_rules(rs: Ruleset, rules: Sequence[OurRule]) -> Ruleset:
    """The ruleset once ``rules`` are added as the scripts add them: in a user chain first
    (in the given order), in ctguard's own chains after what is there, creating those."""
    chains = list(rs.chains)
    keys = [(c.backend, c.family, c.table, c.name) for c in chains]
    for key in dict.fromkeys((r.backend, r.family, r.table, r.chain) for r in rules):
        new = tuple(r.as_rule() for r in rules if (r.backend, r.family, r.table, r.chain) == key)
        if key not in keys:
            first = next(r for r in rules if (r.backend, r.family, r.table, r.chain) == key)
            chains.append(Chain(*key, first.hook, RAW_PRIORITY, "filter", "accept", new))
            keys.append(key)
            continue
        index = keys.index(key)
        chain = chains[index]
        if chain.backend == "nft" and is_own(chain.family, chain.table):
            # as _nft_add: exemptions inserted first, notracks appended
            returns = tuple(r for r in new if r.verdict == RETURN)
            now = (*returns, *chain.rules, *(r for r in new if r.verdict != RETURN))
        else:
            mine = [r for r in rules if (r.backend, r.family, r.table, r.chain) == key]
            now = _inserted(chain, mine)
        chains[index] = Chain(chain.backend, chain.family, chain.table, chain.name, chain.hook,
                              chain.priority, chain.type, chain.policy, now)  # fmt: skip
    return Ruleset(rs.backend, tuple(chains), rs.warnings, rs.missing)


def _inserted(chain: Chain, rules: Sequence[OurRule]) -> tuple[Rule, ...]:
    """``chain``'s rules once ``rules`` are added as the scripts add them: first ("insert",
    ``-I CHAIN 1``), right before the rule they are placed at (its handle, or its 1-based
    index), or appended, each group in the planned order."""
    first = [r.as_rule() for r in rules if r.at is None and not r.end]
    now: list[Rule] = list(first)
    for index, rule in enumerate(chain.rules):
        key = rule.line if chain.backend == "nft" else index + 1
        now += [r.as_rule() for r in rules if r.at is not None and not r.end and r.at == key]
        now.append(rule)
    now += [r.as_rule() for r in rules if r.end]
    return tuple(now)


def check_flows(
    rs: Ruleset, flows: Sequence[Flow], ephemeral: PortSet = DEFAULT_EPHEMERAL
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What untracking each flow changes in ``rs`` (``notrack_effect``, as CT501 judges it);
    the flows whose untracked packets the filter drops where it accepted them tracked."""
    lines: list[str] = []
    bad: list[str] = []
    for flow in flows:
        if flow.proto is None:
            continue  # --all: the stateless rules decide, as before
        hook = FILTER_HOOK[flow.hook]
        effect = notrack_effect(rs, hook, flow.packet(), ephemeral)
        line = f"{describe_flow(flow)}: {_effect_words(rs, effect)} on {hook}"
        lines.append(line)
        sure = [loss for _, loss in effect.losses if not loss.assumption]
        if effect.outcome not in (UNCHANGED, CLOSED) and sure:
            evidence = (e for loss in sure for e in loss_evidence(loss))
            bad.append(f"{line}: {'; '.join(evidence)}")
    return tuple(lines), tuple(bad)


_STOPS = frozenset({"drop", "reject", "jump", "goto", "return", "vmap"})


def wider_flows(rs: Ruleset, flows: Sequence[Flow], ports: PortSet | None) -> tuple[str, ...]:
    """The reverse of ``check_flows``: untracked packets must be accepted only where tracked
    ones were. For each of ctguard's untracked accepts in a filtering base chain, the tracked
    packets it stands for (NEW ones for a flow of the ports asked for as destination, the
    replies, ESTABLISHED, for the others) must meet no rule between it and the accept that
    takes them tracked which may stop them (a drop of some sources, a jump): else the
    untracked accept lets past that rule what it stopped. One line per such accept."""
    found: list[str] = []
    for flow in flows:
        if flow.proto is None:
            continue
        hook = FILTER_HOOK[flow.hook]
        state = "new" if ports is not None and flow.dports == ports else "established"
        for chain in filtering_chains(rs, hook, flow.family):
            packet = flow.packet(chain.family)
            for index, rule in enumerate(chain.rules):
                if not is_ours(rule) or rule.verdict != ACCEPT:
                    continue
                region = narrowed(packet, rule.match)
                if region is None:
                    continue
                why = _skipped(rs, chain, index, region, state)
                if why is not None:
                    found.append(
                        f"{describe_flow(flow)}: {chain.label}: {describe(rule)} accepts"
                        f" untracked packets {why}"
                    )
    return tuple(dict.fromkeys(found))


def _skipped(rs: Ruleset, chain: Chain, at: int, region: Packet, state: str) -> str | None:
    """Why the accept at index ``at`` of ``chain`` takes untracked packets of ``region``
    that tracked ones (in ``state``) would not have got through, or None."""
    fate = chain_fate(rs, chain, region, state)
    order = {id(rule): index for index, rule in enumerate(chain.rules)}
    later = sorted(
        order[id(path[0])] for path in fate.accepts if path and order.get(id(path[0]), -1) > at
    )
    if not later:
        if fate.outcome == "accepted":
            return None  # taken tracked before it, or by the policy
        return f"that the chain does not accept tracked ({'; '.join(fate.evidence)})"
    for rule in chain.rules[at + 1 : later[0]]:
        states = rule.match.ct_states
        if is_ours(rule) or (states is not None and state not in states):
            continue
        if rule.verdict in _STOPS and narrowed(region, rule.match) is not None:
            return f"past {describe(rule)}, which tracked ones meet first"
    return None


def _effect_words(rs: Ruleset, effect: Effect) -> str:
    if effect.outcome == UNCHANGED:
        if untracked_fate(rs, effect.hook, effect.packet).outcome == "accepted":
            return "accepted"
        return "accepted where tracked ones were (the rest dropped tracked too)"
    if effect.outcome == CLOSED:
        return "dropped tracked or not (the filter closes them)"
    guesses = [loss.assumption for _, loss in effect.losses]
    if guesses and all(guesses):  # a guess is no reason to refuse, but it is said
        return f"{effect.outcome} only {guesses[0]} (replies to it)"
    return effect.outcome


def describe_flow(flow: Flow) -> str:
    """``tcp dport 8983 coming in`` / ``tcp sport 8983 going out`` (``IPv4 tcp ...``)."""
    way = "coming in" if flow.hook == "prerouting" else "going out"
    if flow.family != "inet":
        return f"{_FAMILY_NAMES[flow.family]} {describe_flow(replace(flow, family='inet'))}"
    if flow.proto is None:
        return f"every packet {way}"
    ports = " ".join(
        f"{name} {ports}" for name, ports in (("dport", flow.dports), ("sport", flow.sports))
        if ports is not None
    )  # fmt: skip
    return f"{flow.proto} {ports} {way}".replace("  ", " ")


def _notes(rs: Ruleset, backend: str) -> tuple[str, ...]:
    notes: list[str] = []
    if rs.missing:
        notes.append("not read: " + "; ".join(rs.missing))
    if rs.warnings:
        notes.append("ruleset warnings: " + "; ".join(rs.warnings))
    if backend == "iptables" and _native_nft_chains(rs):
        notes.append("native nft chains exist too: their accepts are added with nft")
    return tuple(notes)
