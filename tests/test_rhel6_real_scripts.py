"""doctor on a RHEL 6 host running each real iptables 1.4.7 init script and the stock
iptables-config (tests/realworld/SOURCES.md), end to end: what CT304/CT305 must say.

The host is tests/roots/doctor/ct304-load-list-misses-netfilter (RHEL 6.10 web03, values in
/etc/sysctl.conf lines 41-42) with its hand-written script and config replaced by the real
ones. Expected results, from reading the scripts: stop unloads nf_conntrack whenever
IPTABLES_MODULES_UNLOAD is exactly "yes" (the stock value); start re-applies only what
``fgrep ITEM`` finds, for the items of IPTABLES_SYSCTL_LOAD_LIST (commented out in the stock
config), in /etc/sysctl.conf (1.4.7-9 .. -16) or also in /etc/sysctl.d/*.conf (-17 and later).
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
from ctguard.sources.iptables_service import STOCK_NF_MODULES_COMMON, parse_init_script
from ctguard.sources.manifest import read_manifest
from ctguard.usecases.doctor import diagnose

TESTS = Path(__file__).parent
BASE = TESTS / "roots/doctor/ct304-load-list-misses-netfilter"
REAL = TESTS / "realworld/rhel-iptables"
PREFIX = "eurolinux-enterprise-linux-sources+iptables__"
CONFIG = REAL / f"{PREFIX}iptables-config__6c2344349b6eb5f8d5788b60028bc9df209e11ae"
SCRIPTS = {  # package -> (commit, whether its load_sysctl also greps /etc/sysctl.d/*.conf)
    "1.4.7-9.el6": ("2ebb9c699b29d9f05cd45673db8bfb6943615162", False),
    "1.4.7-11.el6": ("d9d9f0a7d627dc6a8afea47c3287ddf44d2e94a0", False),
    "1.4.7-16.el6": ("feeac00ec222a6d174a3f1fabdc4a9ce82465b22", False),
    "1.4.7-19.el6": ("6c2344349b6eb5f8d5788b60028bc9df209e11ae", True),
}
VALUES = (
    "net.netfilter.nf_conntrack_max = 262144\n"
    "net.netfilter.nf_conntrack_tcp_timeout_established = 3600\n"
)


def host(tmp_path: Path, package: str, config_tail: str = "", in_sysctl_d: bool = False) -> Path:
    root = tmp_path / "root"
    shutil.copytree(BASE, root, symlinks=True)
    commit, _ = SCRIPTS[package]
    shutil.copyfile(REAL / f"{PREFIX}iptables.init__{commit}", root / "etc/rc.d/init.d/iptables")
    (root / "etc/sysconfig/iptables-config").write_text(CONFIG.read_text() + config_tail)
    conf = root / "etc/sysctl.conf"
    lines = conf.read_text().splitlines(keepends=True)
    kept = [ln for ln in lines if "conntrack" not in ln or ln.startswith("#")]
    conf.write_text("".join(kept) + ("" if in_sysctl_d else VALUES))
    if in_sysctl_d:
        (root / "etc/sysctl.d").mkdir()
        (root / "etc/sysctl.d/60-conntrack.conf").write_text(VALUES)
    return root


def doctor(root: Path) -> dict[str, dict[str, Any]]:
    h = HostRoot(root)
    manifest = read_manifest(h)
    facts = collect(h, CapturedCommands(h), manifest.netns if manifest else None)
    return {f["id"]: f for f in doctor_dict(diagnose(facts))["findings"]}


def status(finding: dict[str, Any]) -> str:
    s = str(finding["status"])
    return s if s != "found" else f"found/{finding['severity']}"


@pytest.mark.parametrize("package", SCRIPTS)
def test_stock_config_loses_every_value(tmp_path: Path, package: str) -> None:
    got = doctor(host(tmp_path, package))
    assert status(got["CT304"]) == "found/warning"
    assert any("IPTABLES_SYSCTL_LOAD_LIST is not set" in e for e in got["CT304"]["evidence"])
    assert 'IPTABLES_SYSCTL_LOAD_LIST=".nf_conntrack"' in got["CT304"]["fix"]
    assert status(got["CT305"]) == "passed"  # the stock NF_MODULES_COMMON keeps nf_conntrack


@pytest.mark.parametrize("package", SCRIPTS)
def test_load_list_with_values_in_sysctl_conf(tmp_path: Path, package: str) -> None:
    # every 1.4.7 script greps /etc/sysctl.conf: both lines are re-applied
    root = host(tmp_path, package, 'IPTABLES_SYSCTL_LOAD_LIST=".nf_conntrack"\n')
    assert status(doctor(root)["CT304"]) == "passed"


@pytest.mark.parametrize("package", SCRIPTS)
def test_load_list_with_values_in_sysctl_d(tmp_path: Path, package: str) -> None:
    root = host(tmp_path, package, 'IPTABLES_SYSCTL_LOAD_LIST=".nf_conntrack"\n', in_sysctl_d=True)
    _, greps_sysctl_d = SCRIPTS[package]
    assert status(doctor(root)["CT304"]) == ("passed" if greps_sysctl_d else "found/warning")


@pytest.mark.parametrize("package", SCRIPTS)
@pytest.mark.parametrize(("unload", "resets"), [("no", False), ("YES", False), ("yes", True)])
def test_unload_value(tmp_path: Path, package: str, unload: str, resets: bool) -> None:
    # [ "x$IPTABLES_MODULES_UNLOAD" = "xyes" ]: only "yes" unloads; then nothing is re-applied
    root = host(tmp_path, package, f'IPTABLES_MODULES_UNLOAD="{unload}"\n')
    assert status(doctor(root)["CT304"]) == ("found/warning" if resets else "passed")


# -- the ip6tables service is the same script ----------------------------------------------
SPEC = REAL / f"{PREFIX}iptables.spec__6c2344349b6eb5f8d5788b60028bc9df209e11ae"
RHEL6_SCRIPTS = (
    "2ebb9c699b29d9f05cd45673db8bfb6943615162",  # 1.4.7-9
    "d9d9f0a7d627dc6a8afea47c3287ddf44d2e94a0",  # 1.4.7-11
    "feeac00ec222a6d174a3f1fabdc4a9ce82465b22",  # 1.4.7-16
    "6c2344349b6eb5f8d5788b60028bc9df209e11ae",  # 1.4.7-19
)
SED = "sed -e 's;iptables;ip6tables;g' -e 's;IPTABLES;IP6TABLES;g' < %{SOURCE1} > ip6tables.init"


@pytest.mark.parametrize("commit", RHEL6_SCRIPTS)
def test_ip6tables_stop_unloads_the_same_common_modules(commit: str) -> None:
    # what CT304's hold line tells the operator: ip6tables' own stop unloads nf_conntrack too
    assert SED in SPEC.read_text()  # the RHEL 6 spec builds ip6tables.init from iptables.init
    text = (REAL / f"{PREFIX}iptables.init__{commit}").read_text()
    ip6 = text.replace("iptables", "ip6tables").replace("IPTABLES", "IP6TABLES")  # that sed
    script = parse_init_script(ip6, "/etc/rc.d/init.d/ip6tables")
    assert script.nf_modules_common == STOCK_NF_MODULES_COMMON
    assert script.unloads_modules
    assert "IP6TABLES=ip6tables\n" in ip6 and "IPV=${IP6TABLES%tables}" in ip6  # IPV=ip6
    assert 'IP6TABLES_MODULES_UNLOAD="yes"\n' in ip6  # its default, as iptables'
    assert '[ "x$IP6TABLES_MODULES_UNLOAD" = "xyes" ]' in ip6
