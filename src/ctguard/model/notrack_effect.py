"""What untracking a class of packets changes on one filter hook (pure): the fates of the
packets while tracked and once untracked, compared (doctor rule CT501, ``ctguard notrack``).

The NOTRACK trap is not "no state rule": it is that packets the filter accepted while
tracked (by ``ct state established,related accept``, or an accept limited to ``ct state
new``) are dropped once their state is UNTRACKED. So for every accept that took tracked
packets of the class, the packets under that accept's conditions (addresses, sets,
interfaces, the jumps that led to it) are walked again as UNTRACKED; where they are no
longer accepted, untracking lost them. An allow-list accept without a state condition
accepts them either way; packets the filter dropped while tracked lose nothing.

Which tracked packets existed: a NEW packet of the class starts a connection; ESTABLISHED
packets of the class exist for the connections NEW packets of the class started (the same
conditions, so they count as those) and for the connections started the other way, when
the mirror class's NEW packets are accepted on the mirror hook (input <-> output, forward
<-> forward). A connection this host starts leaves from an ephemeral port
(ip_local_port_range): a class whose local port is a fixed service port outside it (tcp
dport 8983 coming in) is no reply to this host's own connections. UDP clients may send from
a fixed port, though (ntpd 123<->123, IKE 500/4500, BIND's query-source): a UDP port the
NOTRACK names is also taken as one this host may send from, to the same port, and a loss
that rests on that guess says so (``Loss.assumption``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from ctguard.model.firewall import (
    Candidates,
    Fate,
    Packet,
    chain_fate,
    families_meet,
    filtering_chains,
    mirrored,
    narrowed,
    reachable_rules,
)
from ctguard.sources.local_port_range import DEFAULT_LOCAL_PORT_RANGE
from ctguard.sources.ruleset import Chain, PortSet, Rule, RuleMatch, Ruleset, describe

# ip_local_port_range when it was not read: the kernel's default, which most hosts run
DEFAULT_EPHEMERAL = PortSet.of(DEFAULT_LOCAL_PORT_RANGE)
MIRROR_HOOK = {"input": "output", "output": "input", "forward": "forward"}
UNCHANGED = "unchanged"  # untracked packets are accepted wherever tracked ones were
CLOSED = "closed"  # the filter dropped these packets while tracked too: nothing to lose
DROPPED = "dropped"  # some packets accepted while tracked are surely dropped untracked
CONDITIONAL = "conditional"  # ... may be dropped (conditions ctguard cannot decide)
_RANK = {UNCHANGED: 0, CLOSED: 0, CONDITIONAL: 1, DROPPED: 2}


@dataclass(frozen=True)
class Loss:
    """Packets a chain accepted while tracked, and does not surely accept untracked."""

    region: Packet  # the class under the conditions of the accept (and its jumps)
    accept: tuple[Rule, ...]  # the jumps, then the accept; () for the chain's policy
    untracked: Fate  # what the chain does with them untracked ("dropped" | "conditional")
    # why these packets existed when it rests on a guess ("" when it does not): replies to
    # this host's own packets sent from a fixed UDP port outside ip_local_port_range
    assumption: str = ""

    @property
    def outcome(self) -> str:
        return DROPPED if self.untracked.outcome == "dropped" else CONDITIONAL

    def covers(self, packet: Packet) -> bool:
        """The accept took every packet of ``packet`` (no condition ctguard keeps only as
        text, such as a mark, narrows it)."""
        return self.region == packet and not any(rule.match.other for rule in self.accept)


@dataclass(frozen=True)
class ChainEffect:
    chain: Chain
    outcome: str  # UNCHANGED | CLOSED | DROPPED | CONDITIONAL
    losses: tuple[Loss, ...]
    tracked: Fate  # the chain's fate for NEW packets of the class, as evidence


@dataclass(frozen=True)
class Effect:
    """What untracking ``packet`` changes on ``hook``: per address family (IPv4 packets meet
    the ip and inet chains, IPv6 ones the ip6 and inet chains), a chain that dropped every
    tracked packet of the class closes that family; "closed" when every family is closed,
    else the worst chain of the families still open decides."""

    hook: str
    packet: Packet
    outcome: str
    chains: tuple[ChainEffect, ...]

    @property
    def losses(self) -> tuple[tuple[Chain, Loss], ...]:
        return tuple((c.chain, loss) for c in self.chains for loss in c.losses)

    @property
    def surely_dropped(self) -> bool:
        """Packets are surely dropped untracked, with no guess about this host's own UDP
        source ports behind it."""
        return any(loss.outcome == DROPPED and not loss.assumption for _, loss in self.losses)


# Clients known to send from their service's own UDP port, named in a guess's reason.
_FIXED_PORT_CLIENTS = ((53, "BIND's query-source"), (123, "ntpd"), (500, "IKE"), (4500, "IKE"))


@dataclass(frozen=True)
class _Start:
    """Packets that can start a connection; ``assumption`` says why when it is a guess."""

    packet: Packet
    assumption: str = ""


def own_udp_ports(packet: Packet) -> PortSet | None:
    """The UDP ports a NOTRACK's class names (either side), which a client of that service
    may send from itself; None when it names none or is not UDP."""
    if packet.protos is not None and "udp" not in packet.protos:
        return None
    named = [r for ports in (packet.dports, packet.sports) if ports for r in ports.ranges]
    return PortSet.of(*named) if named else None


def _started(hook: str, packet: Packet, ephemeral: PortSet, own: PortSet | None) -> list[_Start]:
    """The packets of the class that can start a connection on ``hook``: all of them, except
    on output, where this host starts connections from an ephemeral source port, and may
    send UDP from a port of ``own`` outside it to the same port (a guess: ntpd, IKE)."""
    if hook != "output":
        return [_Start(packet)]
    out: list[_Start] = []
    sports = ephemeral if packet.sports is None else packet.sports.intersection(ephemeral)
    if sports.ranges:
        out.append(_Start(replace(packet, sports=sports)))
    fixed = None if own is None else own.intersection(ephemeral.complement())
    if fixed is None or not fixed.ranges:
        return out
    fsports = fixed if packet.sports is None else packet.sports.intersection(fixed)
    fdports = fixed if packet.dports is None else packet.dports.intersection(fixed)
    if fsports.ranges and fdports.ranges:
        names = sorted({name for port, name in _FIXED_PORT_CLIENTS if fsports.contains(port)})
        example = f"e.g. {', '.join(names)}" if names else "a client bound to its service port"
        guess = f"if this host sends from udp/{fsports} itself, {example}"
        udp = frozenset({"udp"})
        out.append(_Start(replace(packet, protos=udp, sports=fsports, dports=fdports), guess))
    return out


@dataclass(frozen=True)
class _Region:
    packet: Packet
    accept: tuple[Rule, ...]
    assumption: str = ""


def _regions(fate: Fate, packet: Packet, assumption: str = "") -> list[_Region]:
    out: list[_Region] = []
    for path in fate.accepts:
        region: Packet | None = packet
        for rule in path:
            region = None if region is None else narrowed(region, rule.match)
        if region is not None:
            out.append(_Region(region, path, assumption))
    return out


def _started_the_other_way(
    rs: Ruleset, hook: str, packet: Packet, ephemeral: PortSet, own: PortSet | None
) -> list[_Start]:
    """Packets of the class that are replies to connections started the other way: the
    whole class, parts of it, or none ([]); each with the guess it rests on, if any."""
    mirror_hook = MIRROR_HOOK[hook]
    replies: list[_Start] = []
    for start in _started(mirror_hook, mirrored(packet), ephemeral, own):
        other = start.packet
        # replies to this host's own: to the ports it sent from
        parts: list[Packet] = [mirrored(other)]
        for chain in filtering_chains(rs, mirror_hook, packet.family):
            fate = chain_fate(rs, chain, other, "new")
            if fate.outcome == "accepted":
                continue
            parts = [
                part
                for region in _regions(fate, other)
                for whole in parts
                if (part := _within(whole, mirrored(region.packet))) is not None
            ]
        replies += [_Start(part, start.assumption) for part in parts]
    return replies


def _within(packet: Packet, region: Packet) -> Packet | None:
    """``packet`` narrowed to ``region`` (both as Packets)."""
    match = RuleMatch(region.protos, region.dports, region.sports, None, region.iif,
                      region.oif, region.saddrs, region.daddrs)  # fmt: skip
    return narrowed(packet, match)


def _chain_effect(
    rs: Ruleset, chain: Chain, hook: str, packet: Packet, replies: list[_Start],
    ephemeral: PortSet, own: PortSet | None,
) -> ChainEffect:  # fmt: skip
    new = chain_fate(rs, chain, packet, "new")
    tracked = [
        region
        for start in _started(hook, packet, ephemeral, own)
        for region in _regions(
            chain_fate(rs, chain, start.packet, "new"), start.packet, start.assumption
        )
    ]
    if replies:
        established = chain_fate(rs, chain, packet, "established")
        for region in _regions(established, packet):
            tracked += [
                _Region(part, region.accept, reply.assumption)
                for reply in replies
                if (part := _within(region.packet, reply.packet)) is not None
            ]
    losses: dict[tuple[Packet, tuple[Rule, ...]], Loss] = {}
    stateless_same = not _mentions_untracked(rs, chain)
    candidates = Candidates(packet, "untracked")  # every region is part of the class
    whole_lost = False
    # the whole class first, and what is sure before what rests on a guess: once the whole
    # class is surely lost, every part of it is covered by that
    for region in sorted(tracked, key=lambda r: (bool(r.assumption), r.packet != packet)):
        if whole_lost:
            break  # nothing is worse, and the loss covers every other
        if stateless_same and not any(_stateful(rule) for rule in region.accept):
            continue  # untracked packets take the same stateless path to the same accept
        given = frozenset(region.accept)
        fate = chain_fate(rs, chain, region.packet, "untracked", given, candidates)
        if fate.outcome != "accepted":
            loss = Loss(region.packet, region.accept, fate, region.assumption)
            losses.setdefault((region.packet, region.accept), loss)
            whole_lost = loss.covers(packet) and loss.outcome == DROPPED and not loss.assumption
    if not losses and all(_loopback(region.packet, packet) for region in tracked):
        # nothing accepted tracked but loopback traffic (which it still accepts): the port
        # is closed to the network whether tracked or not
        untracked = chain_fate(rs, chain, packet)
        outcome = UNCHANGED if untracked.outcome == "accepted" else CLOSED
        return ChainEffect(chain, outcome, (), new)
    kept = _uncovered(list(losses.values()), packet)
    outcome = max(
        (loss.outcome for loss in losses.values()), key=_RANK.__getitem__, default=UNCHANGED
    )
    return ChainEffect(chain, outcome, tuple(kept), new)


def _stateful(rule: Rule) -> bool:
    return rule.match.ct_states is not None or bool(rule.vmap) or rule.verdict == "vmap"


def _mentions_untracked(rs: Ruleset, chain: Chain) -> bool:
    """A rule the chain may reach treats UNTRACKED packets apart (``ct state untracked``, a
    vmap): without one, an untracked packet meets exactly the stateless rules a tracked one
    meets, so a path of stateless rules to an accept takes it as it took the tracked one
    (an earlier stateless rule that stops it stopped the tracked packets too)."""
    return any(
        (rule.match.ct_states is not None and "untracked" in rule.match.ct_states)
        or rule.verdict == "vmap"
        for rule in reachable_rules(rs, chain)
    )


def _loopback(region: Packet, packet: Packet) -> bool:
    """Packets of the class narrowed to the loopback interface by an accept."""
    return (region.iif == "lo" and packet.iif is None) or (
        region.oif == "lo" and packet.oif is None
    )


_PAIRWISE_MAX = 64  # beyond this many losses only the whole-class ones are compared


def _uncovered(losses: list[Loss], packet: Packet) -> list[Loss]:
    """The losses no other loss, as sure, includes (its accept is the one to restore)."""
    whole = [loss for loss in losses if loss.region == packet]
    kept: list[Loss] = []
    for loss in losses:
        if loss.region != packet and any(_as_sure(w, loss) for w in whole):
            continue
        if len(losses) <= _PAIRWISE_MAX and _covered(loss, losses):
            continue
        kept.append(loss)
    return kept


def _covered(loss: Loss, losses: Iterable[Loss]) -> bool:
    """Another loss, as sure, includes these packets (its accept is the one to restore)."""
    return any(
        other is not loss
        and _as_sure(other, loss)
        and other.region != loss.region
        and _within(loss.region, other.region) == loss.region
        for other in losses
    )


def _as_sure(a: Loss, b: Loss) -> bool:
    """Loss ``a`` is at least as sure as ``b``: as bad, and no guess where ``b`` has none."""
    return _RANK[a.outcome] >= _RANK[b.outcome] and (not a.assumption or bool(b.assumption))


def notrack_effect(rs: Ruleset, hook: str, packet: Packet, ephemeral: PortSet) -> Effect:
    """What untracking ``packet`` changes for the filtering base chains on ``hook`` ("input",
    "output" or "forward"); ``ephemeral`` is ip_local_port_range (where this host's own
    connections start from; UDP may also leave from a port the NOTRACK names)."""
    own = own_udp_ports(packet)
    replies = _started_the_other_way(rs, hook, packet, ephemeral, own)
    chains = tuple(
        _chain_effect(rs, chain, hook, packet, replies, ephemeral, own)
        for chain in filtering_chains(rs, hook, packet.family)
    )
    # IPv4 packets cross the ip and inet chains, IPv6 ones the ip6 and inet chains: a
    # family whose packets one chain closes loses nothing, whatever its other chains do
    outcomes: list[str] = []
    for family in ("ip", "ip6"):
        if not families_meet(packet.family, family):
            continue
        met = [c.outcome for c in chains if families_meet(family, c.chain.family)]
        if met:
            closed = CLOSED in met
            outcomes.append(CLOSED if closed else max(met, key=_RANK.__getitem__))
    if outcomes and all(outcome == CLOSED for outcome in outcomes):
        return Effect(hook, packet, CLOSED, chains)
    worst = max((o for o in outcomes if o != CLOSED), key=_RANK.__getitem__, default=UNCHANGED)
    return Effect(hook, packet, worst, chains)


def loss_evidence(loss: Loss) -> list[str]:
    """The accept that took these packets while tracked, and what takes them untracked."""
    accepted = describe(loss.accept[-1]) if loss.accept else "the chain's policy accept"
    return [f"accepted while tracked by: {accepted}",
            *(f"untracked: {line}" for line in loss.untracked.evidence)]  # fmt: skip
