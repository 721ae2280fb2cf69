"""No IPv6 NOTRACK without the IPv6 filter, with the nft backend too (issue 16, item 6).

ctguard's nft notrack rules live in ``table inet ctguard``, which sees IPv4 and IPv6. When
the IPv6 filter was not read (legacy ip6tables tables, which nft cannot list, while
ip6tables-save failed) or cannot get its accept, an IPv6 NOTRACK would meet a filter that
may drop untracked packets: CT501's trap. So the rules must be family-exact:
``meta nfproto ipv4``, the accepts too; ``--remove`` must put them back as they were (never
wider), a rerun must find them in place, and CT501 must judge them as the plan did.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

from ctguard.cli import main
from ctguard.model.firewall import Packet, untracked_fate
from ctguard.remediation.notrack import (
    NotrackRequest,
    Tools,
    check_flows,
    flows_for,
    untracked_family,
    with_rules,
)
from ctguard.remediation.notrack_script import remove_commands
from ctguard.sources.ruleset import PortSet, Ruleset, parse_nft_json
from helpers import ROOTS
from notrack_samples import ip6t, merged, nft, plan, sample, shown

ROOT = ROOTS / "notrack" / "nft-legacy-ip6tables"
NFT_TOOLS = Tools(nft=True, iptables=True, ip6tables=True, iptables_variant="nft")
REQUEST = NotrackRequest(PortSet.of(8983), ("tcp",), "server")


def run_json(*argv: str) -> tuple[int, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(argv))
    return code, json.loads(out.getvalue())


def notrack_plan(root: Path) -> dict[str, Any]:
    code, got = run_json("notrack", "--port", "8983", "--root", str(root), "--json")
    assert code == 0, got
    return dict(got)


def ct501(root: Path) -> dict[str, Any]:
    _, got = run_json("doctor", "--root", str(root), "--only", "CT501", "--format", "json")
    (finding,) = got["findings"]
    return dict(finding)


def copy_root(tmp_path: Path, *, ip6_tables: bool = True, nft_json: str | None = None) -> Path:
    """The fixture root, optionally without the legacy IPv6 modules or with another ruleset."""
    copy = tmp_path / "root"
    shutil.copytree(ROOT, copy, symlinks=True)
    modules = copy / "proc" / "modules"
    if not ip6_tables:
        lines = modules.read_text().splitlines(keepends=True)
        modules.write_text("".join(line for line in lines if not line.startswith("ip6")))
    if nft_json is not None:
        (copy / "ctguard_commands" / "nft-json").write_text(nft_json)
    return copy


APPLIED = sample("nft-ipv4-only-applied.json")  # the real listing after the IPv4-only plan


def test_legacy_ipv6_filter_nft_cannot_list_means_ipv4_only() -> None:
    got = notrack_plan(ROOT)
    assert got["backend"] == "nft" and not got["refused"]
    notracks = [line for line in got["add"] if " notrack " in line]
    assert notracks == [
        'nft add rule inet ctguard prerouting meta nfproto ipv4 tcp dport 8983 notrack comment "ctguard"',  # noqa: E501
        'nft add rule inet ctguard output meta nfproto ipv4 tcp sport 8983 notrack comment "ctguard"',  # noqa: E501
    ]
    # the IPv4 filter gets its accept, right before tcp dport { 22, 8983 } ct state new accept
    # (handle 6); no IPv6 rule anywhere
    assert [line for line in got["add"] if " accept " in line] == [
        "nft insert rule ip filter input position 6 tcp dport 8983 ct state untracked accept"
        ' comment "ctguard"'
    ]
    assert all(line.startswith("IPv4 ") for line in got["untracked"] + got["check"])
    (why,) = [note for note in got["notes"] if note.startswith("IPv4 only: ")]
    assert "ip6tables-save" in why and "ip6_tables is loaded" in why


def test_without_ip6_tables_loaded_nft_shows_every_ipv6_table(tmp_path: Path) -> None:
    # no legacy IPv6 table can exist: nft listed them all (none), both families are untracked
    got = notrack_plan(copy_root(tmp_path, ip6_tables=False))
    assert got["add"][:2] == [
        'nft add rule inet ctguard prerouting tcp dport 8983 notrack comment "ctguard"',
        'nft add rule inet ctguard output tcp sport 8983 notrack comment "ctguard"',
    ]
    assert not any("nfproto" in line for line in got["add"])
    assert not any(note.startswith("IPv4 only") for note in got["notes"])


def test_the_applied_rules_read_back_as_planned(tmp_path: Path) -> None:
    # a rerun on the real listing after the transaction adds nothing: same rules, same family
    got = notrack_plan(copy_root(tmp_path, nft_json=APPLIED))
    assert got["add"] == [] and len(got["present"]) == 3
    assert all("meta nfproto ipv4" in line for line in got["present"] if " notrack " in line)


def test_ct501_agrees_with_the_plan(tmp_path: Path) -> None:
    # ctguard's IPv4-only rules: accepted by the IPv4 filter, nothing untracked for IPv6
    assert ct501(copy_root(tmp_path / "a", nft_json=APPLIED))["status"] == "passed"
    # the same NOTRACK for both families (ctguard's old rule): IPv6 meets a filter not read.
    # A guess, so a WARNING that says why, never a CRITICAL
    both = APPLIED.replace(
        '{"match": {"op": "==", "left": {"meta": {"key": "nfproto"}}, "right": "ipv4"}}, ', ""
    )
    assert both.count("nfproto") == 0 and both != APPLIED
    found = ct501(copy_root(tmp_path / "b", nft_json=both))
    assert (found["status"], found["severity"]) == ("found", "warning")
    assert any("the IPv6 filter was not read" in line for line in found["evidence"])
    # once no legacy IPv6 table can exist, that NOTRACK is fine for both families
    fine = copy_root(tmp_path / "c", ip6_tables=False, nft_json=both)
    assert ct501(fine)["status"] == "passed"


def test_remove_puts_back_exactly_the_ipv4_only_rules() -> None:
    (command,), removed = remove_commands(parse_nft_json(APPLIED))
    assert "delete table inet ctguard" in command.stdin
    assert len(removed) == 3
    undo = (command.undo_stdin or "").splitlines()
    readded = [line for line in undo if line.startswith("add rule inet ctguard")]
    assert readded == [
        'add rule inet ctguard prerouting meta nfproto ipv4 tcp dport 8983 notrack comment "ctguard"',  # noqa: E501
        'add rule inet ctguard output meta nfproto ipv4 tcp sport 8983 notrack comment "ctguard"',
    ]


def test_verify_checks_the_family_the_plan_untracked() -> None:
    before = parse_nft_json(sample("nft-ipv4-filter.json"))
    gap = "ip6tables-save exited 4: Fatal: can't open lock file /run/xtables.lock"
    unread = Ruleset(before.backend, before.chains, before.warnings, (gap,))
    legacy = frozenset({"nf_tables", "ip6_tables", "ip6table_filter"})
    assert untracked_family(unread, REQUEST, NFT_TOOLS, legacy) == "ip"
    assert untracked_family(unread, REQUEST, NFT_TOOLS, frozenset({"nf_tables"})) == "inet"
    after = parse_nft_json(APPLIED)
    fates, dropped = check_flows(after, flows_for(REQUEST, "ip"))
    assert dropped == () and fates == (
        "IPv4 tcp dport 8983 coming in: accepted on input",
        "IPv4 tcp sport 8983 going out: accepted on output",
    )


def test_no_ip6tables_restore_for_the_ipv6_accept_means_ipv4_only() -> None:
    # nft backend, and the ip6tables filter drops the untracked IPv6 packets: its accept
    # needs ip6tables-restore. Without it, IPv6 stays tracked (and the note says why)
    rs = merged(nft("stateful"), ip6t("stateful"))
    tools = Tools(nft=True, iptables=True, ip6tables=False, iptables_variant="nft")
    planned = plan(rs, tools=tools)
    assert planned.refusals == ()
    assert not any(rule.backend == "ip6tables" for rule in planned.add)
    assert all(rule.nfproto == "ip" for rule in planned.add if rule.family == "inet")
    assert any("ip6tables-restore is not installed" in note for note in planned.notes)
    # with it, the ip6tables accept is added and both families are untracked
    both = plan(rs, tools=NFT_TOOLS)
    assert any(rule.backend == "ip6tables" for rule in both.add)
    assert not any(rule.nfproto for rule in both.add)
    assert with_rules(rs, both.add) is not None
    assert shown(both.add)[0].startswith("nft add rule inet ctguard prerouting tcp dport 8983")


def test_an_ipv4_only_accept_does_not_accept_ipv6() -> None:
    inet = '"family": "inet", "table": "filter"'
    text = APPLIED.replace('"family": "ip", "table": "filter"', inet)
    rs = parse_nft_json(text)
    # the accept in (now) inet filter input has no nfproto: it accepts both families
    assert untracked_fate(rs, "input", packet("ip6")).outcome == "accepted"
    v4_only = text.replace(
        '"chain": "input", "handle": 7, "comment": "ctguard", "expr": [',
        '"chain": "input", "handle": 7, "comment": "ctguard", "expr": [{"match": {"op": "==",'
        ' "left": {"meta": {"key": "nfproto"}}, "right": "ipv4"}}, ',
    )
    assert v4_only != text
    rs = parse_nft_json(v4_only)
    assert untracked_fate(rs, "input", packet("ip")).outcome == "accepted"
    assert untracked_fate(rs, "input", packet("ip6")).outcome == "dropped"
    assert untracked_fate(rs, "input", packet("inet")).outcome == "conditional"


def packet(family: str) -> Packet:
    return Packet(family, frozenset({"tcp"}), PortSet.of(8983), None)
