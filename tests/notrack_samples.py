"""Rulesets for the ``ctguard notrack`` tests: real captures from tests/data/notrack (see its
README), read as ``ctguard`` reads a host's (importable: pythonpath=tests)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ctguard.model.notrack_rules import OurRule
from ctguard.remediation.notrack import NotrackPlan, NotrackRequest, Tools, plan_notrack
from ctguard.sources.ruleset import (
    PortSet,
    Ruleset,
    merge_rulesets,
    parse_iptables_save,
    parse_nft_json,
)

NOTRACK_DATA = Path(__file__).parent / "data" / "notrack"
ALL_TOOLS = Tools(nft=True, iptables=True, ip6tables=True)
PORT = PortSet.of(8983)


def sample(name: str) -> str:
    return (NOTRACK_DATA / name).read_text()


def nft(name: str) -> Ruleset:
    """``nft -j list ruleset`` of ``nft-NAME.nft``."""
    return parse_nft_json(sample(f"nft-{name}.json"))


def nft_objects(name: str, keep: Callable[[dict[str, object]], bool]) -> Ruleset:
    """``nft-NAME.json`` with only the objects ``keep`` accepts (its body, e.g. a chain's)."""
    items = json.loads(sample(f"nft-{name}.json"))["nftables"]
    kept = [item for item in items if keep(next(iter(item.values())))]
    return parse_nft_json(json.dumps({"nftables": kept}))


def ipt(name: str) -> Ruleset:
    """``iptables-save`` of ``ipt-NAME.rules``."""
    return parse_iptables_save(sample(f"ipt-{name}.iptables-save"))


def ip6t(name: str) -> Ruleset:
    return parse_iptables_save(sample(f"ip6t-{name}.ip6tables-save"), "ip6tables")


def merged(*parts: Ruleset) -> Ruleset:
    rs = merge_rulesets(*parts)
    assert isinstance(rs, Ruleset)
    return rs


def with_lines(save: str, table: str, *lines: str) -> str:
    """iptables-save text with ``lines`` appended to ``table``, the table added (with its
    builtin chains, as iptables-save prints them) when absent."""
    builtin = {
        "nat": ":PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        ":POSTROUTING ACCEPT [0:0]\n",
        "raw": ":PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n",
    }
    body = "".join(f"{line}\n" for line in lines)
    if f"*{table}\n" not in save:
        return f"{save}*{table}\n{builtin.get(table, '')}{body}COMMIT\n"
    head, marker, tail = save.partition(f"*{table}\n")
    rules, commit, rest = tail.partition("COMMIT\n")
    return head + marker + rules + body + commit + rest


def plan(
    rs: Ruleset,
    ports: PortSet | None = PORT,
    tools: Tools = ALL_TOOLS,
    **kw: object,
) -> NotrackPlan:
    return plan_notrack(rs, NotrackRequest(ports, **kw), tools)  # type: ignore[arg-type]


def shown(rules: tuple[OurRule, ...] | list[OurRule]) -> list[str]:
    return [rule.shown() for rule in rules]
