"""An undo fitted to the live ruleset just before it runs (remediation/undo_check.py), and the
same through apply_changes / rollback: nothing that is not ctguard's is ever deleted.

Listings are the real captures of tests/data/notrack, edited the way an admin would change
the ruleset between apply and rollback. ``Netfilter`` below plays iptables(-nft) for real
enough: iptables-restore --noflush inserts and deletes a table at a time, iptables-save
prints the tables back in the format of the captures.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ctguard.errors import CtguardError
from ctguard.remediation.apply import ApplyError
from ctguard.remediation.journal import (
    APPLYING,
    ROLLED_BACK,
    UNDONE,
    list_entries,
    read_entry,
)
from ctguard.remediation.nft_echo import undo_from_echo
from ctguard.remediation.notrack_script import NFT_APPLY, NFT_RUN, add_commands, remove_commands
from ctguard.remediation.undo_check import LISTING, cleanup, reconcile
from notrack_samples import ip6t, ipt, merged, nft, plan, sample, with_lines
from remediation.conftest import apply_commands, journal_json, roll_back_commands

TAG = "-m comment --comment ctguard"
NOTRACK_IN = f"-p tcp -m tcp --dport 8983 {TAG} -j CT --notrack"
NOTRACK_OUT = f"-p tcp -m tcp --sport 8983 {TAG} -j CT --notrack"
ACCEPT_8983 = f"-p tcp -m tcp --dport 8983 -m conntrack --ctstate UNTRACKED {TAG} -j ACCEPT"
RESTORE = ("iptables-restore", "--noflush")
RESTORE6 = ("ip6tables-restore", "--noflush")
NFT_LIST = LISTING["nft"]


def script(*lines: str) -> str:
    return "".join(f"{line}\n" for line in lines)


# -- nft listings ----------------------------------------------------------------------------
def nft_listing(
    name: str, drop: Callable[[dict[str, object]], bool] = lambda body: False, *extra: object
) -> str:
    """``nft-NAME.json`` without the objects ``drop`` picks (by their body), plus ``extra``."""
    items = json.loads(sample(f"nft-{name}.json"))["nftables"]
    kept = [item for item in items if not drop(next(iter(item.values())))]
    return json.dumps({"nftables": [*kept, *extra]})


def handle(table: str, chain: str, number: int) -> Callable[[dict[str, object]], bool]:
    """Picks the rule with that handle (as ``nft delete rule ... handle N`` would)."""
    wanted = [table, chain, number]
    return lambda body: [body.get(key) for key in ("table", "chain", "handle")] == wanted


def rule(table: str, chain: str, number: int, *expr: object, **body: object) -> object:
    """A rule of ``nft -j list ruleset`` in family inet."""
    fields = {"family": "inet", "table": table, "chain": chain, "handle": number, **body}
    return {"rule": {**fields, "expr": list(expr)}}


def dport(port: int) -> dict[str, object]:
    return {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                      "right": port}}  # fmt: skip


NEW = {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}}
# The admin's SSH rule, given handle 7 once their inet filter table was loaded again (its
# other rules take 3 to 6 again): the handle of ctguard's accept before.
SSH = rule("filter", "input", 7, dport(2222), NEW, {"accept": None})

ECHO_UNDO = undo_from_echo(sample("nft-stateful-add.echo"))  # of the capture's transaction
APPLIED = sample("nft-stateful-applied.json")  # the ruleset that transaction left


def test_nft_everything_still_ours_goes_with_the_table():
    """Every rule of inet ctguard goes: one table delete instead of its rules and chains."""
    assert reconcile("nft", ECHO_UNDO, APPLIED) == script(
        "delete rule inet filter input handle 7", "delete table inet ctguard"
    )


def test_nft_a_reused_handle_holding_the_admins_rule_is_not_deleted():
    """The admin loaded their inet filter table again: handle 7 is now their SSH accept.
    Deleted by handle as recorded, it would lock them out."""
    listing = nft_listing("stateful-applied", handle("filter", "input", 7), SSH)
    assert reconcile("nft", ECHO_UNDO, listing) == script("delete table inet ctguard")


def test_nft_a_rule_already_gone_is_dropped():
    second = undo_from_echo(sample("nft-second-add.echo"))
    assert second == script(
        "delete rule inet ctguard prerouting handle 5", "delete rule inet filter input handle 8"
    )
    # the admin deleted ctguard's accept for 9200 by hand: a delete of handle 8 would fail,
    # and with it the whole nft transaction
    listing = nft_listing("second-applied", handle("filter", "input", 8))
    assert reconcile("nft", second, listing) == script(
        "delete rule inet ctguard prerouting handle 5"
    )
    assert reconcile("nft", second, sample("nft-second-applied.json")) == second


def test_nft_a_later_applys_rule_keeps_our_chain_and_table():
    """A second apply added 9200 to ctguard's prerouting chain (handle 5): undoing the first
    deletes its own rules and the output chain it left empty, not the table."""
    assert reconcile("nft", ECHO_UNDO, sample("nft-second-applied.json")) == script(
        "delete rule inet filter input handle 7",
        "delete rule inet ctguard output handle 4",
        "delete rule inet ctguard prerouting handle 3",
        "delete chain inet ctguard output",
    )


def test_nft_an_admins_rule_in_our_table_keeps_it():
    mine = rule("ctguard", "output", 9, dport(53), {"notrack": None})  # no ctguard comment
    listing = nft_listing("stateful-applied", lambda body: False, mine)
    assert reconcile("nft", ECHO_UNDO, listing) == script(
        "delete rule inet filter input handle 7",
        "delete rule inet ctguard output handle 4",
        "delete rule inet ctguard prerouting handle 3",
        "delete chain inet ctguard prerouting",
    )


def test_nft_all_ours_already_gone_leaves_only_the_table_delete():
    """The admin deleted every ctguard rule by hand; the empty table is still ctguard's."""
    listing = nft_listing("stateful-applied", lambda body: body.get("comment") == "ctguard")
    assert reconcile("nft", ECHO_UNDO, listing) == script("delete table inet ctguard")


def test_nft_nothing_left_at_all():
    """`nft flush ruleset` and the admin's ruleset loaded again, SSH rule at handle 7."""
    listing = nft_listing("stateful", lambda body: False, SSH)
    assert reconcile("nft", ECHO_UNDO, listing) == ""


def test_nft_a_table_named_ctguard_in_another_family_is_never_deleted():
    theirs = script("delete chain ip ctguard prerouting", "delete table ip ctguard")
    listing = nft_listing(
        "stateful",
        lambda body: False,
        {"table": {"family": "ip", "name": "ctguard", "handle": 20}},
        {"chain": {"family": "ip", "table": "ctguard", "name": "prerouting", "handle": 1,
                   "type": "filter", "hook": "prerouting", "prio": -300, "policy": "accept"}},
    )  # fmt: skip
    assert reconcile("nft", theirs, listing) == ""


@pytest.mark.parametrize(
    "listing",
    ["", "Error: Could not process rule: Operation not permitted\n", "{", '{"nftables": 3}', "[]"],
    ids=["empty", "an-error", "cut-short", "not-a-list", "not-an-object"],
)
def test_nft_an_unreadable_listing_deletes_nothing(listing):
    assert reconcile("nft", ECHO_UNDO, listing) == ""


# -- iptables --------------------------------------------------------------------------------
RAW_UNDO = script("*raw", f"-D PREROUTING {NOTRACK_IN}", f"-D OUTPUT {NOTRACK_OUT}", "COMMIT")
FILTER_UNDO = script("*filter", f"-D INPUT {ACCEPT_8983}", "COMMIT")
IPT_APPLIED = sample("ipt-stateful-applied.iptables-save")


def test_iptables_every_rule_still_there_keeps_the_whole_undo():
    assert reconcile("iptables", RAW_UNDO + FILTER_UNDO, IPT_APPLIED) == RAW_UNDO + FILTER_UNDO
    ip6_applied = sample("ip6t-stateful-applied.ip6tables-save")
    assert reconcile("ip6tables", RAW_UNDO, ip6_applied) == RAW_UNDO


def test_iptables_a_rule_already_gone_is_dropped_and_the_rest_kept():
    listing = IPT_APPLIED.replace(f"-A OUTPUT {NOTRACK_OUT}\n", "")
    assert reconcile("iptables", RAW_UNDO, listing) == script(
        "*raw", f"-D PREROUTING {NOTRACK_IN}", "COMMIT"
    )


def test_iptables_a_table_with_nothing_left_to_delete_is_dropped_whole():
    listing = IPT_APPLIED.replace(f"-A INPUT {ACCEPT_8983}\n", "")
    assert reconcile("iptables", RAW_UNDO + FILTER_UNDO, listing) == RAW_UNDO
    assert reconcile("iptables", FILTER_UNDO, listing) == ""
    assert reconcile("iptables", RAW_UNDO, sample("ipt-stateful.iptables-save")) == ""  # no raw


def test_iptables_the_rule_must_be_in_that_table_and_chain():
    moved = IPT_APPLIED.replace(f"-A OUTPUT {NOTRACK_OUT}", f"-A PREROUTING {NOTRACK_OUT}")
    assert reconcile("iptables", RAW_UNDO, moved) == script(
        "*raw", f"-D PREROUTING {NOTRACK_IN}", "COMMIT"
    )
    in_filter = "*filter\n:INPUT ACCEPT [0:0]\n" + f"-A PREROUTING {NOTRACK_IN}\nCOMMIT\n"
    assert reconcile("iptables", RAW_UNDO, in_filter) == ""


def test_iptables_counters_in_the_listing_do_not_matter():
    busy = (
        IPT_APPLIED.replace(":PREROUTING ACCEPT [0:0]", ":PREROUTING ACCEPT [18223:2411982]")
        .replace(":OUTPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [9120:1288305]")
        .replace(":INPUT DROP [0:0]", ":INPUT DROP [41:2460]")
    )
    assert busy != IPT_APPLIED
    assert reconcile("iptables", RAW_UNDO + FILTER_UNDO, busy) == RAW_UNDO + FILTER_UNDO


# -- cleanup after an iptables undo ----------------------------------------------------------
IPT_BEFORE = sample("ipt-stateful.iptables-save")  # nf_tables; no raw table
IPT_RAW_EMPTY = with_lines(IPT_BEFORE, "raw")  # raw with its builtin chains, nothing else
DROP_IP_RAW = (NFT_RUN, "delete table ip raw\n")


def test_cleanup_deletes_an_empty_raw_table_of_iptables_nft():
    assert IPT_RAW_EMPTY.splitlines()[0].endswith("(nf_tables) on (date)")
    assert cleanup("iptables", IPT_RAW_EMPTY) == DROP_IP_RAW
    busy = IPT_RAW_EMPTY.replace(":PREROUTING ACCEPT [0:0]", ":PREROUTING ACCEPT [881:52860]")
    assert cleanup("iptables", busy) == DROP_IP_RAW  # counters do not make it non-empty


def test_cleanup_deletes_the_ip6_raw_table_for_ip6tables():
    emptied = with_lines(sample("ip6t-stateful.ip6tables-save"), "raw")
    assert cleanup("ip6tables", emptied) == (NFT_RUN, "delete table ip6 raw\n")


@pytest.mark.parametrize(
    ("kind", "listing"),
    [
        ("iptables", IPT_RAW_EMPTY.replace("(nf_tables)", "(legacy)")),  # no nft table to drop
        (
            "iptables",
            with_lines(IPT_BEFORE, "raw", "-A PREROUTING -p udp --dport 53 -j CT --notrack"),
        ),
        ("iptables", with_lines(IPT_BEFORE, "raw", ":LOGDROP - [0:0]")),  # a user chain
        ("iptables", IPT_RAW_EMPTY.replace(":OUTPUT ACCEPT [0:0]", ":OUTPUT DROP [0:0]")),
        ("iptables", IPT_BEFORE),  # no raw table
        ("iptables", IPT_APPLIED),  # ctguard's rules still in it
        ("nft", IPT_RAW_EMPTY),  # only for an iptables undo
    ],
    ids=["legacy", "user-rule", "user-chain", "drop-policy", "no-raw", "rules-left", "nft"],
)
def test_cleanup_leaves_the_table_otherwise(kind, listing):
    assert cleanup(kind, listing) is None


# -- through apply_changes / rollback --------------------------------------------------------
@dataclass
class Iptables:
    """One of iptables / ip6tables with the nf_tables backend, as iptables-save shows it."""

    tool: str
    tables: dict[str, dict[str, tuple[str, list[str]]]]  # table: chain: (policy, rules)

    @classmethod
    def parse(cls, tool: str, save: str) -> Iptables:
        tables: dict[str, dict[str, tuple[str, list[str]]]] = {}
        chains: dict[str, tuple[str, list[str]]] = {}
        for line in save.splitlines():
            if line.startswith("*"):
                chains = tables.setdefault(line[1:], {})
            elif line.startswith(":"):
                name, policy, _ = line[1:].split(" ")
                chains[name] = (policy, [])
            elif line.startswith("-A "):
                _, name, spec = line.split(" ", 2)
                chains[name][1].append(spec)
        return cls(tool, tables)

    def save(self) -> str:
        out = []
        for table in sorted(self.tables, key=("raw", "mangle", "filter", "nat").index):
            out += [f"# Generated by {self.tool}-save v1.8.9 (nf_tables) on (date)", f"*{table}"]
            chains = self.tables[table]
            out += [f":{name} {policy} [0:0]" for name, (policy, _) in chains.items()]
            out += [f"-A {name} {spec}" for name, (_, rules) in chains.items() for spec in rules]
            out += ["COMMIT", "# Completed on (date)"]
        return script(*out)

    def restore(self, text: str) -> None:
        """``--noflush``: each table is committed at its COMMIT, so a failing line leaves
        the tables before it changed and its own table untouched."""
        builtin = {"raw": ("PREROUTING", "OUTPUT"), "filter": ("INPUT", "FORWARD", "OUTPUT")}
        work: dict[str, tuple[str, list[str]]] = {}
        table = ""
        for number, line in enumerate(text.splitlines(), 1):
            if line.startswith("*"):
                table = line[1:]
                now = self.tables.get(table) or {c: ("ACCEPT", []) for c in builtin[table]}
                work = {name: (policy, list(rules)) for name, (policy, rules) in now.items()}
            elif line.startswith("-I "):
                _, name, position, spec = line.split(" ", 3)
                work[name][1].insert(int(position) - 1, spec)
            elif line.startswith("-D "):
                _, name, spec = line.split(" ", 2)
                if spec not in work[name][1]:
                    raise CtguardError(
                        f"{self.tool}-restore --noflush exited 1: {self.tool}-restore: line"
                        f" {number} failed: Bad rule (does a matching rule exist in that chain?)"
                    )
                work[name][1].remove(spec)
            elif line == "COMMIT":
                self.tables[table] = work


@dataclass
class Netfilter:
    """A CommandRunner over a host's firewall: iptables and ip6tables simulated, nft given
    as listings (``nft_list`` now, ``nft_applied`` once ``nft --echo`` ran, answering
    ``echo``). The ``killed``-th change commits, then its program is killed."""

    iptables: Iptables
    ip6tables: Iptables
    nft_list: str = '{"nftables": []}'
    nft_applied: str = ""
    echo: str = ""
    killed: int | None = None
    calls: list[tuple[tuple[str, ...], str]] = field(default_factory=list)

    def run(self, argv: Sequence[str], stdin: str) -> str:
        argv = tuple(argv)
        self.calls.append((argv, stdin))
        tools = {"iptables": self.iptables, "ip6tables": self.ip6tables}
        if argv == NFT_LIST:
            return self.nft_list
        for name, tool in tools.items():
            if argv == LISTING[name]:
                return tool.save()
            if argv == (f"{name}-restore", "--noflush"):
                tool.restore(stdin)
        if argv == NFT_APPLY:
            self.nft_list = self.nft_applied
        elif argv == NFT_RUN and stdin in ("delete table ip raw\n", "delete table ip6 raw\n"):
            del tools["iptables" if " ip " in stdin else "ip6tables"].tables["raw"]
        if len(self.changed()) == self.killed:
            raise CtguardError(f"{' '.join(argv)} did not finish within 30 s")
        return self.echo if argv == NFT_APPLY else ""

    def changed(self) -> list[tuple[tuple[str, ...], str]]:
        return [(argv, stdin) for argv, stdin in self.calls if argv not in LISTING.values()]


IP6T_BEFORE = sample("ip6t-stateful.ip6tables-save")


def netfilter(**kw: object) -> Netfilter:
    return Netfilter(
        Iptables.parse("iptables", IPT_BEFORE), Iptables.parse("ip6tables", IP6T_BEFORE), **kw
    )  # type: ignore[arg-type]


def test_the_simulation_prints_what_the_tools_print():
    fw = netfilter()
    assert (fw.iptables.save(), fw.ip6tables.save()) == (IPT_BEFORE, IP6T_BEFORE)
    rs = merged(ipt("stateful"), ip6t("stateful"))
    for command in add_commands(rs, plan(rs).add):
        fw.run(command.argv, command.stdin)
    assert fw.iptables.save() == IPT_APPLIED  # the capture of these very transactions
    assert fw.ip6tables.save() == sample("ip6t-stateful-applied.ip6tables-save")


def nft_applied(tmp_path: Path) -> tuple[Netfilter, str]:
    fw = netfilter(
        nft_list=sample("nft-stateful.json"),
        nft_applied=APPLIED,
        echo=sample("nft-stateful-add.echo"),
    )
    rs = nft("stateful")
    entry_id = apply_commands(tmp_path, add_commands(rs, plan(rs).add), fw).entry_id
    assert entry_id is not None
    assert fw.calls[-1][0] == NFT_APPLY
    return fw, entry_id


def test_rollback_after_the_admin_reloaded_their_table_deletes_none_of_their_rules(tmp_path):
    fw, entry_id = nft_applied(tmp_path)
    # `nft -f` of a file that deletes and re-creates inet filter: their SSH rule is handle 7
    fw.nft_list = nft_listing("stateful-applied", handle("filter", "input", 7), SSH)
    result = roll_back_commands(tmp_path, entry_id, fw)
    assert fw.changed()[1:] == [(NFT_RUN, "delete table inet ctguard\n")]  # not handle 7
    assert result.commands == ("add 3 nft rule(s)",)
    assert read_entry(tmp_path / "state", entry_id).state == ROLLED_BACK


def test_rollback_after_a_flushed_ruleset_runs_nothing(tmp_path):
    fw, entry_id = nft_applied(tmp_path)
    fw.nft_list = nft_listing("stateful", lambda body: False, SSH)  # flush ruleset, reload
    result = roll_back_commands(tmp_path, entry_id, fw)
    assert fw.calls[2:] == [(NFT_LIST, "")]
    assert result.commands == ()
    entry = read_entry(tmp_path / "state", entry_id)
    assert entry.state == ROLLED_BACK
    assert [(c.done, c.undone) for c in entry.commands] == [(True, True)]


def test_rollback_after_a_second_apply_keeps_its_rules(tmp_path):
    fw, entry_id = nft_applied(tmp_path)
    fw.nft_list = sample("nft-second-applied.json")  # `notrack --port 9200` applied since
    roll_back_commands(tmp_path, entry_id, fw)
    assert fw.changed()[1:] == [(NFT_RUN, reconcile("nft", ECHO_UNDO, fw.nft_list))]
    assert "delete table" not in fw.changed()[1][1]
    assert "handle 5" not in fw.changed()[1][1]  # 9200's notrack


def iptables_commands():
    rs = merged(ipt("stateful"), ip6t("stateful"))
    commands = add_commands(rs, plan(rs).add)
    assert [(c.what, c.argv) for c in commands] == [
        ("add 2 iptables raw rule(s)", RESTORE),
        ("add 1 iptables filter rule(s)", RESTORE),
        ("add 2 ip6tables raw rule(s)", RESTORE6),
        ("add 1 ip6tables filter rule(s)", RESTORE6),
    ]
    return commands


def test_iptables_apply_and_rollback_give_back_exactly_what_iptables_save_showed(tmp_path):
    """Deleting the rules leaves an empty raw table (iptables-restore created it): the
    cleanup deletes it too, so iptables-save reads as before."""
    fw = netfilter()
    entry_id = apply_commands(tmp_path, iptables_commands(), fw).entry_id
    assert entry_id is not None
    assert fw.iptables.save() == IPT_APPLIED
    roll_back_commands(tmp_path, entry_id, fw)
    assert (fw.iptables.save(), fw.ip6tables.save()) == (IPT_BEFORE, IP6T_BEFORE)
    assert [c for c in fw.changed()[4:] if c[0] == NFT_RUN] == [
        (NFT_RUN, "delete table ip6 raw\n"),
        DROP_IP_RAW,
    ]


def test_an_iptables_add_killed_after_its_commit_is_undone(tmp_path):
    """iptables-restore timed out (killed) after it committed the filter table: its undo was
    registered before it ran, so apply takes that rule back too."""
    commands = iptables_commands()
    fw = netfilter(killed=2)
    with pytest.raises(ApplyError) as failed:
        apply_commands(tmp_path, commands, fw)
    assert str(failed.value) == (
        "cannot add 1 iptables filter rule(s): iptables-restore --noflush did not finish within"
        " 30 s; undone: add 1 iptables filter rule(s), add 2 iptables raw rule(s)"
    )
    assert fw.changed() == [
        (RESTORE, commands[0].stdin),
        (RESTORE, commands[1].stdin),
        (RESTORE, commands[1].undo_stdin),
        (RESTORE, commands[0].undo_stdin),
        DROP_IP_RAW,
    ]
    assert (fw.iptables.save(), fw.ip6tables.save()) == (IPT_BEFORE, IP6T_BEFORE)
    (entry,) = list_entries(tmp_path / "state")
    assert entry.state == UNDONE
    assert [(c.done, c.undone) for c in entry.commands] == [
        (True, True), (False, True), (False, False), (False, False),
    ]  # fmt: skip


def test_rollback_of_an_interrupted_apply_undoes_a_committed_iptables_add(tmp_path):
    """ctguard itself died (power, SIGKILL) after iptables-restore committed the filter table
    and before the journal said so: ``ctguard rollback ID`` of the "applying" entry."""
    commands = iptables_commands()
    fw = netfilter()
    entry_id = apply_commands(tmp_path, commands[:2], fw).entry_id  # both tables committed
    assert entry_id is not None
    path = journal_json(tmp_path / "state", entry_id)
    data = json.loads(path.read_text())
    data["state"] = APPLYING
    data["commands"][1]["done"] = False  # the journal as the crash left it
    path.write_text(json.dumps(data))
    roll_back_commands(tmp_path, entry_id, fw)
    assert fw.iptables.save() == IPT_BEFORE


@pytest.mark.parametrize("committed", [True, False])
def test_rollback_of_an_interrupted_remove_puts_back_only_what_was_deleted(tmp_path, committed):
    """`notrack --remove` killed around its second transaction (iptables filter): whether
    it committed is read from iptables-save (a table commits whole), so its undo re-adds
    the rules only if they were deleted, never a second copy."""
    fw = Netfilter(Iptables.parse("iptables", IPT_APPLIED), Iptables.parse("ip6tables", ""))
    commands, _ = remove_commands(ipt("stateful-applied"))
    assert [c.what for c in commands] == ["remove 2 iptables raw rule(s)",
                                          "remove 1 iptables filter rule(s)"]  # fmt: skip
    entry_id = apply_commands(tmp_path, commands, fw).entry_id
    assert entry_id is not None
    if not committed:  # killed before the filter transaction: its rules are still there
        fw.run(commands[1].undo_argv, commands[1].undo_stdin)
    path = journal_json(tmp_path / "state", entry_id)
    data = json.loads(path.read_text())
    data["state"] = APPLYING
    data["commands"][1]["done"] = False  # committed or not, the journal did not say
    path.write_text(json.dumps(data))
    result = roll_back_commands(tmp_path, entry_id, fw)
    undone = [c.what for c in reversed(commands)] if committed else [commands[0].what]
    assert list(result.commands) == undone
    assert fw.iptables.save() == IPT_APPLIED
