"""capture() over a fixture host tree with fake programs: layout, links, redaction, safety."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ctguard.host.root import HostRoot
from ctguard.snapshot.capture import CaptureOptions, capture
from ctguard.snapshot.writer import DirWriter, TarWriter
from fakes import FakeCommands

STAT = (
    "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop "
    "early_drop icmp_error  expect_new expect_create expect_delete search_restart\n"
    + " ".join(["00000002"] + ["00000000"] * 16)
    + "\n"
)
TABLE = (
    "ipv4     2 tcp      6 431999 ESTABLISHED src=203.0.113.7 dst=198.51.100.20 sport=51234 "
    "dport=443 src=198.51.100.20 dst=203.0.113.7 sport=443 dport=51234 [ASSURED] mark=0 zone=0 "
    "use=2\n"
    "ipv6     10 udp      17 28 src=2001:0db8:0000:0000:0000:0000:0000:0042 "
    "dst=2001:0db8:0000:0000:0000:0000:0000:0053 sport=40000 dport=53 [UNREPLIED] "
    "src=2001:0db8:0000:0000:0000:0000:0000:0053 dst=2001:0db8:0000:0000:0000:0000:0000:0042 "
    "sport=53 dport=40000 mark=0 zone=0 use=2\n"
)
LOG = "Mar  4 20:14:02 web03 kernel: IN=eth0 SRC=203.0.113.7 DST=198.51.100.20 LEN=60\n"


def make_host(root: Path, tracked: bool = True) -> HostRoot:
    files = {
        "proc/meminfo": "MemTotal:        8000000 kB\n",
        "proc/sys/kernel/osrelease": "6.1.0-18-amd64\n",
        "proc/sys/kernel/hostname": "web03\n",
        "etc/sysctl.conf": "net.netfilter.nf_conntrack_max = 262144\n",
        "usr/lib/sysctl.d/50-default.conf": "net.ipv4.ip_forward = 0\n",
        "var/log/kern.log": LOG,
    }
    if tracked:
        files |= {
            "proc/sys/net/netfilter/nf_conntrack_max": "262144\n",
            "proc/sys/net/netfilter/nf_conntrack_count": "2\n",
            "proc/net/stat/nf_conntrack": STAT,
        }
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    (root / "etc/sysctl.d").mkdir(parents=True)
    os.symlink("/etc/sysctl.conf", root / "etc/sysctl.d/99-sysctl.conf")  # absolute, as on RHEL
    os.symlink("usr/lib", root / "lib")  # merged /usr
    return HostRoot(root)


def test_capture_layout_links_and_manifest(tmp_path: Path) -> None:
    host = make_host(tmp_path / "host")
    (tmp_path / "host/proc/net/nf_conntrack").write_text(TABLE)
    commands = FakeCommands({"conntrack-S": "cpu=0 found=0 drop=0\n", "uname-r": "6.1.0\n"})
    out = tmp_path / "snap"
    manifest = capture(host, commands, DirWriter(out), CaptureOptions())
    assert (out / "proc/net/nf_conntrack").read_text() == TABLE
    assert (out / "proc/net/stat/nf_conntrack").read_text() == STAT
    # an absolute link is stored relative, so it resolves inside the snapshot
    assert os.readlink(out / "etc/sysctl.d/99-sysctl.conf") == "../sysctl.conf"
    assert os.readlink(out / "lib") == "usr/lib"
    assert (out / "usr/lib/sysctl.d/50-default.conf").is_file()
    assert (out / "ctguard_commands/conntrack-S").read_text() == "cpu=0 found=0 drop=0\n"
    on_disk = json.loads((out / "ctguard_manifest.json").read_text())
    assert on_disk == manifest
    assert manifest["hostname"] == "web03"
    assert manifest["format"] == "ctguard.snapshot/1"
    failed = {f["what"] for f in manifest["failed"]}
    assert "/ctguard_commands/iptables-save" in failed  # not given to the fake: recorded
    assert "/proc/net/nf_conntrack" in manifest["captured"]


def test_redact_table_and_logs_consistently(tmp_path: Path) -> None:
    host = make_host(tmp_path / "host")
    (tmp_path / "host/proc/net/nf_conntrack").write_text(TABLE)
    out = tmp_path / "snap"
    capture(host, FakeCommands(), DirWriter(out), CaptureOptions(redact=True))
    table = (out / "proc/net/nf_conntrack").read_text()
    log = (out / "var/log/kern.log").read_text()
    for secret in ("203.0.113.7", "198.51.100.20", "2001:0db8:0000:0000:0000:0000:0000:0042"):
        assert secret not in table and secret not in log
    # the same address gets the same token in the table and in the log
    token = table.split("src=")[1].split()[0]
    assert f"SRC={token} " in log
    assert table.count(token) == 2
    assert "sport=51234 dport=443" in table  # ports and the rest are untouched


def test_conntrack_L_when_procfs_table_absent(tmp_path: Path) -> None:
    host = make_host(tmp_path / "host")
    listing = "tcp      6 431999 ESTABLISHED src=203.0.113.7 dst=198.51.100.20 sport=1 dport=2\n"
    out = tmp_path / "snap"
    manifest = capture(
        host, FakeCommands({"conntrack-L": listing}), DirWriter(out), CaptureOptions(redact=True)
    )
    captured = (out / "ctguard_commands/conntrack-L").read_text()
    assert "203.0.113.7" not in captured and "sport=1 dport=2" in captured
    assert "/proc/net/nf_conntrack" in manifest["absent"]


def test_no_ctnetlink_request_on_untracked_host(tmp_path: Path) -> None:
    host = make_host(tmp_path / "host", tracked=False)
    commands = FakeCommands()
    manifest = capture(host, commands, DirWriter(tmp_path / "snap"), CaptureOptions())
    # asking ctnetlink would load nf_conntrack on the audited host
    assert not {"conntrack-S", "conntrack-L", "netlink-stats"} & set(commands.asked)
    assert "/ctguard_commands/conntrack-S" in manifest["absent"]


def test_failed_capture_leaves_nothing(tmp_path: Path) -> None:
    host = make_host(tmp_path / "host")

    class Exploding(FakeCommands):
        def output(self, name: str) -> str:
            raise RuntimeError("disk gone")

    target = tmp_path / "out.tar.gz"
    with pytest.raises(RuntimeError):
        capture(host, Exploding(), TarWriter(target), CaptureOptions())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["host"]


def test_unreadable_directory_is_recorded_not_fatal(tmp_path: Path, monkeypatch) -> None:
    host = make_host(tmp_path / "host")
    (tmp_path / "host/etc/modprobe.d").mkdir(parents=True)
    real_listdir = host.listdir

    def listdir(path: str) -> list[str]:
        if path == "/etc/modprobe.d":
            raise PermissionError(13, "Permission denied", path)
        return real_listdir(path)

    monkeypatch.setattr(host, "listdir", listdir)
    out = tmp_path / "snap"
    manifest = capture(host, FakeCommands(), DirWriter(out), CaptureOptions())
    assert {"what": "/etc/modprobe.d", "why": "Permission denied"} in manifest["failed"]
    assert (out / "etc/sysctl.conf").is_file()  # the rest was captured


def test_interrupted_capture_removes_scratch_and_partial_output(tmp_path: Path) -> None:
    host = make_host(tmp_path / "host")
    (tmp_path / "host/proc/net/nf_conntrack").write_text(TABLE)

    class Interrupted(FakeCommands):
        def output(self, name: str) -> str:
            raise SystemExit(143)  # what SIGTERM becomes in the CLI

    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(SystemExit):
        capture(host, Interrupted(), TarWriter(out / "s.tar.gz"), CaptureOptions())
    assert list(out.iterdir()) == []


def test_tuned_include_chain_is_captured(tmp_path: Path) -> None:
    """The parent a profile includes holds [net] nf_conntrack_hashsize (stock openshift-node
    -> openshift): doctor on the snapshot must read the same profile as on the host."""
    host = make_host(tmp_path / "host")
    realworld = Path(__file__).parent.parent / "realworld/tuned/redhat-performance-tuned"
    for name in ("openshift-node", "openshift"):
        (tmp_path / f"host/usr/lib/tuned/{name}").mkdir(parents=True)
        text = (realworld / name / "tuned.conf").read_bytes()
        (tmp_path / f"host/usr/lib/tuned/{name}/tuned.conf").write_bytes(text)
    (tmp_path / "host/etc/tuned").mkdir()
    (tmp_path / "host/etc/tuned/active_profile").write_text("openshift-node\n")
    out = tmp_path / "snap"
    manifest = capture(host, FakeCommands({}), DirWriter(out), CaptureOptions())
    assert "/usr/lib/tuned/openshift/tuned.conf" in manifest["captured"]
    assert (
        b"nf_conntrack_hashsize=1048576"
        in (out / "usr/lib/tuned/openshift/tuned.conf").read_bytes()
    )


def test_tuned_operator_profiles_and_main_conf_are_captured(tmp_path: Path) -> None:
    """What decides tuned's settings is taken too: tuned-main.conf (reapply_sysctl), and on an
    OpenShift node the operator's recommend.d choice and its /var/lib/ocp-tuned profiles;
    doctor on the snapshot reads the same profile as on the node."""
    from ctguard.sources.agents import TunedProfile, read_tuned

    host = make_host(tmp_path / "host")
    files = {
        "etc/tuned/tuned-main.conf": "reapply_sysctl = 0\n",
        "var/lib/ocp-tuned/recommend.d/50-openshift.conf": "[node-a]\n",
        "var/lib/ocp-tuned/profiles/node-a/tuned.conf": "[main]\ninclude=base\n",
        "var/lib/ocp-tuned/profiles/base/tuned.conf": "[variables]\n"
        "include=${i:PROFILE_DIR}/sizes.conf\n[net]\nnf_conntrack_hashsize=${buckets}\n",
        "var/lib/ocp-tuned/profiles/base/sizes.conf": "buckets=131072\n",
    }
    for path, text in files.items():
        (tmp_path / "host" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "host" / path).write_text(text)
    out = tmp_path / "snap"
    manifest = capture(host, FakeCommands({}), DirWriter(out), CaptureOptions())
    for path in files:
        assert f"/{path}" in manifest["captured"]
    on_host, in_snapshot = read_tuned(host), read_tuned(HostRoot(out))
    assert on_host == in_snapshot
    assert isinstance(in_snapshot, TunedProfile) and in_snapshot.operator
    assert in_snapshot.net_hashsize is not None
    assert in_snapshot.net_hashsize.value == "131072"


def test_the_local_port_range_travels_with_the_snapshot(tmp_path: Path) -> None:
    """analyze and notrack tell this host's own connections by ip_local_port_range; a
    snapshot without it made them assume the kernel default (a host running 1024-65000
    read as 32768-60999)."""
    from ctguard.sources.local_port_range import LocalPortRange, read_local_port_range

    host = make_host(tmp_path / "host")
    path = tmp_path / "host/proc/sys/net/ipv4/ip_local_port_range"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("1024\t65000\n")
    out = tmp_path / "snap"
    capture(host, FakeCommands({}), DirWriter(out), CaptureOptions())
    got = read_local_port_range(HostRoot(out))
    assert isinstance(got, LocalPortRange) and (got.low, got.high) == (1024, 65000)
