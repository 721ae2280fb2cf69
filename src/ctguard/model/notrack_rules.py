"""The firewall rules ``ctguard notrack`` adds, in nft and iptables syntax (pure).

Every rule carries the comment ``ctguard``, so ``--remove`` finds exactly ours::

    nft:      tcp dport 8983 notrack comment "ctguard"                  (table inet ctguard)
              meta nfproto ipv4 tcp dport 8983 notrack comment "ctguard" (IPv4 only)
              tcp dport 8983 ct state untracked accept comment "ctguard" (the user's chain)
    iptables: -A PREROUTING -p tcp -m tcp --dport 8983 -m comment --comment ctguard -j CT --notrack
              -A INPUT -p tcp -m tcp --dport 8983 -m conntrack --ctstate UNTRACKED
                 -m comment --comment ctguard -j ACCEPT

The notrack rules of the nft backend live in ctguard's own table ``inet ctguard`` (chains at
priority raw, -300, before conntrack's -200); the accepts go first in each user chain that
would otherwise drop the untracked packets, since in nftables an accept in one table does
not spare a packet another table's drop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ctguard.model.notrack_effect import Loss
from ctguard.sources.ruleset import Chain, PortSet, Rule, RuleMatch, describe

TAG = "ctguard"
OWN_FAMILY = "inet"  # ctguard's own nft table, which holds its notrack chains
OWN_TABLE = "ctguard"
NOTRACK = "notrack"
ACCEPT = "accept"
RETURN = "return"  # an exemption in front of `notrack --all`'s catch-all notrack
RAW_PRIORITY = -300
IPTABLES_RAW_CHAINS = {"prerouting": "PREROUTING", "output": "OUTPUT"}


def is_own(family: str, table: str) -> bool:
    return (family, table) == (OWN_FAMILY, OWN_TABLE)


@dataclass(frozen=True)
class OurRule:
    """One rule ctguard adds (or found already added)."""

    backend: str  # "nft" | "iptables" | "ip6tables"
    family: str  # nft: inet/ip/ip6; iptables: ip, ip6tables: ip6
    table: str
    chain: str
    hook: str  # prerouting | output (notrack) ; input | output (accept)
    action: str  # NOTRACK | ACCEPT | RETURN
    proto: str | None  # tcp | udp; None: every packet (notrack --all)
    dports: PortSet | None = None
    sports: PortSet | None = None
    # Conditions copied from the accept this one stands beside (``beside``): an untracked
    # accept must never admit more than the rule that admitted these packets before.
    iif: str | None = None
    oif: str | None = None
    saddrs: frozenset[str] | None = None
    daddrs: frozenset[str] | None = None
    # nft rules in an inet table: "ip" (``meta nfproto ipv4``) when only IPv4 is untracked,
    # because the IPv6 filter was not read (or cannot get its accept); None: both families
    nfproto: str | None = None
    # Where it goes in a user chain: None, first; else right before the rule it mirrors
    # (iptables: that rule's 1-based index in its chain; nft: its handle); ``end``: appended
    # (an accept standing in for the chain's policy accept). See ``placed``.
    at: int | None = None
    end: bool = False

    @property
    def match(self) -> RuleMatch:
        protos = None if self.proto is None else frozenset({self.proto})
        states = frozenset({"untracked"}) if self.action == ACCEPT else None
        return RuleMatch(protos, self.dports, self.sports, states, self.iif, self.oif,
                         self.saddrs, self.daddrs, nfproto=self.nfproto)  # fmt: skip

    def as_rule(self) -> Rule:
        """The rule as the ruleset model holds it, to check the ruleset it would make."""
        return Rule(self.backend, self.family, self.table, self.chain, self.match,
                    self.action, None, self.text(), None)  # fmt: skip

    def text(self) -> str:
        """The rule as its tool lists it (nft statement, or iptables-save line)."""
        return _nft_text(self) if self.backend == "nft" else _iptables_text(self)

    def shown(self) -> str:
        """The command an operator would type to add it."""
        if self.backend == "nft":
            own = is_own(self.family, self.table) and self.action != RETURN
            verb = "add" if own or self.end else "insert"
            where = f" position {self.at}" if self.at is not None and not self.end else ""
            return f"nft {verb} rule {self.family} {self.table} {self.chain}{where} {self.text()}"
        spec = self.text().split(" ", 2)[2]
        if self.end:
            return f"{self.backend} -t {self.table} -A {self.chain} {spec}"
        return f"{self.backend} -t {self.table} -I {self.chain} {self.at or 1} {spec}"


def _nft_ports(ports: PortSet) -> str:
    text = str(ports)
    return text if len(ports.ranges) == 1 else "{ " + text.replace(",", ", ") + " }"


def _narrowed(ours: PortSet | None, theirs: PortSet | None) -> PortSet | None:
    return theirs if ours is None else ours if theirs is None else ours.intersection(theirs)


def beside(accept: Rule, ours: OurRule) -> OurRule | str | None:
    """``ours`` narrowed to the conditions of ``accept`` (the rule that lets these packets in
    only from some addresses or interfaces, and only for the ports both name; None when they
    share no protocol or port), or why no such rule can be written: a condition
    the model does not hold (a mark, a negation) would be lost in the copy, and a copy without
    it admits more than ``accept`` does.

    >>> from ctguard.sources.ruleset import parse_nft_json
    >>> ours = OurRule("nft", "inet", "filter", "input", "input", ACCEPT, "tcp", PortSet.of(80))
    >>> allow = Rule("nft", "inet", "filter", "input",
    ...              RuleMatch(saddrs=frozenset({"ip6 @allowed_ipv6"})), "accept", None, "", 1)
    >>> beside(allow, ours).text()
    'ip6 saddr @allowed_ipv6 tcp dport 80 ct state untracked accept comment "ctguard"'
    """
    m = accept.match
    if m.other:
        return f"it also matches {', '.join(m.other)}, which ctguard cannot copy faithfully"
    if m.protos is not None and ours.proto not in m.protos:
        return None  # says nothing about this protocol
    dports, sports = _narrowed(ours.dports, m.dports), _narrowed(ours.sports, m.sports)
    if any(ports is not None and not ports.ranges for ports in (dports, sports)):
        return None  # none of these ports
    if m.nfproto is not None and ours.nfproto not in (None, m.nfproto):
        return None  # the other family only
    narrowed = replace(ours, dports=dports, sports=sports, iif=m.iif, oif=m.oif,
                       saddrs=m.saddrs, daddrs=m.daddrs,
                       nfproto=m.nfproto or ours.nfproto)  # fmt: skip
    for addrs in (m.saddrs, m.daddrs):
        if addrs and _address_family(addrs, ours.backend) is None:
            return f"its addresses {', '.join(sorted(addrs))} mix families or need an nft set"
    return narrowed


def _address_family(addrs: frozenset[str], backend: str) -> str | None:
    """ "ip" or "ip6" when every address is of that one family (and, for iptables, a CIDR)."""
    families = set()
    for addr in addrs:
        family, _, name = addr.partition(" ")
        if name:  # an nft set by name
            if backend != "nft":
                return None
            families.add(family)
        else:
            families.add("ip6" if ":" in addr else "ip")
    return families.pop() if len(families) == 1 else None


def _nft_addresses(which: str, addrs: frozenset[str] | None) -> list[str]:
    if not addrs:
        return []
    family = _address_family(addrs, "nft")
    values = sorted(a.partition(" ")[2] or a for a in addrs)
    shown = values[0] if len(values) == 1 else "{ " + ", ".join(values) + " }"
    return [f"{family} {which} {shown}"]


NFPROTO = {"ip": "ipv4", "ip6": "ipv6"}  # nft family -> ``meta nfproto`` value


def _nft_text(rule: OurRule) -> str:
    parts: list[str] = []
    if rule.nfproto is not None:
        parts.append(f"meta nfproto {NFPROTO[rule.nfproto]}")
    if rule.iif is not None:
        parts.append(
            f'iifname "{rule.iif.rstrip("+*")}*"'
            if rule.iif[-1:] in "+*"
            else f'iifname "{rule.iif}"'
        )
    if rule.oif is not None:
        parts.append(
            f'oifname "{rule.oif.rstrip("+*")}*"'
            if rule.oif[-1:] in "+*"
            else f'oifname "{rule.oif}"'
        )
    parts += _nft_addresses("saddr", rule.saddrs) + _nft_addresses("daddr", rule.daddrs)
    if rule.proto is not None:
        if rule.dports is None and rule.sports is None:
            parts.append(f"meta l4proto {rule.proto}")
        if rule.dports is not None:
            parts.append(f"{rule.proto} dport {_nft_ports(rule.dports)}")
        if rule.sports is not None:
            parts.append(f"{rule.proto} sport {_nft_ports(rule.sports)}")
    if rule.action == ACCEPT:
        parts.append("ct state untracked accept")
    else:
        parts.append(rule.action)
    parts.append(f'comment "{TAG}"')
    return " ".join(parts)


def _iptables_port_matches(proto: str, dports: PortSet | None, sports: PortSet | None) -> str:
    """Port conditions as iptables-save prints them, so a ``-D`` of this text and a
    comparison with ``iptables-save`` both find the rule: single ports or ranges in one
    ``-m tcp --sport S --dport D``, lists in ``-m multiport --dports``/``--sports``.

    >>> _iptables_port_matches("udp", PortSet.of((32768, 60999)), PortSet.of(53))
    '-m udp --sport 53 --dport 32768:60999'
    >>> _iptables_port_matches("tcp", PortSet.of(5, 7), PortSet.of(8983))
    '-m tcp --sport 8983 -m multiport --dports 5,7'
    """
    single: list[str] = []
    multi: list[str] = []
    for name, ports in (("sport", sports), ("dport", dports)):
        if ports is not None:
            text = str(ports).replace("-", ":")
            (multi if "," in text else single).append(f"--{name} {text}")
    parts = [f"-m {proto} " + " ".join(single)] if single else []
    multi.sort(key=lambda option: not option.startswith("--dport"))  # dports, then sports
    parts += [f"-m multiport {option.replace('port ', 'ports ', 1)}" for option in multi]
    return " ".join(parts)


def _iptables_text(rule: OurRule) -> str:
    parts = [f"-A {rule.chain}"]
    # iptables-save's order: addresses, interfaces, protocol, then matches
    if rule.saddrs:
        parts.append("-s " + ",".join(sorted(rule.saddrs)))
    if rule.daddrs:
        parts.append("-d " + ",".join(sorted(rule.daddrs)))
    if rule.iif is not None:
        parts.append(f"-i {rule.iif.replace('*', '+')}")
    if rule.oif is not None:
        parts.append(f"-o {rule.oif.replace('*', '+')}")
    if rule.proto is not None:
        parts.append(f"-p {rule.proto}")
        ports = _iptables_port_matches(rule.proto, rule.dports, rule.sports)
        if ports:
            parts.append(ports)
    if rule.action == ACCEPT:
        parts.append("-m conntrack --ctstate UNTRACKED")
    parts.append(f"-m comment --comment {TAG}")
    target = {ACCEPT: "ACCEPT", NOTRACK: "CT --notrack", RETURN: "RETURN"}[rule.action]
    parts.append(f"-j {target}")
    return " ".join(parts)


def is_ours(rule: Rule) -> bool:
    """A rule ctguard added: tagged with the comment ``ctguard``."""
    if rule.backend == "nft":
        return rule.text.endswith(f'comment "{TAG}"')
    words = rule.text.split()
    return any(
        words[i] == "--comment" and words[i + 1].strip('"') == TAG for i in range(len(words) - 1)
    )


def same_rule(ours: OurRule, rule: Rule) -> bool:
    """``rule`` (read back from the host) is ``ours``: same place, tag and selection."""
    wanted = ours.match
    return (
        is_ours(rule)
        and (rule.backend, rule.family, rule.table, rule.chain)
        == (ours.backend, ours.family, ours.table, ours.chain)
        and rule.verdict == ours.action
        and rule.match.protos == wanted.protos
        and rule.match.dports == wanted.dports
        and rule.match.sports == wanted.sports
        and rule.match.ct_states == wanted.ct_states
        and (rule.match.saddrs, rule.match.daddrs) == (wanted.saddrs, wanted.daddrs)
        and (rule.match.iif, rule.match.oif) == (wanted.iif, wanted.oif)
        and rule.match.nfproto == wanted.nfproto
    )


REPLY_STATES = frozenset({"established", "related"})


def reply_only(path: tuple[Rule, ...]) -> Rule | None:
    """The rule on the way to an accept (the jumps, then the accept) that limits it to
    ESTABLISHED and/or RELATED packets, or None. Untracked packets cannot be told apart from
    new ones, so an untracked accept standing in for such an accept would admit unsolicited
    packets that the tracked firewall let through only as replies."""
    for rule in path:
        states = rule.match.ct_states
        if states is not None and states <= REPLY_STATES:
            return rule
    return None


def placed(chain: Chain, path: tuple[Rule, ...], ours: OurRule) -> OurRule | str:
    """``ours`` placed right before the first rule of ``path`` in ``chain`` (the accept it
    mirrors, or the jump that leads to it), so untracked packets meet every rule tracked ones
    met before it (a drop of some sources ahead of the accept keeps dropping them); appended
    when ``path`` is () (the chain's policy accepted them). Or why it cannot be placed: an
    nft rule whose handle the capture lacks, a rule not found in the chain."""
    if not path:
        return replace(ours, at=None, end=True)
    first = path[0]
    index = next((i for i, rule in enumerate(chain.rules) if rule is first), None)
    if index is None:
        index = next((i for i, rule in enumerate(chain.rules) if rule == first), None)
    if index is None:
        return f"{describe(first)} is not a rule of {chain.label}"
    if chain.backend == "nft":
        if first.line is None:
            return (
                f"the handle of {describe(first)} is unknown (list the chain with nft -a), so"
                " ctguard cannot place the accept right before it"
            )
        return replace(ours, at=first.line, end=False)
    return replace(ours, at=index + 1, end=False)


def untracked_accept(chain: Chain, loss: Loss, ours: OurRule) -> OurRule | str | None:
    """The untracked accept that gives back what ``loss`` took away (one home for CT501's
    fix and ``ctguard notrack``'s): ``ours`` (a protocol and ports) under the conditions of
    the accept that took the packets while tracked and of the jumps that led to it (the
    loss's region: addresses, interfaces), never wider, placed right before that accept or
    its jump. None when they share no packet; or why no rule can be written: an accept of
    replies only, a condition ctguard cannot copy faithfully, a place it cannot name."""
    accept = describe(loss.accept[-1]) if loss.accept else "its policy"
    replies = reply_only(loss.accept)
    if replies is not None:
        via = "" if replies is loss.accept[-1] else f" (through {describe(replies)})"
        return (
            f"{accept}{via} took them only as replies (ESTABLISHED/RELATED); untracked, they"
            " cannot be told apart from new packets, so an untracked accept would admit"
            " unsolicited ones. Keep them tracked (narrow the NOTRACK), or open the port on"
            " purpose"
        )
    other = tuple(o for rule in loss.accept for o in rule.match.other)
    r = loss.region
    region = Rule(chain.backend, chain.family, chain.table, chain.name,
                  RuleMatch(r.protos, r.dports, r.sports, None, r.iif, r.oif, r.saddrs,
                            r.daddrs, other), "accept", None, "", None)  # fmt: skip
    bare = replace(ours, iif=None, oif=None, saddrs=None, daddrs=None)
    narrowed = beside(region, bare)
    if isinstance(narrowed, str):
        return (
            f"{accept}: {narrowed}; add an untracked accept with exactly its conditions beside it"
        )
    if narrowed is None:
        return None
    where = placed(chain, loss.accept, narrowed)
    if isinstance(where, str):
        return (
            f"{where}; add an untracked accept with exactly the conditions of {accept}"
            " right before it"
        )
    return where


_INSERT_AT = re.compile(r"^(ip6?tables -t \S+ -I \S+) (\d+) ")


def paste_order(commands: list[str]) -> list[str]:
    """The commands in an order that can be pasted as shown: ``-I CHAIN N`` numbers rules as
    the chain was read, so within a chain the highest N goes first (an insert then never
    shifts a rule a later command counts on); other commands keep their place."""
    slots = [i for i, c in enumerate(commands) if _INSERT_AT.match(c)]

    def key(command: str) -> tuple[str, int]:
        match = _INSERT_AT.match(command)
        assert match is not None
        return (match.group(1), -int(match.group(2)))

    ordered = sorted((commands[i] for i in slots), key=key)
    out = list(commands)
    for slot, command in zip(slots, ordered, strict=True):
        out[slot] = command
    return out
