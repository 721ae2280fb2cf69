"""HostRoot over a snapshot directory: every path and link stays inside the root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ctguard.errors import HostAccessError
from ctguard.host.root import HostRoot
from ctguard.missing import Missing


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A snapshot root, plus a decoy directory beside it that must never be read."""
    root = tmp_path / "root"
    (root / "etc" / "sysctl.d").mkdir(parents=True)
    (root / "etc" / "sysctl.conf").write_text("net.netfilter.nf_conntrack_max = 1\n")
    (root / "usr" / "lib" / "sysctl.d").mkdir(parents=True)
    (root / "usr" / "lib" / "sysctl.d" / "50-default.conf").write_text("kernel.panic = 0\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("host file\n")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "sysctl.conf").write_text("the real machine's file\n")
    return root


def test_plain_paths(tree):
    host = HostRoot(tree)
    assert not host.is_live
    assert host.read_text("/etc/sysctl.conf") == "net.netfilter.nf_conntrack_max = 1\n"
    assert host.read_text("etc/sysctl.conf") == "net.netfilter.nf_conntrack_max = 1\n"
    assert host.read_text("//etc/./sysctl.conf") == "net.netfilter.nf_conntrack_max = 1\n"


def test_absolute_link_resolves_inside_root(tree):
    # Distributions link /etc/sysctl.d/99-sysctl.conf -> ../sysctl.conf; a captured
    # absolute link must still name the snapshot's file, not this machine's.
    os.symlink("/etc/sysctl.conf", tree / "etc" / "sysctl.d" / "99-sysctl.conf")
    host = HostRoot(tree)
    assert host.read_text("/etc/sysctl.d/99-sysctl.conf") == (
        "net.netfilter.nf_conntrack_max = 1\n"
    )
    assert host.realpath("/etc/sysctl.d/99-sysctl.conf") == "/etc/sysctl.conf"
    assert host.is_symlink("/etc/sysctl.d/99-sysctl.conf")
    assert host.readlink("/etc/sysctl.d/99-sysctl.conf") == "/etc/sysctl.conf"
    assert host.file_kind("/etc/sysctl.d/99-sysctl.conf") == "link"


def test_relative_link(tree):
    os.symlink("../sysctl.conf", tree / "etc" / "sysctl.d" / "99-sysctl.conf")
    host = HostRoot(tree)
    assert host.realpath("/etc/sysctl.d/99-sysctl.conf") == "/etc/sysctl.conf"
    assert host.read_text("/etc/sysctl.d/99-sysctl.conf").startswith("net.netfilter")


def test_directory_link_in_the_middle(tree):
    # Merged /usr: /lib -> usr/lib.
    os.symlink("usr/lib", tree / "lib")
    host = HostRoot(tree)
    assert host.realpath("/lib/sysctl.d/50-default.conf") == "/usr/lib/sysctl.d/50-default.conf"
    assert host.listdir("/lib/sysctl.d") == ["50-default.conf"]
    assert host.glob("/lib/sysctl.d", "*.conf") == ["/lib/sysctl.d/50-default.conf"]
    assert host.is_dir("/lib/sysctl.d")
    assert host.file_kind("/lib") == "link"
    assert host.file_kind("/lib/sysctl.d") == "dir"


def test_dotdot_beyond_root_is_clamped(tree):
    host = HostRoot(tree)
    assert host.realpath("/../../../etc/sysctl.conf") == "/etc/sysctl.conf"
    assert host.read_text("/../../etc/sysctl.conf").startswith("net.netfilter")
    assert not host.exists("/../outside/secret")
    assert host.realpath("/..") == "/"


def test_links_escaping_root_are_clamped(tree):
    os.symlink("../../../../outside/secret", tree / "etc" / "up")
    os.symlink("/../outside/secret", tree / "etc" / "abs-up")
    host = HostRoot(tree)
    for link in ("/etc/up", "/etc/abs-up"):
        assert host.realpath(link) == "/outside/secret"
        assert not host.exists(link)
        assert isinstance(host.try_read_text(link), Missing)
        with pytest.raises(FileNotFoundError):
            host.read_text(link)


def test_link_to_this_machines_absolute_path_stays_inside(tree, tmp_path):
    os.symlink(str(tmp_path / "outside" / "secret"), tree / "escape")
    host = HostRoot(tree)
    assert host.realpath("/escape") == str(tmp_path / "outside" / "secret")
    assert host._resolve("/escape").is_relative_to(tree.resolve())
    assert isinstance(host.try_read_text("/escape"), Missing)


def test_link_loop_raises_oserror(tree):
    os.symlink("b", tree / "a")
    os.symlink("a", tree / "b")
    os.symlink("self", tree / "self")
    host = HostRoot(tree)
    for path in ("/a", "/self", "/a/child"):
        with pytest.raises(OSError, match="too many levels"):
            host.realpath(path)
        with pytest.raises(OSError):
            host.read_text(path)
        assert not host.exists(path)
        assert not host.is_file(path)
        assert not host.is_dir(path)
        reason = host.try_read_text(path)
        assert isinstance(reason, Missing)
        assert path in reason.reason


def test_last_link_not_followed_when_asked(tree):
    os.symlink("/nowhere", tree / "dangling")
    host = HostRoot(tree)
    assert host.is_symlink("/dangling")
    assert not host.exists("/dangling")
    assert host.file_kind("/dangling") == "link"
    assert host.readlink("/dangling") == "/nowhere"
    assert host.realpath("/dangling") == "/nowhere"


def test_realpath_of_root_and_plain_paths(tree):
    host = HostRoot(tree)
    assert host.realpath("/") == "/"
    assert host.realpath("") == "/"
    assert host.realpath("/etc/sysctl.conf") == "/etc/sysctl.conf"
    assert host.realpath("/etc/./sysctl.d/../sysctl.conf") == "/etc/sysctl.conf"


def test_realpath_keeps_hidden_names(tree):
    (tree / ".snapshots").mkdir()
    os.symlink(".snapshots", tree / "snaps")
    host = HostRoot(tree)
    assert host.realpath("/.snapshots") == "/.snapshots"
    assert host.realpath("/snaps/..x") == "/.snapshots/..x"


def test_missing_reasons(tree):
    host = HostRoot(tree)
    missing = host.try_read_text("/proc/meminfo")
    assert missing == Missing("/proc/meminfo does not exist")
    assert host.listdir("/proc") == []
    assert host.listdir("/etc/sysctl.conf") == []
    assert host.file_kind("/proc") == "absent"
    assert host.file_kind("/etc/sysctl.conf") == "file"


def test_read_tail_and_limits(tree):
    (tree / "log").write_bytes(b"0123456789")
    host = HostRoot(tree)
    assert host.read_tail("/log", 4) == b"6789"
    assert host.read_tail("/log", 100) == b"0123456789"
    assert host.read_bytes("/log", max_size=10) == b"0123456789"
    with pytest.raises(OSError, match="larger than 3 bytes"):
        host.read_bytes("/log", max_size=3)
    with host.open_binary("/log") as f:
        assert f.read(2) == b"01"


def test_undecodable_bytes_are_replaced(tree):
    (tree / "bin").write_bytes(b"ok\xff\n")
    assert HostRoot(tree).read_text("/bin") == "ok\ufffd\n"


def test_root_must_be_a_directory(tmp_path):
    with pytest.raises(HostAccessError, match="not a directory"):
        HostRoot(tmp_path / "absent")
    (tmp_path / "file").write_text("x")
    with pytest.raises(HostAccessError):
        HostRoot(tmp_path / "file")


def test_live_root():
    host = HostRoot("/")
    assert host.is_live
    assert host.realpath("/") == "/"


def test_live_reads_a_file_larger_than_the_first_chunk_whole(tmp_path):
    # the first read asks for one page (root.read_bounded): what follows must still come
    big = tmp_path / "big"
    big.write_bytes(bytes(range(256)) * 1000)  # 256,000 bytes
    live = HostRoot("/")
    assert live.is_live
    assert live.read_bytes(str(big)) == big.read_bytes()
    with pytest.raises(OSError, match="larger than 4096 bytes"):
        live.read_bytes(str(big), max_size=4096)
    with pytest.raises(FileNotFoundError):
        live.read_bytes(str(tmp_path / "absent"))


def test_glob_paths_at_the_root_and_below(tree):
    host = HostRoot(tree)
    assert host.glob("/", "e*") == ["/etc"]
    assert host.glob("/etc/", "*.conf") == ["/etc/sysctl.conf"]
    assert host.glob("etc", "*.conf") == ["etc/sysctl.conf"]
