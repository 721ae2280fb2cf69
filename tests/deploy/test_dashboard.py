"""The shipped Grafana dashboard (deploy/grafana/ctguard-dashboard.json): valid JSON that
Grafana imports (recent schema, a Prometheus datasource variable and a host variable), every
panel titled and with a unit, every expression accepted by promtool and reading only metrics
the exporter serves, filtered to the chosen hosts, and judging as the alert rules and doctor
do (the CT102 drop expression, the CT101/CT201 thresholds). With `--netns all` the host
panels keep showing the exporter's own namespace only, and the Namespaces panels the
others."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from ctguard.cli import main
from ctguard.model.thresholds import Thresholds
from ctguard.output import metric_names
from ctguard.output.exporter_metrics import ExporterCollector
from ctguard.usecases.exporter import ExporterSample
from ctguard.usecases.exporter_netns import NamespaceSample, NamespacesSample
from promql import metrics_read

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "ctguard-dashboard.json"
RULES = REPO / "deploy" / "prometheus" / "ctguard-alerts.yml"
EXAMPLE = REPO / "examples" / "rhel6-table-full"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian: prometheus)")
PROMETHEUS_OWN = {"up"}  # made by Prometheus, not the exporter
HOST_FILTER = 'instance=~"$instance"'
# what Grafana puts in for the dashboard's variables, for promtool: a regex matching every
# host (the variable's "All"), the rate window Grafana derives from the scrape interval, and
# the dashboard's time range (5 minutes here, the CT102 alert's window)
VARIABLES = {'"$instance"': '".*"', "$__rate_interval": "5m", "$__range": "5m"}
# panels of the other network namespaces (--netns all) are titled so; all others show the
# exporter's own namespace, whose series carry no netns label in Prometheus
NAMESPACE_PANEL = "Namespaces"

DASH: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
PANELS: list[dict[str, Any]] = DASH["panels"]
TARGETS = [(panel, target) for panel in PANELS for target in panel.get("targets", [])]


def _per_namespace(panel: dict[str, Any]) -> bool:
    return bool(panel["title"].startswith(NAMESPACE_PANEL))


def _ids(item: tuple[dict[str, Any], dict[str, Any]]) -> str:
    return f"{item[0]['title']} {item[1]['refId']}"


def _substituted(expr: str) -> str:
    for variable, value in VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=120, check=False
    )


def _rules_file(exprs: list[str], path: Path) -> Path:
    """One recording rule per expression (JSON is YAML, so promtool reads it)."""
    rules = [
        {"record": f"ctguard:dashboard:expr{number}", "expr": expr}
        for number, expr in enumerate(exprs)
    ]
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    return path


def test_the_dashboard_is_one_grafana_imports() -> None:
    assert DASH["schemaVersion"] >= 36
    assert DASH["uid"] and DASH["title"]
    variables = {variable["name"]: variable for variable in DASH["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["instance"]["type"] == "query"
    assert "label_values(" in variables["instance"]["definition"]
    ids = [panel["id"] for panel in PANELS]
    assert len(ids) == len(set(ids)) >= 8


@pytest.mark.parametrize("panel", PANELS, ids=lambda panel: str(panel["title"]))
def test_every_panel_has_a_title_a_unit_and_the_chosen_datasource(panel: dict[str, Any]) -> None:
    assert panel["title"].strip()
    assert panel["description"].strip()
    assert panel["fieldConfig"]["defaults"]["unit"]
    assert panel["targets"]
    for target in panel["targets"]:
        assert target["datasource"]["uid"] == "${datasource}"
        assert target["expr"].strip()


@pytest.mark.parametrize(("panel", "target"), TARGETS, ids=[_ids(item) for item in TARGETS])
def test_every_expression_reads_only_what_the_exporter_serves_for_the_chosen_hosts(
    panel: dict[str, Any], target: dict[str, Any]
) -> None:
    expr = target["expr"]
    names = metrics_read(expr)
    assert names, expr
    assert names <= set(metric_names.ALL) | PROMETHEUS_OWN, expr
    marked = re.sub(r'"[^"]*"', '""', expr.replace(HOST_FILTER, "HOST"))
    for name in names:
        for selector in re.finditer(rf"\b{name}\b(\{{[^}}]*\}})?", marked):
            assert selector[1] and "HOST" in selector[1], f"{name} not filtered in {expr}"


@needs_promtool
def test_promtool_accepts_every_expression(tmp_path: Path) -> None:
    exprs = [_substituted(target["expr"]) for _, target in TARGETS]
    assert not [expr for expr in exprs if re.search(r"\$[A-Za-z_{]", expr)], "unknown variable"
    result = _promtool("check", "rules", str(_rules_file(exprs, tmp_path / "dash.yml")))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


@needs_promtool
def test_the_check_refuses_an_expression_that_does_not_parse(tmp_path: Path) -> None:
    broken = "rate(ctguard_conntrack_stat_drop_total[5m]"
    result = _promtool("check", "rules", str(_rules_file([broken], tmp_path / "bad.yml")))
    assert result.returncode != 0


def _alert_expr(alert: str) -> str:
    """The expr of one alert in the rules file (its block or one-line form)."""
    chunk = RULES.read_text(encoding="utf-8").split(f"- alert: {alert}\n", 1)[1]
    expr = chunk.split("expr:", 1)[1].split("\n        labels:", 1)[0]
    return expr.removeprefix(" |")


def _squashed(expr: str) -> str:
    return re.sub(r"\s+", "", expr)


def _drops_expr(per_namespace: bool) -> str:
    (drops,) = [
        t["expr"]
        for p, t in TARGETS
        if "CT102" in p["title"] and _per_namespace(p) == per_namespace
    ]
    return str(drops)


@pytest.mark.parametrize("per_namespace", [False, True], ids=["host", "namespaces"])
def test_drops_are_counted_as_the_ct102_alert_counts_them(per_namespace: bool) -> None:
    """The host panel per 5 minutes, the namespaces' table over the time range: both the
    alert's expression (which pages for a namespace as for the host)."""
    alert = _squashed(_alert_expr("CtguardConntrackPacketsDropped"))
    assert alert.endswith(">0")
    netns = 'netns!=""' if per_namespace else 'netns=""'
    drops = _squashed(_drops_expr(per_namespace))
    unfiltered = drops.replace(f"{{{HOST_FILTER},{netns}}}", "").replace("[$__range]", "[5m]")
    expected = alert if per_namespace else alert.removesuffix(">0")  # the table: drops only
    assert unfiltered == expected


def _steps(title_part: str) -> list[float]:
    (panel,) = [panel for panel in PANELS if title_part in panel["title"]]
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    return [step["value"] for step in steps if step["value"] is not None]


def test_gauge_colours_change_where_doctor_judges() -> None:
    limits = Thresholds()
    assert _steps("CT101") == [limits.usage_warning / 100, limits.usage_critical / 100]
    assert _steps("top 10 by fill") == [limits.usage_warning / 100, limits.usage_critical / 100]
    assert _steps("CT201") == [limits.memory_warning / 100, limits.memory_critical / 100]


SCRAPED = 'instance="h:9659",job="ctguard"'  # the labels Prometheus adds to what it scrapes


def _exporter_once(capsys: pytest.CaptureFixture[str]) -> list[tuple[str, str, float]]:
    """(name, labels, value) of each sample `ctguard exporter --once` prints for the example."""
    code = main(["exporter", "--once", "--root", str(EXAMPLE)])
    assert code == 0
    samples = []
    for line in capsys.readouterr().out.splitlines():
        match = re.fullmatch(r"([a-z_:]+)(?:\{(.*)\})? (\S+)", line)
        if match and not line.startswith("#"):
            samples.append((match[1], match[2] or "", float(match[3])))
    return samples


@needs_promtool
def test_panels_on_the_exporters_real_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The example host (RHEL 6: no clash_resolve column) scraped every minute, its drop
    counter rising 100 a minute and insert_failed 10: every drop is a full-table drop there,
    so the CT102 panel shows 500 per 5 minutes; the findings table names each finding's
    `ctguard explain` command."""
    samples = _exporter_once(capsys)
    rising = {
        "ctguard_conntrack_stat_drop_total": 100,
        "ctguard_conntrack_stat_insert_failed_total": 10,
    }
    series = []
    for name, labels, value in samples:
        all_labels = ",".join(part for part in (labels, SCRAPED) if part)
        series.append(
            {"series": f"{name}{{{all_labels}}}", "values": f"{value:.0f}+{rising.get(name, 0)}x10"}
        )
    assert not any("clash_resolve" in name for name, _, _ in samples)  # the case tested
    drops = _drops_expr(per_namespace=False)
    (findings,) = [t["expr"] for p, t in TARGETS if p["title"].startswith("Findings")]
    rules = _rules_file([_substituted(drops), _substituted(findings)], tmp_path / "dash.yml")
    found = [labels for name, labels, value in samples if name == metric_names.FINDING and value]
    assert found
    expected_findings = []
    for labels in found:
        finding_id = re.search(r'id="([^"]+)"', labels)
        assert finding_id
        expected_findings.append(
            {
                "labels": f'ctguard:dashboard:expr1{{{labels},explain="ctguard explain '
                f'{finding_id[1]}",{SCRAPED}}}',
                "value": 1,
            }
        )
    unit = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": "ctguard:dashboard:expr0",
                        "eval_time": "10m",
                        "exp_samples": [
                            {
                                "labels": f"ctguard:dashboard:expr0{{{SCRAPED}}}",
                                "value": 500,
                            }
                        ],
                    },
                    {
                        "expr": "ctguard:dashboard:expr1",
                        "eval_time": "10m",
                        "exp_samples": expected_findings,
                    },
                ],
            }
        ],
    }
    test_file = tmp_path / "dash.test.yml"
    test_file.write_text(json.dumps(unit))
    result = _promtool("test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr


# --- --netns all -------------------------------------------------------------------------

WEB_POD = "dc380811-8168-4a9e-9b4a-56ded1b6fe9c"
ZEROES = {"drop": 0, "insert_failed": 0, "chaintoolong": 0, "clash_resolve": 0, "early_drop": 0}


def _netns_sample() -> ExporterSample:
    """A host at 10 % with `--netns all`: a pod's namespace "web" at 96 % of the one global
    max, an unnamed one at 50 %, one that could not be entered, one past --max-netns."""
    namespaces = NamespacesSample(
        found=4,
        left_out=1,
        namespaces=(
            NamespaceSample("web", "3f2a9c1b7d0e", WEB_POD, 960, ZEROES, "procfs", up=True),
            NamespaceSample("4026532501", "", "", 500, ZEROES, "procfs", up=True),
            NamespaceSample("4026532567", "", "", error="cannot enter: Operation not permitted"),
        ),
    )
    return ExporterSample(
        entries=100, max=1000, buckets=256, stats=ZEROES, stats_source="procfs",
        memory_bytes=None, full_memory_bytes=None, full_memory_ratio=None, timeouts={},
        drift={}, findings=(), sources_up={"stats": True, "sysctls": True}, duration=0.01,
        namespaces=namespaces,
    )  # fmt: skip


def _scraped(sample: ExporterSample) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of each sample the exporter serves for ``sample``, as Prometheus
    stores it: a label with an empty value is no label."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ExporterCollector(lambda: sample))
    scraped = []
    for line in generate_latest(registry).decode().splitlines():
        match = re.fullmatch(r"([a-z_:]+)(?:\{(.*)\})? (\S+)", line)
        if match and not line.startswith("#"):
            labels = dict(re.findall(r'([a-z_]+)="([^"]*)"', match[2] or ""))
            kept = {key: value for key, value in labels.items() if value}
            scraped.append((match[1], kept, float(match[3])))
    return scraped


PER_NETNS = {name for name, labels, _ in _scraped(_netns_sample()) if "netns" in labels}


def test_the_exporter_labels_what_the_check_below_expects() -> None:
    assert {metric_names.ENTRIES, metric_names.SOURCE_UP} <= PER_NETNS
    assert "ctguard_conntrack_stat_drop_total" in PER_NETNS
    assert metric_names.MAX not in PER_NETNS  # one global max


@pytest.mark.parametrize(("panel", "target"), TARGETS, ids=[_ids(item) for item in TARGETS])
def test_host_panels_select_the_own_namespace_and_namespace_panels_the_others(
    panel: dict[str, Any], target: dict[str, Any]
) -> None:
    """Without netns="" a host panel would draw a line per namespace once the exporter runs
    with --netns all (and the host ratio would fail to match the one max)."""
    wanted = 'netns!=""' if _per_namespace(panel) else 'netns=""'
    selectors = [
        selector[1] or ""
        for name in metrics_read(target["expr"]) & PER_NETNS
        for selector in re.finditer(rf"\b{name}\b(\{{[^}}]*\}})?", target["expr"])
    ]
    for selector in selectors:
        assert wanted in selector, f"{selector or 'no selector'} in {target['expr']}"


def _expr_of(title_part: str, ref: str = "A") -> str:
    (expr,) = [t["expr"] for p, t in TARGETS if title_part in p["title"] and t["refId"] == ref]
    return str(expr)


@needs_promtool
def test_panels_on_the_exporters_netns_output(tmp_path: Path) -> None:
    """The exporter's --netns all output scraped every minute, web's drop counter rising 100
    a minute: the host panels show the host alone (10 %, no drops), the Namespaces panels
    rank web and the unnamed namespace by entries and by fill of the global max, list web
    with its 500 drops, and count the namespace not read and the one left out."""
    series = []
    for name, labels, value in _scraped(_netns_sample()):
        rising = name == "ctguard_conntrack_stat_drop_total" and labels.get("netns") == "web"
        all_labels = ",".join([*(f'{k}="{v}"' for k, v in labels.items()), SCRAPED])
        series.append(
            {"series": f"{name}{{{all_labels}}}", "values": f"{value:g}+{100 if rising else 0}x10"}
        )
    web = f'container_id="3f2a9c1b7d0e",{SCRAPED},netns="web",pod_uid="{WEB_POD}"'
    unnamed = f'{SCRAPED},netns="4026532501"'
    cases: list[tuple[str, list[tuple[str, float]]]] = [
        (_expr_of("Table usage"), [(SCRAPED, 100)]),
        (_expr_of("Table fill (CT101)"), [(SCRAPED, 0.1)]),
        (_drops_expr(per_namespace=False), [(SCRAPED, 0)]),
        (
            _expr_of("Scrape health", "B"),
            [(f'{SCRAPED},source="stats"', 1), (f'{SCRAPED},source="sysctls"', 1)],
        ),
        (_expr_of("top 10 by entries"), [(web, 960), (unnamed, 500)]),
        (_expr_of("top 10 by fill"), [(web, 0.96), (unnamed, 0.5)]),
        (_drops_expr(per_namespace=True), [(web, 500)]),
        (_expr_of("Namespaces exported", "B"), [(SCRAPED, 1)]),
        (_expr_of("Namespaces exported", "C"), [('instance="h:9659"', 1)]),
    ]
    rules = _rules_file([_substituted(expr) for expr, _ in cases], tmp_path / "dash.yml")
    tests = [
        {
            "expr": f"ctguard:dashboard:expr{number}",
            "eval_time": "10m",
            "exp_samples": [
                {"labels": f"ctguard:dashboard:expr{number}{{{labels}}}", "value": value}
                for labels, value in expected
            ],
        }
        for number, (_, expected) in enumerate(cases)
    ]
    unit = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}],
    }
    test_file = tmp_path / "dash.test.yml"
    test_file.write_text(json.dumps(unit))
    result = _promtool("test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr
