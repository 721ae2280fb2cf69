"""tuned as tuned really runs (issue 16, item 5): tuned-main.conf's profile_dirs and
reapply_sysctl, post_loaded_profile, conditional includes, include lists over several lines,
``${i:PROFILE_DIR}``, ``[variables]`` and ``${f:...}`` (never guessed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctguard.host.root import HostRoot
from ctguard.missing import Missing
from ctguard.sources.agents import TunedProfile, read_tuned
from ctguard.sources.tuned_config import read_tuned_main

REAL = Path(__file__).parent.parent / "realworld/tuned/redhat-performance-tuned"
MAX = "net.netfilter.nf_conntrack_max"


@pytest.fixture
def write(tmp_path: Path):  # type: ignore[no-untyped-def]
    def put(path: str, text: str) -> None:
        target = tmp_path / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    return put


def _profile(tmp_path: Path) -> TunedProfile:
    profile = read_tuned(HostRoot(tmp_path))
    assert isinstance(profile, TunedProfile), profile
    return profile


def _values(profile: TunedProfile) -> dict[str, str]:
    return {line.key: line.value for line in profile.sysctls}


def test_real_tuned_main_conf_reapplies_and_keeps_default_dirs(tmp_path: Path, write) -> None:
    """The shipped tuned-main.conf: reapply_sysctl = 1, profile_dirs commented out."""
    write("/etc/tuned/tuned-main.conf", (REAL / "tuned-main.conf").read_text())
    main = read_tuned_main(HostRoot(tmp_path))
    assert main.reapply_sysctl is True
    assert main.reapply_where.startswith("/etc/tuned/tuned-main.conf:")
    assert main.reapply_where.endswith(": reapply_sysctl = 1")
    assert main.reapply_exclude == ()
    assert "/etc/tuned" in main.profile_dirs and "/usr/lib/tuned" in main.profile_dirs
    assert main.reapplies("/etc/sysctl.d/60-conntrack.conf", MAX)
    assert main.reapplies("/etc/sysctl.conf", MAX)
    assert main.reapplies("/run/sysctl.d/60-conntrack.conf", MAX)
    assert not main.reapplies("/usr/lib/sysctl.d/50-default.conf", MAX)  # since tuned 2.13


@pytest.mark.parametrize(("line", "reapply"), [("reapply_sysctl = 0", False),
    ("reapply_sysctl = false", False), ("reapply_sysctl = yes", True)])  # fmt: skip
def test_reapply_sysctl_values(tmp_path: Path, write, line: str, reapply: bool) -> None:
    real = (REAL / "tuned-main.conf").read_text()
    assert "\nreapply_sysctl = 1\n" in real
    write("/etc/tuned/tuned-main.conf", real.replace("\nreapply_sysctl = 1\n", f"\n{line}\n"))
    main = read_tuned_main(HostRoot(tmp_path))
    assert main.reapply_sysctl is reapply
    assert main.reapply_where.endswith(line)
    assert main.reapplies("/etc/sysctl.d/x.conf", MAX) is reapply


def test_reapply_exclude_keeps_the_profile_value(tmp_path: Path, write) -> None:
    write("/etc/tuned/tuned-main.conf", "reapply_sysctl_exclude = net.netfilter.*; vm.x\n")
    main = read_tuned_main(HostRoot(tmp_path))
    assert main.reapply_exclude == ("net.netfilter.*", "vm.x")
    assert not main.reapplies("/etc/sysctl.d/x.conf", MAX)
    assert main.reapplies("/etc/sysctl.d/x.conf", "vm.swappiness")


def test_no_tuned_main_conf_means_tuned_defaults(tmp_path: Path) -> None:
    main = read_tuned_main(HostRoot(tmp_path))
    assert main.reapply_sysctl is True
    assert "default" in main.reapply_where


def test_profile_dirs_decide_where_and_the_last_wins(tmp_path: Path, write) -> None:
    write("/etc/tuned/tuned-main.conf", "profile_dirs = /usr/lib/tuned,/srv/tuned;/opt/tuned\n")
    write("/etc/tuned/active_profile", "k8s\n")
    write("/usr/lib/tuned/k8s/tuned.conf", f"[sysctl]\n{MAX}=1\n")
    write("/srv/tuned/k8s/tuned.conf", f"[sysctl]\n{MAX}=2\n")
    write("/etc/tuned/k8s/tuned.conf", f"[sysctl]\n{MAX}=3\n")  # not a profile dir here
    profile = _profile(tmp_path)
    assert _values(profile)[MAX] == "2"
    assert profile.main.user_dir == "/opt/tuned"
    write("/opt/tuned/k8s/tuned.conf", "[main]\ninclude=k8s\n[sysctl]\nvm.swappiness=1\n")
    profile = _profile(tmp_path)  # /opt wins, and its include=k8s finds the next one down
    assert profile.paths == ("/srv/tuned/k8s/tuned.conf", "/opt/tuned/k8s/tuned.conf")
    assert _values(profile) == {MAX: "2", "vm.swappiness": "1"}


def test_several_active_profiles_and_the_post_loaded_one(tmp_path: Path, write) -> None:
    write("/etc/tuned/active_profile", "a b\n")
    write("/etc/tuned/post_loaded_profile", "c\n")
    for name, value in (("a", 1), ("b", 2), ("c", 3)):
        write(f"/etc/tuned/{name}/tuned.conf", f"[sysctl]\n{MAX}={value}\n")
    assert _values(_profile(tmp_path))[MAX] == "3"
    (tmp_path / "etc/tuned/post_loaded_profile").unlink()
    assert _values(_profile(tmp_path))[MAX] == "2"


def test_conditional_include_is_skipped_quietly(tmp_path: Path, write) -> None:
    write("/etc/tuned/active_profile", "k8s\n")
    write("/etc/tuned/k8s/tuned.conf", f"[main]\ninclude=-site-extra,gone\n[sysctl]\n{MAX}=9\n")
    profile = _profile(tmp_path)
    assert _values(profile)[MAX] == "9"
    assert len(profile.unread) == 1 and "include gone: not found" in profile.unread[0]


def test_include_cycle_through_several_profiles_ends(tmp_path: Path, write) -> None:
    write("/etc/tuned/active_profile", "a\n")
    write("/etc/tuned/a/tuned.conf", f"[main]\ninclude=b\n[sysctl]\n{MAX}=1\n")
    write("/etc/tuned/b/tuned.conf", "[main]\ninclude=c\n")
    write("/etc/tuned/c/tuned.conf", f"[main]\ninclude=a;b\n[sysctl]\n{MAX}=3\n")
    profile = _profile(tmp_path)
    assert _values(profile)[MAX] == "1"  # a, read last, wins
    assert profile.unread == ()


def test_include_list_over_several_lines(tmp_path: Path, write) -> None:
    write("/etc/tuned/active_profile", "k8s\n")
    write("/etc/tuned/k8s/tuned.conf", "[main]\ninclude=base,\n    more;\n  last\n")
    for name, value in (("base", 1), ("more", 2), ("last", 3)):
        write(f"/usr/lib/tuned/{name}/tuned.conf", f"[sysctl]\n{MAX}={value}\n")
    profile = _profile(tmp_path)
    assert [p.split("/")[-2] for p in profile.paths] == ["base", "more", "last", "k8s"]
    assert _values(profile)[MAX] == "3"


def test_variables_and_profile_dir_are_expanded(tmp_path: Path, write) -> None:
    write("/etc/tuned/active_profile", "k8s\n")
    write("/etc/tuned/k8s/vars.conf", "buckets=262144\n")
    write(
        "/etc/tuned/k8s/tuned.conf",
        "[variables]\nper_cpu=65536\nmax=${per_cpu}0\ninclude=${i:PROFILE_DIR}/vars.conf\n"
        f"[sysctl]\n{MAX}=${{max}}\nkernel.note=\\${{max}}\n"
        "[net]\nnf_conntrack_hashsize=${buckets}\n",
    )
    profile = _profile(tmp_path)
    values = _values(profile)
    assert values[MAX] == "655360"
    assert values["kernel.note"] == "${max}"  # escaped: written as is
    assert all(line.unknown is None for line in profile.sysctls)
    assert profile.net_hashsize is not None and profile.net_hashsize.value == "262144"


def test_functions_are_unknown_not_guessed(tmp_path: Path, write) -> None:
    write("/etc/tuned/active_profile", "k8s\n")
    write(
        "/etc/tuned/k8s/tuned.conf",
        "[variables]\ncpus=${f:exec:nproc}\n"
        f"[sysctl]\n{MAX}=${{f:calc:${{cpus}}*65536}}\n"
        "[net]\nnf_conntrack_hashsize=${undefined}\n",
    )
    profile = _profile(tmp_path)
    (line,) = profile.sysctls
    assert line.unknown is not None and "${f:calc" in line.unknown
    assert profile.net_hashsize is not None
    assert profile.net_hashsize.unknown is not None
    assert "${undefined}" in profile.net_hashsize.unknown


def test_variable_in_include_names_no_profile_at_start(tmp_path: Path, write) -> None:
    """tuned expands include= before it knows the profile's [variables]."""
    write("/etc/tuned/active_profile", "k8s\n")
    write("/etc/tuned/k8s/tuned.conf", "[main]\ninclude=${base}\n[variables]\nbase=other\n")
    write("/etc/tuned/other/tuned.conf", f"[sysctl]\n{MAX}=1\n")
    profile = _profile(tmp_path)
    assert profile.sysctls == ()
    assert len(profile.unread) == 1 and "${base}" in profile.unread[0]


def test_unsafe_names_are_not_followed(tmp_path: Path, write) -> None:
    write("/etc/tuned/active_profile", "k8s\n")
    write("/etc/tuned/k8s/tuned.conf", "[main]\ninclude=../../etc,..\n")
    write("/etc/tuned.conf", f"[sysctl]\n{MAX}=1\n")
    write("/tuned.conf", f"[sysctl]\n{MAX}=1\n")
    assert _profile(tmp_path).sysctls == ()


def test_not_in_use(tmp_path: Path) -> None:
    assert read_tuned(HostRoot(tmp_path)) == Missing("tuned not in use")
