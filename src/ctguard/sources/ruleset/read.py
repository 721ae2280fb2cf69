"""The host's whole firewall: iptables-save, ip6tables-save and ``nft -j list ruleset`` read
through ``Commands`` (live or captured) and merged into one ``Ruleset``."""

from __future__ import annotations

from ctguard.errors import ParseError
from ctguard.host.commands import Commands
from ctguard.missing import Missing
from ctguard.sources.ruleset.iptables_save import parse_iptables_save
from ctguard.sources.ruleset.model import Ruleset
from ctguard.sources.ruleset.nft_json import XT_WARNING, is_xt_rule, parse_nft_json, xt_warning

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
    warnings = [w for rs in readable for w in rs.warnings if not w.startswith(XT_WARNING)]
    xt_rules = sum(1 for chain in chains for rule in chain.rules if is_xt_rule(rule))
    if xt_rules:
        warnings.append(xt_warning(xt_rules))
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
