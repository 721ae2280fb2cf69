"""Shared pieces for the apply/rollback tests: a fake runtime, a host tree, a plan."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ctguard.remediation.apply import (
    ApplyResult,
    RollbackResult,
    TreeRuntime,
    apply_changes,
    rollback,
)
from ctguard.remediation.changes import EDIT, GLOBAL, OURS, RunCommand, SetSysctl, WriteFile
from ctguard.remediation.command_runner import CommandRunner
from ctguard.remediation.state_dir import StateDir

MAX = "/proc/sys/net/netfilter/nf_conntrack_max"
BUCKETS = "/proc/sys/net/netfilter/nf_conntrack_buckets"
TCP_EST = "/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established"

OLD_60 = b"net.netfilter.nf_conntrack_max = 65536\n"
NEW_60 = b"# edited by ctguard\nnet.netfilter.nf_conntrack_max = 262144\n"
OLD_MODPROBE = b"options nf_conntrack hashsize=16384\n"
NEW_MODPROBE = b"options nf_conntrack hashsize=65536\n"
NEW_RULES = b'ACTION=="add", SUBSYSTEM=="module", KERNEL=="nf_conntrack", RUN+="/bin/true"\n'
NEW_DROPIN = b"net.netfilter.nf_conntrack_max = 262144\n"


class FakeRuntime:
    """Runtime values in a dict; optionally refusing the n-th write (1-based), or storing
    something else than what was written (as the kernel rounds buckets)."""

    def __init__(
        self,
        values: dict[str, str],
        fail_on_write: int | None = None,
        stores: dict[tuple[str, str], str] | None = None,
    ) -> None:
        self.values = dict(values)
        self.fail_on_write = fail_on_write
        self.stores = stores or {}
        self.writes: list[tuple[str, str]] = []

    def read(self, path: str) -> str:
        if path not in self.values:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        return self.values[path]

    def mirrors(self, path: str) -> tuple[str, ...]:
        return ()

    def write(self, path: str, value: str) -> None:
        self.writes.append((path, value))
        if self.fail_on_write == len(self.writes):
            raise OSError(errno.EINVAL, "Invalid argument", path)
        if path not in self.values:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        self.values[path] = self.stores.get((path, value), value)


RUNTIME_BEFORE = {MAX: "65536", BUCKETS: "16384", TCP_EST: "432000"}


def tree_state(top: Path) -> dict[str, tuple[object, ...]]:
    """Everything about a tree a rollback must restore: names, kinds, bytes, modes, owners,
    link targets."""
    state: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            rel = str(path.relative_to(top))
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                state[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                state[rel] = ("dir", mode, st.st_uid, st.st_gid)
            else:
                state[rel] = ("file", mode, st.st_uid, st.st_gid, path.read_bytes())
    return state


def temp_files(*tops: Path) -> list[str]:
    return [
        str(Path(d, n))
        for top in tops
        for d, dirs, files in os.walk(top)
        for n in dirs + files
        if ".ctguard-" in n
    ]


def make_root(root: Path) -> Path:
    """A small host: an existing 0600 drop-in, a modprobe file, links, no /etc/udev."""
    sysctl_d = root / "etc" / "sysctl.d"
    sysctl_d.mkdir(parents=True)
    (root / "etc" / "modprobe.d").mkdir()
    (root / "etc" / "sysctl.conf").write_bytes(b"# empty\n")
    (sysctl_d / "99-sysctl.conf").symlink_to("../sysctl.conf")
    (sysctl_d / "60-x.conf").write_bytes(OLD_60)
    os.chmod(sysctl_d / "60-x.conf", 0o600)
    (root / "etc" / "modprobe.d" / "nf_conntrack.conf").write_bytes(OLD_MODPROBE)
    os.chmod(root / "etc" / "modprobe.d" / "nf_conntrack.conf", 0o640)
    os.chown(root / "etc" / "modprobe.d" / "nf_conntrack.conf", 0, 4)  # group adm-like
    return root


def plan_files() -> list[WriteFile]:
    return [
        WriteFile("/etc/sysctl.d/60-x.conf", OLD_60, NEW_60, 0o644, "raise max", EDIT),
        WriteFile("/etc/udev/rules.d/90-ctguard.rules", None, NEW_RULES, 0o644, "hashsize", OURS),
        WriteFile(
            "/etc/modprobe.d/nf_conntrack.conf", OLD_MODPROBE, NEW_MODPROBE, 0o644, "b", EDIT
        ),
        WriteFile("/etc/sysctl.d/90-ctguard-conntrack.conf", None, NEW_DROPIN, 0o644, "max", OURS),
    ]


def plan_sysctls() -> list[SetSysctl]:
    return [
        SetSysctl("nf_conntrack_max", MAX, 65536, 262144, GLOBAL, "max"),
        SetSysctl("nf_conntrack_buckets", BUCKETS, 16384, 65536, GLOBAL, "buckets"),
    ]


@dataclass
class Host:
    """One test's host: a root tree, a state directory beside it, a fake runtime."""

    root: Path
    state: Path
    runtime: FakeRuntime
    files: list[WriteFile] = field(default_factory=plan_files)
    sysctls: list[SetSysctl] = field(default_factory=plan_sysctls)

    def snapshot(self) -> tuple[dict[str, tuple[object, ...]], dict[str, str]]:
        return tree_state(self.root), dict(self.runtime.values)


def new_host(
    base: Path,
    fail_on_write: int | None = None,
    stores: dict[tuple[str, str], str] | None = None,
) -> Host:
    base.mkdir(parents=True, exist_ok=True)
    root = make_root(base / "root")
    return Host(root, base / "state", FakeRuntime(RUNTIME_BEFORE, fail_on_write, stores))


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return new_host(tmp_path)


META = {"command": "apply", "plan_sha256": "abc", "root": "test", "netns": None}


def apply_host(host: Host, **kw: object) -> ApplyResult:
    """apply_changes of the host's plan, into its own root, runtime and state dir."""
    return apply_changes(
        host.files, host.sysctls, root=host.root, runtime=host.runtime,
        state_dir=host.state, meta=META, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


NOTRACK_META = {"command": "notrack", "netns": None}


def apply_commands(
    tmp_path: Path, commands: Sequence[RunCommand], runner: CommandRunner
) -> ApplyResult:
    """Firewall commands journalled under ``tmp_path/state``, run by a fake runner."""
    return apply_changes(
        (), (), root=tmp_path, runtime=FakeRuntime({}), state_dir=tmp_path / "state",
        meta=NOTRACK_META, commands=commands, runner=runner,
    )  # fmt: skip


def roll_back_commands(tmp_path: Path, entry_id: str, runner: CommandRunner) -> RollbackResult:
    return rollback(
        entry_id, root=tmp_path, runtime=FakeRuntime({}), state_dir=tmp_path / "state",
        runner=runner,
    )  # fmt: skip


def journal_json(state: Path, entry_id: str) -> Path:
    """Where an entry's journal.json is, to damage or edit it as a crash or a person would."""
    return state / "journal" / entry_id / "journal.json"


# -- a tree as `apply --root` sees it: runtime files and the state directory inside it ------
HASHSIZE = "/sys/module/nf_conntrack/parameters/hashsize"


def make_tree(base: Path) -> tuple[Path, Path]:
    """(the tree, the outside directory holding a copy of it)."""
    root = make_root(base / "T")
    netfilter = root / "proc/sys/net/netfilter"
    netfilter.mkdir(parents=True)
    (netfilter / "nf_conntrack_max").write_text("65536\n")
    (netfilter / "nf_conntrack_buckets").write_text("16384\n")
    params = root / "sys/module/nf_conntrack/parameters"
    params.mkdir(parents=True)
    (params / "hashsize").write_text("16384\n")
    (root / "var/lib").mkdir(parents=True)
    outside = base / "outside"
    shutil.copytree(root, outside, symlinks=True)
    for name in ("etc/udev/rules.d", "var/lib/ctguard/journal"):
        (outside / name).mkdir(parents=True)
    return root, outside


def tree_sysctls() -> list[SetSysctl]:
    return [
        SetSysctl("nf_conntrack_max", MAX, 65536, 262144, GLOBAL, "max"),
        SetSysctl("hashsize", HASHSIZE, 16384, 65536, GLOBAL, "buckets", 65536),
    ]


def apply_tree(root: Path, hook: object = None) -> object:
    return apply_changes(
        plan_files(), tree_sysctls(), root=root, runtime=TreeRuntime(root),
        state_dir=StateDir.in_tree(root), meta={"command": "apply"}, hook=hook,  # type: ignore[arg-type]
    )  # fmt: skip


def roll_back_tree(root: Path) -> object:
    return rollback(None, root=root, runtime=TreeRuntime(root), state_dir=StateDir.in_tree(root))
