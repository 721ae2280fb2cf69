"""What a parser fills in, rule by rule, before it freezes the model: a rule's conditions
(``MatchBuilder``), a chain and its rules (``ChainDraft``), and the problems met on the way
(``Warnings``). Both the iptables-save and the nft JSON parser use them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ctguard.sources.ruleset.model import Chain, PortSet, Rule, RuleMatch

_KEPT_WARNINGS = 5


class Warnings:
    """Counts problems and keeps the first few texts, so a huge bad input stays small."""

    def __init__(self) -> None:
        self.kept: list[str] = []
        self.count = 0

    def add(self, message: str) -> None:
        self.count += 1
        if len(self.kept) < _KEPT_WARNINGS:
            self.kept.append(message)

    def result(self) -> tuple[str, ...]:
        more = self.count - len(self.kept)
        return (*self.kept, f"... and {more} more") if more > 0 else tuple(self.kept)


@dataclass
class MatchBuilder:
    """Collects a rule's conditions; each restriction narrows what is already known."""

    protos: frozenset[str] | None = None
    dports: PortSet | None = None
    sports: PortSet | None = None
    ct_states: frozenset[str] | None = None
    iif: str | None = None
    oif: str | None = None
    saddrs: frozenset[str] | None = None
    daddrs: frozenset[str] | None = None
    other: list[str] = field(default_factory=list)
    uses_conntrack: bool = False
    nfproto: str | None = None

    def restrict_protos(self, protos: Iterable[str]) -> None:
        new = frozenset(protos)
        self.protos = new if self.protos is None else self.protos & new

    def restrict_ports(self, which: str, ports: PortSet) -> None:
        if which == "dport":
            self.dports = ports if self.dports is None else self.dports.intersection(ports)
        else:
            self.sports = ports if self.sports is None else self.sports.intersection(ports)

    def restrict_addrs(self, which: str, addrs: Iterable[str]) -> bool:
        """Record an address condition; False (keep it as text) when a second one would need
        an intersection of CIDR lists."""
        new = frozenset(addrs)
        if which == "saddr":
            if self.saddrs is not None:
                return False
            self.saddrs = new
        else:
            if self.daddrs is not None:
                return False
            self.daddrs = new
        return True

    def restrict_states(self, states: frozenset[str]) -> None:
        self.uses_conntrack = True
        self.ct_states = states if self.ct_states is None else self.ct_states & states

    def build(self) -> RuleMatch:
        return RuleMatch(
            protos=self.protos,
            dports=self.dports,
            sports=self.sports,
            ct_states=self.ct_states,
            iif=self.iif,
            oif=self.oif,
            saddrs=self.saddrs,
            daddrs=self.daddrs,
            other=tuple(self.other),
            uses_conntrack=self.uses_conntrack,
            nfproto=self.nfproto,
        )


@dataclass
class ChainDraft:
    table: str
    name: str
    hook: str | None = None
    priority: int | None = None
    type: str | None = None
    policy: str | None = None
    rules: list[Rule] = field(default_factory=list)

    def build(self, backend: str, family: str) -> Chain:
        return Chain(
            backend,
            family,
            self.table,
            self.name,
            self.hook,
            self.priority,
            self.type,
            self.policy,
            tuple(self.rules),
        )
