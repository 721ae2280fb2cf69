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


def test_own_connections_from_a_fixed_port_are_no_client_candidate(tmp_path: Path) -> None:
    # ntpd on the proxy asks its servers from udp/123: its own entries, but from a port
    # outside the snapshot's ip_local_port_range, so --direction client would leave their
    # replies tracked: passed over, with the range the scan used
    def udp(src: str, dst: str, sport: int, dport: int) -> str:
        return (
            f"ipv4     2 udp      17 25 src={src} dst={dst} sport={sport} dport={dport}"
            f" src={dst} dst={src} sport={dport} dport={sport} mark=0 zone=0 use=2\n"
        )

    lines = [udp("10.0.0.10", f"192.0.2.{1 + i % 4}", 123, 123) for i in range(800)]
    lines += [udp("10.0.0.10", "192.0.2.53", 33000 + i, 53) for i in range(800)]
    lines += [udp(f"198.51.100.{1 + i % 200}", "10.0.0.10", 20000 + i, 7000 + i % 97)
              for i in range(400)]  # fmt: skip
    dump = tmp_path / "table.txt"
    dump.write_text("".join(lines))
    doc = analyze_json(str(dump), "--root", str(HOST))
    assert candidates(doc) == {("udp", 53): "client"}
    why = {(p["protocol"], p["port"]): p["why"] for p in doc["notrack_passed_over"]}
    assert why[("udp", 123)].startswith(
        "800 of the host's own connections to it leave from source ports outside"
        " ip_local_port_range 32768-60999"
    )
