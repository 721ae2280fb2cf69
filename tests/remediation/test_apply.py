"""apply_changes and dry_run on a temporary root: writes, modes, journal, idempotence,
staleness, links that point outside the root."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path

import pytest

from ctguard.errors import CtguardError
from ctguard.remediation.apply import (
    ApplyError,
    ApplyResult,
    StalePlanError,
    TreeRuntime,
    apply_changes,
    dry_run,
    rollback,
)
from ctguard.remediation.changes import GLOBAL, OURS, SetSysctl, WriteFile
from ctguard.remediation.journal import list_entries, read_entry
from remediation.conftest import (
    BUCKETS,
    MAX,
    META,
    NEW_60,
    NEW_DROPIN,
    NEW_MODPROBE,
    NEW_RULES,
    OLD_60,
    Host,
    apply_host,
    temp_files,
    tree_state,
)


def apply(host: Host, **kw: object) -> ApplyResult:
    return apply_host(host, **kw)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_apply_writes_files_keeps_modes_and_sets_runtime_values(host):
    result = apply(host)
    etc = host.root / "etc"
    assert (etc / "sysctl.d/60-x.conf").read_bytes() == NEW_60
    assert mode_of(etc / "sysctl.d/60-x.conf") == 0o600  # an existing file keeps its mode
    modprobe = etc / "modprobe.d/nf_conntrack.conf"
    assert modprobe.read_bytes() == NEW_MODPROBE
    assert (mode_of(modprobe), modprobe.stat().st_gid) == (0o640, 4)  # and its owner
    assert (etc / "udev/rules.d/90-ctguard.rules").read_bytes() == NEW_RULES
    assert mode_of(etc / "udev/rules.d/90-ctguard.rules") == 0o644
    assert mode_of(etc / "udev") == mode_of(etc / "udev/rules.d") == 0o755
    assert (etc / "sysctl.d/90-ctguard-conntrack.conf").read_bytes() == NEW_DROPIN
    assert (etc / "sysctl.d/99-sysctl.conf").is_symlink()
    assert host.runtime.values[MAX] == "262144"
    assert host.runtime.values[BUCKETS] == "65536"
    assert result.files == tuple(f.path for f in host.files)
    assert result.sysctls == (MAX, BUCKETS)
    assert result.skipped == ()
    assert temp_files(host.root, host.state) == []


def test_runtime_values_are_written_after_every_file(host):
    written_files_when_runtime_set: list[bool] = []
    real_write = host.runtime.write

    def write(path: str, value: str) -> None:
        written_files_when_runtime_set.append(
            (host.root / "etc/sysctl.d/90-ctguard-conntrack.conf").exists()
        )
        real_write(path, value)

    host.runtime.write = write  # type: ignore[method-assign]
    apply(host)
    assert written_files_when_runtime_set == [True, True]


def test_journal_records_the_apply(host):
    result = apply(host)
    assert result.entry_id is not None
    entry_dir = host.state / "journal" / result.entry_id
    assert mode_of(host.state) == mode_of(host.state / "journal") == mode_of(entry_dir) == 0o700
    entry = read_entry(host.state, result.entry_id)
    assert entry.state == "applied"
    assert dict(entry.meta) == META
    assert entry.created.endswith("+00:00")
    assert entry.created_dirs == ("/etc/udev", "/etc/udev/rules.d")
    assert [r.done for r in entry.files] == [True] * 4
    assert [r.done for r in entry.sysctls] == [True, True]
    edited = entry.files[0]
    assert (edited.existed, edited.mode, edited.backup) == (True, 0o600, "0")
    assert (entry_dir / "files" / "0").read_bytes() == OLD_60
    assert mode_of(entry_dir / "files" / "0") == 0o600
    new = entry.files[1]
    assert (new.existed, new.backup, new.before_sha256, new.uid) == (False, None, None, None)
    assert entry.sysctls[0].before == 65536
    raw = json.loads((entry_dir / "journal.json").read_text())
    assert raw["schema"] == "ctguard.journal/1"
    assert raw["ctguard_version"]
    assert [e.id for e in list_entries(host.state)] == [result.entry_id]


def test_entry_id_is_utc_time_and_random_hex(host):
    entry_id = apply(host).entry_id
    assert entry_id is not None
    stamp, rand = entry_id.split("-")
    assert len(stamp) == 16 and stamp[8] == "T" and stamp.endswith("Z")
    assert len(rand) == 4 and int(rand, 16) >= 0


def test_second_apply_changes_nothing(host):
    apply(host)
    before = tree_state(host.root), tree_state(host.state)
    host.runtime.writes.clear()
    again = apply(host)
    assert again.entry_id is None
    assert again.files == again.sysctls == ()
    assert set(again.skipped) == {f.path for f in host.files} | {MAX, BUCKETS}
    assert (tree_state(host.root), tree_state(host.state)) == before
    assert host.runtime.writes == []
    assert len(list_entries(host.state)) == 1


def test_only_what_is_not_in_place_is_applied(host):
    (host.root / "etc/sysctl.d/60-x.conf").write_bytes(NEW_60)  # someone already did this one
    host.runtime.values[MAX] = "262144"
    result = apply(host)
    assert result.skipped == ("/etc/sysctl.d/60-x.conf", MAX)
    assert "/etc/sysctl.d/60-x.conf" not in result.files
    assert result.sysctls == (BUCKETS,)
    entry = read_entry(host.state, result.entry_id)
    assert [r.path for r in entry.files] == list(result.files)


def test_sysctl_without_before_is_not_checked(host):
    host.files = []
    host.sysctls = [SetSysctl("nf_conntrack_max", MAX, None, 131072, GLOBAL, "why")]
    host.runtime.values[MAX] = "99999"
    apply(host)
    assert host.runtime.values[MAX] == "131072"


def test_expected_read_back_counts_as_in_place(host):
    host.files = []
    host.sysctls = [SetSysctl("nf_conntrack_buckets", BUCKETS, 16384, 65535, GLOBAL, "b", 65536)]
    host.runtime.stores[(BUCKETS, "65535")] = "65536"  # the kernel rounds
    assert apply(host).sysctls == (BUCKETS,)
    assert apply(host).entry_id is None


# -- staleness ---------------------------------------------------------------------------
def assert_untouched(host: Host, before) -> None:
    assert host.snapshot() == before
    assert not host.state.exists()  # no journal entry, not even the directory


def test_file_changed_since_the_plan_is_stale(host):
    (host.root / "etc/sysctl.d/60-x.conf").write_bytes(b"net.netfilter.nf_conntrack_max = 1\n")
    before = host.snapshot()
    with pytest.raises(StalePlanError) as err:
        apply(host)
    message = str(err.value)
    assert "/etc/sysctl.d/60-x.conf changed since the plan was made" in message
    assert "ctguard plan" in message and "\n" not in message
    assert_untouched(host, before)


def test_file_that_appeared_since_the_plan_is_stale(host):
    (host.root / "etc/sysctl.d/90-ctguard-conntrack.conf").write_bytes(b"mine\n")
    before = host.snapshot()
    with pytest.raises(StalePlanError, match=r"90-ctguard-conntrack.conf .*\(absent then, 5 bytes"):
        apply(host)
    assert_untouched(host, before)


def test_file_that_vanished_since_the_plan_is_stale(host):
    (host.root / "etc/modprobe.d/nf_conntrack.conf").unlink()
    before = host.snapshot()
    with pytest.raises(StalePlanError, match="absent now"):
        apply(host)
    assert_untouched(host, before)


def test_runtime_value_changed_since_the_plan_is_stale(host):
    host.runtime.values[BUCKETS] = "32768"
    before = host.snapshot()
    with pytest.raises(StalePlanError, match=r"nf_conntrack_buckets .* is 32768 now.* was 16384"):
        apply(host)
    assert_untouched(host, before)
    assert host.runtime.writes == []


def test_a_directory_where_a_file_should_be_is_stale(host):
    (host.root / "etc/sysctl.d/90-ctguard-conntrack.conf").mkdir()
    before = host.snapshot()
    with pytest.raises(StalePlanError, match="not a regular file"):
        apply(host)
    assert_untouched(host, before)


def test_unreadable_runtime_value_is_one_apply_error(host):
    del host.runtime.values[BUCKETS]
    before = host.snapshot()
    with pytest.raises(ApplyError) as err:
        apply(host)
    assert str(err.value) == (
        f"cannot read {BUCKETS}: No such file or directory; nothing had been changed"
    )
    assert_untouched(host, before)


def test_relative_path_is_refused(host):
    host.files = [WriteFile("etc/x.conf", None, b"x\n", 0o644, "why")]
    with pytest.raises(CtguardError, match="not an absolute host path"):
        apply(host)


def test_the_same_file_twice_is_refused(host):
    host.files = [host.files[3], host.files[3]]
    with pytest.raises(CtguardError, match="twice"):
        apply(host)
    assert not host.state.exists()


# -- failures surface as one line and leave the host as it was ---------------------------
def test_runtime_refusal_undoes_everything(tmp_path):
    from remediation.conftest import new_host

    host = new_host(tmp_path, fail_on_write=2)  # the kernel refuses the buckets value
    before = host.snapshot()
    with pytest.raises(ApplyError) as err:
        apply(host)
    message = str(err.value)
    assert message.startswith(
        "cannot set nf_conntrack_buckets to 65536: Invalid argument; undone: "
    )
    assert "nf_conntrack_max" in message and "/etc/sysctl.d/60-x.conf" in message
    assert "\n" not in message
    assert host.snapshot() == before
    (entry,) = list_entries(host.state)
    assert entry.state == "undone"
    assert entry.error is not None and entry.error.startswith("cannot set nf_conntrack_buckets")
    assert [r.undone for r in entry.files] == [True] * 4
    assert [(r.done, r.undone) for r in entry.sysctls] == [(True, True), (False, False)]


def test_value_that_reads_back_wrong_is_undone(tmp_path):
    from remediation.conftest import new_host

    host = new_host(tmp_path, stores={(MAX, "262144"): "131072"})
    before = host.snapshot()
    with pytest.raises(ApplyError) as err:
        apply(host)
    assert str(err.value).startswith(
        "cannot verify nf_conntrack_max: it reads back '131072' after writing"
        " 262144, expected 262144; undone: nf_conntrack_buckets, nf_conntrack_max, "
    )
    assert host.snapshot() == before
    assert list_entries(host.state)[0].state == "undone"


def test_unwritable_state_dir_changes_nothing(host):
    host.state.write_text("a file, not a directory\n")
    before = host.snapshot()
    with pytest.raises(ApplyError) as err:
        apply(host)
    assert str(err.value) == (f"{host.state}: not a directory; nothing had been changed")
    assert host.snapshot() == before


# -- links never lead out of the root ----------------------------------------------------
def test_absolute_directory_link_resolves_inside_the_root(host):
    name = f"zz-ctguard-test-{uuid.uuid4().hex}.conf"
    sysctl_d = host.root / "etc" / "sysctl.d"
    for child in sysctl_d.iterdir():
        child.unlink()
    sysctl_d.rmdir()
    sysctl_d.symlink_to("/etc")  # on the audited host this means its own /etc
    host.files = [WriteFile(f"/etc/sysctl.d/{name}", None, NEW_DROPIN, 0o644, "max", OURS)]
    host.sysctls = []
    result = apply(host)
    assert not Path("/etc", name).exists()
    assert (host.root / "etc" / name).read_bytes() == NEW_DROPIN
    entry = read_entry(host.state, result.entry_id)
    assert entry.files[0].real_path == f"/etc/{name}"


def test_absolute_file_link_and_dotdot_stay_inside_the_root(host):
    name = f"zz-ctguard-test-{uuid.uuid4().hex}"
    (host.root / "etc/sysctl.d/95-link.conf").symlink_to(f"/etc/{name}.a")
    host.files = [
        WriteFile("/etc/sysctl.d/95-link.conf", None, b"a\n", 0o644, "a"),
        WriteFile(f"/../../../etc/{name}.b", None, b"b\n", 0o644, "b"),
    ]
    host.sysctls = []
    apply(host)
    assert not Path(f"/etc/{name}.a").exists() and not Path(f"/etc/{name}.b").exists()
    assert (host.root / f"etc/{name}.a").read_bytes() == b"a\n"
    assert (host.root / f"etc/{name}.b").read_bytes() == b"b\n"
    assert (host.root / "etc/sysctl.d/95-link.conf").is_symlink()  # the link itself is kept


def test_existing_file_behind_a_relative_link_is_edited_in_place(host):
    host.files = [WriteFile("/etc/sysctl.d/99-sysctl.conf", b"# empty\n", b"x = 1\n", 0o644, "e")]
    host.sysctls = []
    apply(host)
    assert (host.root / "etc/sysctl.d/99-sysctl.conf").is_symlink()
    assert (host.root / "etc/sysctl.conf").read_bytes() == b"x = 1\n"


# -- dry run -----------------------------------------------------------------------------
def test_dry_run_says_what_would_change_and_writes_nothing(host):
    host.runtime.values[MAX] = "262144"
    before = host.snapshot()
    would, in_place = dry_run(host.files, host.sysctls, root=host.root, runtime=host.runtime)
    assert would == [
        "replace /etc/sysctl.d/60-x.conf (backup kept; mode 0600 and owner kept) (raise max)",
        "create /etc/udev/rules.d/90-ctguard.rules (mode 0644, creating /etc/udev,"
        " /etc/udev/rules.d) (hashsize)",
        "replace /etc/modprobe.d/nf_conntrack.conf (backup kept; mode 0640 and owner kept) (b)",
        "create /etc/sysctl.d/90-ctguard-conntrack.conf (mode 0644) (max)",
        f"set nf_conntrack_buckets 16384 -> 65536: {BUCKETS} (buckets)",
    ]
    assert in_place == ["nf_conntrack_max is already 262144"]
    assert host.snapshot() == before
    assert not host.state.exists()


def test_dry_run_reports_staleness_like_apply(host):
    host.runtime.values[BUCKETS] = "1"
    with pytest.raises(StalePlanError):
        dry_run(host.files, host.sysctls, root=host.root, runtime=host.runtime)


# -- TreeRuntime -------------------------------------------------------------------------
def test_tree_runtime_reads_and_writes_files_of_a_tree(tmp_path):
    netfilter = tmp_path / "proc/sys/net/netfilter"
    netfilter.mkdir(parents=True)
    (netfilter / "nf_conntrack_max").write_text("65536\n")
    runtime = TreeRuntime(tmp_path)
    assert runtime.read(MAX) == "65536"
    runtime.write(MAX, "262144")
    assert (netfilter / "nf_conntrack_max").read_text() == "262144\n"
    with pytest.raises(FileNotFoundError):
        runtime.write(BUCKETS, "1")  # a runtime value is never created
    assert not (netfilter / "nf_conntrack_buckets").exists()


def test_apply_with_a_tree_runtime(host):
    netfilter = host.root / "proc/sys/net/netfilter"
    netfilter.mkdir(parents=True)
    (netfilter / "nf_conntrack_max").write_text("65536\n")
    (netfilter / "nf_conntrack_buckets").write_text("16384\n")
    apply_changes(
        host.files,
        host.sysctls,
        root=host.root,
        runtime=TreeRuntime(host.root),
        state_dir=host.state,
        meta=META,
    )
    assert (netfilter / "nf_conntrack_max").read_text() == "262144\n"
    assert (netfilter / "nf_conntrack_buckets").read_text() == "65536\n"


def test_a_tree_shows_hashsize_and_buckets_as_one_rounded_value(tmp_path):
    """On a host both files show nf_conntrack_htable_size, rounded to whole pages; a tree
    mirrors that so a plan applied to a snapshot reads back as it would on the host. The
    second file is a journalled step of its own, so a rollback puts both back."""
    root = tmp_path / "root"
    netfilter = root / "proc/sys/net/netfilter"
    params = root / "sys/module/nf_conntrack/parameters"
    netfilter.mkdir(parents=True)
    params.mkdir(parents=True)
    (netfilter / "nf_conntrack_buckets").write_text("16384\n")
    (params / "hashsize").write_text("16384\n")
    hashsize = "/sys/module/nf_conntrack/parameters/hashsize"
    runtime = TreeRuntime(root)
    change = SetSysctl("hashsize", hashsize, 16384, 100000, GLOBAL, "buckets", 100352)
    result = apply_changes((), [change], root=root, runtime=runtime, state_dir=tmp_path / "s",
                           meta={})  # fmt: skip
    assert result.sysctls == (hashsize, BUCKETS)
    assert runtime.read(BUCKETS) == runtime.read(hashsize) == "100352"
    (entry,) = list_entries(tmp_path / "s")
    assert [(s.path, s.before, s.reads_back) for s in entry.sysctls] == [
        (hashsize, 16384, 100352), (BUCKETS, 16384, 100352),
    ]  # fmt: skip
    rollback(None, root=root, runtime=runtime, state_dir=tmp_path / "s")
    assert (params / "hashsize").read_text() == (netfilter / "nf_conntrack_buckets").read_text()
    assert (params / "hashsize").read_text() == "16384\n"


def test_netns_runtime_keeps_oserror_an_oserror(monkeypatch):
    """The job runs in a forked child; only its result crosses back, so errors are values."""
    from ctguard.remediation import runtime_files as apply_module

    asked: list[str] = []

    def fake_run_in_netns(name, job, timeout):
        asked.append(name)
        return results.pop(0)

    results = [(0, "65536"), (13, "Permission denied"), (0, "")]
    monkeypatch.setattr(apply_module, "run_in_netns", fake_run_in_netns)
    runtime = apply_module.NetnsRuntime("web1")
    assert runtime.read(MAX) == "65536"
    with pytest.raises(PermissionError) as err:
        runtime.write(MAX, "1")
    assert (err.value.strerror, err.value.filename) == ("Permission denied", MAX)
    runtime.write(MAX, "2")
    assert asked == ["web1"] * 3
