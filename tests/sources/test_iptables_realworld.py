"""The real RHEL 7 iptables-services init scripts (tests/realworld/SOURCES.md): what each
does at stop, and which files its load_sysctl greps."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctguard.model.rhel_iptables import unload_setting
from ctguard.sources.iptables_service import (
    InitScript,
    IptablesConfig,
    parse_init_script,
    parse_iptables_config,
)

REAL = Path(__file__).parents[1] / "realworld" / "rhel-iptables"
PREFIX = "eurolinux-enterprise-linux-sources+iptables__"


def _script(commit: str) -> InitScript:
    path = REAL / f"{PREFIX}iptables.init__{commit}"
    return parse_init_script(path.read_text(), "/usr/libexec/iptables/iptables.init")


def _config(commit: str) -> IptablesConfig:
    return parse_iptables_config((REAL / f"{PREFIX}iptables-config__{commit}").read_text())


@pytest.mark.parametrize(
    ("commit", "unloads", "greps", "modules"),
    [
        # 1.4.21-18.3.el7_4 (RHEL 7.4)
        ("5276c73c78a4d0f3a08fcd5b888b441bbaee2162", True, ("/etc/sysctl.conf",),
         ("x_tables", "nf_nat", "nf_conntrack")),
        # 1.4.21-28.el7 (RHEL 7.6)
        ("821f63ad0e67ddfec2ace603f9dbf4c65f5e18c2", True, ("/etc/sysctl.d/*",),
         ("x_tables", "nf_nat", "nf_conntrack")),
        # 1.4.21-33.el7 (RHEL 7.8): module unloading dropped (RHBZ#1520534)
        ("0a454618562bdfc37f041d4ef3be4f503fe0257d", False, ("/etc/sysctl.d/*",), None),
    ],
)  # fmt: skip
def test_real_scripts(
    commit: str, unloads: bool, greps: tuple[str, ...], modules: tuple[str, ...] | None
) -> None:
    script = _script(commit)
    assert script.unloads_modules is unloads
    assert script.grep_files == greps
    assert script.nf_modules_common == modules


def test_rhel75_never_unloads_whatever_the_default() -> None:
    # the 1.4.21-33 config has no IPTABLES_MODULES_UNLOAD line: the old default "yes"
    # must not count, the script has nothing that unloads
    commit = "0a454618562bdfc37f041d4ef3be4f503fe0257d"
    config = _config(commit)
    assert config.get("IPTABLES_MODULES_UNLOAD") is None
    unload, shown = unload_setting(config, _script(commit))
    assert not unload
    assert "never unloads" in shown


def test_rhel74_unloads_by_its_config() -> None:
    commit = "5276c73c78a4d0f3a08fcd5b888b441bbaee2162"
    unload, shown = unload_setting(_config(commit), _script(commit))
    assert unload
    assert 'IPTABLES_MODULES_UNLOAD="yes"' in shown
