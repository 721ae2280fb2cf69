"""The transactions that add or remove ctguard's notrack rules (pure: rules in, commands out).

Each command is one atomic transaction: ``nft -f -`` applies a whole script or nothing,
and ``iptables-restore --noflush`` commits table by table, so each iptables table gets a
command of its own. A command that fails has changed nothing; ``apply`` then undoes only
the commands before it.

- nft: ``nft --echo --handle -f -`` so the undo can delete the new rules by handle::

      add table inet ctguard
      add chain inet ctguard prerouting { type filter hook prerouting priority raw; policy accept; }
      add rule inet ctguard prerouting tcp dport 8983 notrack comment "ctguard"
      insert rule inet filter input tcp dport 8983 ct state untracked accept comment "ctguard"

- iptables: ``iptables-restore --noflush`` (and ``ip6tables-restore``), undone by ``-D``::

      *raw
      -I PREROUTING 1 -p tcp -m tcp --dport 8983 -m comment --comment ctguard -j CT --notrack
      COMMIT
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ctguard.model.notrack_rules import ACCEPT, NOTRACK, OWN_TABLE, RETURN, OurRule, is_ours, is_own
from ctguard.remediation.changes import NFT_ECHO, RunCommand
from ctguard.remediation.undo_check import drop_raw_script, raw_left_empty
from ctguard.sources.ruleset import Chain, Rule, Ruleset

NFT_APPLY = ("nft", "--echo", "--handle", "-f", "-")
NFT_RUN = ("nft", "-f", "-")
RESTORE = {"iptables": "iptables-restore", "ip6tables": "ip6tables-restore"}


def _own_chain_line(hook: str) -> str:
    return (
        f"add chain inet {OWN_TABLE} {hook} {{ type filter hook {hook} priority raw;"
        " policy accept; }"
    )


def add_commands(rs: Ruleset, rules: Sequence[OurRule]) -> tuple[RunCommand, ...]:
    """The commands that add ``rules`` to the ruleset ``rs``: nft first, then one
    iptables-restore per (tool, table)."""
    commands: list[RunCommand] = []
    nft = [r for r in rules if r.backend == "nft"]
    if nft:
        commands.append(_nft_add(rs, nft))
    for tool in ("iptables", "ip6tables"):
        mine = [r for r in rules if r.backend == tool]
        for table in dict.fromkeys(r.table for r in mine):
            commands.append(_iptables_add(tool, table, [r for r in mine if r.table == table]))
    return tuple(commands)


def _nft_add(rs: Ruleset, rules: Sequence[OurRule]) -> RunCommand:
    lines: list[str] = []
    own = [r for r in rules if is_own(r.family, r.table)]
    existing = {c.name for c in rs.chains if c.backend == "nft" and is_own(c.family, c.table)}
    if own and not existing:
        lines.append(f"add table inet {OWN_TABLE}")
    for hook in dict.fromkeys(r.chain for r in own):
        if hook not in existing:
            lines.append(_own_chain_line(hook))
    # exemptions (RETURN) go first in ctguard's chain, ahead of a catch-all notrack that an
    # earlier `notrack --all` left there; notracks are appended
    lines += [
        f"insert rule inet {OWN_TABLE} {r.chain} {r.text()}"
        for r in reversed([r for r in own if r.action == RETURN])
    ]
    lines += [f"add rule inet {OWN_TABLE} {r.chain} {r.text()}" for r in own if r.action != RETURN]
    # "insert" puts a rule first: insert in reverse so the chain keeps the planned order;
    # "insert ... position H" puts it right before rule H: in order, each lands after the
    # one inserted before it; "add" appends
    theirs = [r for r in rules if not is_own(r.family, r.table)]
    lines += [
        f"insert rule {r.family} {r.table} {r.chain} {r.text()}"
        for r in reversed([r for r in theirs if r.at is None and not r.end])
    ]
    lines += [
        f"insert rule {r.family} {r.table} {r.chain} position {r.at} {r.text()}"
        for r in theirs
        if r.at is not None and not r.end
    ]
    lines += [f"add rule {r.family} {r.table} {r.chain} {r.text()}" for r in theirs if r.end]
    return RunCommand(
        what=f"add {len(rules)} nft rule(s)",
        argv=NFT_APPLY,
        stdin=_script(lines),
        undo_argv=NFT_RUN,
        undo_from=NFT_ECHO,
        undo_check="nft",
    )


def _iptables_add(tool: str, table: str, rules: Sequence[OurRule]) -> RunCommand:
    """One table per transaction: iptables-restore commits table by table, so a failed
    command has changed nothing and needs no undo."""
    # each -I N is the index in the chain as read: the highest first, so the inserts before
    # it leave the lower indices as they were; at one index in reverse, to keep their order
    inserts = sorted(
        ((r.at or 1, i, r) for i, r in enumerate(rules) if not r.end), key=lambda x: (-x[0], -x[1])
    )
    do = [
        f"*{table}",
        *(_spec(r.text(), "-I", r.chain, at) for at, _, r in inserts),
        *(_spec(r.text(), "-A", r.chain) for r in rules if r.end),
        "COMMIT",
    ]
    undo = [f"*{table}", *(_spec(r.text(), "-D", r.chain) for r in rules), "COMMIT"]
    return RunCommand(
        what=f"add {len(rules)} {tool} {table} rule(s)",
        argv=(RESTORE[tool], "--noflush"),
        stdin=_script(do),
        undo_argv=(RESTORE[tool], "--noflush"),
        undo_stdin=_script(undo),
        undo_check=tool,
    )


def _spec(saved: str, verb: str, chain: str, position: int | None = None) -> str:
    """``-A CHAIN spec`` (an iptables-save line) as ``-I CHAIN N spec`` or ``-D CHAIN spec``."""
    spec = saved.split(" ", 2)[2] if saved.startswith("-A ") else saved
    where = f"{chain} {position}" if position is not None else chain
    return f"{verb} {where} {spec}"


def _script(lines: Iterable[str]) -> str:
    return "".join(f"{line}\n" for line in lines)


# -- removal -------------------------------------------------------------------------------
def ours_in(rs: Ruleset) -> list[tuple[Chain, int, Rule]]:
    """Every rule tagged ``ctguard``, with its chain and position (0-based)."""
    return [
        (chain, index, rule)
        for chain in rs.chains
        for index, rule in enumerate(chain.rules)
        if is_ours(rule)
    ]


def remove_commands(
    rs: Ruleset, iptables_nft: bool = False
) -> tuple[tuple[RunCommand, ...], tuple[str, ...]]:
    """The commands that delete every ctguard rule (and table ``inet ctguard``), each with
    the undo that puts them back; and the rules removed, as shown to the operator.

    With iptables-nft (``iptables_nft``), a ``raw`` table left with nothing but empty
    built-in chains with policy accept is deleted too: iptables-restore creates it when
    ctguard adds its first rule, and keeps it, empty, when the rules are deleted."""
    found = ours_in(rs)
    own_chains = [c for c in rs.chains if c.backend == "nft" and is_own(c.family, c.table)]
    commands: list[RunCommand] = []
    shown: list[str] = []
    nft = [(c, i, r) for c, i, r in found if r.backend == "nft" and not is_own(c.family, c.table)]
    if nft or own_chains:
        do = [f"delete rule {r.family} {r.table} {r.chain} handle {r.line}" for _, _, r in nft]
        undo = _nft_put_back(nft)
        if own_chains:
            family = own_chains[0].family
            do.append(f"delete table {family} {OWN_TABLE}")
            undo = _own_table_lines(own_chains) + undo
        shown += [r.text + f"  (table {r.family} {r.table}, chain {r.chain})" for _, _, r in nft]
        shown += [f"table {c.family} {OWN_TABLE} chain {c.name}: {len(c.rules)} rule(s)"
                  for c in own_chains]  # fmt: skip
        count = len(nft) + sum(len(c.rules) for c in own_chains)
        what = f"remove {count} nft rule(s)"
        commands.append(RunCommand(what, NFT_RUN, _script(do), NFT_RUN, _script(undo)))
    for tool in ("iptables", "ip6tables"):
        mine = [(c, i, r) for c, i, r in found if r.backend == tool]
        if mine:
            for table in dict.fromkeys(c.table for c, _, _ in mine):
                commands.append(_iptables_remove(tool, [f for f in mine if f[0].table == table]))
            shown += [f"{tool} -t {c.table} {r.text}" for c, _, r in mine]
            if iptables_nft and _raw_emptied(rs, tool, mine):
                commands.append(_drop_raw(tool))
    return tuple(commands), tuple(shown)


def _nft_put_back(removed: Sequence[tuple[Chain, int, Rule]]) -> list[str]:
    """The lines that put ctguard's rules back where they were, wherever they sat: each right
    before the first rule after it that stays (``insert ... position H``, in order, so each
    lands after the one put back before it), appended when none does; first (inserted in
    reverse) when that rule's handle is unknown."""
    gone = {id(r) for _, _, r in removed}
    placed: list[str] = []
    first: list[str] = []
    for chain, index, rule in removed:
        where = f"{rule.family} {rule.table} {rule.chain}"
        anchor = next((r for r in chain.rules[index + 1 :] if id(r) not in gone), None)
        if anchor is None:
            placed.append(f"add rule {where} {_nft_readd(rule)}")
        elif anchor.line is not None:
            placed.append(f"insert rule {where} position {anchor.line} {_nft_readd(rule)}")
        else:
            first.insert(0, f"insert rule {where} {_nft_readd(rule)}")
    return first + placed


def _raw_emptied(rs: Ruleset, tool: str, removed: Sequence[tuple[Chain, int, Rule]]) -> bool:
    """ctguard's rules were in the raw table, and it is left empty once they are gone."""
    gone = {id(r) for _, _, r in removed}
    return any(c.table == "raw" for c, _, _ in removed) and raw_left_empty(rs, tool, gone)


def _drop_raw(tool: str) -> RunCommand:
    return RunCommand(
        what=f"delete the emptied {tool} raw table",
        argv=NFT_RUN,
        stdin=drop_raw_script(tool),
        undo_argv=(),  # putting the rules back (the next undo) creates the table again
    )


def _iptables_remove(tool: str, found: Sequence[tuple[Chain, int, Rule]]) -> RunCommand:
    """The ctguard rules of one table; the undo puts each back at its old position
    (ascending, so each position counts the rules restored before it)."""
    table = found[0][0].table
    do = [f"*{table}", *(_spec(r.text, "-D", c.name) for c, _, r in found), "COMMIT"]
    undo = [f"*{table}", *(_spec(r.text, "-I", c.name, i + 1) for c, i, r in found), "COMMIT"]
    return RunCommand(f"remove {len(found)} {tool} {table} rule(s)", (RESTORE[tool], "--noflush"),
                      _script(do), (RESTORE[tool], "--noflush"), _script(undo))  # fmt: skip


def _nft_readd(rule: Rule) -> str:
    """nft syntax for a tagged rule read back: regenerated from what it selects when it is
    one of the shapes ctguard writes, else the rendering nft's JSON gave."""
    m = rule.match
    if m.protos is not None and len(m.protos) == 1 and not m.other and rule.verdict in (
        ACCEPT, NOTRACK, RETURN
    ):  # fmt: skip
        (proto,) = m.protos
        ours = OurRule("nft", rule.family, rule.table, rule.chain, "", rule.verdict, proto,
                       m.dports, m.sports, m.iif, m.oif, m.saddrs, m.daddrs,
                       m.nfproto)  # fmt: skip
        return ours.text()
    if m.protos is None and not m.other and m.dports is None and rule.verdict in (NOTRACK,):
        return OurRule("nft", rule.family, rule.table, rule.chain, "", NOTRACK, None,
                       nfproto=m.nfproto).text()  # fmt: skip
    return rule.text


def _own_table_lines(chains: Sequence[Chain]) -> list[str]:
    lines = [f"add table inet {OWN_TABLE}"]
    for chain in chains:
        lines.append(_own_chain_line(chain.name))
        lines += [f"add rule inet {OWN_TABLE} {chain.name} {_nft_readd(r)}" for r in chain.rules]
    return lines
