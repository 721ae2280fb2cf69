"""A real /proc/net/nf_conntrack from a home router (tests/realworld/SOURCES.md), analyzed
through the CLI. The router NATs a LAN (192.168.1.0/24, itself 192.168.1.1) out of one
public address (42.191.180.28), serves DNS to the LAN and asks public resolvers itself.

Expected numbers were counted from the file with awk, independently of ctguard:
112 lines, no trailing newline; udp 80, tcp 30 (27 ESTABLISHED, 2 SYN_SENT, 1 TIME_WAIT),
icmp 2; original destination port udp/53 on 56 entries: 28 from the router's public
address to public resolvers (its own queries), 28 from LAN hosts to 192.168.1.1 (served);
[ASSURED] 58, [UNREPLIED] 4; reply tuple differs from the original in 51 entries (47
source NAT of LAN hosts, 4 port forwards to 42.191.180.28).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ctguard.cli import main

DUMP = (
    Path(__file__).parent
    / "realworld"
    / "conntrack"
    / "venera66-parse_nf_conntrack-home-router.nf_conntrack"
)
ROUTER = "42.191.180.28,192.168.1.1"


def _analyze(capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    assert main(["analyze", str(DUMP), "--format", "json", "--top", "0", *extra]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def _rows(data: dict[str, Any], by: str) -> dict[str, int]:
    rows: dict[str, int] = {}
    for row in data["by"][by]:
        key = "/".join(str(v) for k, v in row.items() if k not in ("count", "nat", "share"))
        rows[key] = row["count"]
    return rows


def test_every_line_counted(capsys: pytest.CaptureFixture[str]) -> None:
    data = _analyze(capsys)
    assert data["entries"] == 112
    assert data["bad_lines"]["count"] == 0
    assert _rows(data, "protocol") == {"udp": 80, "tcp": 30, "icmp": 2}
    assert data["by"]["flags"]["assured"] == 58
    assert data["by"]["flags"]["unreplied"] == 4
    assert data["by"]["nat"] == {"nated": 51, "not_nated": 61}


def test_states_and_ports(capsys: pytest.CaptureFixture[str]) -> None:
    data = _analyze(capsys)
    states = _rows(data, "state")
    assert states == {"tcp/ESTABLISHED": 27, "tcp/SYN_SENT": 2, "tcp/TIME_WAIT": 1}
    assert _rows(data, "dport")["udp/53"] == 56


def test_small_router_table_proposes_no_notrack(capsys: pytest.CaptureFixture[str]) -> None:
    # 112 entries say nothing about what a port costs at scale; and udp/53 here is half the
    # router's own queries, which a server-direction NOTRACK would not touch
    data = _analyze(capsys, "--local-address", ROUTER)
    assert data["notrack_candidates"] == []
    assert "too few" in data["notrack_skipped"]
