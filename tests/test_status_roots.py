"""``ctguard status --root`` against snapshot roots in ``tests/roots/<scenario>/``.

Each scenario is a snapshot as ``ctguard snapshot`` writes it, plus the whole expected
``status --root DIR --json --interval 0`` output in ``expected-status.json``. The figures in
those files were worked out by hand from the fixture values (tests/roots/README.md shows the
arithmetic), so a change in the tool's sums, rounding or memory model shows up here.
The installed console script runs as a subprocess, as an operator would run it.
"""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOTS = Path(__file__).parent / "roots"
EXAMPLE = Path(__file__).parent.parent / "examples" / "rhel6-table-full"

# every directory with an expected-status.json is a scenario; these must be among them
REQUIRED = {"modern-builtin", "rhel6-modular", "no-procfs-stats", "not-loaded"}
SCENARIOS = sorted(p.parent.name for p in ROOTS.glob("*/expected-status.json"))


@functools.cache
def run_status(root: Path, as_json: bool) -> subprocess.CompletedProcess[str]:
    """Run the console script once per (root, format); several tests read the result."""
    args = ["ctguard", "status", "--root", str(root), "--interval", "0"]
    if as_json:
        args.append("--json")
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def expected_status(scenario: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOTS / scenario / "expected-status.json").read_text())
    return data


def loaded(scenario: str) -> bool:
    return bool(expected_status(scenario)["conntrack"]["loaded"])


LOADED = [s for s in SCENARIOS if loaded(s)]
NOT_LOADED = [s for s in SCENARIOS if not loaded(s)]


def test_required_scenarios_are_present() -> None:
    assert set(SCENARIOS) >= REQUIRED
    assert "not-loaded" in NOT_LOADED


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_status_json_matches_expected(scenario: str) -> None:
    done = run_status(ROOTS / scenario, as_json=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert json.loads(done.stdout) == expected_status(scenario)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_is_a_snapshot(scenario: str) -> None:
    manifest = json.loads((ROOTS / scenario / "ctguard_manifest.json").read_text())
    assert manifest["format"] == "ctguard.snapshot/1"
    assert manifest["netns"] is None
    assert "/proc/meminfo" in manifest["captured"]


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
def test_garbage_stat_line_is_one_line_error(as_json: bool) -> None:
    done = run_status(ROOTS / "garbage-stat", as_json=as_json)
    expected = (ROOTS / "garbage-stat" / "expected-error.txt").read_text()
    assert done.returncode == 3
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("ctguard: error:")
    assert done.stderr == expected


@pytest.mark.parametrize("scenario", LOADED)
def test_status_text_shows_count_and_max(scenario: str) -> None:
    table = expected_status(scenario)["table"]
    done = run_status(ROOTS / scenario, as_json=False)
    assert done.returncode == 0, done.stderr
    assert f"{table['count']:,} / {table['max']:,}" in done.stdout


@pytest.mark.parametrize("scenario", NOT_LOADED)
def test_status_text_not_loaded(scenario: str) -> None:
    done = run_status(ROOTS / scenario, as_json=False)
    assert done.returncode == 0, done.stderr
    assert "not loaded" in done.stdout


def test_example_rhel6_table_full() -> None:
    """The seed story: drops counted, and a max whose table would not fit in RAM."""
    done = run_status(EXAMPLE, as_json=True)
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["conntrack"]["presence"] == "module"
    assert status["table"]["max"] == 10485760
    assert status["table"]["buckets"] == 16384
    assert status["counters"]["drop"] == 94199
    # 10485760 x 416 B + 16384 x 8 B = 4362207232 B against MemTotal 3923608 kB
    assert status["memory"]["at_max_bytes"] == 4362207232
    assert status["memory"]["at_max_percent"] == 108.57

    text = run_status(EXAMPLE, as_json=False)
    assert text.returncode == 0, text.stderr
    assert "97,315 / 10,485,760" in text.stdout


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_status_text_matches_golden(scenario: str) -> None:
    """The text renderer's whole output (80 columns, no colour when piped)."""
    done = run_status(ROOTS / scenario, as_json=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (ROOTS / scenario / "expected-status.txt").read_text()
