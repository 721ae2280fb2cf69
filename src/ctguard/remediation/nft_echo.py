"""The undo of an ``nft --echo --handle -f -`` transaction, made from what it printed.

nft deletes a rule only by handle, and a handle is known only once the rule exists.
``nft -e -a`` prints each object it added with its handle::

    insert rule inet filter input tcp dport 8983 ct state untracked accept # handle 3
    add table inet ctguard # handle 2
    add chain inet ctguard prerouting { type filter hook prerouting priority raw; } # handle 1

The undo deletes those rules by handle, newest first, then ctguard's own chains and table
(``inet ctguard``). nft echoes ``add chain`` even for a chain that already existed (not an
existing table), so only ctguard's own chains and table are ever named. A handle can be
reused once its rule is gone, so ``undo_check.reconcile`` checks every line against the
live ruleset before the undo runs.
"""

from __future__ import annotations

import re

from ctguard.model.notrack_rules import is_own

_RULE = re.compile(r"^(?:add|insert) rule (\S+) (\S+) (\S+) .*# handle (\d+)$")
_CHAIN = re.compile(r"^add chain (\S+) (\S+) (\S+) ")
_TABLE = re.compile(r"^add table (\S+) (\S+)")


def undo_from_echo(output: str) -> str:
    """The ``nft -f -`` script that deletes what the echoed transaction added.

    >>> echoed = 'add table inet ctguard # handle 2\\ninsert rule inet f in accept # handle 7\\n'
    >>> print(undo_from_echo(echoed), end="")
    delete rule inet f in handle 7
    delete table inet ctguard
    """
    rules: list[str] = []
    chains: list[str] = []
    tables: list[str] = []
    for line in output.splitlines():
        line = line.strip()
        if m := _RULE.match(line):
            family, table, chain, handle = m.groups()
            rules.append(f"delete rule {family} {table} {chain} handle {handle}")
        elif (m := _CHAIN.match(line)) and is_own(m.group(1), m.group(2)):
            chains.append(f"delete chain {m.group(1)} {m.group(2)} {m.group(3)}")
        elif (m := _TABLE.match(line)) and is_own(m.group(1), m.group(2)):
            tables.append(f"delete table {m.group(1)} {m.group(2)}")
    lines = [*reversed(rules), *reversed(chains), *reversed(tables)]
    return "".join(f"{line}\n" for line in lines)


def count_added_rules(script: str) -> int:
    """Rules an nft script adds (``add rule`` / ``insert rule`` lines)."""
    return sum(1 for line in script.splitlines() if re.match(r"\s*(add|insert) rule ", line))
