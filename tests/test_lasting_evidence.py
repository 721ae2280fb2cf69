"""Which findings rest on history (model/evidence.py): a counter since the table was made,
kernel log lines, entries already in the table. Decided as an operator reads them: after a
fix, does the next doctor still see the old evidence?"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ctguard.facts import Facts, collect
from ctguard.host.commands import CapturedCommands
from ctguard.host.root import HostRoot
from ctguard.model.evidence import lasting_evidence, split_claims
from ctguard.sources.stats import ConntrackStats

ROOTS = Path(__file__).parent / "roots"


def _facts(name: str) -> Facts:
    host = HostRoot(ROOTS / name)
    return collect(host, CapturedCommands(host))


def _with_counters(facts: Facts, **totals: int) -> Facts:
    stats = facts.stats
    assert isinstance(stats, ConntrackStats)
    return replace(facts, stats=replace(stats, totals={**stats.totals, **totals}))


# Values, files and rules read the state now: once the fix is in place they are gone.
@pytest.mark.parametrize(
    "rule_id",
    ["CT101", "CT106", "CT201", "CT301", "CT302", "CT303", "CT304", "CT305", "CT401", "CT501"],
)
def test_findings_on_the_state_now_have_no_lasting_evidence(rule_id: str) -> None:
    facts = _with_counters(_facts("doctor/ct105-chaintoolong"), drop=9, early_drop=9)
    assert lasting_evidence(rule_id, facts) is None


@pytest.mark.parametrize(
    ("rule_id", "name"),
    [("CT102", "drop"), ("CT103", "early_drop"), ("CT104", "insert_failed")],
)
def test_drop_counters_only_count_up_until_the_table_is_made_again(rule_id: str, name: str) -> None:
    facts = _with_counters(_facts("doctor/ct105-chaintoolong"), **{name: 7})
    why = lasting_evidence(rule_id, facts)
    assert why is not None
    assert f"{name} = 7 only counts up, until reboot" in why  # conntrack is built in here


def test_table_full_log_lines_stay_too() -> None:
    why = lasting_evidence("CT102", _facts("doctor/ct102-dmesg-table-full"))
    assert why is not None and "'table full' lines stay in the kernel log" in why


def test_a_modular_conntrack_counts_until_it_is_loaded_again() -> None:
    why = lasting_evidence("CT103", _facts("rhel6-modular"))
    assert why is not None and "until nf_conntrack is loaded again" in why


def test_a_namespace_counts_until_it_is_made_again() -> None:
    facts = replace(_facts("doctor/ct105-chaintoolong"), netns="web1")
    why = lasting_evidence("CT105", facts)
    assert why is not None and "until namespace web1 is made again" in why


def test_ct105_rests_on_history_only_while_chaintoolong_counted() -> None:
    chains = _facts("doctor/ct105-chaintoolong")  # chaintoolong 51: history
    why = lasting_evidence("CT105", chains)
    assert why is not None and why.startswith("chaintoolong = 51 only counts up")
    # max 8 x buckets, no chain ever too long: raising the buckets clears it at once
    assert lasting_evidence("CT105", _facts("doctor/ct105-max-8x-buckets")) is None
    assert lasting_evidence("CT105", _with_counters(chains, chaintoolong=0)) is None


def test_time_wait_entries_keep_their_old_timeout() -> None:
    why = lasting_evidence("CT402", _facts("doctor/ct402-time-wait-majority"))
    assert why is not None
    assert why.startswith("tcp TIME_WAIT (120 s) entries already in the table keep")


def test_split_claims_puts_each_id_in_one_list() -> None:
    facts = _facts("doctor/ct105-chaintoolong")
    fixed, treated = split_claims(["CT303", "CT105", "CT201", "CT105"], facts)
    assert fixed == ("CT201", "CT303")
    assert [t.id for t in treated] == ["CT105"]
    facts = _with_counters(facts, chaintoolong=0)
    assert split_claims(["CT105"], facts) == (("CT105",), ())


def test_without_a_drop_counter_only_the_log_lines_are_named() -> None:
    facts = _facts("doctor/ct102-dmesg-table-full")
    stats = facts.stats
    assert isinstance(stats, ConntrackStats)
    without = replace(facts, stats=replace(stats, totals={}))
    why = lasting_evidence("CT102", without)
    assert why is not None and "drop" not in why.split("'table full'")[0]
    assert why.startswith("'table full' lines stay in the kernel log")
