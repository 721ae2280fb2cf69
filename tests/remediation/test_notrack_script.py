"""The exact transactions ``ctguard notrack`` runs, their undo, and how apply/rollback journal
them (rulesets and ``nft --echo --handle`` outputs are real captures: tests/data/notrack).

The order checks replay the scripts the way the tools do: nft ``add rule`` appends,
``insert rule`` and iptables ``-I CHAIN 1`` put the rule first, ``-I CHAIN N`` at position N.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from ctguard.errors import CtguardError
from ctguard.model.notrack_rules import is_own
from ctguard.remediation.apply import ApplyError, rollback
from ctguard.remediation.changes import NFT_ECHO, RunCommand
from ctguard.remediation.journal import (
    ROLLED_BACK,
    UNDONE,
    list_entries,
    read_entry,
)
from ctguard.remediation.nft_echo import undo_from_echo
from ctguard.remediation.notrack_script import (
    NFT_APPLY,
    NFT_RUN,
    add_commands,
    ours_in,
    remove_commands,
)
from ctguard.remediation.undo_check import LISTING
from ctguard.sources.ruleset import PortSet, Ruleset, parse_iptables_save, parse_nft_json
from notrack_samples import PORT, ip6t, ipt, merged, nft, nft_objects, plan, sample, with_lines
from remediation.conftest import (
    FakeRuntime,
    Host,
    apply_commands,
    apply_host,
    journal_json,
    roll_back_commands,
)

TAG = "-m comment --comment ctguard"
ACCEPT_8983 = f"-p tcp -m tcp --dport 8983 -m conntrack --ctstate UNTRACKED {TAG} -j ACCEPT"
NOTRACK_IN = f"-p tcp -m tcp --dport 8983 {TAG} -j CT --notrack"
NOTRACK_OUT = f"-p tcp -m tcp --sport 8983 {TAG} -j CT --notrack"
NFT_ACCEPT = 'tcp dport 8983 ct state untracked accept comment "ctguard"'
PREROUTING_CHAIN = (
    "add chain inet ctguard prerouting { type filter hook prerouting priority raw; policy accept; }"
)
OUTPUT_CHAIN = (
    "add chain inet ctguard output { type filter hook output priority raw; policy accept; }"
)
RESTORE = ("iptables-restore", "--noflush")
RESTORE6 = ("ip6tables-restore", "--noflush")


def script(*lines: str) -> str:
    return "".join(f"{line}\n" for line in lines)


def nft_add_script(rs: Ruleset, ports: PortSet = PORT, **kw: object) -> str:
    planned = plan(rs, ports, **kw)
    assert planned.refusals == ()
    (command,) = add_commands(rs, planned.add)
    assert command.argv == NFT_APPLY
    return command.stdin


def prerouting_only() -> Ruleset:
    """nft-stateful-applied as it was before: ctguard's table with only its prerouting chain
    and no rule (the state nft-partial-add.echo starts from)."""

    def keep(body: dict[str, object]) -> bool:
        own_output = body.get("table") == "ctguard" and body.get("name") == "output"
        return body.get("comment") != "ctguard" and not own_output

    return nft_objects("stateful-applied", keep)


def replay_nft(text: str, rs: Ruleset | None = None) -> dict[str, list[str]]:
    """Rule texts per "family table chain" after the script: add appends, insert prepends,
    insert ... position H goes right before rule H (of ``rs``, whose rules it starts from)."""
    chains: dict[str, list[tuple[int | None, str]]] = {}
    for c in rs.chains if rs is not None else ():
        chains[f"{c.family} {c.table} {c.name}"] = [(r.line, r.text) for r in c.rules]
    for line in text.splitlines():
        verb, kind, family, table, chain, rule = (line.split(" ", 5) + [""] * 6)[:6]
        if kind == "rule":
            rules = chains.setdefault(f"{family} {table} {chain}", [])
            at = 0 if verb == "insert" else len(rules)
            if rule.startswith("position "):
                _, handle, rule = rule.split(" ", 2)
                at = next(i for i, (h, _) in enumerate(rules) if h == int(handle))
            rules.insert(at, (None, rule))
    return {name: [text for _, text in rules] for name, rules in chains.items()}


def replay_iptables(text: str, start: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """Rule specs per "table CHAIN" after an iptables-restore --noflush script."""
    chains = {name: list(rules) for name, rules in (start or {}).items()}
    table = ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith("-I "):
            _, chain, position, spec = line.split(" ", 3)
            chains.setdefault(f"{table} {chain}", []).insert(int(position) - 1, spec)
        elif line.startswith("-D "):
            _, chain, spec = line.split(" ", 2)
            chains[f"{table} {chain}"].remove(spec)
    return chains


def saved_chains(rs: Ruleset, backend: str) -> dict[str, list[str]]:
    """The chains of an iptables-save capture as replay_iptables holds them."""
    return {
        f"{c.table} {c.name}": [r.text.split(" ", 2)[2] for r in c.rules]
        for c in rs.chains
        if c.backend == backend and c.rules
    }


# -- nft: adding ---------------------------------------------------------------------------
def test_nft_add_creates_the_table_and_chains_when_absent():
    assert nft_add_script(nft("stateful")) == script(
        "add table inet ctguard",
        PREROUTING_CHAIN,
        OUTPUT_CHAIN,
        'add rule inet ctguard prerouting tcp dport 8983 notrack comment "ctguard"',
        'add rule inet ctguard output tcp sport 8983 notrack comment "ctguard"',
        # right before the accept it mirrors (handle 6: tcp dport 8983 ct state new accept)
        f"insert rule inet filter input position 6 {NFT_ACCEPT}",
    )


def test_nft_add_command_echoes_handles_for_its_undo():
    rs = nft("stateful")
    (command,) = add_commands(rs, plan(rs).add)
    assert (command.what, command.argv) == ("add 3 nft rule(s)", NFT_APPLY)
    assert NFT_APPLY == ("nft", "--echo", "--handle", "-f", "-")
    assert (command.undo_argv, command.undo_stdin, command.undo_from) == (NFT_RUN, "", NFT_ECHO)
    assert command.undo_check == "nft"  # the echoed undo is fitted to `nft -j list ruleset`


def test_nft_add_creates_only_the_missing_chain():
    assert nft_add_script(prerouting_only()) == script(
        OUTPUT_CHAIN,
        'add rule inet ctguard prerouting tcp dport 8983 notrack comment "ctguard"',
        'add rule inet ctguard output tcp sport 8983 notrack comment "ctguard"',
        # right before the accept it mirrors (handle 6: tcp dport 8983 ct state new accept)
        f"insert rule inet filter input position 6 {NFT_ACCEPT}",
    )


def test_nft_add_to_an_existing_table_creates_nothing():
    # 9200 is closed in nft-stateful (tracked or not): notracks only, no accept opens it
    assert nft_add_script(nft("stateful-applied"), PortSet.of(9200)) == script(
        'add rule inet ctguard prerouting tcp dport 9200 notrack comment "ctguard"',
        'add rule inet ctguard output tcp sport 9200 notrack comment "ctguard"',
    )


def test_nft_inserts_land_right_before_the_accepts_they_mirror():
    rs = nft("stateful")
    text = nft_add_script(rs, direction="both")
    inserts = [line for line in text.splitlines() if line.startswith("insert ")]
    untracked = 'ct state untracked accept comment "ctguard"'
    assert inserts == [
        # the server's requests were accepted tracked by tcp dport 8983 ct state new (handle 6)
        f"insert rule inet filter input position 6 {NFT_ACCEPT}",
        # the client's replies by ct state established,related accept (handle 3)
        f"insert rule inet filter input position 3 tcp sport 8983 {untracked}",
    ]
    assert replay_nft(text, rs)["inet filter input"] == [
        f"tcp sport 8983 {untracked}",
        "ct state established,related accept",
        "iif lo accept",
        "tcp dport 22 ct state new accept",
        NFT_ACCEPT,
        "tcp dport 8983 ct state new accept",
    ]
    assert replay_nft(text, rs)["inet ctguard prerouting"] == [
        'tcp dport 8983 notrack comment "ctguard"',
        'tcp sport 8983 notrack comment "ctguard"',
    ]


def match(field: str, port: int) -> dict[str, object]:
    return {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": field}},
                      "right": port}}  # fmt: skip


OURS = {"comment": "ctguard"}
NEW_STATE = {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}}


def nft_rule(table: str, chain: str, handle: int, *expr: object, **body: object) -> object:
    """A ``{"rule": ...}`` object of ``nft -j list ruleset`` in family inet."""
    rule = {"family": "inet", "table": table, "chain": chain, "handle": handle, **body}
    return {"rule": {**rule, "expr": list(expr)}}


def all_port_after_notrack_all() -> Ruleset:
    """nft-all-port once ``notrack --all`` ran (port 22 exempt, everything else untracked),
    then the admin opened 443 with a state rule."""
    chain = {"family": "inet", "table": "ctguard", "type": "filter", "prio": -300,
             "policy": "accept"}  # fmt: skip
    own = [
        {"table": {"family": "inet", "name": "ctguard", "handle": 9}},
        {"chain": {**chain, "name": "prerouting", "handle": 1, "hook": "prerouting"}},
        {"chain": {**chain, "name": "output", "handle": 2, "hook": "output"}},
        nft_rule("ctguard", "prerouting", 5, match("dport", 22), {"return": None}, **OURS),
        nft_rule("ctguard", "prerouting", 3, {"notrack": None}, **OURS),
        nft_rule("ctguard", "output", 6, match("sport", 22), {"return": None}, **OURS),
        nft_rule("ctguard", "output", 4, {"notrack": None}, **OURS),
    ]
    https = nft_rule("filter", "input", 9, match("dport", 443), NEW_STATE, {"accept": None})
    items = json.loads(sample("nft-all-port.json"))["nftables"]
    return parse_nft_json(json.dumps({"nftables": [*items, https, *own]}))


def test_nft_notrack_all_inserts_the_exemptions_ahead_of_the_catch_all():
    text = nft_add_script(nft("all-port"), None, every_packet=True)
    assert text == script(
        "add table inet ctguard",
        PREROUTING_CHAIN,
        OUTPUT_CHAIN,
        'insert rule inet ctguard output tcp sport 22 return comment "ctguard"',
        'insert rule inet ctguard prerouting tcp dport 22 return comment "ctguard"',
        'add rule inet ctguard prerouting notrack comment "ctguard"',
        'add rule inet ctguard output notrack comment "ctguard"',
    )
    catch_all = 'notrack comment "ctguard"'
    assert replay_nft(text) == {
        "inet ctguard prerouting": ['tcp dport 22 return comment "ctguard"', catch_all],
        "inet ctguard output": ['tcp sport 22 return comment "ctguard"', catch_all],
    }


def test_a_later_exemption_goes_before_the_catch_all_already_there():
    """`notrack --all` again, after 443 was opened: its RETURN must come first in ctguard's
    chain, where an appended one would never be reached (the catch-all notrack is before)."""
    rs = all_port_after_notrack_all()
    text = nft_add_script(rs, None, every_packet=True)
    assert text == script(
        'insert rule inet ctguard output tcp sport 443 return comment "ctguard"',
        'insert rule inet ctguard prerouting tcp dport 443 return comment "ctguard"',
    )
    chain = rs.chain("inet", "ctguard", "prerouting")
    assert chain is not None
    before = [rule.text for rule in chain.rules]
    assert replay_nft(text)["inet ctguard prerouting"] + before == [  # inserts only: prepended
        'tcp dport 443 return comment "ctguard"',
        'tcp dport 22 return comment "ctguard"',
        'notrack comment "ctguard"',
    ]


@pytest.mark.parametrize(
    ("echo", "make"),
    [
        ("nft-stateful-add.echo", lambda: nft("stateful")),
        ("nft-partial-add.echo", prerouting_only),
    ],
)
def test_nft_echoes_back_exactly_the_script_it_was_given(echo, make):
    """The captures were made from these very scripts: nft echoes each line with a handle,
    and an insert's "position H" (before rule H) as "handle P", P the rule it now follows."""
    echoed = [
        line.rsplit(" # handle ", 1)[0]
        for line in sample(echo).splitlines()
        if not line.startswith("#")
    ]
    # nft-stateful's input chain: handle 5 (tcp dport 22 ...) comes right before 6 (8983)
    given = nft_add_script(make()).replace(" position 6 ", " handle 5 ")
    assert script(*echoed) == given


# -- iptables: adding ----------------------------------------------------------------------
RAW_ADD = script("*raw", f"-I OUTPUT 1 {NOTRACK_OUT}", f"-I PREROUTING 1 {NOTRACK_IN}", "COMMIT")
RAW_UNDO = script("*raw", f"-D PREROUTING {NOTRACK_IN}", f"-D OUTPUT {NOTRACK_OUT}", "COMMIT")
# right before the accept it mirrors: ipt-stateful's 4th INPUT rule (--dport 8983 NEW),
# ip6t-stateful's 3rd
FILTER_ADD = script("*filter", f"-I INPUT 4 {ACCEPT_8983}", "COMMIT")
FILTER6_ADD = script("*filter", f"-I INPUT 3 {ACCEPT_8983}", "COMMIT")
FILTER_UNDO = script("*filter", f"-D INPUT {ACCEPT_8983}", "COMMIT")


def test_iptables_add_inserts_before_the_mirrored_accept_and_deletes_for_undo_per_table():
    """One transaction per (tool, table): iptables-restore commits table by table, so each
    command either changed its one table or nothing."""
    rs = merged(ipt("stateful"), ip6t("stateful"))
    commands = add_commands(rs, plan(rs).add)
    v4, v6 = {"undo_check": "iptables"}, {"undo_check": "ip6tables"}
    assert commands == (
        RunCommand("add 2 iptables raw rule(s)", RESTORE, RAW_ADD, RESTORE, RAW_UNDO, **v4),
        RunCommand("add 1 iptables filter rule(s)", RESTORE, FILTER_ADD, RESTORE, FILTER_UNDO,
                   **v4),
        RunCommand("add 2 ip6tables raw rule(s)", RESTORE6, RAW_ADD, RESTORE6, RAW_UNDO, **v6),
        RunCommand("add 1 ip6tables filter rule(s)", RESTORE6, FILTER6_ADD, RESTORE6, FILTER_UNDO,
                   **v6),
    )  # fmt: skip


def test_iptables_add_then_its_undo_give_the_chains_back():
    rs = merged(ipt("stateful"), ip6t("stateful"))
    raw, filter_, *_ = add_commands(rs, plan(rs).add)
    before = saved_chains(rs, "iptables")
    added = replay_iptables(filter_.stdin, replay_iptables(raw.stdin, before))
    # what iptables-save showed once these very scripts had run (captured)
    assert added == saved_chains(ipt("stateful-applied"), "iptables")
    undone = replay_iptables(raw.undo_stdin, replay_iptables(filter_.undo_stdin, added))
    assert {name: rules for name, rules in undone.items() if rules} == before
    # each undo alone takes back its own table only
    raw_only = replay_iptables(raw.undo_stdin, added)
    assert {name: rules for name, rules in raw_only.items() if rules} == replay_iptables(
        filter_.stdin, before
    )


def test_iptables_inserts_are_reversed_so_the_chain_keeps_the_planned_order():
    rs = parse_iptables_save(
        "*filter\n:INPUT DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        "-A INPUT -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT\nCOMMIT\n"
    )
    planned = plan(rs, None, every_packet=True)
    (command, _) = add_commands(rs, planned.add)
    assert command.what.startswith("add ") and command.what.endswith(" iptables raw rule(s)")
    assert command.stdin.splitlines()[:5] == [
        "*raw",
        f"-I OUTPUT 1 {TAG} -j CT --notrack",
        f"-I PREROUTING 1 {TAG} -j CT --notrack",
        f"-I OUTPUT 1 -p tcp -m tcp --sport 22 {TAG} -j RETURN",
        f"-I PREROUTING 1 -p tcp -m tcp --dport 22 {TAG} -j RETURN",
    ]
    chains = replay_iptables(command.stdin)
    assert chains["raw PREROUTING"] == [
        f"-p tcp -m tcp --dport 22 {TAG} -j RETURN",
        f"{TAG} -j CT --notrack",
    ]  # the exemption before the catch-all


def test_no_command_creates_the_raw_table():
    """iptables-restore creates a missing raw table itself (legacy or nf_tables alike)."""
    rs = merged(ipt("stateful"), ip6t("stateful"))
    assert [c.what for c in add_commands(rs, plan(rs).add)] == [
        "add 2 iptables raw rule(s)",
        "add 1 iptables filter rule(s)",
        "add 2 ip6tables raw rule(s)",
        "add 1 ip6tables filter rule(s)",
    ]


def test_nft_runs_before_iptables_in_a_mixed_ruleset():
    rs = merged(ipt("stateful"), nft("stateful"))
    commands = add_commands(rs, plan(rs).add)
    assert [(c.what, c.argv) for c in commands] == [
        ("add 3 nft rule(s)", NFT_APPLY),
        ("add 1 iptables filter rule(s)", RESTORE),
    ]
    assert (commands[1].stdin, commands[1].undo_stdin) == (FILTER_ADD, FILTER_UNDO)


# -- removing ------------------------------------------------------------------------------
def test_nft_remove_deletes_by_handle_and_drops_our_table():
    (command,), shown = remove_commands(nft("stateful-applied"))
    assert command == RunCommand(
        "remove 3 nft rule(s)",
        NFT_RUN,
        script("delete rule inet filter input handle 7", "delete table inet ctguard"),
        NFT_RUN,
        script(
            "add table inet ctguard",
            PREROUTING_CHAIN,
            'add rule inet ctguard prerouting tcp dport 8983 notrack comment "ctguard"',
            OUTPUT_CHAIN,
            'add rule inet ctguard output tcp sport 8983 notrack comment "ctguard"',
            # back where it was: right before tcp dport 8983 ct state new accept (handle 6)
            f"insert rule inet filter input position 6 {NFT_ACCEPT}",
        ),
    )
    assert shown == (
        f"{NFT_ACCEPT}  (table inet filter, chain input)",
        "table inet ctguard chain prerouting: 1 rule(s)",
        "table inet ctguard chain output: 1 rule(s)",
    )


def test_nft_remove_undo_puts_them_back_where_they_were():
    # two tagged accepts in inet filter input: 9200 first, 8983 right before its NEW accept
    rs = nft("second-applied")
    (command,), _ = remove_commands(rs)
    assert command.stdin == script(
        "delete rule inet filter input handle 8",
        "delete rule inet filter input handle 7",
        "delete table inet ctguard",
    )
    chain = rs.chain("inet", "filter", "input")
    assert chain is not None
    old_order = [rule.text for rule in chain.rules]
    assert [t for t in old_order if t.endswith('"ctguard"')] == [
        'tcp dport 9200 ct state untracked accept comment "ctguard"',
        NFT_ACCEPT,
    ]
    assert old_order.index(NFT_ACCEPT) == 4  # not first: after iif lo and tcp dport 22

    def kept(body: dict[str, object]) -> bool:
        return body.get("comment") != "ctguard" and body.get("table") != "ctguard"

    replayed = replay_nft(command.undo_stdin, nft_objects("second-applied", kept))
    assert replayed["inet filter input"] == old_order
    assert replayed["inet ctguard prerouting"] == [
        'tcp dport 8983 notrack comment "ctguard"',
        'tcp dport 9200 notrack comment "ctguard"',
    ]


def test_iptables_remove_deletes_and_its_undo_reinserts_at_the_old_positions():
    save = (
        "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
        f"-A INPUT {ACCEPT_8983}\n"
        "-A INPUT -i lo -j ACCEPT\n"
        f"-A INPUT -p tcp -m tcp --sport 8983 -m conntrack --ctstate UNTRACKED {TAG} -j ACCEPT\n"
        "-A INPUT -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT\nCOMMIT\n"
    )
    rs = parse_iptables_save(save)
    (command,), _ = remove_commands(rs)
    sport = f"-p tcp -m tcp --sport 8983 -m conntrack --ctstate UNTRACKED {TAG} -j ACCEPT"
    assert command == RunCommand(
        "remove 2 iptables filter rule(s)",
        RESTORE,
        script("*filter", f"-D INPUT {ACCEPT_8983}", f"-D INPUT {sport}", "COMMIT"),
        RESTORE,
        script("*filter", f"-I INPUT 2 {ACCEPT_8983}", f"-I INPUT 4 {sport}", "COMMIT"),
    )
    before = saved_chains(rs, "iptables")
    removed = replay_iptables(command.stdin, before)
    assert removed["filter INPUT"] == [
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-i lo -j ACCEPT",
        "-p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT",
    ]
    assert replay_iptables(command.undo_stdin, removed) == before


def test_iptables_remove_is_one_command_per_table():
    rs = merged(ipt("stateful-applied"), ip6t("stateful-applied"))
    commands, shown = remove_commands(rs)
    assert [(c.what, c.argv) for c in commands] == [
        ("remove 2 iptables raw rule(s)", RESTORE),
        ("remove 1 iptables filter rule(s)", RESTORE),
        ("remove 2 ip6tables raw rule(s)", RESTORE6),
        ("remove 1 ip6tables filter rule(s)", RESTORE6),
    ]
    raw_remove = script("*raw", f"-D PREROUTING {NOTRACK_IN}", f"-D OUTPUT {NOTRACK_OUT}", "COMMIT")
    raw_back = script(
        "*raw", f"-I PREROUTING 1 {NOTRACK_IN}", f"-I OUTPUT 1 {NOTRACK_OUT}", "COMMIT"
    )
    # the accepts sit where ctguard put them (4th in INPUT, 3rd for IPv6): put back there
    for index, at in ((0, 4), (2, 3)):
        filter_back = script("*filter", f"-I INPUT {at} {ACCEPT_8983}", "COMMIT")
        assert (commands[index].stdin, commands[index].undo_stdin) == (raw_remove, raw_back)
        assert (commands[index + 1].stdin, commands[index + 1].undo_stdin) == (
            FILTER_UNDO, filter_back,
        )  # fmt: skip
    before = saved_chains(rs, "iptables")
    removed = replay_iptables(commands[1].stdin, replay_iptables(commands[0].stdin, before))
    assert {name: rules for name, rules in removed.items() if rules} == saved_chains(
        ipt("stateful"), "iptables"
    )
    back = replay_iptables(commands[0].undo_stdin, replay_iptables(commands[1].undo_stdin, removed))
    assert back == before
    assert shown[:3] == (
        f"iptables -t raw -A PREROUTING {NOTRACK_IN}",
        f"iptables -t raw -A OUTPUT {NOTRACK_OUT}",
        f"iptables -t filter -A INPUT {ACCEPT_8983}",
    )
    assert len(ours_in(rs)) == 6


REMOVE_IPTABLES = ["remove 2 iptables raw rule(s)", "remove 1 iptables filter rule(s)"]


def test_with_iptables_nft_a_raw_table_left_empty_is_deleted():
    """iptables-restore created raw for ctguard's rules and never deletes a table: once they
    are gone it is deleted, and putting the rules back (the undo before) creates it again."""
    commands, _ = remove_commands(ipt("stateful-applied"), iptables_nft=True)
    assert [c.what for c in commands] == [*REMOVE_IPTABLES, "delete the emptied iptables raw table"]
    assert commands[2] == RunCommand(
        "delete the emptied iptables raw table", NFT_RUN, "delete table ip raw\n", ()
    )
    assert [c.undo_check for c in commands] == [None, None, None]  # undone as recorded


def test_with_ip6tables_nft_the_ip6_raw_table_is_deleted():
    commands, _ = remove_commands(ip6t("stateful-applied"), iptables_nft=True)
    assert [(c.what, c.argv, c.stdin, c.undo_argv) for c in commands[2:]] == [
        ("delete the emptied ip6tables raw table", NFT_RUN, "delete table ip6 raw\n", ()),
    ]


@pytest.mark.parametrize(
    ("extra", "iptables_nft"),
    [
        ((), False),  # legacy iptables: no nft table to delete
        (("-A PREROUTING -p udp -m udp --dport 53 -j CT --notrack",), True),
        ((":LOGDROP - [0:0]",), True),  # a user chain, even empty
    ],
    ids=["legacy", "user-rule-left", "user-chain-left"],
)
def test_a_raw_table_is_kept_otherwise(extra, iptables_nft):
    save = sample("ipt-stateful-applied.iptables-save")
    rs = parse_iptables_save(with_lines(save, "raw", *extra) if extra else save)
    commands, _ = remove_commands(rs, iptables_nft=iptables_nft)
    assert [c.what for c in commands] == REMOVE_IPTABLES


def test_a_raw_table_with_a_drop_policy_is_kept():
    save = sample("ipt-stateful-applied.iptables-save").replace(
        ":OUTPUT ACCEPT [0:0]\n-A PREROUTING", ":OUTPUT DROP [0:0]\n-A PREROUTING"
    )
    rs = parse_iptables_save(save)
    commands, _ = remove_commands(rs, iptables_nft=True)
    assert [c.what for c in commands] == REMOVE_IPTABLES


def test_a_raw_table_ctguard_has_no_rule_in_is_left_alone():
    """Only the filter accept was ctguard's: the (empty) raw table is not its business."""
    save = with_lines(sample("ipt-stateful.iptables-save"), "raw")  # raw: builtin chains only
    rs = parse_iptables_save(
        save.replace("-A INPUT -m conntrack", f"-A INPUT {ACCEPT_8983}\n-A INPUT -m conntrack")
    )
    commands, _ = remove_commands(rs, iptables_nft=True)
    assert [c.what for c in commands] == ["remove 1 iptables filter rule(s)"]


def test_nothing_to_remove():
    assert remove_commands(nft("stateful")) == ((), ())
    assert remove_commands(ipt("stateful"), iptables_nft=True) == ((), ())


def test_a_table_named_ctguard_outside_family_inet_is_not_ours():
    assert is_own("inet", "ctguard")
    assert not is_own("ip", "ctguard")
    assert not is_own("ip6", "ctguard")
    assert not is_own("inet", "filter")
    theirs = [
        {"table": {"family": "ip", "name": "ctguard", "handle": 20}},
        {"chain": {"family": "ip", "table": "ctguard", "name": "prerouting", "handle": 1,
                   "type": "filter", "hook": "prerouting", "prio": -300, "policy": "accept"}},
        {"rule": {"family": "ip", "table": "ctguard", "chain": "prerouting", "handle": 2,
                  "expr": [match("dport", 53), {"notrack": None}]}},
    ]  # fmt: skip
    items = json.loads(sample("nft-stateful.json"))["nftables"]
    assert remove_commands(parse_nft_json(json.dumps({"nftables": items + theirs}))) == ((), ())
    echoed = "add table ip ctguard # handle 20\nadd chain ip ctguard prerouting { } # handle 1\n"
    assert undo_from_echo(echoed) == ""  # never deleted by ctguard's undo either


# -- the undo of an nft transaction, from what nft echoed ----------------------------------
NFT_ECHO_UNDO = script(
    "delete rule inet filter input handle 7",
    "delete rule inet ctguard output handle 4",
    "delete rule inet ctguard prerouting handle 3",
    "delete chain inet ctguard output",
    "delete chain inet ctguard prerouting",
    "delete table inet ctguard",
)


def test_undo_of_a_new_table_deletes_every_rule_newest_first_then_chains_then_table():
    """Rules inside inet ctguard are named too: a later apply may have added rules to the
    table, and then only these rules may go (undo_check keeps the table in that case)."""
    assert undo_from_echo(sample("nft-stateful-add.echo")) == NFT_ECHO_UNDO


def test_undo_never_deletes_another_tables_chain_and_goes_newest_first():
    # the echo holds "add chain inet filter input { ... } # handle 1": never deleted
    assert undo_from_echo(sample("nft-second-add.echo")) == script(
        "delete rule inet ctguard prerouting handle 5",
        "delete rule inet filter input handle 8",
    )


def test_undo_of_a_new_chain_in_our_existing_table():
    assert undo_from_echo(sample("nft-partial-add.echo")) == script(
        "delete rule inet filter input handle 7",
        "delete rule inet ctguard output handle 4",
        "delete rule inet ctguard prerouting handle 3",
        "delete chain inet ctguard output",
    )


def test_undo_of_nothing_echoed_is_empty():
    assert undo_from_echo("") == ""
    assert undo_from_echo("# new generation 3 by process 77 (nft)\n") == ""


# -- journalled through apply_changes / rollback --------------------------------------------
NFT_LIST, IPT_SAVE = LISTING["nft"], LISTING["iptables"]
LISTINGS = {NFT_LIST, IPT_SAVE, LISTING["ip6tables"]}


@dataclass
class FakeRunner:
    """Records each (argv, stdin). A listing (``nft -j list ruleset``, ``iptables-save``)
    answers ``listings[argv]``; ``nft --echo`` answers ``echo``. The n-th change (1-based;
    listings do not count) sets the listings in ``then[n]`` (what the tools read once it
    committed), then fails if n is in ``fail``, with the message a tool prints."""

    echo: str = ""
    listings: dict[tuple[str, ...], str] = field(default_factory=dict)
    then: dict[int, dict[tuple[str, ...], str]] = field(default_factory=dict)
    fail: dict[int, str] = field(default_factory=dict)
    calls: list[tuple[tuple[str, ...], str]] = field(default_factory=list)
    changes: int = 0

    def run(self, argv: Sequence[str], stdin: str) -> str:
        argv = tuple(argv)
        self.calls.append((argv, stdin))
        if argv in LISTINGS:
            if argv not in self.listings:
                raise CtguardError(f"{' '.join(argv)}: not given to this FakeRunner")
            return self.listings[argv]
        self.changes += 1
        self.listings.update(self.then.get(self.changes, {}))
        if self.changes in self.fail:
            raise CtguardError(f"{' '.join(argv)} exited 1: {self.fail[self.changes]}")
        return self.echo if argv == NFT_APPLY else ""

    def changed(self) -> list[tuple[tuple[str, ...], str]]:
        """The calls that were not listings."""
        return [(argv, stdin) for argv, stdin in self.calls if argv not in LISTINGS]


NFT_BEFORE = sample("nft-stateful.json")
NFT_AFTER = sample("nft-stateful-applied.json")  # once the nft add of mixed_commands() ran
IPT_BEFORE = sample("ipt-stateful.iptables-save")
# iptables-save once "add 1 iptables filter rule(s)" ran (position does not matter here)
IPT_AFTER = with_lines(IPT_BEFORE, "filter", f"-A INPUT {ACCEPT_8983}")
# the echoed undo fitted to NFT_AFTER: ctguard's whole table goes, with the rules in it
NFT_UNDO = script("delete rule inet filter input handle 7", "delete table inet ctguard")


def mixed_commands() -> tuple[RunCommand, ...]:
    """nft notracks and accept, and an iptables accept for an iptables INPUT chain."""
    rs = merged(ipt("stateful"), nft("stateful"))
    commands = add_commands(rs, plan(rs).add)
    assert [c.what for c in commands] == ["add 3 nft rule(s)", "add 1 iptables filter rule(s)"]
    return commands


def mixed_runner() -> FakeRunner:
    return FakeRunner(
        echo=sample("nft-stateful-add.echo"),
        listings={NFT_LIST: NFT_BEFORE, IPT_SAVE: IPT_BEFORE},
        then={1: {NFT_LIST: NFT_AFTER}, 2: {IPT_SAVE: IPT_AFTER}},
    )


def test_the_journal_records_the_undo_derived_from_the_echo(tmp_path):
    commands = mixed_commands()
    runner = mixed_runner()
    result = apply_commands(tmp_path, commands, runner)
    assert result.commands == ("add 3 nft rule(s)", "add 1 iptables filter rule(s)")
    # one listing, before nft: the rules tagged ctguard then (if ctguard died before it
    # recorded nft's echo, the new ones are what rollback deletes); no other: nothing undone
    assert runner.calls == [(NFT_LIST, ""), *((c.argv, c.stdin) for c in commands)]
    assert result.entry_id is not None
    nft_record, ipt_record = read_entry(tmp_path / "state", result.entry_id).commands
    assert (nft_record.undo_argv, nft_record.undo_stdin) == (NFT_RUN, NFT_ECHO_UNDO)
    assert nft_record.output == sample("nft-stateful-add.echo")
    assert (nft_record.done, nft_record.undone) == (True, False)
    assert (nft_record.undo_check, ipt_record.undo_check) == ("nft", "iptables")
    assert ipt_record.undo_stdin == commands[1].undo_stdin == FILTER_UNDO
    assert ipt_record.output == ""


def test_rollback_fits_each_recorded_undo_to_the_live_ruleset_newest_first(tmp_path):
    commands = mixed_commands()
    runner = mixed_runner()
    entry_id = apply_commands(tmp_path, commands, runner).entry_id
    assert entry_id is not None
    runner.then = {3: {IPT_SAVE: IPT_BEFORE}, 4: {NFT_LIST: NFT_BEFORE}}
    result = roll_back_commands(tmp_path, entry_id, runner)
    assert runner.calls[3:6] == [
        (IPT_SAVE, ""),  # read just before the undo
        (RESTORE, FILTER_UNDO),
        (IPT_SAVE, ""),  # raw is absent: no table to clean up
    ]
    assert runner.calls[6] == (NFT_LIST, "")
    # the rules inside ctguard's table go with it: one delete instead of five
    assert runner.changed()[2:] == [(RESTORE, FILTER_UNDO), (NFT_RUN, NFT_UNDO)]
    assert result.commands == ("add 1 iptables filter rule(s)", "add 3 nft rule(s)")
    entry = read_entry(tmp_path / "state", entry_id)
    assert entry.state == ROLLED_BACK
    assert [record.undone for record in entry.commands] == [True, True]


def test_rollback_of_rules_someone_already_deleted_runs_nothing(tmp_path):
    runner = mixed_runner()
    entry_id = apply_commands(tmp_path, mixed_commands(), runner).entry_id
    assert entry_id is not None
    runner.listings = {NFT_LIST: NFT_BEFORE, IPT_SAVE: IPT_BEFORE}  # e.g. `notrack --remove`
    result = roll_back_commands(tmp_path, entry_id, runner)
    assert runner.calls[3:] == [(IPT_SAVE, ""), (NFT_LIST, "")]  # where the -D would fail
    assert result.commands == ()
    entry = read_entry(tmp_path / "state", entry_id)
    assert entry.state == ROLLED_BACK
    assert [record.undone for record in entry.commands] == [True, True]


def test_rollback_needs_a_runner_for_an_entry_with_commands(tmp_path):
    entry_id = apply_commands(tmp_path, mixed_commands(), mixed_runner()).entry_id
    assert entry_id is not None
    with pytest.raises(CtguardError, match="never runs one"):
        rollback(entry_id, root=tmp_path, runtime=FakeRuntime({}), state_dir=tmp_path / "state")


def test_a_failing_second_command_undoes_the_first(tmp_path):
    commands = mixed_commands()
    runner = mixed_runner()
    runner.then = {1: {NFT_LIST: NFT_AFTER}}  # the iptables transaction commits nothing
    runner.fail = {2: "iptables-restore: line 2 failed: Chain 'INPUT' does not exist"}
    with pytest.raises(ApplyError) as failed:
        apply_commands(tmp_path, commands, runner)
    assert str(failed.value) == (
        "cannot add 1 iptables filter rule(s): iptables-restore --noflush exited 1:"
        " iptables-restore: line 2 failed: Chain 'INPUT' does not exist;"
        " undone: add 3 nft rule(s)"
    )
    # the failed transaction's undo was registered before it ran, and finds nothing of it
    # in iptables-save; the nft transaction is undone by the handles it echoed
    assert runner.calls[:5] == [
        (NFT_LIST, ""),
        (NFT_APPLY, commands[0].stdin),
        (RESTORE, commands[1].stdin),
        (IPT_SAVE, ""),
        (NFT_LIST, ""),
    ]
    assert runner.changed() == [
        (NFT_APPLY, commands[0].stdin),
        (RESTORE, commands[1].stdin),
        (NFT_RUN, NFT_UNDO),
    ]
    (entry,) = list_entries(tmp_path / "state")
    assert entry.state == UNDONE
    assert (entry.commands[0].done, entry.commands[0].undone) == (True, True)
    assert (entry.commands[1].done, entry.commands[1].undone) == (False, False)


IPT_RAW_AFTER = with_lines(
    IPT_BEFORE, "raw", f"-A PREROUTING {NOTRACK_IN}", f"-A OUTPUT {NOTRACK_OUT}"
)
IPT_RAW_EMPTY = with_lines(IPT_BEFORE, "raw")  # what iptables-nft keeps once the -D ran


def test_a_failing_second_table_undoes_the_first_table_only(tmp_path):
    rs = ipt("stateful")
    commands = add_commands(rs, plan(rs).add)
    assert [c.what for c in commands] == [
        "add 2 iptables raw rule(s)",
        "add 1 iptables filter rule(s)",
        "add 2 ip6tables raw rule(s)",  # no ip6tables rules: nothing to accept for IPv6
    ]
    runner = FakeRunner(
        listings={IPT_SAVE: IPT_BEFORE},
        then={1: {IPT_SAVE: IPT_RAW_AFTER}, 3: {IPT_SAVE: IPT_RAW_EMPTY}},
        fail={2: "iptables-restore: line 2 failed: Chain 'INPUT' does not exist"},
    )
    with pytest.raises(ApplyError) as failed:
        apply_commands(tmp_path, commands, runner)
    assert str(failed.value).endswith("; undone: add 2 iptables raw rule(s)")
    assert runner.calls == [
        (RESTORE, RAW_ADD),
        (RESTORE, FILTER_ADD),
        (IPT_SAVE, ""),  # FILTER_UNDO reconciled to nothing: its -D would find no rule
        (IPT_SAVE, ""),
        (RESTORE, RAW_UNDO),
        (IPT_SAVE, ""),  # iptables-nft (the header says nf_tables), raw left empty
        (NFT_RUN, "delete table ip raw\n"),
    ]
    before = saved_chains(rs, "iptables")
    after = replay_iptables(RAW_UNDO, replay_iptables(RAW_ADD, before))
    assert {name: rules for name, rules in after.items() if rules} == before
    (entry,) = list_entries(tmp_path / "state")
    assert entry.state == UNDONE
    assert [(c.done, c.undone) for c in entry.commands] == [
        (True, True), (False, False), (False, False),
    ]  # fmt: skip


def test_a_failing_nft_transaction_has_nothing_to_undo(tmp_path):
    rs = nft("stateful")
    commands = add_commands(rs, plan(rs).add)
    runner = FakeRunner(
        listings={NFT_LIST: NFT_BEFORE},
        fail={1: "Error: Could not process rule: No such file or directory"},
    )
    with pytest.raises(ApplyError, match=r"; nothing had been changed$"):
        apply_commands(tmp_path, commands, runner)
    # nft -f is all or nothing: the listing after it finds no new rule tagged ctguard
    assert runner.calls == [(NFT_LIST, ""), (NFT_APPLY, commands[0].stdin), (NFT_LIST, "")]
    assert runner.changed() == [(NFT_APPLY, commands[0].stdin)]


def test_a_failing_first_iptables_transaction_runs_no_undo(tmp_path):
    rs = ipt("stateful")
    commands = add_commands(rs, plan(rs).add)
    # were its undo run as recorded, "-D" of rules never added would fail: "Bad rule (does a
    # matching rule exist in that chain?)", and the entry would end "undo-failed"
    runner = FakeRunner(
        listings={IPT_SAVE: IPT_BEFORE},
        fail={1: "iptables-restore: line 2 failed: Chain 'PREROUTING' does not exist"},
    )
    with pytest.raises(ApplyError) as failed:
        apply_commands(tmp_path, commands, runner)
    assert str(failed.value) == (
        "cannot add 2 iptables raw rule(s): iptables-restore --noflush exited 1:"
        " iptables-restore: line 2 failed: Chain 'PREROUTING' does not exist;"
        " nothing had been changed"
    )
    # neither the filter table nor any undo: iptables-save showed none of the rules
    assert runner.calls == [(RESTORE, RAW_ADD), (IPT_SAVE, "")]
    (entry,) = list_entries(tmp_path / "state")
    assert entry.state == UNDONE
    assert [(c.done, c.undone) for c in entry.commands] == [(False, False)] * 3


def test_an_echo_short_of_handles_fails_the_apply_and_undoes_what_it_can(tmp_path):
    """An echo without the accept's handle (say, an nft that does not echo inserts): the
    rule could never be deleted by a rollback, so apply stops at once."""
    commands = mixed_commands()
    echo = sample("nft-stateful-add.echo").replace(
        f"insert rule inet filter input handle 5 {NFT_ACCEPT} # handle 7\n", ""
    )
    runner = FakeRunner(echo=echo, listings={NFT_LIST: NFT_BEFORE}, then={1: {NFT_LIST: NFT_AFTER}})
    with pytest.raises(ApplyError) as failed:
        apply_commands(tmp_path, commands, runner)
    assert str(failed.value) == (
        "cannot add 3 nft rule(s): nft echoed 2 of the 3 rule handles, so the rules could not"
        " all be undone later; undone: add 3 nft rule(s)"
    )
    # ctguard's table goes; the accept in inet filter input, whose handle is unknown, stays
    assert runner.changed() == [
        (NFT_APPLY, commands[0].stdin),
        (NFT_RUN, "delete table inet ctguard\n"),
    ]
    (entry,) = list_entries(tmp_path / "state")
    assert entry.state == UNDONE
    assert [(c.done, c.undone) for c in entry.commands] == [(False, True), (False, False)]


def test_the_undo_of_a_removal_runs_as_recorded(tmp_path):
    """A removal's undo puts back rules read from the ruleset: not checked, and the raw table
    delete has no undo of its own (re-adding the raw rules creates the table)."""
    commands, _ = remove_commands(ipt("stateful-applied"), iptables_nft=True)
    runner = FakeRunner(fail={3: "Error: Could not process rule: Device or resource busy"})
    with pytest.raises(ApplyError) as failed:
        apply_commands(tmp_path, commands, runner)
    assert str(failed.value).endswith(
        "; undone: remove 1 iptables filter rule(s), remove 2 iptables raw rule(s)"
    )
    assert runner.calls == [
        *[(c.argv, c.stdin) for c in commands],
        (RESTORE, commands[1].undo_stdin),
        (RESTORE, commands[0].undo_stdin),
    ]  # no listing: a removal's undo has no undo_check


def test_a_journal_from_before_undo_check_still_fits_its_deletions_to_the_ruleset(tmp_path):
    """No deletion read from a journal runs unchecked: one without undo_check (ctguard
    before 2026-12) is fitted to the live ruleset as if it had one."""
    runner = mixed_runner()
    entry_id = apply_commands(tmp_path, mixed_commands(), runner).entry_id
    assert entry_id is not None
    path = journal_json(tmp_path / "state", entry_id)
    data = json.loads(path.read_text())
    for record in data["commands"]:
        del record["undo_check"]
    path.write_text(json.dumps(data))
    assert [c.undo_check for c in read_entry(tmp_path / "state", entry_id).commands] == [None] * 2
    roll_back_commands(tmp_path, entry_id, runner)
    assert runner.calls[3] == (IPT_SAVE, "") and (NFT_LIST, "") in runner.calls[4:]
    assert runner.changed()[2:] == [(RESTORE, FILTER_UNDO), (NFT_RUN, NFT_UNDO)]


def test_an_old_journal_without_commands_still_loads(host: Host):
    applied = apply_host(host)
    assert applied.entry_id is not None
    path = journal_json(host.state, applied.entry_id)
    data = json.loads(path.read_text())
    del data["commands"]  # as ctguard wrote journals before commands existed
    path.write_text(json.dumps(data))
    entry = read_entry(host.state, applied.entry_id)
    assert entry.commands == ()
    assert len(entry.files) == 4
    undone = rollback(applied.entry_id, root=host.root, runtime=host.runtime, state_dir=host.state)
    assert undone.commands == ()
    assert read_entry(host.state, applied.entry_id).state == ROLLED_BACK
