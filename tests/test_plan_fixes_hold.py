"""A plan claims only what it does: on a copy of every fixture root, ``apply`` what
``plan`` lists under "addresses" ("Fixes: ..."), then ``doctor`` must find none of them.

A plan that cannot make a finding go away (a restart that still loses values, a setting
outside its reach) must leave that ID out and say why in a note instead. A finding whose
cause the plan removes but whose evidence stays (a counter since boot, entries already in
the table) is listed under "treats", with how its evidence clears, never under "addresses".
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from ctguard.cli import main

TESTS = Path(__file__).parent
ROOTS = sorted(
    manifest.parent
    for base in (TESTS, TESTS.parent / "examples")
    if base.is_dir()
    for manifest in base.rglob("ctguard_manifest.json")
)

# What plan lists under "treats" on the roots where a finding rests on history, as an
# operator reads the evidence: chaintoolong > 0 is a counter since boot that buckets raised
# to one per entry stop from rising but never lower (CT105); TIME_WAIT entries already in
# the table keep their 120 s (CT402). CT102-CT104 are counters too, but no plan changes
# their cause (the max is kept: the plan notes --target-max for CT102).
TREATS = {
    "ct102-drops-with-chaintoolong": {"CT105"},
    "ct105-chaintoolong": {"CT105"},
    "ct402-time-wait-majority": {"CT402"},
    # CT105 here is the ratio alone (max 8 x buckets, chaintoolong 0): fixed, not treated
    "ct105-max-8x-buckets": set(),
}


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, Any]:
    main(argv)
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


@pytest.mark.parametrize("root", ROOTS, ids=lambda r: str(r.relative_to(TESTS.parent)))
def test_applied_plan_fixes_what_it_claims(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "root"
    shutil.copytree(root, copy, symlinks=True)
    before = _found(capsys, copy)
    plan = _json(capsys, ["plan", "--root", str(copy), "--format", "json"])
    claimed = set(plan["addresses"])
    treated = {t["id"] for t in plan["treats"]}
    assert not claimed & treated, sorted(claimed & treated)  # one list or the other
    assert claimed | treated <= before  # only findings found now
    if root.name in TREATS:
        assert treated == TREATS[root.name], plan["treats"]
    if not plan["files"] and not plan["sysctls"]:
        return
    assert main(["apply", "--root", str(copy), "--yes"]) == 0, capsys.readouterr()
    capsys.readouterr()
    still = _found(capsys, copy)
    assert not claimed & still, (sorted(claimed & still), plan["notes"])
    # and an apply never leaves a finding that was not there before
    assert still <= before, sorted(still - before)


def _found(capsys: pytest.CaptureFixture[str], root: Path) -> set[str]:
    report = _json(capsys, ["doctor", "--root", str(root), "--format", "json"])
    return {f["id"] for f in report["findings"] if f["status"] == "found"}


def test_restart_still_losing_is_not_claimed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # RHEL 7.6 greps /etc/sysctl.d/* only; a larger max must win over sysctl.conf at boot, so
    # it goes in sysctl.conf's block, which a restart does not re-apply: no CT304 claimed
    copy = tmp_path / "root"
    shutil.copytree(TESTS / "roots/doctor/ct304-rhel76-greps-sysctl-d-no-link", copy, symlinks=True)
    plan = _json(
        capsys, ["plan", "--root", str(copy), "--target-max", "300000", "--format", "json"]
    )
    assert "CT304" not in plan["addresses"]
    assert all("CT304" not in change["addresses"] for change in plan["files"])
    lost = [n["text"] for n in plan["notes"] if "will still lose" in n["text"]]
    assert lost and "ln -s ../sysctl.conf /etc/sysctl.d/99-sysctl.conf" in lost[0]


def test_every_root_named_in_treats_exists() -> None:
    assert set(TREATS) <= {root.name for root in ROOTS}
