"""``nft -j list ruleset`` (libnftables-json(5)) as a ``Ruleset`` (``parse_nft_json``):
tables, chains with their hooks and priorities, named sets, and each rule read by
``nft_rule``."""

from __future__ import annotations

import json
import re

from ctguard.errors import ParseError
from ctguard.sources.ruleset.drafts import ChainDraft, Warnings
from ctguard.sources.ruleset.model import Rule, Ruleset
from ctguard.sources.ruleset.nft_rule import NFT_COMMAND, SetTable, parse_nft_rule
from ctguard.sources.ruleset.nft_values import JsonObject, json_int, json_object, json_str, render

# nft(8) "CHAIN PRIORITY": standard names; the bridge family has its own values.
_PRIORITY_NAMES = {
    "raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100,
}  # fmt: skip
_BRIDGE_PRIORITY_NAMES = {"dstnat": -300, "filter": -200, "out": 100, "srcnat": 300}
_PRIORITY_TEXT = re.compile(r"\s*([a-z]+|-?\d{1,9})\s*(?:([+-])\s*(\d{1,9}))?\s*")


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
        raise ParseError(f"{NFT_COMMAND}: not JSON ({reason})") from None
    items = data.get("nftables") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ParseError(f'{NFT_COMMAND}: no "nftables" list at the top level')
    objects = [item for item in items if isinstance(item, dict)]
    warnings = Warnings()
    sets = _nft_sets(objects)
    drafts: dict[tuple[str, str, str], ChainDraft] = {}
    families: dict[tuple[str, str, str], str] = {}
    for obj in objects:
        chain = json_object(obj, "chain")
        if chain is not None:
            _declare_nft_chain(chain, drafts, families, warnings)
    xt_rules = 0
    for obj in objects:
        rule = json_object(obj, "rule")
        if rule is None:
            continue
        built = parse_nft_rule(rule, sets, warnings)
        if built is None:
            continue
        xt_rules += is_xt_rule(built)
        key = (built.family, built.table, built.chain)
        if key not in drafts:
            drafts[key] = ChainDraft(built.table, built.chain)
            families[key] = built.family
        drafts[key].rules.append(built)
    if xt_rules:
        warnings.add(xt_warning(xt_rules))
    chains = tuple(draft.build("nft", families[key]) for key, draft in drafts.items())
    return Ruleset("nft", chains, warnings.result())


# The start of the xt warning: merge_rulesets finds it by this and counts again.
XT_WARNING = f"{NFT_COMMAND}: iptables-nft rules"
_XT_TEXT = re.compile(r"(?:^| )xt (?:match|target|watcher) ")


def xt_warning(count: int) -> str:
    return (
        f"{XT_WARNING} ({count}) hold xt expressions whose options nft does not print; "
        "iptables-save shows them in full"
    )


def is_xt_rule(rule: Rule) -> bool:
    return rule.backend == "nft" and _XT_TEXT.search(rule.text) is not None


def _nft_sets(objects: list[JsonObject]) -> SetTable:
    """Named sets and maps by (family, table, name): rules refer to them as ``@name``."""
    sets: SetTable = {}
    for obj in objects:
        for kind in ("set", "map"):
            body = json_object(obj, kind)
            if body is None:
                continue
            family, table, name = (json_str(body.get(k)) for k in ("family", "table", "name"))
            elements = body.get("elem")
            if family and table and name and isinstance(elements, list):
                sets[(family, table, name)] = elements
    return sets


def _declare_nft_chain(
    chain: JsonObject,
    drafts: dict[tuple[str, str, str], ChainDraft],
    families: dict[tuple[str, str, str], str],
    warnings: Warnings,
) -> None:
    family, table, name = (json_str(chain.get(k)) for k in ("family", "table", "name"))
    if family is None or table is None or name is None:
        warnings.add(f"{NFT_COMMAND}: chain without family, table or name: {render(chain)[:80]}")
        return
    draft = ChainDraft(table, name)
    hook = json_str(chain.get("hook"))
    if hook is not None:
        draft.hook = hook
        draft.priority = _nft_priority(chain.get("prio"), family)
        draft.type = json_str(chain.get("type")) or "filter"
        policy = json_str(chain.get("policy"))
        draft.policy = policy if policy in ("accept", "drop") else "accept"
    drafts[(family, table, name)] = draft
    families[(family, table, name)] = family


def _nft_priority(value: object, family: str) -> int | None:
    """A number, or nft's named priorities with an offset ("raw - 10")."""
    number = json_int(value)
    if number is not None:
        return number
    text = json_str(value)
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
