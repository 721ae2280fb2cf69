"""CT501 does not page when it cannot tell whether a NOTRACK's packets are forwarded: on the
nodelocaldns root without the host's addresses (an older snapshot), the FORWARD drop is a
WARNING that says why, never a CRITICAL."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

from ctguard.cli import main

ROOT = Path(__file__).parent / "roots" / "doctor" / "ct501-nodelocaldns-local-accept"


def ct501(root: Path) -> dict[str, object]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["doctor", "--root", str(root), "--only", "CT501", "--format", "json"])
    (finding,) = json.loads(out.getvalue())["findings"]
    return dict(finding)


def test_unknown_local_addresses_cap_a_forward_drop_at_warning(tmp_path: Path) -> None:
    copy = tmp_path / "root"
    shutil.copytree(ROOT, copy, symlinks=True)
    for name in ("fib_trie", "if_inet6"):
        (copy / "proc" / "net" / name).unlink()
    got = ct501(copy)
    assert (got["status"], got["severity"]) == ("found", "warning")
    assert any("only if forwarded" in line for line in got["evidence"])  # type: ignore[attr-defined]


def test_known_local_addresses_keep_it_passing() -> None:
    assert ct501(ROOT)["status"] == "passed"
