"""``analyze FILE --root SNAP``: the dump's directions come from the snapshot's addresses
(its /proc/net/fib_trie and if_inet6) when no --local-address names them (issue 16, item 7
leftover). tests/roots/analyze/proxy-host is the host of examples/proxy-table.txt.gz:
10.0.0.10 and 2001:db8::10 (tests/roots/analyze/README.md)."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

from ctguard.cli import main
from helpers import ROOTS

PROXY = str(Path(__file__).parents[2] / "examples" / "proxy-table.txt.gz")
HOST = ROOTS / "analyze" / "proxy-host"


def analyze_json(*argv: str) -> dict[str, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["analyze", *argv, "--format", "json"])
    assert code == 0
    return dict(json.loads(out.getvalue()))


def candidates(doc: dict[str, Any]) -> dict[tuple[str, int], str]:
    return {(c["protocol"], c["port"]): c["direction"] for c in doc["notrack_candidates"]}


def test_the_snapshots_addresses_tell_the_directions() -> None:
    doc = analyze_json(PROXY, "--root", str(HOST))
    # the proxy's own DNS queries are its client side; Solr on 8983 is served by it
    assert candidates(doc) == {("udp", 53): "client", ("tcp", 8983): "server"}
    assert doc["notrack_skipped"] in ("", None)
    # the same as naming the addresses by hand
    named = analyze_json(PROXY, "--local-address", "10.0.0.10,2001:db8::10")
    assert named["notrack_candidates"] == doc["notrack_candidates"]


def test_local_address_still_wins_over_the_snapshot() -> None:
    # another host's address: no entry is the host's own, so every port is forwarded
    doc = analyze_json(PROXY, "--root", str(HOST), "--local-address", "192.0.2.1")
    assert candidates(doc) == {}
    why = {(p["protocol"], p["port"]): p["why"] for p in doc["notrack_passed_over"]}
    assert "forwarded" in why[("udp", 53)] and "forwarded" in why[("tcp", 8983)]


def test_a_snapshot_without_addresses_proposes_nothing_and_says_why(tmp_path: Path) -> None:
    copy = tmp_path / "root"
    shutil.copytree(HOST, copy, symlinks=True)
    for name in ("fib_trie", "if_inet6"):
        (copy / "proc" / "net" / name).unlink()
    doc = analyze_json(PROXY, "--root", str(copy))
    assert doc["notrack_candidates"] == []
    assert "snapshot's addresses are unknown" in doc["notrack_skipped"]
    assert "--local-address" in doc["notrack_skipped"]
