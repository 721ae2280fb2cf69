"""The rule runner: selection by pattern, and one failing rule never hides the others."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctguard.facts import collect
from ctguard.findings import Status
from ctguard.host.commands import CapturedCommands
from ctguard.host.root import HostRoot
from ctguard.model.thresholds import Thresholds
from ctguard.rules import RULES, Outcome, run_rules, selected

EXAMPLE = Path(__file__).parent.parent / "examples" / "rhel6-table-full"


def _facts():  # type: ignore[no-untyped-def]
    host = HostRoot(EXAMPLE)
    return collect(host, CapturedCommands(host))


def test_selected_matches_shell_patterns_case_blind():
    assert selected(["ct10*"]) == ["CT101", "CT102", "CT103", "CT104", "CT105", "CT106"]
    assert selected(["CT201", "CT6*"]) == ["CT201", "CT601"]
    assert selected([]) == sorted(RULES)


def test_a_crashing_rule_is_reported_skipped(monkeypatch: pytest.MonkeyPatch):
    def broken(_facts: object, _limits: Thresholds) -> Outcome:
        raise KeyError("nf_conntrack_max")

    monkeypatch.setitem(RULES, "CT105", broken)
    findings = {f.id: f for f in run_rules(_facts())}
    assert findings["CT105"].status is Status.SKIPPED
    assert findings["CT105"].reason.startswith("internal error: KeyError")
    assert findings["CT102"].status is Status.FOUND  # the others still ran
    with pytest.raises(KeyError):
        run_rules(_facts(), debug=True)


def test_a_pass_that_needs_every_sysctl_file_is_skipped_when_one_was_unreadable():
    from dataclasses import replace

    root = Path(__file__).parent / "roots" / "doctor" / "ct302-near-modules-load"
    host = HostRoot(root)
    facts = collect(host, CapturedCommands(host))
    before = {f.id: f for f in run_rules(facts, only=["CT301", "CT302"])}
    assert {f.status for f in before.values()} == {Status.PASSED}
    config = replace(facts.sysctl_config, unreadable=(("/etc/sysctl.d", "Permission denied"),))
    after = {f.id: f for f in run_rules(replace(facts, sysctl_config=config), only=["CT30[12]"])}
    for finding in after.values():
        assert finding.status is Status.SKIPPED
        assert "/etc/sysctl.d: Permission denied" in finding.reason
