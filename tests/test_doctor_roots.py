"""``ctguard doctor --root`` on fixture roots: every catalogue ID fires on its trigger root
and stays silent on its near-miss root (docs/design.md §4, §10).

Each ``tests/roots/doctor/<scenario>/`` is a snapshot tree plus two files:
- ``contract.json``: the IDs this scenario is about, hand-written, e.g.
  ``{"CT302": "found/warning", "CT101": "passed"}`` (status, and severity when found);
- ``expected.json``: the whole ``doctor --format json`` output, checked key for key.
  ``CTGUARD_UPDATE_GOLDEN=1 pytest tests/test_doctor_roots.py`` rewrites these; review the
  diff before committing it (the contract rows are the part that must never be regenerated).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest

from ctguard.catalogue import CATALOGUE
from ctguard.facts import collect
from ctguard.host.commands import CapturedCommands
from ctguard.host.root import HostRoot
from ctguard.output.doctor_json import doctor_dict
from ctguard.sources.manifest import read_manifest
from ctguard.usecases.doctor import diagnose

ROOTS = Path(__file__).parent / "roots" / "doctor"
SCENARIOS = sorted(p.parent.name for p in ROOTS.glob("*/contract.json"))
LATER: set[str] = set()  # every catalogue ID now has its scenarios
UPDATE = os.environ.get("CTGUARD_UPDATE_GOLDEN") == "1"


def doctor_json(scenario: str) -> dict[str, Any]:
    """What the rules say of the root: doctor's document without which machine it is and
    when it was read (doctor() adds those, diagnose() does not; tests/cli has them)."""
    host = HostRoot(ROOTS / scenario)
    manifest = read_manifest(host)
    facts = collect(host, CapturedCommands(host), manifest.netns if manifest else None)
    document = doctor_dict(diagnose(facts))
    assert document.pop("host") == {"hostname": None, "machine_id": None}
    assert document.pop("created_utc") is None
    return document


def contract(scenario: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((ROOTS / scenario / "contract.json").read_text())
    return data


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_whole_output(scenario: str) -> None:
    got = doctor_json(scenario)
    golden = ROOTS / scenario / "expected.json"
    if UPDATE:
        golden.write_text(json.dumps(got, indent=2) + "\n")
    assert got == json.loads(golden.read_text())


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_contract(scenario: str) -> None:
    findings = {f["id"]: f for f in doctor_json(scenario)["findings"]}
    for rule_id, want in contract(scenario).items():
        f = findings[rule_id]
        got = f["status"] if f["status"] != "found" else f"found/{f['severity']}"
        assert got == want, f"{scenario} {rule_id}: {f}"


def test_every_id_has_a_trigger_and_a_near_miss() -> None:
    fires: dict[str, list[str]] = {}
    silent: dict[str, list[str]] = {}
    for scenario in SCENARIOS:
        for rule_id, want in contract(scenario).items():
            (fires if want.startswith("found") else silent).setdefault(rule_id, []).append(scenario)
    ids = set(CATALOGUE) - LATER
    assert ids - set(fires) == set(), "IDs without a scenario that triggers them"
    assert ids - set(silent) == set(), "IDs without a near-miss scenario"


_MENTION = re.compile(r"\bctguard\s+([a-z][a-z0-9-]*)")


def test_fixes_name_only_commands_that_exist_or_say_coming() -> None:
    """A fix an operator runs at 3 a.m. never sends them to a command that is not there."""
    from ctguard.cli import cli

    available = set(cli.list_commands(click.Context(cli)))
    for scenario in SCENARIOS:
        for f in doctor_json(scenario)["findings"]:
            text = f["fix"] or ""
            for match in _MENTION.finditer(text):
                before = text[: match.start()]
                assert match[1] in available or before.endswith(("coming: ", "coming: `")), (
                    f"{scenario} {f['id']}: ctguard {match[1]}"
                )


def test_cli_exit_code_matches_json(tmp_path: Path) -> None:
    """The console script gives the same JSON and the exit code it names."""
    for scenario in SCENARIOS[:3]:
        done = subprocess.run(
            ["ctguard", "doctor", "--root", str(ROOTS / scenario), "--format", "json"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        report = json.loads(done.stdout)
        host, created = report.pop("host"), report.pop("created_utc")
        assert report == json.loads((ROOTS / scenario / "expected.json").read_text())
        assert done.returncode == report["exit_code"]
        # which machine, and when: what the root holds, or null where it holds nothing
        name = ROOTS / scenario / "proc/sys/kernel/hostname"
        assert host["hostname"] == (name.read_text().strip() if name.exists() else None)
        manifest = read_manifest(HostRoot(ROOTS / scenario))
        assert created == (manifest.created_utc if manifest else None)
