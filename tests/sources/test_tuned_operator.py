"""An OpenShift node whose tuned the Node Tuning Operator runs (issue 16, item 5), built from
the operator's real manifests (tests/realworld/tuned/, provenance in SOURCES.md): the rendered
PerformanceProfile Tuned resource (manual_tuned.yaml) and the default Tuned resource's
``openshift`` profile (default-cr-tuned.yaml), unpacked where the operator puts them on the
node (/var/lib/ocp-tuned/profiles/NAME/tuned.conf, the choice in
/var/lib/ocp-tuned/recommend.d/50-openshift.conf as ``[NAME]``).

What an operator concludes: the performance profile includes ``openshift-node`` (stock, whose
parent ``openshift`` sets ``[net] nf_conntrack_hashsize=1048576`` and
``nf_conntrack_max=1048576``) and profiles named by ``${f:...}`` functions that only tuned on
the node can evaluate. Where the stock profiles are readable the hash size is known and CT303
passes; on a node without them nothing may be concluded, so CT303 does not warn. Any fix goes
to a Tuned resource, never to a file on the node.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from ctguard.facts import collect
from ctguard.host.commands import CapturedCommands
from ctguard.host.root import HostRoot
from ctguard.output.doctor_json import doctor_dict
from ctguard.sources.agents import TunedProfile, read_tuned
from ctguard.usecases.doctor import diagnose
from yaml_quoted import profiles

REALWORLD = Path(__file__).parent.parent / "realworld" / "tuned"
STOCK = REALWORLD / "redhat-performance-tuned"
NODE = Path(__file__).parent.parent / "roots" / "doctor" / "ct303-near-tuned-openshift"
ACTIVE = "openshift-node-performance-manual"


def _default_openshift_profile() -> str:
    """The ``data: |`` block of the default Tuned resource's ``openshift`` profile."""
    lines = (REALWORLD / "cluster-node-tuning-operator/default-cr-tuned.yaml").read_text()
    block = lines.split('- name: "openshift"\n    data: |\n', 1)[1]
    kept = []
    for line in block.split("\n"):
        if not line.startswith("      "):
            break
        kept.append(line[6:])
    return "\n".join(kept) + "\n"


def _unpack(root: Path) -> None:
    rendered = profiles((REALWORLD / "cluster-node-tuning-operator/manual_tuned.yaml").read_text())
    rendered["openshift"] = _default_openshift_profile()
    for name, text in rendered.items():
        where = root / "var/lib/ocp-tuned/profiles" / name
        where.mkdir(parents=True)
        (where / "tuned.conf").write_text(text)
    (root / "var/lib/ocp-tuned/recommend.d").mkdir(parents=True)
    (root / "var/lib/ocp-tuned/recommend.d/50-openshift.conf").write_text(f"[{ACTIVE}]\n")


@pytest.fixture
def node(tmp_path: Path) -> Path:
    """ct303-near-tuned-openshift's host (hashsize 1048576 now), its tuned run by the
    operator: no /etc/tuned/active_profile and no stock profiles on the node."""
    root = tmp_path / "node"
    shutil.copytree(NODE, root)
    shutil.rmtree(root / "etc/tuned")
    shutil.rmtree(root / "usr/lib/tuned")
    _unpack(root)
    return root


def _doctor(root: Path) -> dict[str, dict[str, Any]]:
    host = HostRoot(root)
    report = doctor_dict(diagnose(collect(host, CapturedCommands(host), None)))
    return {f["id"]: f for f in report["findings"]}


def test_the_rendered_profile_is_the_real_one(node: Path) -> None:
    text = (node / "var/lib/ocp-tuned/profiles" / ACTIVE / "tuned.conf").read_text()
    assert text.startswith("[main]\nsummary=Openshift node optimized for deterministic")
    assert "\ninclude=openshift-node,cpu-partitioning${f:regex_search_ternary:" in text


def test_node_without_stock_profiles_concludes_nothing(node: Path) -> None:
    profile = read_tuned(HostRoot(node))
    assert isinstance(profile, TunedProfile)
    assert profile.operator and profile.name == ACTIVE
    assert profile.active_from == "/var/lib/ocp-tuned/recommend.d/50-openshift.conf"
    assert profile.net_hashsize is None and profile.conntrack_module is None
    unread = "\n".join(profile.unread)
    assert "include openshift-node: not on this node" in unread
    assert "cpu-partitioning${f:regex_search_ternary" in unread
    assert "openshift-node-performance-${f:lscpu_check" in unread
    findings = _doctor(node)
    assert findings["CT303"]["status"] == "skipped"  # 1048576 may well be tuned's: no page
    assert "not on this node" in findings["CT303"]["reason"]
    assert findings["CT306"]["status"] == "skipped"


def test_with_stock_profiles_the_hash_size_is_tuned_s(node: Path) -> None:
    shutil.copytree(STOCK, node / "usr/lib/tuned", ignore=shutil.ignore_patterns("*.conf?*"))
    profile = read_tuned(HostRoot(node))
    assert isinstance(profile, TunedProfile)
    # openshift-node's include=openshift finds the operator's openshift first (the later
    # directory); its include=openshift then passes over itself to the stock one, whose
    # ${f:virt_check:...} parent is not followed
    assert profile.paths == (
        "/usr/lib/tuned/openshift/tuned.conf",
        "/var/lib/ocp-tuned/profiles/openshift/tuned.conf",
        "/usr/lib/tuned/openshift-node/tuned.conf",
        f"/var/lib/ocp-tuned/profiles/{ACTIVE}/tuned.conf",
    )
    assert profile.net_hashsize is not None
    assert (profile.net_hashsize.path, profile.net_hashsize.value) == (
        "/usr/lib/tuned/openshift/tuned.conf",
        "1048576",
    )
    assert {s.key: s.value for s in profile.sysctls}["net.netfilter.nf_conntrack_max"] == "1048576"
    findings = _doctor(node)
    assert findings["CT303"]["status"] == "passed"
    ct306 = findings["CT306"]
    assert ct306["status"] == "found" and ct306["severity"] == "info"
    assert "reapply_sysctl: the Node Tuning Operator's default" not in ct306["fix"]
    fix = ct306["fix"]
    assert "Tuned resource" in fix and "openshift-cluster-node-tuning-operator" in fix
    for path in ("/usr/lib/tuned", "/var/lib/ocp-tuned", "/etc/tuned"):
        assert f"edit {path}" not in fix and f"create {path}" not in fix
    assert "tuned-adm" not in fix


def test_the_operator_s_choice_beats_a_host_tuned_file(node: Path) -> None:
    """A tuned package on the node may leave /etc/tuned/active_profile; the operator's tuned
    is the one that runs."""
    (node / "etc/tuned").mkdir()
    (node / "etc/tuned/active_profile").write_text("virtual-guest\n")
    (node / "etc/tuned/tuned-main.conf").write_text("reapply_sysctl = 0\n")
    profile = read_tuned(HostRoot(node))
    assert isinstance(profile, TunedProfile)
    assert profile.name == ACTIVE and profile.operator
    assert profile.main.reapply_sysctl and not profile.main.reapply_known
