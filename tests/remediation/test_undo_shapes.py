"""Every undo ctguard itself writes passes the shape check a journal's undo must pass
(undo.check_shape): the check refuses what ctguard never writes (test_hostile_state.py),
and must not refuse what it does, or a real rollback would be stopped."""

from __future__ import annotations

import pytest

from ctguard.model.notrack_rules import ACCEPT, NOTRACK, OurRule
from ctguard.remediation.changes import NFT_ECHO
from ctguard.remediation.journal import CommandRecord
from ctguard.remediation.nft_echo import undo_from_echo
from ctguard.remediation.notrack_script import NFT_RUN, add_commands, remove_commands
from ctguard.remediation.undo import check_shape
from ctguard.sources.ruleset import PortSet
from notrack_samples import ip6t, ipt, merged, nft, plan, sample


def record_of(command, output: str = "") -> CommandRecord:
    undo = undo_from_echo(output) if command.undo_from == NFT_ECHO else command.undo_stdin
    return CommandRecord(command.what, command.argv, command.stdin, command.undo_argv, undo,
                         output, command.undo_check, undo_from=command.undo_from)  # fmt: skip


@pytest.mark.parametrize(
    "rulesets",
    [("ipt", "stateful"), ("ip6t", "stateful"), ("ipt", "output-drop"), ("ipt", "source-only")],
)
@pytest.mark.parametrize(
    "request_kw",
    [
        {},
        {"direction": "both"},
        {"ports": PortSet.of(80, 443, (8000, 8080)), "direction": "both"},
        {"ports": PortSet.of(53), "protos": ("udp",), "direction": "client"},
    ],
)
def test_the_iptables_undos_of_every_add_pass(rulesets, request_kw):
    kind, name = rulesets
    rs = ipt(name) if kind == "ipt" else ip6t(name)
    commands = add_commands(rs, plan(rs, **request_kw, force=True).add)
    assert commands
    for command in commands:
        check_shape("x", record_of(command))


def test_the_nft_undo_made_from_a_real_echo_passes():
    rs = nft("stateful")
    (command,) = add_commands(rs, plan(rs).add)
    check_shape("x", record_of(command, sample("nft-stateful-add.echo")))


@pytest.mark.parametrize(
    "rs",
    [nft("stateful-applied"), nft("second-applied"), ipt("stateful-applied"),
     merged(ipt("stateful-applied"), ip6t("stateful-applied"))],
    ids=["nft", "nft-second", "iptables", "both"],
)  # fmt: skip
def test_the_undos_of_every_removal_pass(rs):
    commands, _ = remove_commands(rs, iptables_nft=True)
    assert commands
    for command in commands:
        check_shape("x", record_of(command))


@pytest.mark.parametrize("action", [ACCEPT, NOTRACK])
def test_a_removed_rule_with_a_port_set_is_put_back(action):
    """nft writes several ports as an anonymous set, braces and all."""
    rule = OurRule("nft", "inet", "filter", "input", "input", action, "tcp",
                   PortSet.of(80, 443))  # fmt: skip
    assert "{ 80, 443 }" in rule.text()
    line = f"insert rule inet filter input {rule.text()}\n"
    check_shape("x", CommandRecord("remove", NFT_RUN, "delete rule inet filter input handle 4\n",
                                   NFT_RUN, line))  # fmt: skip
