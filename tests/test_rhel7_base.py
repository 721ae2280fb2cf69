"""The RHEL 7 scenarios stand on a RHEL 7 base (tests/roots/doctor/make_rhel7.py): systemd is
there, so CT302 is judged as on a systemd host, never "No systemd here".

What an operator of these hosts expects, decided from how RHEL 7 boots: systemd-sysctl.service
runs in sysinit, iptables.service loads nf_conntrack later (iptables-restore), and nothing of
RHEL 7's own re-applies netfilter keys then: 40-redhat.rules re-runs systemd-sysctl only
for the bridge module, 99-systemd.rules only for network devices' conf/neigh keys.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from ctguard.facts import collect
from ctguard.host.commands import CapturedCommands
from ctguard.host.root import HostRoot
from ctguard.output.doctor_json import doctor_dict
from ctguard.sources.manifest import read_manifest
from ctguard.usecases.doctor import diagnose

TESTS = Path(__file__).parent
ROOTS = TESTS / "roots" / "doctor"
REAL = TESTS / "realworld" / "systemd-rhel7"
RHEL7 = (
    "ct304-rhel74-greps-sysctl-conf",
    "ct304-rhel76-greps-sysctl-d-no-link",
    "ct304-near-rhel7-no-unload",
)
LINK = "ln -s ../sysctl.conf /etc/sysctl.d/99-sysctl.conf"


def findings(root: Path) -> dict[str, dict[str, Any]]:
    host = HostRoot(root)
    manifest = read_manifest(host)
    facts = collect(host, CapturedCommands(host), manifest.netns if manifest else None)
    return {f["id"]: f for f in doctor_dict(diagnose(facts))["findings"]}


@pytest.mark.parametrize("scenario", RHEL7)
def test_base_is_real_rhel7_systemd(scenario: str) -> None:
    root = ROOTS / scenario
    assert (root / "lib").is_symlink() and (root / "usr/lib/systemd/systemd-sysctl").is_file()
    # systemd's own files, byte for byte (99-systemd.rules is its template rendered)
    for here, real in (
        ("usr/lib/sysctl.d/50-default.conf", "sysctl.d__50-default.conf"),
        ("usr/lib/udev/rules.d/40-redhat.rules", "rules__40-redhat.rules"),
    ):
        assert (root / here).read_bytes() == (REAL / real).read_bytes()
    assert (root / "ctguard_commands/uname-r").read_text().strip().endswith(".el7.x86_64")
    dmesg = (root / "ctguard_commands/dmesg").read_text()
    assert "Linux version 3.10.0-" in dmesg and "2.6.32" not in dmesg
    assert (root / "ctguard_commands/ps").read_text().splitlines()[1].split()[1] == (
        "/usr/lib/systemd/systemd"
    )
    manifest = json.loads((root / "ctguard_manifest.json").read_text())
    assert "/usr/lib/systemd/systemd-sysctl" in manifest["captured"]


@pytest.mark.parametrize("scenario", RHEL7)
def test_ct302_is_judged_with_systemd(scenario: str) -> None:
    ct302 = findings(ROOTS / scenario)["CT302"]
    # iptables.service loads the module after systemd-sysctl ran, no load list re-applies
    # the values, and RHEL 7's udev rules re-run systemd-sysctl for bridge and net only
    assert (ct302["status"], ct302["severity"]) == ("found", "warning")
    assert "No systemd here" not in ct302["fix"]
    assert 'KERNEL=="nf_conntrack", RUN+="/usr/lib/systemd/systemd-sysctl' in ct302["fix"]
    assert "/etc/modules-load.d/" in ct302["fix"]


def test_missing_link_comes_first() -> None:
    # 7.6 root: the values live in /etc/sysctl.conf and 99-sysctl.conf was removed, so
    # systemd-sysctl (at boot or from a udev rule) never reads them: the link is step one
    fix = findings(ROOTS / "ct304-rhel76-greps-sysctl-d-no-link")["CT302"]["fix"]
    assert LINK in fix
    assert fix.index(LINK) < fix.index("udev/rules.d")
    assert "/etc/sysctl.conf:5: net.netfilter.nf_conntrack_max = 262144" in fix
    # 7.8 root: same lines in /etc/sysctl.conf, but the stock link is there
    assert LINK not in findings(ROOTS / "ct304-near-rhel7-no-unload")["CT302"]["fix"]


def test_udev_rule_on_the_rhel7_base_is_a_near_miss(tmp_path: Path) -> None:
    copy = tmp_path / "root"
    shutil.copytree(ROOTS / "ct304-rhel74-greps-sysctl-conf", copy, symlinks=True)
    rules = copy / "etc/udev/rules.d"
    rules.mkdir(parents=True)
    (rules / "90-conntrack-sysctl.rules").write_text(
        'ACTION=="add", SUBSYSTEM=="module", KERNEL=="nf_conntrack",'
        ' RUN+="/usr/lib/systemd/systemd-sysctl --prefix=/net/netfilter"\n'
    )
    assert findings(copy)["CT302"]["status"] == "passed"
