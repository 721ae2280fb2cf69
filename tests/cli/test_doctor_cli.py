"""`ctguard doctor` and `ctguard explain` as an operator runs them: output, errors, exit codes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ctguard.findings import Finding, Severity, Status
from ctguard.usecases.doctor import exit_code
from helpers import assert_one_line_error, check_golden, ctguard_bin, run_ctguard

EXAMPLE = Path(__file__).parents[2] / "examples" / "rhel6-table-full"
GOLDEN = Path(__file__).parent / "golden"
CRIT = Severity.CRITICAL


def _f(status: Status, severity: Severity = Severity.OK) -> Finding:
    return Finding("CT101", status, severity, "t")


@pytest.mark.parametrize(
    ("findings", "fail_on", "code"),
    [
        ([_f(Status.PASSED)], Severity.WARNING, 0),
        ([_f(Status.FOUND, Severity.INFO)], Severity.WARNING, 0),
        ([_f(Status.FOUND, Severity.WARNING), _f(Status.PASSED)], Severity.WARNING, 1),
        ([_f(Status.FOUND, Severity.WARNING)], Severity.CRITICAL, 0),
        ([_f(Status.FOUND, Severity.CRITICAL), _f(Status.SKIPPED)], Severity.CRITICAL, 2),
        ([_f(Status.FOUND, CRIT), _f(Status.FOUND, Severity.WARNING)], Severity.WARNING, 2),
        ([_f(Status.SKIPPED), _f(Status.SKIPPED)], Severity.WARNING, 3),
        ([_f(Status.SKIPPED), _f(Status.PASSED)], Severity.WARNING, 0),
    ],
)
def test_exit_code(findings: list[Finding], fail_on: Severity, code: int) -> None:
    assert exit_code(findings, fail_on) == code


def test_text_output_of_the_example_is_golden() -> None:
    done = run_ctguard("doctor", "--root", str(EXAMPLE))
    assert done.returncode == 2, done.stderr
    check_golden("doctor-rhel6-table-full.txt", done.stdout)
    assert "\x1b[" not in done.stdout  # no colour codes when not a terminal


def test_json_and_text_agree_on_exit_code() -> None:
    done = run_ctguard("doctor", "--root", str(EXAMPLE), "--format", "json")
    report = json.loads(done.stdout)
    assert report["schema"] == "ctguard.doctor/1"
    assert done.returncode == report["exit_code"] == 2
    assert report["status"] == "CRITICAL"
    assert [f["id"] for f in report["findings"]] == sorted(f["id"] for f in report["findings"])


def test_only_runs_the_matching_ids() -> None:
    done = run_ctguard("doctor", "--root", str(EXAMPLE), "--format", "json", "--only", "ct3*")
    ids = [f["id"] for f in json.loads(done.stdout)["findings"]]
    assert ids == ["CT301", "CT302", "CT303", "CT304", "CT305", "CT306", "CT307"]
    assert done.returncode == 1  # CT302/CT304 warnings; the critical ones were not run


def test_only_takes_a_comma_separated_list() -> None:
    done = run_ctguard(
        "doctor", "--root", str(EXAMPLE), "--format", "json", "--only", "CT501, ct30[12]"
    )
    ids = [f["id"] for f in json.loads(done.stdout)["findings"]]
    assert ids == ["CT301", "CT302", "CT501"]


def test_fail_on_critical_lets_warnings_exit_0() -> None:
    args = ("doctor", "--root", str(EXAMPLE), "--only", "CT30*", "--fail-on", "critical")
    done = run_ctguard(*args)
    assert done.returncode == 0, done.stdout
    assert "WARNING CT304" in done.stdout


def test_threshold_changes_a_decision() -> None:
    # the example's table is 0.9 % full: with the warning at 0.5 % CT101 fires
    base = ("doctor", "--root", str(EXAMPLE), "--format", "json", "--only", "CT101")
    before = json.loads(run_ctguard(*base).stdout)["findings"][0]
    after = json.loads(run_ctguard(*base, "--threshold", "usage_warning=0.5").stdout)
    assert before["status"] == "passed"
    assert (after["findings"][0]["status"], after["findings"][0]["severity"]) == (
        "found",
        "warning",
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--only", "CT999"), "no rule matches CT999"),
        (("--threshold", "usage=5"), "NAME one of usage_warning"),
        (("--threshold", "usage_warning=lots"), "is not a number"),
        (("--threshold", "usage_warning=nan"), "finite number"),
        (("--format", "yaml"), "'yaml' is not one of"),
        (("--netns", "x"), "cannot be combined"),
    ],
)
def test_bad_usage_is_one_line(args: tuple[str, ...], needle: str) -> None:
    assert_one_line_error(run_ctguard("doctor", "--root", str(EXAMPLE), *args), needle)


def test_missing_root_is_one_line(tmp_path: Path) -> None:
    assert_one_line_error(run_ctguard("doctor", "--root", str(tmp_path / "nope")))


def test_non_root_reports_what_it_could_not_read() -> None:
    # euid 65534 in a user namespace: rulesets need root, the rest is readable
    done = subprocess.run(
        ["unshare", "--user", ctguard_bin(), "doctor", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    report = json.loads(done.stdout)
    assert done.returncode == report["exit_code"] != 3
    findings = {f["id"]: f for f in report["findings"]}
    for rule_id in ("CT501", "CT502", "CT504"):
        assert findings[rule_id]["status"] == "skipped"
        assert "needs root" in findings[rule_id]["reason"]
    assert findings["CT101"]["status"] != "skipped"


def test_explain_tells_the_whole_story() -> None:
    done = run_ctguard("explain", "ct304")
    assert done.returncode == 0
    for section in ("CT304: ", "Cause", "Prove it on your host", "Fix", "References"):
        assert section in done.stdout
    assert "IPTABLES_SYSCTL_LOAD_LIST" in done.stdout


def test_explain_without_id_lists_the_catalogue() -> None:
    done = run_ctguard("explain")
    ids = [line.split()[0] for line in done.stdout.splitlines() if line.startswith("CT")]
    assert len(ids) == 22 and ids == sorted(ids)


def test_explain_unknown_id_is_one_line() -> None:
    assert_one_line_error(run_ctguard("explain", "CT999"), "unknown ID")


def test_help_lists_every_threshold_with_its_default() -> None:
    from ctguard.model.thresholds import Thresholds

    text = " ".join(run_ctguard("doctor", "--help").stdout.split())
    for name in Thresholds.names():
        default = getattr(Thresholds(), name)
        assert f"{name}={default:g}" in text, name
