"""The stock tuned profiles (tests/realworld/tuned/, provenance in tests/realworld/SOURCES.md)
read as tuned reads them: include chains, [net] nf_conntrack_hashsize, [sysctl] keys."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ctguard.host.root import HostRoot
from ctguard.missing import Missing
from ctguard.sources.agents import read_tuned, tuned_profile_paths

REALWORLD = Path(__file__).parent.parent / "realworld" / "tuned" / "redhat-performance-tuned"
ROOTS = Path(__file__).parent.parent / "roots" / "doctor"


def _host(tmp_path: Path, active: str) -> HostRoot:
    shutil.copytree(REALWORLD, tmp_path / "usr/lib/tuned")
    (tmp_path / "etc/tuned").mkdir(parents=True)
    (tmp_path / "etc/tuned/active_profile").write_text(active + "\n")
    return HostRoot(tmp_path)


@pytest.mark.parametrize("active", ["openshift-node", "openshift-control-plane", "atomic-host"])
def test_openshift_profiles_keep_the_hash_size(tmp_path: Path, active: str) -> None:
    profile = read_tuned(_host(tmp_path, active))
    assert not isinstance(profile, Missing)
    assert profile.net_hashsize is not None and profile.net_hashsize.value == "1048576"
    keys = {line.key: line.value for line in profile.sysctls}
    assert keys["net.netfilter.nf_conntrack_max"] == "1048576"


def test_include_chain_is_followed(tmp_path: Path) -> None:
    """network-latency -> latency-performance; network-throughput -> throughput-performance."""
    host = _host(tmp_path, "network-latency")
    assert tuned_profile_paths(host) == (
        "/etc/tuned/active_profile",
        "/usr/lib/tuned/latency-performance/tuned.conf",
        "/usr/lib/tuned/network-latency/tuned.conf",
    )
    (tmp_path / "etc/tuned/active_profile").write_text("network-throughput\n")
    assert tuned_profile_paths(host) == (
        "/etc/tuned/active_profile",
        "/usr/lib/tuned/throughput-performance/tuned.conf",
        "/usr/lib/tuned/network-throughput/tuned.conf",
    )


@pytest.mark.parametrize("active", ["throughput-performance", "network-latency", "virtual-guest"])
def test_stock_profiles_without_conntrack(tmp_path: Path, active: str) -> None:
    profile = read_tuned(_host(tmp_path, active))
    assert not isinstance(profile, Missing)
    assert profile.net_hashsize is None and profile.conntrack_module is None
    assert not [line for line in profile.sysctls if "conntrack" in line.key]


def test_fixture_roots_hold_the_real_bytes() -> None:
    for root in ("ct303-near-tuned-openshift", "ct306-tuned-openshift-modprobe-clash"):
        for name in ("openshift", "openshift-node"):
            here = ROOTS / root / "usr/lib/tuned" / name / "tuned.conf"
            assert here.read_bytes() == (REALWORLD / name / "tuned.conf").read_bytes()


def test_reapply_fixture_roots_hold_the_real_bytes() -> None:
    """ct306-near-tuned-reapply runs tuned's shipped tuned-main.conf; ct306-tuned-profile the
    same file with only reapply_sysctl turned off; both include the real
    throughput-performance."""
    real = (REALWORLD / "tuned-main.conf").read_text()
    near = ROOTS / "ct306-near-tuned-reapply/etc/tuned/tuned-main.conf"
    assert near.read_text() == real
    off = (ROOTS / "ct306-tuned-profile/etc/tuned/tuned-main.conf").read_text()
    assert off == real.replace("\nreapply_sysctl = 1\n", "\nreapply_sysctl = 0\n") != real
    stock = (REALWORLD / "throughput-performance/tuned.conf").read_bytes()
    for root in ("ct306-tuned-profile", "ct306-near-tuned-reapply"):
        here = ROOTS / root / "usr/lib/tuned/throughput-performance/tuned.conf"
        assert here.read_bytes() == stock
