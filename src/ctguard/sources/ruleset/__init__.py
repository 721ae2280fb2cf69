"""Firewall rulesets: ``iptables-save``, ``ip6tables-save`` and ``nft -j list ruleset``, read
into one model. ``model`` holds the types (PortSet, RuleMatch, Rule, Chain, Ruleset), the
verdict and state names, and ``describe``; ``names`` the protocol and iptables-extension
names both syntaxes share; ``drafts`` what a parser fills in before it freezes the model;
``iptables_tokens`` and ``iptables_save`` parse iptables-save text (and tell its variant);
``nft_values``, ``nft_rule`` and ``nft_json`` parse nft's JSON (values and their rendering,
one rule, the whole document); ``read`` reads all three through ``Commands`` and merges
them. Other modules import from here; ``__all__`` is what they use.
"""

from ctguard.sources.ruleset.iptables_save import iptables_variant, parse_iptables_save
from ctguard.sources.ruleset.model import (
    ALL_STATES,
    MAX_PORT,
    NAT_VERDICTS,
    Chain,
    PortSet,
    Rule,
    RuleMatch,
    Ruleset,
    address_of,
    describe,
)
from ctguard.sources.ruleset.names import CONNTRACK_MATCHES
from ctguard.sources.ruleset.nft_json import parse_nft_json
from ctguard.sources.ruleset.read import merge_rulesets, read_ruleset

__all__ = [
    "ALL_STATES",
    "CONNTRACK_MATCHES",
    "MAX_PORT",
    "NAT_VERDICTS",
    "Chain",
    "PortSet",
    "Rule",
    "RuleMatch",
    "Ruleset",
    "address_of",
    "describe",
    "iptables_variant",
    "merge_rulesets",
    "parse_iptables_save",
    "parse_nft_json",
    "read_ruleset",
]
