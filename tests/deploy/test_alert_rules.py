"""The shipped alert rules (deploy/prometheus/ctguard-alerts.yml): promtool accepts them, its
unit tests (ctguard-alerts.test.yml) pass and cover every alert firing and not firing, every
metric they read is one the exporter serves, their thresholds are doctor's, and every
runbook link leads to a page in this repository."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from ctguard import catalogue
from ctguard.model.thresholds import Thresholds
from ctguard.output import metric_names
from promql import metrics_read

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "ctguard-alerts.yml"
UNIT_TESTS = Path(__file__).with_name("ctguard-alerts.test.yml")
ALERTS_DOC = REPO / "docs" / "alerts.md"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian: prometheus)")
# metrics Prometheus itself makes, not the exporter
PROMETHEUS_OWN = {"up"}


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    labels: dict[str, str]
    annotations: dict[str, str]


def _block(lines: list[str], key: str) -> dict[str, str]:
    """``key:``'s child mapping of one rule, as flat ``name: value`` lines (values folded)."""
    found: dict[str, str] = {}
    inside = False
    indent = 0
    current = ""
    for line in lines:
        stripped = line.strip()
        depth = len(line) - len(line.lstrip())
        if stripped == f"{key}:":
            inside, indent = True, depth
            continue
        if not inside or not stripped:
            continue
        if depth <= indent:
            break
        match = re.fullmatch(r"([A-Za-z_]+): ?(.*)", stripped)
        if depth == indent + 2 and match:
            current = match[1]
            found[current] = "" if match[2] in (">-", "|") else match[2].strip('"')
        else:
            found[current] = f"{found[current]} {stripped}".strip()
    return found


def _alerts() -> list[Alert]:
    """The rules file's alerts: a reader of the few forms the file uses (no YAML library is
    a dependency); the promtool tests below prove the file means what this reads."""
    alerts = []
    for chunk in RULES.read_text(encoding="utf-8").split("- alert: ")[1:]:
        name, *lines = chunk.splitlines()
        expr_lines: list[str] = []
        for number, line in enumerate(lines):
            if line.strip().startswith("expr:"):
                first = line.split("expr:", 1)[1].strip()
                if first != "|":
                    expr_lines = [first]
                    break
                depth = len(line) - len(line.lstrip())
                for more in lines[number + 1 :]:
                    if len(more) - len(more.lstrip()) <= depth:
                        break
                    expr_lines.append(more.strip())
                break
        alerts.append(
            Alert(
                name.strip(),
                " ".join(expr_lines),
                _block(lines, "labels"),
                _block(lines, "annotations"),
            )
        )
    return alerts


ALERTS = _alerts()


def _by_name(name: str) -> Alert:
    return next(alert for alert in ALERTS if alert.name == name)


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_reader_finds_every_alert() -> None:
    text = RULES.read_text(encoding="utf-8")
    assert len(ALERTS) == text.count("- alert: ") >= 12
    assert all(alert.expr for alert in ALERTS)


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    done = _promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in done.stdout


@needs_promtool
def test_the_promtool_unit_tests_pass() -> None:
    done = _promtool("test", "rules", str(UNIT_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def _cases() -> list[tuple[str, bool]]:
    """(alertname, fires) of every eval case of the unit tests."""
    cases = []
    for chunk in UNIT_TESTS.read_text(encoding="utf-8").split("- eval_time:")[1:]:
        name = re.search(r"alertname: (\w+)", chunk)
        assert name, chunk
        fires = re.search(r"exp_alerts: \[\]", chunk) is None
        cases.append((name[1], fires))
    return cases


@pytest.mark.parametrize("alert", [alert.name for alert in ALERTS])
def test_every_alert_is_tested_firing_and_not_firing(alert: str) -> None:
    cases = _cases()
    assert (alert, True) in cases, f"no unit test where {alert} fires"
    assert (alert, False) in cases, f"no unit test where {alert} stays quiet"


def test_the_unit_tests_name_only_alerts_that_exist() -> None:
    assert {name for name, _ in _cases()} <= {alert.name for alert in ALERTS}


def test_the_metric_reader_sees_names_and_not_functions() -> None:
    expr = 'rate(a_total[5m]) > 1 and on(instance) b{x="y_z"} or absent(up{job="c"})'
    assert metrics_read(expr) == {"a_total", "b", "up"}


@pytest.mark.parametrize("alert", ALERTS, ids=lambda alert: alert.name)
def test_every_metric_read_is_one_the_exporter_serves(alert: Alert) -> None:
    names = metrics_read(alert.expr)
    assert names, alert.expr
    assert names <= set(metric_names.ALL) | PROMETHEUS_OWN, alert.expr


def test_the_unit_tests_feed_only_metrics_the_exporter_serves() -> None:
    text = UNIT_TESTS.read_text(encoding="utf-8")
    fed = set(re.findall(r"series: '([a-zA-Z_:][a-zA-Z0-9_:]*)\{", text))
    assert fed and fed <= set(metric_names.ALL) | PROMETHEUS_OWN


@pytest.mark.parametrize(
    ("alert", "share"),
    [
        ("CtguardConntrackTableNearlyFull", Thresholds().usage_warning),
        ("CtguardConntrackTableFull", Thresholds().usage_critical),
        ("CtguardConntrackMaxUnsafeForMemory", Thresholds().memory_warning),
        ("CtguardConntrackMaxDangerousForMemory", Thresholds().memory_critical),
    ],
)
def test_thresholds_are_the_ones_doctor_judges_by(alert: str, share: float) -> None:
    expr = _by_name(alert).expr
    assert re.search(rf">= {share / 100:.2f}(?!\d)", expr), expr


@pytest.mark.parametrize(
    "alert",
    [
        "CtguardConntrackTableNearlyFull",
        "CtguardConntrackTableFull",
        "CtguardConntrackTablePredictedFull",
        "CtguardConntrackMaxUnsafeForMemory",
        "CtguardConntrackMaxDangerousForMemory",
    ],
)
def test_an_unlimited_table_has_no_ratio_to_alert_on(alert: str) -> None:
    # `ignoring(...)`: with --netns all, entries carry netns labels the one max has not
    assert re.search(
        r"\band(?: ignoring\(netns, container_id, pod_uid\))? ctguard_conntrack_max > 0",
        _by_name(alert).expr,
    )


@pytest.mark.parametrize("alert", ALERTS, ids=lambda alert: alert.name)
def test_every_alert_says_what_it_is_and_where_to_read_more(alert: Alert) -> None:
    assert alert.labels.get("severity") in {"critical", "warning", "info"}
    assert alert.annotations.get("summary")
    assert alert.annotations.get("description")
    link = alert.annotations.get("runbook_url", "")
    path, _, anchor = link.partition("#")
    assert "://" not in link and (REPO / path).is_file(), link
    pitfall = alert.labels.get("ctguard_id")
    if pitfall is None:
        assert path == "docs/alerts.md" and anchor == alert.name.lower(), link
    else:
        assert pitfall in catalogue.CATALOGUE
        assert path == f"src/ctguard/{catalogue.STORIES}/{pitfall}.md", link
        assert f"ctguard explain {pitfall}" in alert.annotations["description"]


@pytest.mark.parametrize("alert", [alert.name for alert in ALERTS])
def test_docs_explain_every_alert(alert: str) -> None:
    assert re.search(rf"^## {alert}$", ALERTS_DOC.read_text(encoding="utf-8"), flags=re.M)
