"""One rule of ``nft -j list ruleset`` as a ``Rule``: its statements read in order,
conditions into a match and actions into a verdict (``parse_nft_rule``)."""

from __future__ import annotations

from ctguard.sources.ruleset.drafts import MatchBuilder, Warnings
from ctguard.sources.ruleset.model import (
    ALL_STATES,
    MAX_PORT,
    NAT_VERDICTS,
    PORT_PROTOS,
    PortSet,
    Rule,
    address_of,
)
from ctguard.sources.ruleset.names import (
    CONNTRACK_MATCHES,
    CONNTRACK_TARGETS,
    PROTO_ALIASES,
    nat_target_verdict,
    proto_name,
)
from ctguard.sources.ruleset.nft_values import (
    MAX_DEPTH,
    JsonObject,
    json_int,
    json_object,
    json_str,
    nat_to,
    render,
    render_match,
    render_statement,
)

NFT_COMMAND = "nft -j list ruleset"  # how warnings name the input

_CONNTRACK_XT_TARGETS = CONNTRACK_TARGETS | {"CT"}
_XT_TERMINAL = {"REJECT": "reject", "DROP": "drop", "ACCEPT": "accept"}
_VERDICT_KEYS = ("accept", "drop", "return", "continue", "reject", "queue", "jump", "goto")
# Statements that change or log packets but never narrow which packets a rule selects.
_NON_CONDITIONS = frozenset({
    "counter", "log", "mangle", "set", "map", "dup", "fwd", "notrack", "meta", "tproxy",
    "secmark", "nflog",
})  # fmt: skip

# ``meta nfproto`` values and the nft family whose packets they select
_NFPROTO_FAMILIES = {"ipv4": "ip", "ipv6": "ip6"}

SetTable = dict[tuple[str, str, str], list[object]]


def parse_nft_rule(rule: JsonObject, sets: SetTable, warnings: Warnings) -> Rule | None:
    """The ``rule`` object's body; None (and a warning) without family, table, chain or expr.

    >>> rule = parse_nft_rule({"family": "inet", "table": "filter", "chain": "input",
    ...     "handle": 7, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}},
    ...     "right": ["established", "related"]}}, {"accept": None}]}, {}, Warnings())
    >>> rule.text, rule.verdict, sorted(rule.match.ct_states), rule.line
    ('ct state established,related accept', 'accept', ['established', 'related'], 7)
    """
    family, table, chain = (json_str(rule.get(k)) for k in ("family", "table", "chain"))
    expr = rule.get("expr")
    if family is None or table is None or chain is None or not isinstance(expr, list):
        warnings.add(
            f"{NFT_COMMAND}: rule without family, table, chain or expr: {render(rule)[:80]}"
        )
        return None
    statements = [s for s in expr if isinstance(s, dict) and len(s) == 1]
    if len(statements) != len(expr):
        warnings.add(f"{NFT_COMMAND}: rule in {family} {table} {chain} has unreadable statements")
    reader = _NftRuleReader(family, table, sets)
    for statement in statements:
        reader.read(statement)
    text = " ".join(render_statement(s) for s in statements)
    comment = json_str(rule.get("comment"))
    if comment:
        text += f' comment "{comment}"'
    verdict, target = reader.verdict()
    handle = json_int(rule.get("handle"))
    match = reader.match.build()
    return Rule("nft", family, table, chain, match, verdict, target, text, handle, reader.vmap)


class _NftRuleReader:
    """Reads a rule's statements in order: conditions into a match, actions into a verdict."""

    def __init__(self, family: str, table: str, sets: SetTable) -> None:
        self.family, self.table, self.sets = family, table, sets
        self.match = MatchBuilder()
        self.terminal: tuple[str, str | None] | None = None
        self.nat: tuple[str, str | None] | None = None
        self.notrack = False
        self.ct_action = False
        self.vmap: tuple[tuple[frozenset[str], str], ...] = ()

    def read(self, statement: JsonObject) -> None:
        ((kind, body),) = statement.items()
        if kind == "match" and isinstance(body, dict):
            self._read_match(body)
        elif kind in _VERDICT_KEYS:
            self._read_verdict(kind, body)
        elif kind in NAT_VERDICTS:
            self.match.uses_conntrack = True
            self.nat = self.nat or (kind, nat_to(body))
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
            self.match.other.append(render_statement(statement))
            self.match.uses_conntrack = self.match.uses_conntrack or _mentions_ct(statement)

    def _read_verdict(self, kind: str, body: object) -> None:
        if self.terminal is not None or kind == "continue":
            return
        if kind in ("jump", "goto"):
            target = json_str(body.get("target")) if isinstance(body, dict) else None
            self.terminal = (kind, target)
        else:
            self.terminal = ("other" if kind == "queue" else kind, None)

    def _read_match(self, body: JsonObject) -> None:
        op = json_str(body.get("op")) or "=="
        left, right = body.get("left"), body.get("right")
        shown = render_match(body)
        if _mentions_ct(left):
            self.match.uses_conntrack = True
        if not self._read_payload(left, op, right) and not self._read_meta_or_ct(left, op, right):
            self.match.other.append(shown)

    def _read_payload(self, left: object, op: str, right: object) -> bool:
        """``tcp dport 80``, ``th sport 53``, ``ip protocol tcp``; False if not one of these."""
        payload = json_object(left, "payload") if isinstance(left, dict) else None
        if payload is None:
            return False
        proto, fld = json_str(payload.get("protocol")), json_str(payload.get("field"))
        if proto in PORT_PROTOS or proto == "th":
            if proto != "th":  # nft adds an l4proto dependency, also for "!="
                self.match.restrict_protos({proto})
            if fld in ("dport", "sport"):
                ports = self._ports(op, right)
                if ports is not None:
                    self.match.restrict_ports(fld, ports)
                    return True
            return False
        if proto in ("ip", "ip6") and fld in ("saddr", "daddr"):
            addrs = self._addresses(proto, op, right)
            return addrs is not None and self.match.restrict_addrs(fld, addrs)
        if (proto, fld) in (("ip", "protocol"), ("ip6", "nexthdr")):
            return self._restrict_protos(op, right)
        if proto in ("icmp", "icmpv6"):
            self.match.restrict_protos({PROTO_ALIASES.get(proto, proto)})
        return False

    def _read_meta_or_ct(self, left: object, op: str, right: object) -> bool:
        meta = json_object(left, "meta") if isinstance(left, dict) else None
        key = json_str(meta.get("key")) if meta is not None else None
        if key == "l4proto":
            return self._restrict_protos(op, right)
        if key == "nfproto":
            family = _NFPROTO_FAMILIES.get(json_str(right) or "")
            if op != "==" or family is None or self.match.nfproto not in (None, family):
                return False
            self.match.nfproto = family
            return True
        if key in ("iifname", "iif", "oifname", "oif"):
            name = json_str(right)
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

    def _addresses(self, proto: str, op: str, right: object) -> list[str] | None:
        """``ip saddr 10.0.0.0/8``, ``{ a, b/24 }``, ``@allow``; None if negated or unreadable.
        A named set stays a name with its family (``ip6 @allow``): its elements can change
        without a ruleset reload, and a copy of the condition must name the same set."""
        if op not in ("==", "in"):
            return None
        if isinstance(right, str) and right.startswith("@"):
            return [f"{proto} {right}"]
        inner = right.get("set") if isinstance(right, dict) and len(right) == 1 else None
        values = inner if isinstance(inner, list) else [right]
        found = [_address_text(_element_value(v)) for v in values]
        return None if None in found else [a for a in found if a is not None]

    def _restrict_protos(self, op: str, right: object) -> bool:
        names = self._words(right)
        if names is None or op not in ("==", "in"):
            return False
        protos = {proto_name(n) for n in names}
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
        words = {json_str(_element_value(e)) for e in elements}
        return None if None in words else {w for w in words if w is not None}

    def _states(self, right: object) -> frozenset[str] | None:
        words = self._words(right)
        if words is None or not words <= ALL_STATES:
            return None
        return frozenset(words)

    def _ports(self, op: str, right: object) -> PortSet | None:
        if op in ("<", "<=", ">", ">="):
            bound = json_int(right)
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

    def _read_vmap(self, body: JsonObject, statement: JsonObject) -> None:
        self.terminal = self.terminal or ("vmap", None)
        key = body.get("key")
        if _mentions_ct(key):
            self.match.uses_conntrack = True
        pairs = self._elements(body.get("data"))
        grouped = _group_vmap(pairs) if _ct_key(key) == "state" and pairs is not None else None
        if grouped is None:
            self.match.other.append(render_statement(statement))
        else:
            self.vmap = grouped

    def _read_xt(self, body: object) -> None:
        """iptables-nft rules: nft prints only the extension's name (``xt target CT``)."""
        kind = json_str(body.get("type")) if isinstance(body, dict) else None
        name = (json_str(body.get("name")) if isinstance(body, dict) else None) or "?"
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
        nat = nat_target_verdict(name, "")
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


def _address_text(value: object) -> str | None:
    if isinstance(value, str):
        return address_of(value)
    prefix = value.get("prefix") if isinstance(value, dict) and len(value) == 1 else None
    if isinstance(prefix, dict):
        addr, length = json_str(prefix.get("addr")), json_int(prefix.get("len"))
        if addr is not None and length is not None:
            return address_of(f"{addr}/{length}")
    return None


def _port_span(value: object) -> tuple[int, int] | None:
    number = json_int(value)
    if number is not None:
        return (number, number) if 0 <= number <= MAX_PORT else None
    bounds = value.get("range") if isinstance(value, dict) and len(value) == 1 else None
    if isinstance(bounds, list) and len(bounds) == 2:
        lo, hi = json_int(bounds[0]), json_int(bounds[1])
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
        target = json_str(body.get("target")) if isinstance(body, dict) else None
        return f"{kind} {target}" if target else None
    return kind if kind in _VERDICT_KEYS else None


def _mentions_ct(value: object, depth: int = 0) -> bool:
    if depth > MAX_DEPTH:
        return False
    if isinstance(value, dict):
        return any(
            k == "ct" or k.startswith("ct ") or _mentions_ct(v, depth + 1) for k, v in value.items()
        )
    if isinstance(value, list):
        return any(_mentions_ct(v, depth + 1) for v in value)
    return False


def _ct_key(value: object) -> str | None:
    ct = json_object(value, "ct") if isinstance(value, dict) else None
    return json_str(ct.get("key")) if ct is not None else None
