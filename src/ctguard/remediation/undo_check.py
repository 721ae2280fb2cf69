"""Fit an undo script to the live ruleset just before it runs (pure).

An undo recorded at apply time can be stale by the time it runs: someone deleted one of
ctguard's rules by hand, recreated a table (nft handles are then reused by *their* rules),
or a later ``notrack --apply`` added rules to ctguard's own table. Run as recorded, the
transaction would fail as a whole, or worse, delete a rule that is not ctguard's. So:

- ``nft``: ``delete rule F T C handle H`` is kept only if handle H in that chain holds a
  rule tagged ``ctguard``; ctguard's own chains and table are deleted only when no rule is
  left in them afterwards;
- ``iptables`` / ``ip6tables``: ``-D CHAIN spec`` is kept only if ``-A CHAIN spec`` is in
  that table of ``iptables-save`` (the spec carries the ``ctguard`` comment, so it can only
  delete one of ours).
"""

from __future__ import annotations

import re
from collections.abc import Collection

from ctguard.errors import ParseError
from ctguard.model.notrack_rules import is_ours, is_own
from ctguard.sources.ruleset import Ruleset, iptables_variant, parse_iptables_save, parse_nft_json

# What each check reads, through the same command runner (so inside the same namespace).
LISTING = {
    "nft": ("nft", "-j", "list", "ruleset"),
    "iptables": ("iptables-save",),
    "ip6tables": ("ip6tables-save",),
}
_DELETE_RULE = re.compile(r"^delete rule (\S+) (\S+) (\S+) handle (\d+)$")
_DELETE_CHAIN = re.compile(r"^delete chain (\S+) (\S+) (\S+)$")
_DELETE_TABLE = re.compile(r"^delete table (\S+) (\S+)$")


def reconcile(kind: str, script: str, listing: str) -> str:
    """``script`` without the lines that no longer apply to ``listing``."""
    if kind == "nft":
        return _nft(script, listing)
    return _iptables(kind, script, listing)


def _nft(script: str, listing: str) -> str:
    try:
        rs = parse_nft_json(listing)
    except ParseError:
        return ""  # nothing readable: deleting blind could hit someone else's rule
    ours = {(r.family, r.table, r.chain, r.line) for r in rs.rules() if is_ours(r)}
    rules_in: dict[tuple[str, str, str], set[int | None]] = {}
    for c in rs.chains:
        rules_in[(c.family, c.table, c.name)] = {r.line for r in c.rules}
    kept: list[str] = []
    gone: dict[tuple[str, str, str], set[int | None]] = {}
    for line in script.splitlines():
        if m := _DELETE_RULE.match(line):
            family, table, chain, handle = m.groups()
            if (family, table, chain, int(handle)) in ours:
                kept.append(line)
                gone.setdefault((family, table, chain), set()).add(int(handle))
        elif (m := _DELETE_CHAIN.match(line)) and is_own(m.group(1), m.group(2)):
            key = (m.group(1), m.group(2), m.group(3))
            if key in rules_in and rules_in[key] <= gone.get(key, set()):
                kept.append(line)
        elif (m := _DELETE_TABLE.match(line)) and is_own(m.group(1), m.group(2)):
            chains = [k for k in rules_in if k[:2] == (m.group(1), m.group(2))]
            if chains and all(rules_in[k] <= gone.get(k, set()) for k in chains):
                kept = [k for k in kept if not _in_table(k, m.group(1), m.group(2))]
                kept.append(line)
    return "".join(f"{line}\n" for line in kept)


def _in_table(line: str, family: str, table: str) -> bool:
    words = line.split()
    return len(words) > 3 and words[0] == "delete" and (words[2], words[3]) == (family, table)


def _iptables(kind: str, script: str, listing: str) -> str:
    present = {(r.table, r.text) for r in parse_iptables_save(listing, kind).rules()}
    kept: list[str] = []
    block: list[str] = []
    current = None
    for line in script.splitlines():
        if line.startswith("*"):
            current, block = line[1:].strip(), []
        elif line == "COMMIT":
            if block:
                kept += [f"*{current}", *block, "COMMIT"]
        elif line.startswith("-D ") and current is not None:
            if (current, "-A " + line[3:]) in present:
                block.append(line)
        else:
            block.append(line)
    return "".join(f"{line}\n" for line in kept)


def committed(kind: str, forward: str, listing: str) -> bool:
    """Whether a deleting transaction (``notrack --remove``) took effect, as the live
    ruleset shows: ``nft -f`` applies a script whole or not at all, and iptables-restore
    one table whole, so its first deletion tells. False when the listing cannot say.

    >>> rule = "INPUT -p udp -m comment --comment ctguard -j ACCEPT"
    >>> committed("iptables", f"*filter\\n-D {rule}\\n", f"*filter\\n-A {rule}\\nCOMMIT\\n")
    False
    >>> committed("iptables", f"*filter\\n-D {rule}\\n", "*filter\\nCOMMIT\\n")
    True
    """
    first = next((line for line in forward.splitlines() if line.startswith(("delete", "-D"))), "")
    if kind == "nft":
        try:
            rs = parse_nft_json(listing)
        except ParseError:
            return False
        if m := _DELETE_RULE.match(first):
            family, table, chain, handle = m.groups()
            return not any(
                (r.family, r.table, r.chain, r.line) == (family, table, chain, int(handle))
                for r in rs.rules()
            )
        if m := _DELETE_TABLE.match(first):
            return not any((c.family, c.table) == m.groups() for c in rs.chains)
        return False
    table = next((line[1:].strip() for line in forward.splitlines() if line.startswith("*")), "")
    if not first.startswith("-D ") or not table:
        return False
    present = {(r.table, r.text) for r in parse_iptables_save(listing, kind).rules()}
    return (table, "-A " + first[3:]) not in present


NFT_FAMILY = {"iptables": "ip", "ip6tables": "ip6"}  # the nft family of iptables-nft's tables


def raw_left_empty(rs: Ruleset, tool: str, gone: Collection[int] = ()) -> bool:
    """``tool``'s raw table exists and holds nothing once the rules whose ``id`` is in
    ``gone`` are deleted: built-in chains only, policy accept (an empty raw table does
    nothing, and iptables-nft keeps it after its last rule is deleted)."""
    chains = [c for c in rs.chains if c.backend == tool and c.table == "raw"]
    return bool(chains) and all(
        c.hook is not None
        and c.policy in (None, "accept")
        and all(id(rule) in gone for rule in c.rules)
        for c in chains
    )


def drop_raw_script(tool: str) -> str:
    return f"delete table {NFT_FAMILY[tool]} raw\n"


def cleanup(kind: str, listing: str) -> tuple[tuple[str, ...], str] | None:
    """A command to run after an undo: with iptables-nft, deleting ctguard's rules leaves
    an empty ``raw`` table (iptables-restore created it, and never deletes a table); delete
    it when nothing is left in it, so ``iptables-save`` reads as before the apply.

    >>> saved = "# iptables-save v1.8.9 (nf_tables)\\n*raw\\n:PREROUTING ACCEPT [0:0]\\n"
    >>> cleanup("iptables", saved + ":OUTPUT ACCEPT [0:0]\\nCOMMIT\\n*filter\\nCOMMIT\\n")
    (('nft', '-f', '-'), 'delete table ip raw\\n')
    """
    if kind not in NFT_FAMILY or iptables_variant(listing) != "nft":
        return None
    if not raw_left_empty(parse_iptables_save(listing, kind), kind):
        return None
    return ("nft", "-f", "-"), drop_raw_script(kind)
