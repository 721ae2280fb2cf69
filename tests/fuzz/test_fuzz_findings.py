"""One test for each crash the snapshot fuzz found (test_snapshot_readers.py), with what an
operator should get instead; docs/design.md §10 lists them."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

from ctguard.cli import main

REPO = Path(__file__).resolve().parents[2]
RHEL76 = REPO / "tests" / "roots" / "doctor" / "ct304-rhel76-greps-sysctl-d-no-link"


def ctguard(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_apply_keeps_the_bytes_of_a_sysctl_conf_that_is_not_utf8(tmp_path: Path) -> None:
    """Found: plan crashed (UnicodeEncodeError) when the ctguard block went into a
    sysctl.conf holding a Latin-1 comment. The block is added; the file's other bytes stay
    exactly as they were (sysctl reads bytes, and the comment is not ours to re-encode)."""
    root = tmp_path / "root"
    shutil.copytree(RHEL76, root, symlinks=True)
    conf = root / "etc" / "sysctl.conf"
    original = conf.read_bytes().replace(b"# To override", b"# Param\xe8tres: to override")
    conf.write_bytes(original)
    larger = ("--target-max", "300000")  # sysctl.conf sets 262144
    code, out, err = ctguard("plan", "--root", str(root), "--format", "json", *larger)
    assert code in (0, 1, 2), err
    assert "/etc/sysctl.conf" in out
    code, _, err = ctguard("apply", "--root", str(root), "--yes", *larger)
    assert code == 0, err
    after = conf.read_bytes()
    assert after.startswith(original), after[:300]
    assert b"net.netfilter.nf_conntrack_max = 300000" in after[len(original) :]
