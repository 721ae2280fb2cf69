"""The deployment files (issue 18, item 6): the systemd unit passes `systemd-analyze verify`
and is hardened, the Kubernetes manifests validate offline (`kubernetes-validate`; the
Prometheus Operator's CRDs structurally), the PrometheusRule holds exactly the shipped alert
rules, and every place that runs the exporter uses options it has and the documented port."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ctguard.output.exporter_metrics import NETNS_LABELS
from helpers import run_ctguard

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "systemd" / "ctguard-exporter.service"
KUBE = REPO / "deploy" / "kubernetes"
RULES = REPO / "deploy" / "prometheus" / "ctguard-alerts.yml"
EXPORTER_DOC = REPO / "docs" / "exporter.md"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze")
# what the exporter uses, and nothing more (the unit's and the DaemonSet's comments say why)
CAPABILITIES = {"NET_ADMIN", "NET_RAW", "SYSLOG"}
# what `--netns all` adds: setns(2) into each namespace, and ptrace read access to
# /proc/PID/ns/net of processes of other users (measured: see the unit's comment)
NETNS_CAPABILITIES = {"SYS_ADMIN", "SYS_PTRACE"}
# the host unit leaves SYS_PTRACE out (it reads any process's files through /proc/PID/root,
# past ProtectSystem): its --netns all sees named namespaces only; the DaemonSet, for which
# the pods' namespaces are the point, grants it
UNIT_NETNS_CAPABILITIES = {"SYS_ADMIN"}


def _load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((KUBE / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _unit() -> dict[str, list[str]]:
    """Every ``Key=value`` of the unit, values in order (a key may repeat)."""
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def _container() -> dict[str, Any]:
    (container,) = _load("daemonset.yaml")["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def _documented_port() -> int:
    match = re.search(r"^Default `127\.0\.0\.1:(\d+)`", EXPORTER_DOC.read_text(), re.M)
    assert match, "docs/exporter.md no longer states the default port"
    return int(match[1])


def _help_options() -> set[str]:
    result = run_ctguard("exporter", "--help")
    assert result.returncode == 0, result.stderr
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", result.stdout))


def _options_and_port(argv: list[str]) -> tuple[set[str], int]:
    options = {arg.split("=", 1)[0] for arg in argv if arg.startswith("--")}
    listen = argv[argv.index("--listen") + 1]
    return options, int(listen.rpartition(":")[2])


# --- systemd ---------------------------------------------------------------------------


def _verify(unit_text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` on a copy whose ExecStart is this checkout's ctguard (the
    shipped /usr/local/bin/ctguard does not exist here, and verify checks it is executable)."""
    ctguard = Path(sys.executable).with_name("ctguard")
    assert ctguard.exists()
    copy = tmp_path / UNIT.name
    copy.write_text(unit_text.replace("/usr/local/bin/ctguard", str(ctguard)), encoding="utf-8")
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(copy)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@needs_systemd
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    result = _verify(UNIT.read_text(encoding="utf-8"), tmp_path)
    assert result.returncode == 0, result.stderr
    assert UNIT.name not in result.stderr, result.stderr  # no warning about our unit


@needs_systemd
def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a unit whose program is missing does not verify."""
    broken = UNIT.read_text(encoding="utf-8").replace(
        "/usr/local/bin/ctguard exporter", "/nonexistent/ctguard exporter"
    )
    assert _verify(broken, tmp_path).returncode != 0


def test_unit_is_hardened() -> None:
    unit = _unit()
    for key, value in {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
        "PrivateTmp": "yes", "PrivateDevices": "yes", "ProtectKernelTunables": "yes",
        "RestrictNamespaces": "net", "SystemCallFilter": "@system-service",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
    }.items():  # fmt: skip
        assert unit.get(key) == [value], key
    bounding = set(unit["CapabilityBoundingSet"][0].split())
    assert bounding == {f"CAP_{cap}" for cap in CAPABILITIES | UNIT_NETNS_CAPABILITIES}
    assert set(unit["AmbientCapabilities"][0].split()) <= bounding
    # read-write paths would undo ProtectSystem=strict; the exporter writes nothing
    assert not {"ReadWritePaths", "ReadWriteDirectories"} & unit.keys()


def test_unit_reads_every_namespace_with_what_that_needs() -> None:
    """--netns all with the capabilities it needs, ambient (a root service gets its bounding
    set anyway, but ambient says what it uses), and setns allowed for network namespaces
    only: RestrictNamespaces=yes would refuse every setns and leave each namespace down."""
    unit = _unit()
    (exec_start,) = unit["ExecStart"]
    assert "--netns all" in exec_start
    assert {f"CAP_{cap}" for cap in UNIT_NETNS_CAPABILITIES} <= set(
        unit["AmbientCapabilities"][0].split()
    )
    assert unit["RestrictNamespaces"][0].split() == ["net"]


def test_unit_runs_the_exporter_with_real_options_on_the_documented_port() -> None:
    (exec_start,) = _unit()["ExecStart"]
    argv = exec_start.split()
    assert argv[:2] == ["/usr/local/bin/ctguard", "exporter"]
    options, port = _options_and_port(argv[2:])
    assert options <= _help_options()
    assert port == _documented_port()


# --- Kubernetes ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["daemonset.yaml", "service.yaml"])
def test_core_manifest_validates_offline(name: str) -> None:
    if importlib.util.find_spec("kubernetes_validate") is None:
        pytest.fail("kubernetes-validate is a [test] extra: pip install -e '.[test]'")
    import kubernetes_validate

    data = _load(name)
    version = kubernetes_validate.latest_version()
    kubernetes_validate.validate(data, version, strict=True)
    broken = {**data, "spec": {**data["spec"], "no_such_field": 1}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)


def test_daemonset_reads_the_live_node_read_only() -> None:
    pod = _load("daemonset.yaml")["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True  # the node's table, counters and sysctls
    assert pod["hostPID"] is True  # the node's processes
    container = _container()
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context.get("privileged", False) is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert set(context["capabilities"]["add"]) == CAPABILITIES | NETNS_CAPABILITIES
    assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    host_volumes = {v["name"] for v in pod["volumes"] if "hostPath" in v}
    for mount in container["volumeMounts"]:
        if mount["name"] in host_volumes:
            assert mount.get("readOnly") is True, mount["name"]


def test_container_reads_every_pods_namespace() -> None:
    """--netns all, bounded at least at the kubelet's default maxPods (110) so a full node
    leaves none out, and hostPID (how it finds each pod's namespace)."""
    args = _container()["args"]
    assert args[args.index("--netns") + 1] == "all"
    assert int(args[args.index("--max-netns") + 1]) >= 110
    assert _load("daemonset.yaml")["spec"]["template"]["spec"]["hostPID"] is True


def test_container_uses_real_options_on_the_documented_port() -> None:
    container = _container()
    assert container["command"] == ["ctguard"]
    assert container["args"][0] == "exporter"
    options, port = _options_and_port(container["args"][1:])
    assert options <= _help_options()
    assert port == _documented_port()
    (declared,) = container["ports"]
    assert declared["containerPort"] == port
    (service_port,) = _load("service.yaml")["spec"]["ports"]
    assert service_port["port"] == port
    assert service_port["targetPort"] == declared["name"]


def test_servicemonitor_scrapes_the_service_as_the_alerts_job() -> None:
    monitor = _load("servicemonitor.yaml")
    service = _load("service.yaml")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["kind"] == "ServiceMonitor"
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= (
        _load("daemonset.yaml")["spec"]["template"]["metadata"]["labels"].items()
    )
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in port_names
        assert endpoint.get("path", "/metrics") == "/metrics"
    # without jobLabel the Operator names the job after the Service: the alerts' job
    assert "jobLabel" not in monitor["spec"]
    jobs = set(re.findall(r'up\{job="([^"]+)"\}', RULES.read_text(encoding="utf-8")))
    assert jobs == {service["metadata"]["name"]}


def test_podmonitor_scrapes_the_pods_as_the_alerts_job() -> None:
    """The Service-less alternative: selects the DaemonSet's pods, scrapes their declared
    metrics port, names the job after a pod label whose value is the alerts' job, and the
    instance after the node, as the ServiceMonitor does."""
    monitor = _load("podmonitor.yaml")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["kind"] == "PodMonitor"
    assert set(monitor["spec"]) <= {"jobLabel", "selector", "podMetricsEndpoints"}
    pod_labels = _load("daemonset.yaml")["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    ports = {port["name"] for port in _container()["ports"]}
    service_monitor = _load("servicemonitor.yaml")["spec"]["endpoints"]
    for endpoint in monitor["spec"]["podMetricsEndpoints"]:
        assert endpoint["port"] in ports
        assert endpoint.get("path", "/metrics") == "/metrics"
        assert endpoint["relabelings"] == service_monitor[0]["relabelings"]
        assert endpoint["scrapeTimeout"] == service_monitor[0]["scrapeTimeout"]
    jobs = set(re.findall(r'up\{job="([^"]+)"\}', RULES.read_text(encoding="utf-8")))
    assert jobs == {pod_labels[monitor["spec"]["jobLabel"]]}


# the labels the Prometheus Operator gives a pod's targets (ServiceMonitor adds service)
OPERATOR_TARGET_LABELS = {"namespace", "pod", "container", "endpoint", "service", "job"}


def test_the_namespace_labels_never_clash_with_the_operators_target_labels() -> None:
    """A target label that the scraped series also carry is renamed exported_<label> on
    them, and the per-namespace fill alerts (ignoring(netns, container_id, pod_uid)) would
    then match no max: --netns all's labels must not be the Operator's."""
    assert not OPERATOR_TARGET_LABELS & set(NETNS_LABELS)
    for name, endpoints in (
        ("servicemonitor.yaml", "endpoints"),
        ("podmonitor.yaml", "podMetricsEndpoints"),
    ):
        for endpoint in _load(name)["spec"][endpoints]:
            kept = {r.get("targetLabel") for r in endpoint["relabelings"]}
            assert not kept & set(NETNS_LABELS), name


def test_prometheusrule_holds_exactly_the_shipped_rules() -> None:
    rule = _load("prometheusrule.yaml")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["kind"] == "PrometheusRule"
    shipped = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    assert rule["spec"] == {"groups": shipped["groups"]}
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_prometheus_rule.py"), "--check"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout
