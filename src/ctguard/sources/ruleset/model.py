"""The firewall model every ruleset becomes: Ruleset -> Chain -> Rule -> RuleMatch.

It holds what the conntrack rules need: protocols, ports, ct states, interfaces, verdicts,
NAT targets, and the rule's own text as evidence. Any other condition a rule has is kept as
text in ``RuleMatch.other``: such a rule may match only part of the traffic, and the
queries in ``ctguard.model.firewall`` say so instead of guessing. A rule we cannot read is
counted in ``Ruleset.warnings``; it never makes the whole ruleset unreadable.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

ALL_STATES = frozenset({"new", "established", "related", "invalid", "untracked"})
NAT_VERDICTS = frozenset({"dnat", "snat", "masquerade", "redirect"})
# Transport protocols whose header starts with 16-bit source and destination ports.
PORT_PROTOS = frozenset({"tcp", "udp", "udplite", "sctp", "dccp"})
MAX_PORT = 65535


@dataclass(frozen=True)
class PortSet:
    """Ports as inclusive ranges, merged and sorted (build it with ``PortSet.of``).

    >>> web = PortSet.of(443, 80, (8000, 8100), 8100)
    >>> str(web), web.contains(8050), web.overlaps(PortSet.of((1, 80)))
    ('80,443,8000-8100', True, True)
    >>> str(PortSet.of(9300).complement())
    '0-9299,9301-65535'
    """

    ranges: tuple[tuple[int, int], ...]

    @classmethod
    def of(cls, *items: int | tuple[int, int]) -> PortSet:
        spans = sorted(
            (min(lo, hi), max(lo, hi))
            for lo, hi in ((i, i) if isinstance(i, int) else i for i in items)
            if 0 <= lo <= MAX_PORT and 0 <= hi <= MAX_PORT
        )
        merged: list[tuple[int, int]] = []
        for lo, hi in spans:
            if merged and lo <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
            else:
                merged.append((lo, hi))
        return cls(tuple(merged))

    def contains(self, port: int) -> bool:
        return any(lo <= port <= hi for lo, hi in self.ranges)

    def overlaps(self, other: PortSet) -> bool:
        return bool(self.intersection(other).ranges)

    def covers(self, other: PortSet) -> bool:
        """Every port of ``other`` is in this set."""
        return self.intersection(other) == other

    def intersection(self, other: PortSet) -> PortSet:
        # One pass over both sorted lists: nft sets can hold thousands of ports.
        common: list[tuple[int, int]] = []
        i = j = 0
        while i < len(self.ranges) and j < len(other.ranges):
            (a, b), (c, d) = self.ranges[i], other.ranges[j]
            if max(a, c) <= min(b, d):
                common.append((max(a, c), min(b, d)))
            if b < d:
                i += 1
            else:
                j += 1
        return PortSet(tuple(common))

    def complement(self) -> PortSet:
        gaps: list[tuple[int, int]] = []
        start = 0
        for lo, hi in self.ranges:
            if lo > start:
                gaps.append((start, lo - 1))
            start = hi + 1
        if start <= MAX_PORT:
            gaps.append((start, MAX_PORT))
        return PortSet.of(*gaps)

    def __str__(self) -> str:
        return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.ranges)


def address_of(text: str) -> str | None:
    """An address condition as ctguard keeps it: a CIDR with its length, or ``@set``.

    >>> address_of("169.254.20.10"), address_of("10.1.2.3/8"), address_of("@cloudflare_v4")
    ('169.254.20.10/32', '10.0.0.0/8', '@cloudflare_v4')
    >>> address_of("example.org") is None
    True
    """
    if text.startswith("@") and len(text) > 1:
        return text
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        return None


@dataclass(frozen=True)
class RuleMatch:
    """What a rule selects; ``None`` means "no condition on this"."""

    protos: frozenset[str] | None = None
    dports: PortSet | None = None
    sports: PortSet | None = None
    # Lower-case states the rule requires; a negation is folded into its complement.
    ct_states: frozenset[str] | None = None
    iif: str | None = None
    oif: str | None = None
    # Addresses the packet must have: CIDRs ("169.254.20.10/32") or named nft sets with their
    # family ("ip @cloudflare_v4": contents not assumed). A negated one stays in ``other``.
    saddrs: frozenset[str] | None = None
    daddrs: frozenset[str] | None = None
    # Conditions not modelled ("! -s 10.0.0.0/8", "meta mark 0x1", "-m mark --mark 0x1"):
    # the rule may match only part of the traffic its other fields describe.
    other: tuple[str, ...] = ()
    # A match, target or statement that needs conntrack (notrack does not count).
    uses_conntrack: bool = False
    # nft ``meta nfproto ipv4|ipv6`` in an inet table: the rule sees only that family
    # ("ip" | "ip6"); None: every family its table sees.
    nfproto: str | None = None


@dataclass(frozen=True)
class Rule:
    backend: str  # "iptables" | "ip6tables" | "nft"
    family: str  # "ip" | "ip6" | "inet" | "bridge" | "arp" | "netdev"
    table: str
    chain: str
    match: RuleMatch
    # "accept" "drop" "reject" "notrack" "dnat" "snat" "masquerade" "redirect" "jump" "goto"
    # "return", "ct" (CT other than notrack: helper, zone...), "vmap", or "other" (LOG, MARK,
    # counter only: evaluation goes on).
    verdict: str
    target: str | None  # jump/goto chain; NAT "to" text; None otherwise
    text: str  # the iptables-save line, or a rendering of the nft rule
    line: int | None  # 1-based line of the iptables-save text; nft: the rule handle
    # "ct state vmap {...}": (states, verdict) pairs; verdicts "accept", "drop", "jump X"...
    vmap: tuple[tuple[frozenset[str], str], ...] = ()


@dataclass(frozen=True)
class Chain:
    backend: str
    family: str
    table: str
    name: str
    hook: str | None  # None: a user chain, reached only by jump/goto
    priority: int | None
    type: str | None  # "filter" | "nat" | "route"
    policy: str | None  # "accept" | "drop" for base chains
    rules: tuple[Rule, ...]

    @property
    def label(self) -> str:
        return f"{self.family} {self.table} {self.name}"


@dataclass(frozen=True)
class Ruleset:
    backend: str  # "iptables" | "ip6tables" | "nft" | "merged"
    chains: tuple[Chain, ...]
    warnings: tuple[str, ...] = ()  # what could not be parsed (a count and the first few)
    missing: tuple[str, ...] = ()  # merged inputs that could not be read, and why
    _index: dict[tuple[str, str, str, str], Chain] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        for chain in self.chains:
            self._index.setdefault((chain.backend, chain.family, chain.table, chain.name), chain)

    def chain(self, family: str, table: str, name: str) -> Chain | None:
        return next(
            (c for c in self.chains if (c.family, c.table, c.name) == (family, table, name)),
            None,
        )

    def chain_of(self, rule: Rule, name: str) -> Chain | None:
        """The chain ``name`` in the table of ``rule`` (jump and goto stay in their table)."""
        return self._index.get((rule.backend, rule.family, rule.table, name))

    def base_chains(self, hook: str) -> tuple[Chain, ...]:
        on_hook = [c for c in self.chains if c.hook == hook]
        return tuple(sorted(on_hook, key=lambda c: 0 if c.priority is None else c.priority))

    def rules(self) -> tuple[Rule, ...]:
        return tuple(rule for chain in self.chains for rule in chain.rules)


def describe(rule: Rule) -> str:
    """The rule as evidence an operator can find again in their own tools.

    >>> r = Rule("iptables", "ip", "raw", "PREROUTING", RuleMatch(), "notrack", None,
    ...          "-A PREROUTING -p tcp -m tcp --dport 8983 -j NOTRACK", 3)
    >>> describe(r)
    'iptables -t raw -A PREROUTING -p tcp -m tcp --dport 8983 -j NOTRACK'
    """
    if rule.backend in ("iptables", "ip6tables"):
        return f"{rule.backend} -t {rule.table} {rule.text}"
    return f"{rule.text} (table {rule.family} {rule.table}, chain {rule.chain})"
