"""Design §9 consistency: after ``apply --root R``, ``doctor --root R`` no longer reports
any of CT106, CT201, CT301-CT305 that the plan said it fixes, and planning again finds
nothing to do (apply is a fixpoint). Run for every fixture root of the doctor issue."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ctguard.facts import collect
from ctguard.findings import Status
from ctguard.host.commands import CapturedCommands
from ctguard.host.root import HostRoot
from ctguard.host.target import Target
from ctguard.remediation.apply import TreeRuntime, apply_changes
from ctguard.sources.manifest import read_manifest
from ctguard.usecases.doctor import diagnose
from ctguard.usecases.plan import Planning, plan

HERE = Path(__file__).parent.parent
ROOTS = sorted(
    [p.parent for p in (HERE / "roots" / "doctor").glob("*/contract.json")]
    + [p.parent for p in (HERE / "roots").glob("*/ctguard_manifest.json")]
    + [p.parent for p in (HERE.parent / "examples").glob("*/ctguard_manifest.json")]
)
CHECKED = {"CT106", "CT201", "CT301", "CT302", "CT303", "CT304", "CT305"}


def found_ids(root: Path) -> set[str]:
    host = HostRoot(root)
    manifest = read_manifest(host)
    facts = collect(host, CapturedCommands(host), manifest.netns if manifest else None)
    return {f.id for f in diagnose(facts).findings if f.status is Status.FOUND}


@pytest.mark.parametrize("source", ROOTS, ids=lambda p: p.name)
def test_apply_fixes_what_the_plan_addresses(source: Path, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(source, tree, symlinks=True)
    before = found_ids(tree)
    made = plan(Target(str(tree)), Planning()).plan
    assert not made.refused, made.refusal
    assert set(made.addresses) <= before
    apply_changes(
        made.files, made.sysctls, root=tree, runtime=TreeRuntime(tree),
        state_dir=tmp_path / "state", meta={"command": "test"},
    )  # fmt: skip
    after = found_ids(tree)
    assert not (set(made.addresses) & CHECKED & after), (made.addresses, after)
    again = plan(Target(str(tree)), Planning()).plan
    assert again.empty, [c.path for c in again.files] + [c.name for c in again.sysctls]


def test_some_roots_have_each_checked_id_addressed() -> None:
    """The loop above is not vacuous: every checked ID is fixed on at least one root."""
    addressed: set[str] = set()
    for source in ROOTS:
        addressed |= set(plan(Target(str(source)), Planning()).plan.addresses)
    assert addressed >= CHECKED
