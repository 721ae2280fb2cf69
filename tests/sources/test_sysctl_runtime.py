"""Runtime nf_conntrack_* sysctls."""

from __future__ import annotations

import pytest

from ctguard.errors import ParseError
from ctguard.missing import Missing
from ctguard.sources.sysctl_runtime import (
    LEGACY_MAX,
    NETFILTER_DIR,
    ConntrackSysctls,
    parse_sysctl_int,
    read_conntrack_sysctls,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [("262144\n", 262144), ("0", 0), ("  -1 \n", -1), ("\t432000\t\n", 432000)],
)
def test_parse_sysctl_int(text, value):
    assert parse_sysctl_int(text) == value


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("", "'an empty file'"),
        ("\n", "'an empty file'"),
        ("abc\n", "'abc'"),
        ("1 2", "'1 2'"),
        ("0x10", "'0x10'"),
        ("1_000", "'1_000'"),
        ("+5", "'+5'"),
        ("2.5", "'2.5'"),
    ],
)
def test_parse_sysctl_int_rejects(text, shown):
    with pytest.raises(ParseError) as info:
        parse_sysctl_int(text, "/proc/sys/net/netfilter/nf_conntrack_max")
    assert str(info.value) == (
        f"/proc/sys/net/netfilter/nf_conntrack_max: expected an integer, got {shown}"
    )


def test_parse_sysctl_int_huge_is_a_parse_error():
    with pytest.raises(ParseError):
        parse_sysctl_int("9" * 5000)


def test_sysctls_accessors():
    sysctls = ConntrackSysctls({"nf_conntrack_count": 5, "nf_conntrack_max": 10})
    assert (sysctls.count, sysctls.max, sysctls.buckets) == (5, 10, None)
    assert sysctls.get("nf_conntrack_max") == 10
    updated = sysctls.with_values({"nf_conntrack_max": 20, "nf_conntrack_buckets": 5})
    assert dict(updated.values) == {
        "nf_conntrack_count": 5,
        "nf_conntrack_max": 20,
        "nf_conntrack_buckets": 5,
    }
    assert sysctls.max == 10  # the original is unchanged


def test_read_conntrack_sysctls(host, write, tmp_path):
    write(f"{NETFILTER_DIR}/nf_conntrack_max", "262144\n")
    write(f"{NETFILTER_DIR}/nf_conntrack_count", "1234\n")
    write(f"{NETFILTER_DIR}/nf_conntrack_buckets", "65536\n")
    write(f"{NETFILTER_DIR}/nf_conntrack_tcp_timeout_established", "432000\n")
    write(f"{NETFILTER_DIR}/nf_log/2", "NONE\n")  # not an nf_conntrack_* file
    write(f"{NETFILTER_DIR}/nf_flowtable_tcp_timeout", "30\n")
    (tmp_path / NETFILTER_DIR.lstrip("/") / "nf_conntrack_dir").mkdir()  # unreadable: skipped
    write(LEGACY_MAX, "1\n")  # ignored: the netfilter file is there

    sysctls = read_conntrack_sysctls(host)
    assert isinstance(sysctls, ConntrackSysctls)
    assert dict(sysctls.values) == {
        "nf_conntrack_buckets": 65536,
        "nf_conntrack_count": 1234,
        "nf_conntrack_max": 262144,
        "nf_conntrack_tcp_timeout_established": 432000,
    }
    assert list(sysctls.values) == sorted(sysctls.values)


def test_read_conntrack_sysctls_legacy_max(host, write):
    write(f"{NETFILTER_DIR}/nf_conntrack_count", "7\n")
    write(LEGACY_MAX, "65536\n")
    sysctls = read_conntrack_sysctls(host)
    assert isinstance(sysctls, ConntrackSysctls)
    assert (sysctls.max, sysctls.count) == (65536, 7)


def test_read_conntrack_sysctls_only_legacy_max(host, write):
    write(LEGACY_MAX, "65536\n")
    sysctls = read_conntrack_sysctls(host)
    assert isinstance(sysctls, ConntrackSysctls)
    assert dict(sysctls.values) == {"nf_conntrack_max": 65536}


def test_read_conntrack_sysctls_missing(host):
    result = read_conntrack_sysctls(host)
    assert isinstance(result, Missing)
    assert NETFILTER_DIR in result.reason


def test_read_conntrack_sysctls_bad_value_names_the_file(host, write):
    write(f"{NETFILTER_DIR}/nf_conntrack_max", "unlimited\n")
    with pytest.raises(ParseError, match=f"{NETFILTER_DIR}/nf_conntrack_max"):
        read_conntrack_sysctls(host)
