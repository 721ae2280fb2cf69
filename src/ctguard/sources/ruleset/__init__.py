"""Firewall rulesets: ``iptables-save``, ``ip6tables-save`` and ``nft -j list ruleset``.

All three become one small model (Ruleset -> Chain -> Rule -> RuleMatch) holding what the
conntrack rules need: protocols, ports, ct states, interfaces, verdicts, NAT targets, and
the rule's own text as evidence. Any other condition a rule has is kept as text in
``RuleMatch.other``: such a rule may match only part of the traffic, and the queries in
``ctguard.firewall`` say so instead of guessing. A rule we cannot read is counted in
``Ruleset.warnings``; it never makes the whole ruleset unreadable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from ctguard.errors import ParseError
from ctguard.host.commands import Commands
from ctguard.missing import Missing

ALL_STATES = frozenset({"new", "established", "related", "invalid", "untracked"})
NAT_VERDICTS = frozenset({"dnat", "snat", "masquerade", "redirect"})
# Transport protocols whose header starts with 16-bit source and destination ports.
PORT_PROTOS = frozenset({"tcp", "udp", "udplite", "sctp", "dccp"})
MAX_PORT = 65535
_KEPT_WARNINGS = 5


# -- model ---------------------------------------------------------------------------------
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
    # Conditions not modelled ("-s 10.0.0.0/8", "ip saddr 10.0.0.0/8", "-m mark --mark 0x1"):
    # the rule may match only part of the traffic its other fields describe.
    other: tuple[str, ...] = ()
    # A match, target or statement that needs conntrack (notrack does not count).
    uses_conntrack: bool = False


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


# -- shared helpers ------------------------------------------------------------------------
class _Warnings:
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
class _MatchBuilder:
    """Collects a rule's conditions; each restriction narrows what is already known."""

    protos: frozenset[str] | None = None
    dports: PortSet | None = None
    sports: PortSet | None = None
    ct_states: frozenset[str] | None = None
    iif: str | None = None
    oif: str | None = None
    other: list[str] = field(default_factory=list)
    uses_conntrack: bool = False

    def restrict_protos(self, protos: Iterable[str]) -> None:
        new = frozenset(protos)
        self.protos = new if self.protos is None else self.protos & new

    def restrict_ports(self, which: str, ports: PortSet) -> None:
        if which == "dport":
            self.dports = ports if self.dports is None else self.dports.intersection(ports)
        else:
            self.sports = ports if self.sports is None else self.sports.intersection(ports)

    def restrict_states(self, states: frozenset[str]) -> None:
        self.uses_conntrack = True
        self.ct_states = states if self.ct_states is None else self.ct_states & states

    def build(self) -> RuleMatch:
        return RuleMatch(
            self.protos,
            self.dports,
            self.sports,
            self.ct_states,
            self.iif,
            self.oif,
            tuple(self.other),
            self.uses_conntrack,
        )


# /etc/protocols numbers iptables-save may print instead of names (`-p 6`).
_PROTO_NUMBERS = {
    "1": "icmp", "6": "tcp", "17": "udp", "33": "dccp", "47": "gre", "50": "esp",
    "51": "ah", "58": "ipv6-icmp", "132": "sctp", "136": "udplite",
}  # fmt: skip
_PROTO_ALIASES = {"icmpv6": "ipv6-icmp", "icmp6": "ipv6-icmp", "ipv6-icmp": "ipv6-icmp"}


def _proto_name(value: str) -> str | None:
    """Canonical protocol name; None for "any" (``-p all``, ``-p 0``)."""
    name = value.lower()
    if name in ("all", "0"):
        return None
    return _PROTO_NUMBERS.get(name) or _PROTO_ALIASES.get(name, name)


def _nat_target_verdict(name: str, chain: str) -> str | None:
    if name in ("DNAT", "SNAT", "MASQUERADE", "REDIRECT"):
        return name.lower()
    if name == "NETMAP":  # maps destinations in PREROUTING/OUTPUT, sources in POSTROUTING/INPUT
        return "snat" if chain in ("POSTROUTING", "INPUT") else "dnat"
    return None


# -- iptables-save -------------------------------------------------------------------------
# include/uapi/linux/netfilter_ipv4.h (same values in netfilter_ipv6.h): NF_IP_PRI_RAW -300,
# MANGLE -150, NAT_DST -100, FILTER 0, SECURITY 50, NAT_SRC 100.
_HOOK_CHAINS = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")
_BUILTIN_CHAINS: dict[str, dict[str, tuple[str, int]]] = {
    "raw": {"PREROUTING": ("prerouting", -300), "OUTPUT": ("output", -300)},
    "mangle": {name: (name.lower(), -150) for name in _HOOK_CHAINS},
    "nat": {
        "PREROUTING": ("prerouting", -100),
        "OUTPUT": ("output", -100),
        "INPUT": ("input", 100),
        "POSTROUTING": ("postrouting", 100),
    },
    "filter": {name: (name.lower(), 0) for name in ("INPUT", "FORWARD", "OUTPUT")},
    "security": {name: (name.lower(), 50) for name in ("INPUT", "FORWARD", "OUTPUT")},
}
# Matches and targets that look at or create conntrack entries (iptables-extensions(8)).
CONNTRACK_MATCHES = frozenset(
    {"state", "conntrack", "connmark", "connlimit", "connbytes", "connlabel", "helper"}
)
_CONNTRACK_TARGETS = frozenset(
    {"DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NETMAP", "CONNMARK", "CONNSECMARK", "SYNPROXY"}
)
_TERMINAL_TARGETS = {"ACCEPT": "accept", "DROP": "drop", "REJECT": "reject", "RETURN": "return"}
# Options whose argument count the "next tokens not starting with -" rule gets wrong.
_ARITY = {
    "--comment": 1, "--log-prefix": 1, "--nflog-prefix": 1, "--tcp-flags": 2,
    "--set-counters": 2, "-c": 2, "--notrack": 0, "--syn": 0, "--clamp-mss-to-pmtu": 0,
    "--random": 0, "--random-fully": 0, "--persistent": 0, "--save-mark": 0,
    "--restore-mark": 0, "--rcheck": 0, "--update": 0, "--set": 0, "--remove": 0,
    "--log-uid": 0, "--log-tcp-sequence": 0, "--log-tcp-options": 0, "--log-ip-options": 0,
}  # fmt: skip
_NOT = "!"
_WORD = re.compile(r'"((?:[^"\\]|\\.)*)"|(\S+)')
_UNESCAPE = re.compile(r"\\(.)")
_COUNTERS = re.compile(r"^\[\d+:\d+\]\s*")
_PORT_SPEC = re.compile(r"(\d{0,5}):(\d{0,5})|(\d{1,5})")
_STATE_NAMES = re.compile(r"[A-Za-z]+(,[A-Za-z]+)*")


def parse_iptables_save(text: str, backend: str = "iptables") -> Ruleset:
    """Parse ``iptables-save`` (or ``ip6tables-save`` with ``backend="ip6tables"``) output.

    Builtin chains get the hook and priority of their table; a line that cannot be read
    becomes a warning, never an exception.

    >>> rs = parse_iptables_save(
    ...     "# Generated by iptables-save v1.8.9 (nf_tables) on Wed Nov 25 12:41:12 2026\\n"
    ...     "*raw\\n"
    ...     ":PREROUTING ACCEPT [0:0]\\n"
    ...     ":OUTPUT ACCEPT [0:0]\\n"
    ...     "-A PREROUTING -p tcp -m tcp --dport 8983 -j NOTRACK\\n"
    ...     "COMMIT\\n")
    >>> chain = rs.chain("ip", "raw", "PREROUTING")
    >>> chain.hook, chain.priority, chain.policy
    ('prerouting', -300, 'accept')
    >>> rule = chain.rules[0]
    >>> rule.verdict, rule.match.protos, str(rule.match.dports), rule.line
    ('notrack', frozenset({'tcp'}), '8983', 5)
    """
    family = "ip6" if backend == "ip6tables" else "ip"
    source = f"{backend}-save"
    warnings = _Warnings()
    chains: dict[tuple[str, str], _ChainDraft] = {}
    table: str | None = None
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            if table is not None:
                warnings.add(f"{source} line {number}: table {table} has no COMMIT")
            table = line[1:].strip() or None
        elif line == "COMMIT":
            table = None
        elif table is None:
            warnings.add(f"{source} line {number}: outside a *table section: {line[:80]!r}")
        elif line.startswith(":"):
            _declare_iptables_chain(chains, table, line, number, source, warnings)
        else:
            _add_iptables_rule(chains, table, line, number, backend, family, source, warnings)
    if table is not None:
        warnings.add(f"{source}: table {table} has no COMMIT (truncated output?)")
    built = tuple(draft.build(backend, family) for draft in chains.values())
    return Ruleset(backend, built, warnings.result())


@dataclass
class _ChainDraft:
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


def _iptables_chain(
    chains: dict[tuple[str, str], _ChainDraft], table: str, name: str
) -> _ChainDraft:
    draft = chains.get((table, name))
    if draft is None:
        draft = _ChainDraft(table, name)
        builtin = _BUILTIN_CHAINS.get(table, {}).get(name)
        if builtin is not None:
            draft.hook, draft.priority = builtin
            draft.type = "nat" if table == "nat" else "filter"
            draft.policy = "accept"  # the kernel default until a -P says otherwise
        chains[(table, name)] = draft
    return draft


def _declare_iptables_chain(
    chains: dict[tuple[str, str], _ChainDraft],
    table: str,
    line: str,
    number: int,
    source: str,
    warnings: _Warnings,
) -> None:
    """``:INPUT DROP [0:0]``: a builtin chain and its policy; ``:NAME - [0:0]``: a user chain."""
    cells = line[1:].split()
    if not cells:
        warnings.add(f"{source} line {number}: chain line without a name")
        return
    draft = _iptables_chain(chains, table, cells[0])
    policy = cells[1].lower() if len(cells) > 1 else "-"
    if draft.hook is not None and policy in ("accept", "drop"):
        draft.policy = policy


def _add_iptables_rule(
    chains: dict[tuple[str, str], _ChainDraft],
    table: str,
    line: str,
    number: int,
    backend: str,
    family: str,
    source: str,
    warnings: _Warnings,
) -> None:
    rule_text = _COUNTERS.sub("", line)
    tokens = _iptables_words(rule_text)
    if tokens is None:
        warnings.add(f"{source} line {number}: unclosed quotation: {line[:80]!r}")
        return
    if len(tokens) < 2 or tokens[0] not in ("-A", "--append"):
        warnings.add(f"{source} line {number}: not a -A rule: {line[:80]!r}")
        return
    chain = tokens[1]
    parsed = _parse_iptables_options(tokens[2:], chain, lambda name: (table, name) in chains)
    rule = Rule(backend, family, table, chain, parsed.match, parsed.verdict, parsed.target,
                rule_text, number)  # fmt: skip
    _iptables_chain(chains, table, chain).rules.append(rule)


def _iptables_words(text: str) -> list[str] | None:
    """Split like iptables-restore: iptables-save quotes a value with spaces ("a b") and
    escapes quotes and backslashes inside it (xtables_save_string()). None: unclosed quote.

    A regex, not shlex: kube-proxy hosts save tens of thousands of quoted comments.
    """
    if '"' not in text:
        return text.split()
    words: list[str] = []
    for found in _WORD.finditer(text):
        quoted, bare = found.group(1), found.group(2)
        if quoted is not None:
            words.append(_UNESCAPE.sub(r"\1", quoted))
        elif '"' in bare:
            return None
        else:
            words.append(bare)
    return words


@dataclass(frozen=True)
class _Parsed:
    match: RuleMatch
    verdict: str
    target: str | None


class _Option(NamedTuple):  # a tuple: tens of thousands per kube-proxy ruleset
    name: str
    args: tuple[str, ...]
    negated: bool
    module: str | None  # the -m module (or "target" after -j) the option belongs to


def _iptables_options(tokens: Sequence[str]) -> Iterator[_Option]:
    """Options with their arguments, negation (``! --dport 80``, old ``--dport ! 80``) and
    the module they follow, so that ``--mark`` after ``-m connmark`` is not ``-m mark``."""
    module: str | None = None
    negated = False
    i = 0
    while i < len(tokens):
        word = tokens[i]
        i += 1
        if word == _NOT:
            negated = True
            continue
        if not word.startswith("-"):
            yield _Option("", (word,), negated, module)  # a stray word: keep it as a condition
            negated = False
            continue
        if i < len(tokens) and tokens[i] == _NOT:
            negated, i = True, i + 1
        arity = _ARITY.get(word)
        if arity is None:
            end = i
            while end < len(tokens) and not _is_option_word(tokens[end]):
                end += 1
            arity = end - i if word.startswith("--") else min(end - i, 1)
        args = tuple(tokens[i : i + arity])
        i += arity
        if word in ("-m", "--match") and args:
            module = args[0]
        elif word in ("-j", "--jump", "-g", "--goto"):
            module = "target"
        yield _Option(word, args, negated, module)
        negated = False


def _is_option_word(word: str) -> bool:
    return word == _NOT or (word.startswith("-") and not word[1:].isdigit())


def _parse_iptables_options(
    tokens: Sequence[str], chain: str, declared: Callable[[str], bool]
) -> _Parsed:
    builder = _MatchBuilder()
    target: str | None = None
    goto = False
    target_opts: dict[str, str] = {}
    for option in _iptables_options(tokens):
        if option.module == "target" and option.name not in ("-j", "--jump", "-g", "--goto"):
            target_opts[option.name] = " ".join(option.args)
        elif option.name in ("-j", "--jump", "-g", "--goto"):
            target = option.args[0] if option.args else None
            goto = option.name in ("-g", "--goto")
        else:
            _apply_iptables_option(builder, option)
    if target is None:
        return _Parsed(builder.build(), "other", None)
    if goto:
        return _Parsed(builder.build(), "goto", target)
    verdict, to = _iptables_target(target, target_opts, chain, declared)
    if target in _CONNTRACK_TARGETS or verdict == "ct":
        builder.uses_conntrack = True
    return _Parsed(builder.build(), verdict, to)


def _iptables_target(
    name: str, opts: dict[str, str], chain: str, declared: Callable[[str], bool]
) -> tuple[str, str | None]:
    if name in _TERMINAL_TARGETS:
        return _TERMINAL_TARGETS[name], None
    if name == "NOTRACK" or (name == "CT" and "--notrack" in opts):
        return "notrack", None
    if name == "CT":
        return "ct", None
    nat = _nat_target_verdict(name, chain)
    if nat is not None:
        to = opts.get("--to-destination") or opts.get("--to-source") or opts.get("--to")
        ports = opts.get("--to-ports")
        return nat, to or (f":{ports}" if ports else None)
    if declared(name) or not name.isupper():
        return "jump", name  # user chains are rarely all capitals; extensions always are
    return "other", None


def _apply_iptables_option(builder: _MatchBuilder, option: _Option) -> None:
    name, args, negated = option.name, option.args, option.negated
    value = args[0] if args else ""
    shown = ("! " if negated else "") + " ".join((name, *args)).strip()
    if name in ("-m", "--match"):
        if value in CONNTRACK_MATCHES:
            builder.uses_conntrack = True
    elif name in ("-p", "--protocol") and value and not negated:
        proto = _proto_name(value)
        if proto is not None:
            builder.restrict_protos({proto})
    elif name in ("-i", "--in-interface") and value and not negated:
        builder.iif = value
    elif name in ("-o", "--out-interface") and value and not negated:
        builder.oif = value
    elif name in ("--dport", "--destination-port", "--dports", "--destination-ports"):
        _apply_iptables_ports(builder, "dport", value, negated, shown)
    elif name in ("--sport", "--source-port", "--sports", "--source-ports"):
        _apply_iptables_ports(builder, "sport", value, negated, shown)
    elif name in ("--state", "--ctstate"):
        _apply_iptables_states(builder, value, negated, shown)
    elif name in ("--comment", "-c", "--set-counters"):
        pass  # not a condition
    else:
        builder.other.append(f"-m {option.module} {shown}" if option.module else shown)
        if option.module in CONNTRACK_MATCHES:
            builder.uses_conntrack = True


def _apply_iptables_ports(
    builder: _MatchBuilder, which: str, value: str, negated: bool, shown: str
) -> None:
    ports = _parse_port_list(value)
    if ports is None:
        builder.other.append(shown)
        return
    builder.restrict_ports(which, ports.complement() if negated else ports)


def _parse_port_list(value: str) -> PortSet | None:
    """``80``, ``1024:65535``, ``:1023``, multiport ``80,443,8000:8100``; None if unreadable."""
    items: list[tuple[int, int]] = []
    for part in value.split(","):
        found = _PORT_SPEC.fullmatch(part)
        if found is None:
            return None
        single, lo, hi = found.group(3), found.group(1), found.group(2)
        span = (int(single), int(single)) if single else (int(lo or 0), int(hi or MAX_PORT))
        if max(span) > MAX_PORT:
            return None
        items.append(span)
    return PortSet.of(*items)


def _apply_iptables_states(builder: _MatchBuilder, value: str, negated: bool, shown: str) -> None:
    if not _STATE_NAMES.fullmatch(value):
        builder.uses_conntrack = True
        builder.other.append(shown)
        return
    names = {s.lower() for s in value.split(",")}
    states = frozenset(names & ALL_STATES)
    # --ctstate SNAT/DNAT are conntrack status bits, not states (xt_conntrack.c): they never
    # hold for an untracked packet, so only a negated one widens the match beyond `states`.
    if names - ALL_STATES and negated:
        builder.other.append(shown)
    builder.restrict_states(ALL_STATES - states if negated else states)


# -- nft -j list ruleset -------------------------------------------------------------------
_NFT = "nft -j list ruleset"
# nft(8) "CHAIN PRIORITY": standard names; the bridge family has its own values.
_PRIORITY_NAMES = {
    "raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100,
}  # fmt: skip
_BRIDGE_PRIORITY_NAMES = {"dstnat": -300, "filter": -200, "out": 100, "srcnat": 300}
_PRIORITY_TEXT = re.compile(r"\s*([a-z]+|-?\d{1,9})\s*(?:([+-])\s*(\d{1,9}))?\s*")
_CONNTRACK_XT_TARGETS = _CONNTRACK_TARGETS | {"CT"}
_XT_TERMINAL = {"REJECT": "reject", "DROP": "drop", "ACCEPT": "accept"}
_VERDICT_KEYS = ("accept", "drop", "return", "continue", "reject", "queue", "jump", "goto")
# Statements that change or log packets but never narrow which packets a rule selects.
_NON_CONDITIONS = frozenset({
    "counter", "log", "mangle", "set", "map", "dup", "fwd", "notrack", "meta", "tproxy",
    "secmark", "nflog",
})  # fmt: skip
_MAX_DEPTH = 12  # JSON nesting we render; deeper is shown as "..."
_BINARY_OPS = frozenset({"&", "|", "^", "<<", ">>"})

_JsonObject = dict[str, object]
_SetTable = dict[tuple[str, str, str], list[object]]


def parse_nft_json(text: str) -> Ruleset:
    """Parse ``nft -j list ruleset`` (libnftables-json(5)).

    ParseError only when the text is not the JSON nft writes at all; an object or rule we
    cannot read becomes a warning.

    >>> rs = parse_nft_json('''{"nftables": [
    ...  {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
    ...  {"table": {"family": "inet", "name": "raw", "handle": 1}},
    ...  {"chain": {"family": "inet", "table": "raw", "name": "prerouting", "handle": 1,
    ...   "type": "filter", "hook": "prerouting", "prio": -300, "policy": "accept"}},
    ...  {"rule": {"family": "inet", "table": "raw", "chain": "prerouting", "handle": 3,
    ...   "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp",
    ...   "field": "dport"}}, "right": 8983}}, {"notrack": null}]}}]}''')
    >>> rule = rs.rules()[0]
    >>> rule.text, rule.verdict, rule.line, rs.chains[0].priority
    ('tcp dport 8983 notrack', 'notrack', 3, -300)
    """
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        reason = str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
        raise ParseError(f"{_NFT}: not JSON ({reason})") from None
    items = data.get("nftables") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ParseError(f'{_NFT}: no "nftables" list at the top level')
    objects = [item for item in items if isinstance(item, dict)]
    warnings = _Warnings()
    sets = _nft_sets(objects)
    drafts: dict[tuple[str, str, str], _ChainDraft] = {}
    families: dict[tuple[str, str, str], str] = {}
    for obj in objects:
        chain = _object(obj, "chain")
        if chain is not None:
            _declare_nft_chain(chain, drafts, families, warnings)
    xt_rules = 0
    for obj in objects:
        rule = _object(obj, "rule")
        if rule is None:
            continue
        built = _nft_rule(rule, sets, warnings)
        if built is None:
            continue
        xt_rules += _is_xt_rule(built)
        key = (built.family, built.table, built.chain)
        if key not in drafts:
            drafts[key] = _ChainDraft(built.table, built.chain)
            families[key] = built.family
        drafts[key].rules.append(built)
    if xt_rules:
        warnings.add(_xt_warning(xt_rules))
    chains = tuple(draft.build("nft", families[key]) for key, draft in drafts.items())
    return Ruleset("nft", chains, warnings.result())


_XT_WARNING = f"{_NFT}: iptables-nft rules"
_XT_TEXT = re.compile(r"(?:^| )xt (?:match|target|watcher) ")


def _xt_warning(count: int) -> str:
    return (
        f"{_XT_WARNING} ({count}) hold xt expressions whose options nft does not print; "
        "iptables-save shows them in full"
    )


def _is_xt_rule(rule: Rule) -> bool:
    return rule.backend == "nft" and _XT_TEXT.search(rule.text) is not None


def _object(obj: _JsonObject, kind: str) -> _JsonObject | None:
    value = obj.get(kind)
    return value if isinstance(value, dict) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _nft_sets(objects: list[_JsonObject]) -> _SetTable:
    """Named sets and maps by (family, table, name): rules refer to them as ``@name``."""
    sets: _SetTable = {}
    for obj in objects:
        for kind in ("set", "map"):
            body = _object(obj, kind)
            if body is None:
                continue
            family, table, name = (_str(body.get(k)) for k in ("family", "table", "name"))
            elements = body.get("elem")
            if family and table and name and isinstance(elements, list):
                sets[(family, table, name)] = elements
    return sets


def _declare_nft_chain(
    chain: _JsonObject,
    drafts: dict[tuple[str, str, str], _ChainDraft],
    families: dict[tuple[str, str, str], str],
    warnings: _Warnings,
) -> None:
    family, table, name = (_str(chain.get(k)) for k in ("family", "table", "name"))
    if family is None or table is None or name is None:
        warnings.add(f"{_NFT}: chain without family, table or name: {_render(chain)[:80]}")
        return
    draft = _ChainDraft(table, name)
    hook = _str(chain.get("hook"))
    if hook is not None:
        draft.hook = hook
        draft.priority = _nft_priority(chain.get("prio"), family)
        draft.type = _str(chain.get("type")) or "filter"
        policy = _str(chain.get("policy"))
        draft.policy = policy if policy in ("accept", "drop") else "accept"
    drafts[(family, table, name)] = draft
    families[(family, table, name)] = family


def _nft_priority(value: object, family: str) -> int | None:
    """A number, or nft's named priorities with an offset ("raw - 10")."""
    number = _int(value)
    if number is not None:
        return number
    text = _str(value)
    found = _PRIORITY_TEXT.fullmatch(text) if text is not None else None
    if found is None:
        return None
    base, sign, offset = found.groups()
    names = _BRIDGE_PRIORITY_NAMES if family == "bridge" else _PRIORITY_NAMES
    start = names.get(base) if base.isalpha() else int(base)
    if start is None:
        return None
    delta = int(offset) if offset else 0
    return start - delta if sign == "-" else start + delta


def _nft_rule(rule: _JsonObject, sets: _SetTable, warnings: _Warnings) -> Rule | None:
    family, table, chain = (_str(rule.get(k)) for k in ("family", "table", "chain"))
    expr = rule.get("expr")
    if family is None or table is None or chain is None or not isinstance(expr, list):
        warnings.add(f"{_NFT}: rule without family, table, chain or expr: {_render(rule)[:80]}")
        return None
    statements = [s for s in expr if isinstance(s, dict) and len(s) == 1]
    if len(statements) != len(expr):
        warnings.add(f"{_NFT}: rule in {family} {table} {chain} has unreadable statements")
    reader = _NftRuleReader(family, table, sets)
    for statement in statements:
        reader.read(statement)
    text = " ".join(_render_statement(s) for s in statements)
    comment = _str(rule.get("comment"))
    if comment:
        text += f' comment "{comment}"'
    verdict, target = reader.verdict()
    handle = _int(rule.get("handle"))
    match = reader.match.build()
    return Rule("nft", family, table, chain, match, verdict, target, text, handle, reader.vmap)


class _NftRuleReader:
    """Reads a rule's statements in order: conditions into a match, actions into a verdict."""

    def __init__(self, family: str, table: str, sets: _SetTable) -> None:
        self.family, self.table, self.sets = family, table, sets
        self.match = _MatchBuilder()
        self.terminal: tuple[str, str | None] | None = None
        self.nat: tuple[str, str | None] | None = None
        self.notrack = False
        self.ct_action = False
        self.vmap: tuple[tuple[frozenset[str], str], ...] = ()

    def read(self, statement: _JsonObject) -> None:
        ((kind, body),) = statement.items()
        if kind == "match" and isinstance(body, dict):
            self._read_match(body)
        elif kind in _VERDICT_KEYS:
            self._read_verdict(kind, body)
        elif kind in NAT_VERDICTS:
            self.match.uses_conntrack = True
            self.nat = self.nat or (kind, _nat_to(body))
        elif kind == "notrack":
            self.notrack = True
        elif kind == "vmap" and isinstance(body, dict):
            self._read_vmap(body, statement)
        elif kind == "xt":
            self._read_xt(body)
        elif kind in ("ct helper", "ct timeout", "ct expectation"):
            self.match.uses_conntrack = self.ct_action = True
        elif kind in ("flow", "synproxy"):  # flowtable offload and synproxy work on ct entries
            self.match.uses_conntrack = True
        elif kind == "mangle" and isinstance(body, dict) and _mentions_ct(body.get("key")):
            self.match.uses_conntrack = True
            self.ct_action = self.ct_action or _ct_key(body.get("key")) in ("zone", "helper")
        elif kind not in _NON_CONDITIONS:
            # limit, quota, meter, ct count... and anything newer nft may print: the rule
            # then acts on part of the traffic only.
            self.match.other.append(_render_statement(statement))
            self.match.uses_conntrack = self.match.uses_conntrack or _mentions_ct(statement)

    def _read_verdict(self, kind: str, body: object) -> None:
        if self.terminal is not None or kind == "continue":
            return
        if kind in ("jump", "goto"):
            target = _str(body.get("target")) if isinstance(body, dict) else None
            self.terminal = (kind, target)
        else:
            self.terminal = ("other" if kind == "queue" else kind, None)

    def _read_match(self, body: _JsonObject) -> None:
        op = _str(body.get("op")) or "=="
        left, right = body.get("left"), body.get("right")
        shown = _render_match(body)
        if _mentions_ct(left):
            self.match.uses_conntrack = True
        if not self._read_payload(left, op, right) and not self._read_meta_or_ct(left, op, right):
            self.match.other.append(shown)

    def _read_payload(self, left: object, op: str, right: object) -> bool:
        """``tcp dport 80``, ``th sport 53``, ``ip protocol tcp``; False if not one of these."""
        payload = _object(left, "payload") if isinstance(left, dict) else None
        if payload is None:
            return False
        proto, fld = _str(payload.get("protocol")), _str(payload.get("field"))
        if proto in PORT_PROTOS or proto == "th":
            if proto != "th":  # nft adds an l4proto dependency, also for "!="
                self.match.restrict_protos({proto})
            if fld in ("dport", "sport"):
                ports = self._ports(op, right)
                if ports is not None:
                    self.match.restrict_ports(fld, ports)
                    return True
            return False
        if (proto, fld) in (("ip", "protocol"), ("ip6", "nexthdr")):
            return self._restrict_protos(op, right)
        if proto in ("icmp", "icmpv6"):
            self.match.restrict_protos({_PROTO_ALIASES.get(proto, proto)})
        return False

    def _read_meta_or_ct(self, left: object, op: str, right: object) -> bool:
        meta = _object(left, "meta") if isinstance(left, dict) else None
        key = _str(meta.get("key")) if meta is not None else None
        if key == "l4proto":
            return self._restrict_protos(op, right)
        if key in ("iifname", "iif", "oifname", "oif"):
            name = _str(right)
            if op != "==" or name is None or name.startswith("@"):
                return False
            if key.startswith("i"):
                self.match.iif = name
            else:
                self.match.oif = name
            return True
        if _ct_key(left) == "state":
            states = self._states(right)
            if states is None or op not in ("==", "in", "!="):
                return False
            self.match.restrict_states(ALL_STATES - states if op == "!=" else states)
            return True
        return False

    def _restrict_protos(self, op: str, right: object) -> bool:
        names = self._words(right)
        if names is None or op not in ("==", "in"):
            return False
        protos = {_proto_name(n) for n in names}
        if None not in protos:
            self.match.restrict_protos(p for p in protos if p is not None)
        return True

    def _elements(self, right: object) -> list[object] | None:
        """The values a right-hand side stands for: one value, an anonymous or named set."""
        if isinstance(right, str) and right.startswith("@"):
            return self.sets.get((self.family, self.table, right[1:]))
        inner = right.get("set") if isinstance(right, dict) and len(right) == 1 else None
        if isinstance(inner, list):
            return inner
        if isinstance(right, list):  # ct state flags: ["established", "related"]
            return right
        return [right]

    def _words(self, right: object) -> set[str] | None:
        elements = self._elements(right)
        if elements is None:
            return None
        words = {_str(_element_value(e)) for e in elements}
        return None if None in words else {w for w in words if w is not None}

    def _states(self, right: object) -> frozenset[str] | None:
        words = self._words(right)
        if words is None or not words <= ALL_STATES:
            return None
        return frozenset(words)

    def _ports(self, op: str, right: object) -> PortSet | None:
        if op in ("<", "<=", ">", ">="):
            bound = _int(right)
            if bound is None or not 0 <= bound <= MAX_PORT:
                return None
            lo = bound + 1 if op == ">" else bound if op == ">=" else 0
            hi = bound - 1 if op == "<" else bound if op == "<=" else MAX_PORT
            return PortSet.of((lo, hi)) if lo <= hi else PortSet(())
        elements = self._elements(right)
        if elements is None or op not in ("==", "!=", "in"):
            return None
        spans = [_port_span(_element_value(e)) for e in elements]
        if any(span is None for span in spans):
            return None
        ports = PortSet.of(*(span for span in spans if span is not None))
        return ports.complement() if op == "!=" else ports

    def _read_vmap(self, body: _JsonObject, statement: _JsonObject) -> None:
        self.terminal = self.terminal or ("vmap", None)
        key = body.get("key")
        if _mentions_ct(key):
            self.match.uses_conntrack = True
        pairs = self._elements(body.get("data"))
        grouped = _group_vmap(pairs) if _ct_key(key) == "state" and pairs is not None else None
        if grouped is None:
            self.match.other.append(_render_statement(statement))
        else:
            self.vmap = grouped

    def _read_xt(self, body: object) -> None:
        """iptables-nft rules: nft prints only the extension's name (``xt target CT``)."""
        kind = _str(body.get("type")) if isinstance(body, dict) else None
        name = (_str(body.get("name")) if isinstance(body, dict) else None) or "?"
        if kind == "target":
            self._read_xt_target(name)
            return
        if name != "comment":  # a comment is not a condition
            self.match.other.append(f"xt {kind or 'match'} {name}")
        if name in CONNTRACK_MATCHES:
            self.match.uses_conntrack = True

    def _read_xt_target(self, name: str) -> None:
        if name in _CONNTRACK_XT_TARGETS:
            self.match.uses_conntrack = True
        nat = _nat_target_verdict(name, "")
        if nat is not None:
            self.nat = self.nat or (nat, None)
        elif name in _XT_TERMINAL:
            self.terminal = self.terminal or (_XT_TERMINAL[name], None)
        elif name == "CT":
            # NOTRACK, CT --notrack, --helper and --zone all print as "xt target CT"
            self.ct_action = True
            self.match.other.append("xt target CT")

    def verdict(self) -> tuple[str, str | None]:
        # NAT statements end the chain (nft(8)); notrack does not, but it is the rule's point.
        if self.nat is not None:
            return self.nat
        if self.notrack:
            return "notrack", None
        if self.terminal is not None:
            return self.terminal
        return ("ct", None) if self.ct_action else ("other", None)


def _element_value(element: object) -> object:
    """Set elements may carry timeouts or comments: ``{"elem": {"val": 80, ...}}``."""
    inner = element.get("elem") if isinstance(element, dict) and len(element) == 1 else None
    return inner.get("val") if isinstance(inner, dict) else element


def _port_span(value: object) -> tuple[int, int] | None:
    number = _int(value)
    if number is not None:
        return (number, number) if 0 <= number <= MAX_PORT else None
    bounds = value.get("range") if isinstance(value, dict) and len(value) == 1 else None
    if isinstance(bounds, list) and len(bounds) == 2:
        lo, hi = _int(bounds[0]), _int(bounds[1])
        if lo is not None and hi is not None and min(lo, hi) >= 0 and max(lo, hi) <= MAX_PORT:
            return (lo, hi)
    return None


def _group_vmap(pairs: list[object]) -> tuple[tuple[frozenset[str], str], ...] | None:
    """``[["established", {"accept": null}], ...]`` as (states, verdict), one pair per verdict."""
    by_verdict: dict[str, set[str]] = {}
    for pair in pairs:
        if not isinstance(pair, list) or len(pair) != 2:
            return None
        keys = pair[0] if isinstance(pair[0], list) else [pair[0]]
        verdict = _vmap_verdict(pair[1])
        if verdict is None or not all(isinstance(k, str) and k in ALL_STATES for k in keys):
            return None
        by_verdict.setdefault(verdict, set()).update(str(k) for k in keys)
    return tuple((frozenset(states), verdict) for verdict, states in by_verdict.items())


def _vmap_verdict(value: object) -> str | None:
    if not isinstance(value, dict) or len(value) != 1:
        return None
    ((kind, body),) = value.items()
    if kind in ("jump", "goto"):
        target = _str(body.get("target")) if isinstance(body, dict) else None
        return f"{kind} {target}" if target else None
    return kind if kind in _VERDICT_KEYS else None


def _mentions_ct(value: object, depth: int = 0) -> bool:
    if depth > _MAX_DEPTH:
        return False
    if isinstance(value, dict):
        return any(
            k == "ct" or k.startswith("ct ") or _mentions_ct(v, depth + 1) for k, v in value.items()
        )
    if isinstance(value, list):
        return any(_mentions_ct(v, depth + 1) for v in value)
    return False


def _ct_key(value: object) -> str | None:
    ct = _object(value, "ct") if isinstance(value, dict) else None
    return _str(ct.get("key")) if ct is not None else None


def _nat_to(body: object) -> str | None:
    """``{"addr": "10.0.0.5", "port": 80}`` as ``10.0.0.5:80``."""
    if not isinstance(body, dict):
        return None
    addr, port = body.get("addr"), body.get("port")
    shown_addr = "" if addr is None else _render(addr)
    shown_port = "" if port is None else f":{_render(port)}"
    if ":" in shown_addr and shown_port:
        shown_addr = f"[{shown_addr}]"  # an IPv6 address before a port, as nft writes it
    return (shown_addr + shown_port) or None


# -- rendering nft JSON as nft syntax (evidence only; never parsed back) ------------------
def _render_statement(statement: _JsonObject) -> str:
    ((kind, body),) = statement.items()
    if kind == "match" and isinstance(body, dict):
        return _render_match(body)
    if kind in ("jump", "goto") and isinstance(body, dict):
        return f"{kind} {_render(body.get('target'))}"
    if body is None or kind == "counter":
        return kind
    if kind in NAT_VERDICTS:
        to = _nat_to(body)
        return f"{kind} to {to}" if to else kind
    if kind == "vmap" and isinstance(body, dict):
        return f"{_render(body.get('key'))} vmap {_render(body.get('data'))}"
    if kind == "xt" and isinstance(body, dict):
        return f"xt {_render(body.get('type'))} {_render(body.get('name'))}"
    if kind == "mangle" and isinstance(body, dict):
        return f"{_render(body.get('key'))} set {_render(body.get('value'))}"
    if kind == "ct helper" and isinstance(body, str):
        return f'ct helper set "{body}"'
    if kind == "reject" and isinstance(body, dict):
        return " ".join(["reject with", *(_render(v) for v in body.values())])
    return f"{kind} {_render(body)}"


def _render_match(body: _JsonObject) -> str:
    op = _str(body.get("op")) or "=="
    shown_op = "" if op in ("==", "in") else f"{op} "
    left, right = body.get("left"), body.get("right")
    shown_right = _render(right)
    meta = _object(left, "meta") if isinstance(left, dict) else None
    if meta is not None and meta.get("key") in ("iifname", "oifname") and isinstance(right, str):
        shown_right = f'"{right}"'  # as nft prints interface names
    return f"{_render(left)} {shown_op}{shown_right}"


def _render(value: object, depth: int = 0) -> str:
    if depth > _MAX_DEPTH:
        return "..."
    if isinstance(value, str):
        return f'"{value}"' if " " in value else value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return ",".join(_render(v, depth + 1) for v in value)
    if not isinstance(value, dict):
        return "?"
    return _render_object(value, depth)


def _render_object(value: _JsonObject, depth: int) -> str:
    if len(value) != 1:
        return " ".join(f"{k} {_render(v, depth + 1)}" for k, v in value.items())
    ((kind, body),) = value.items()
    inner = body if isinstance(body, dict) else {}
    if kind in _BINARY_OPS and isinstance(body, list) and len(body) == 2:
        return f"{_render(body[0], depth + 1)} {kind} {_render(body[1], depth + 1)}"
    if kind == "payload" and "protocol" in inner:
        return f"{_render(inner.get('protocol'), depth + 1)} {_render(inner.get('field'))}"
    if kind in ("meta", "ct") and "key" in inner:
        prefix = "" if inner.get("key") in ("iifname", "oifname", "iif", "oif") else f"{kind} "
        return prefix + _render(inner.get("key"), depth + 1)
    if kind == "set" and isinstance(body, list):
        return "{ " + ", ".join(_render_element(e, depth + 1) for e in body) + " }"
    if kind == "range" and isinstance(body, list) and len(body) == 2:
        return f"{_render(body[0], depth + 1)}-{_render(body[1], depth + 1)}"
    if kind == "prefix" and "addr" in inner:
        return f"{_render(inner.get('addr'), depth + 1)}/{_render(inner.get('len'))}"
    if body is None:
        return kind
    return f"{kind} {_render(body, depth + 1)}"


def _render_element(element: object, depth: int) -> str:
    if isinstance(element, list) and len(element) == 2:  # a map entry: key : value
        return f"{_render(element[0], depth + 1)} : {_render(element[1], depth + 1)}"
    return _render(element, depth)


# -- combining what was read ---------------------------------------------------------------
# iptables-nft keeps its rules in nft tables of these names (iptables-nft(8)).
_IPTABLES_NFT_TABLES = frozenset({"filter", "nat", "raw", "mangle", "security"})


def merge_rulesets(*rulesets: Ruleset | Missing) -> Ruleset | Missing:
    """Combine every readable ruleset; Missing only when none could be read.

    iptables-nft stores its rules in nft tables (ip/ip6 ``filter``, ``nat``, ``raw``,
    ``mangle``, ``security``), so ``nft -j`` shows them again as opaque ``xt`` expressions.
    Such an nft table is left out when the ``-save`` output of its family has the same table
    with every chain of it: the same rules, better read from iptables-save. A native nft
    table that only shares the name keeps its own rules (its chains differ).
    """
    readable = [rs for rs in rulesets if isinstance(rs, Ruleset)]
    reasons = tuple(rs.reason for rs in rulesets if isinstance(rs, Missing))
    if not readable:
        return Missing("; ".join(reasons) if reasons else "no ruleset was read")
    saved: dict[tuple[str, str], set[str]] = {}
    for rs in readable:
        for chain in rs.chains:
            if chain.backend in ("iptables", "ip6tables"):
                saved.setdefault((chain.family, chain.table), set()).add(chain.name)
    nft_tables: dict[tuple[str, str], set[str]] = {}
    for rs in readable:
        for chain in rs.chains:
            if chain.backend == "nft":
                nft_tables.setdefault((chain.family, chain.table), set()).add(chain.name)
    duplicated = {
        key
        for key, names in nft_tables.items()
        if key[1] in _IPTABLES_NFT_TABLES and key in saved and names <= saved[key]
    }
    chains = tuple(
        chain
        for rs in readable
        for chain in rs.chains
        if chain.backend != "nft" or (chain.family, chain.table) not in duplicated
    )
    # The xt warning is recounted: the iptables-nft tables it was about may be gone now.
    warnings = [w for rs in readable for w in rs.warnings if not w.startswith(_XT_WARNING)]
    xt_rules = sum(1 for chain in chains for rule in chain.rules if _is_xt_rule(rule))
    if xt_rules:
        warnings.append(_xt_warning(xt_rules))
    missing = tuple(m for rs in readable for m in rs.missing) + reasons
    return Ruleset("merged", chains, tuple(warnings), missing)


def read_ruleset(commands: Commands) -> Ruleset | Missing:
    """iptables-save, ip6tables-save and nft rulesets, merged (live or captured outputs)."""
    parts: list[Ruleset | Missing] = []
    for name, backend in (("iptables-save", "iptables"), ("ip6tables-save", "ip6tables")):
        text = commands.output(name)
        parts.append(text if isinstance(text, Missing) else parse_iptables_save(text, backend))
    nft = commands.output("nft-json")
    if isinstance(nft, Missing):
        parts.append(nft)
    else:
        try:
            parts.append(parse_nft_json(nft))
        except ParseError as exc:
            parts.append(Missing(str(exc)))
    return merge_rulesets(*parts)


def iptables_variant(text: str) -> str | None:
    """ "nft" or "legacy", from ``iptables -V`` or the first line of ``iptables-save``.

    Before 1.8 only the legacy backend existed, and its tools name no variant.

    >>> iptables_variant("# Generated by iptables-save v1.8.9 (nf_tables) on Tue Mar 12")
    'nft'
    >>> iptables_variant("iptables v1.8.9 (legacy)"), iptables_variant("iptables v1.4.7")
    ('legacy', 'legacy')
    """
    first = text.strip().splitlines()[0] if text.strip() else ""
    if "(nf_tables)" in first:
        return "nft"
    if "legacy" in first or re.search(r"\bv1\.[0-7]\.", first):
        return "legacy"
    return None
