"""`ctguard analyze` as an operator runs it on files: formats, stdin, gzip, output formats,
breakdown selection, and one-line errors with exit 3 (docs/design.md §3, §6)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import ROOTS, assert_one_line_error, ctguard_bin, run_ctguard

HOT_PORT = ROOTS / "doctor" / "ct505-hot-port"
WITH_TIMEOUTS = ROOTS / "doctor" / "ct401-near-low-usage"  # sysctls, no table

V6_A = ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1")  # (procfs, conntrack -L)
V6_B = ("2001:0db8:0000:0000:0000:0000:0000:00b0", "2001:db8::b0")


def _tcp(state: str, timeout: int, src: str, dst: str, sport: int, dport: int, **kw: Any) -> dict:
    return {
        "proto": "tcp 6",
        "timeout": timeout,
        "state": state,
        "orig": f"src={src} dst={dst} sport={sport} dport={dport}",
        "reply": f"src={kw.get('rsrc', dst)} dst={src} sport={kw.get('rsport', dport)} "
        f"dport={sport}",
        "flags": "[ASSURED]",
    }


def table() -> list[dict]:
    """18 entries: what every format below must count alike."""
    rows = []
    for i in range(1, 7):  # 6 ESTABLISHED to 443
        rows.append(_tcp("ESTABLISHED", 431990, f"192.0.2.{i}", "198.51.100.10", 40000 + i, 443))
    for i in range(1, 4):  # 3 TIME_WAIT to 80
        rows.append(_tcp("TIME_WAIT", 100, f"192.0.2.{i}", "198.51.100.10", 41000 + i, 80))
    for i in range(1, 3):  # 2 DNATed: 8080 -> 10.0.0.9:80
        rows.append(
            _tcp(
                "ESTABLISHED",
                431990,
                f"192.0.2.{i}",
                "198.51.100.10",
                43000 + i,
                8080,
                rsrc="10.0.0.9",
                rsport=80,
            )
        )
    for i in range(1, 5):  # 4 unreplied DNS queries
        rows.append(
            {
                "proto": "udp 17",
                "timeout": 25,
                "state": "",
                "orig": f"src=192.0.2.{i} dst=198.51.100.53 sport={42000 + i} dport=53 [UNREPLIED]",
                "reply": f"src=198.51.100.53 dst=192.0.2.{i} sport=53 dport={42000 + i}",
                "flags": "",
            }
        )
    rows.append(
        {
            "proto": "icmp 1",
            "timeout": 20,
            "state": "",
            "orig": "src=192.0.2.1 dst=198.51.100.10 type=8 code=0 id=77",
            "reply": "src=198.51.100.10 dst=192.0.2.1 type=0 code=0 id=77",
            "flags": "",
        }
    )
    for i in range(2):  # 2 IPv6 to 443
        row = _tcp("ESTABLISHED", 431990, "A", "B", 44000 + i, 443)
        row["v6"] = True
        rows.append(row)
    return rows


def _line(row: dict, proc: bool) -> str:
    v6 = row.get("v6", False)
    text = f"{row['proto'].split()[0]:<8} {row['proto'].split()[1]} {row['timeout']} "
    if row["state"]:
        text += f"{row['state']} "
    text += f"{row['orig']} {row['reply']} "
    if row["flags"]:
        text += f"{row['flags']} "
    text += "mark=0 zone=0 use=2" if proc else "mark=0 use=1"
    if v6:
        k = 0 if proc else 1
        text = text.replace("src=A", f"src={V6_A[k]}").replace("dst=A", f"dst={V6_A[k]}")
        text = text.replace("src=B", f"src={V6_B[k]}").replace("dst=B", f"dst={V6_B[k]}")
    if proc:
        text = ("ipv6     10 " if v6 else "ipv4     2 ") + text
    return text


def proc_text() -> str:
    return "".join(_line(row, True) + "\n" for row in table())


def conntrack_l_text() -> str:
    return "".join(_line(row, False) + "\n" for row in table())


ENTRIES = 18
PROTOCOLS = {"tcp": 13, "udp": 4, "icmp": 1}
DPORTS = {("tcp", 443): 8, ("udp", 53): 4, ("tcp", 80): 3, ("tcp", 8080): 2}
STATES = {("tcp", "ESTABLISHED"): 10, ("tcp", "TIME_WAIT"): 3}


def analyze(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return run_ctguard("analyze", *args, timeout=60, **kw)


def analyze_json(*args: str, **kw: Any) -> dict[str, Any]:
    done = analyze(*args, "--format", "json", **kw)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return json.loads(done.stdout)


def counts(doc: dict[str, Any]) -> dict[str, Any]:
    by = doc["by"]
    return {
        "entries": doc["entries"],
        "family": {r["family"]: r["count"] for r in by["family"]},
        "protocol": {r["protocol"]: r["count"] for r in by["protocol"]},
        "state": {(r["protocol"], r["state"]): r["count"] for r in by["state"]},
        "dport": {(r["protocol"], r["port"]): r["count"] for r in by["dport"]},
        "nat": {(r["protocol"], r["port"]): r["nat"] for r in by["dport"] if r["nat"]},
        "flags": by["flags"],
        "nated": by["nat"]["nated"],
        "candidates": [(c["protocol"], c["port"]) for c in doc["notrack_candidates"]],
    }


EXPECTED = {
    "entries": ENTRIES,
    "family": {"ipv4": 16, "ipv6": 2},
    "protocol": PROTOCOLS,
    "state": STATES,
    "dport": DPORTS,
    "nat": {("tcp", 8080): 2},
    "flags": {"assured": 13, "unreplied": 4, "offload": 0, "hw_offload": 0},
    "nated": 2,
    # 18 entries are no sample to bypass conntrack on (and a file names no host
    # addresses, so no --direction could be chosen): no candidate
    "candidates": [],
}


@pytest.fixture
def dumps(tmp_path: Path) -> dict[str, Path]:
    files = {
        "proc": tmp_path / "nf_conntrack.txt",
        "list": tmp_path / "conntrack-L.txt",
        "gzip": tmp_path / "nf_conntrack.txt.gz",
        "gzip-list": tmp_path / "conntrack-L.gz",
    }
    files["proc"].write_text(proc_text())
    files["list"].write_text(conntrack_l_text())
    files["gzip"].write_bytes(gzip.compress(proc_text().encode()))
    files["gzip-list"].write_bytes(gzip.compress(conntrack_l_text().encode()))
    return files


@pytest.mark.parametrize("kind", ["proc", "list", "gzip", "gzip-list"])
def test_every_file_format_counts_the_same(dumps: dict[str, Path], kind: str) -> None:
    doc = analyze_json(str(dumps[kind]), "--top", "0")

    assert doc["schema"] == "ctguard.analyze/1"
    assert doc["source"] == str(dumps[kind])
    assert doc["netns"] is None
    assert doc["lines"] == ENTRIES
    assert doc["bad_lines"]["count"] == 0
    assert counts(doc) == EXPECTED
    assert doc["distinct"] == {"src": 7, "dst": 3}  # 6 + 1 IPv6; 2 + 1 IPv6
    assert "sport" not in doc["by"]  # not by default
    assert "what_if" not in doc


@pytest.mark.parametrize("text", [proc_text, conntrack_l_text])
def test_stdin(text: Any) -> None:
    doc = analyze_json("-", "--top", "0", input=text())

    assert doc["source"] == "stdin"
    assert counts(doc) == EXPECTED


def test_gzip_on_stdin(dumps: dict[str, Path]) -> None:
    """A compressed stream on stdin is recognised by its magic, like a file."""
    with dumps["gzip"].open("rb") as stream:
        done = subprocess.run(
            [ctguard_bin(), "analyze", "-", "--format", "json", "--top", "0"],
            stdin=stream,
            capture_output=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert counts(json.loads(done.stdout)) == EXPECTED


@pytest.mark.parametrize("kind", ["proc", "gzip"])
def test_a_pipe_given_as_file_loses_nothing(dumps: dict[str, Path], kind: str) -> None:
    """`ctguard analyze <(conntrack -L)` names a pipe: it is read once, never reopened
    (reopening it would lose what was peeked for the gzip magic)."""
    done = subprocess.run(  # input= makes stdin a pipe, so /dev/stdin names a pipe
        [ctguard_bin(), "analyze", "/dev/stdin", "--format", "json", "--top", "0"],
        input=dumps[kind].read_bytes(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["bad_lines"]["count"] == 0
    assert counts(doc) == EXPECTED


def test_ipv6_addresses_are_named_alike_in_both_formats(dumps: dict[str, Path]) -> None:
    proc = analyze_json(str(dumps["proc"]), "--by", "src,dst", "--top", "0")
    listed = analyze_json(str(dumps["list"]), "--by", "src,dst", "--top", "0")

    assert proc["by"] == listed["by"]


def _csv_counts(text: str) -> dict[tuple[str, str], int]:
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["breakdown", "key", "count"]
    return {(r[0], r[1]): int(r[2]) for r in rows[1:]}


def test_json_csv_and_text_agree(dumps: dict[str, Path]) -> None:
    path = str(dumps["proc"])
    doc = analyze_json(path, "--top", "0")
    done = analyze(path, "--top", "0", "--format", "csv")
    assert done.returncode == 0, done.stderr
    table_csv = _csv_counts(done.stdout)
    done = analyze(path, "--top", "0")
    assert done.returncode == 0, done.stderr
    text = done.stdout

    assert table_csv[("total", "entries")] == doc["entries"] == ENTRIES
    assert table_csv[("total", "bad_lines")] == 0
    for protocol, count in PROTOCOLS.items():
        assert table_csv[("protocol", protocol)] == count
    for (protocol, port), count in DPORTS.items():
        assert table_csv[("dport", f"{protocol}/{port}")] == count
    assert table_csv[("dport_nat", "tcp/8080")] == 2
    for (protocol, state), count in STATES.items():
        assert table_csv[("state", f"{protocol}/{state}")] == count
    assert table_csv[("nat", "nated")] == 2
    assert table_csv[("flags", "unreplied")] == 4

    assert text.splitlines()[0] == f"ctguard analyze: {ENTRIES} entries from {path}"
    lines = [line.split() for line in text.splitlines()]
    for (protocol, port), count in DPORTS.items():
        assert [f"{protocol}/{port}", str(count), f"{100 * count / ENTRIES:.1f}%"] == next(
            line[:3] for line in lines if line and line[0] == f"{protocol}/{port}"
        )
    assert "  tcp/8080" in text and "NAT 2" in text
    for protocol, count in PROTOCOLS.items():
        assert [protocol, str(count)] in [line[:2] for line in lines]
    assert "NOTRACK candidates: none proposed (18 entries: too few" in text
    assert "tcp/8080:" not in text


def test_top_limits_rows(dumps: dict[str, Path]) -> None:
    doc = analyze_json(str(dumps["proc"]), "--top", "2")

    by = doc["by"]
    assert by["dport"] == [
        {"protocol": "tcp", "port": 443, "count": 8, "nat": 0},
        {"protocol": "udp", "port": 53, "count": 4, "nat": 0},
    ]
    assert len(by["src"]) == 2
    assert len(by["dst"]) == 2
    assert by["dst"][0] == {"address": "198.51.100.10", "count": 12}
    # the totals and the candidates do not depend on --top
    assert doc["entries"] == ENTRIES
    assert {r["protocol"]: r["count"] for r in by["protocol"]} == PROTOCOLS
    assert doc["notrack_candidates"] == []
    assert doc["notrack_skipped"].startswith("18 entries: too few")

    done = analyze(str(dumps["proc"]), "--top", "2", "--format", "csv")
    assert [row for row in _csv_counts(done.stdout) if row[0] == "dport"] == [
        ("dport", "tcp/443"),
        ("dport", "udp/53"),
    ]


def test_by_keeps_only_the_named_breakdowns(dumps: dict[str, Path]) -> None:
    doc = analyze_json(str(dumps["proc"]), "--by", "dport,state")

    assert list(doc["by"]) == ["family", "state", "dport"]
    assert {(r["protocol"], r["state"]): r["count"] for r in doc["by"]["state"]} == STATES

    done = analyze(str(dumps["proc"]), "--by", "dport,state", "--format", "csv")
    assert {row[0] for row in _csv_counts(done.stdout)} == {
        "total", "family", "state", "dport", "dport_nat",
    }  # fmt: skip

    everything = analyze_json(str(dumps["proc"]), "--by", "all")
    assert list(everything["by"]) == [
        "family", "protocol", "state", "dport", "sport", "src", "dst", "zone", "mark",
        "flags", "nat", "timeout",
    ]  # fmt: skip


def test_garbage_lines_among_valid_ones_are_counted_not_fatal(tmp_path: Path) -> None:
    lines = proc_text().splitlines()
    lines.insert(2, "this is not conntrack")  # line 3
    lines.insert(9, "tcp 6 garbage")  # line 10
    lines.insert(12, "\x00\xff binary junk")  # line 13
    dump = tmp_path / "mixed.txt"
    dump.write_text("\n".join(lines) + "\n")

    done = analyze(str(dump))

    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stdout.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, done.stdout
    assert "3 unparseable lines" in warnings[0]
    assert "line 3" in warnings[0]
    assert "this is not conntrack" in warnings[0]
    doc = analyze_json(str(dump))
    assert doc["entries"] == ENTRIES
    assert doc["lines"] == ENTRIES + 3
    assert doc["bad_lines"] == {
        "count": 3,
        "first_line": 3,
        "first_text": "this is not conntrack",
    }


def test_hot_port_snapshot() -> None:
    doc = analyze_json("--root", str(HOT_PORT))

    assert doc["entries"] == 1200
    dports = {(r["protocol"], r["port"]): r for r in doc["by"]["dport"]}
    assert dports[("tcp", 8983)]["count"] == 720
    assert dports[("tcp", 8983)]["nat"] == 0
    candidates = [(c["protocol"], c["port"]) for c in doc["notrack_candidates"]]
    assert ("tcp", 8983) in candidates
    assert doc["notrack_candidates"][0]["port"] == 8983
    assert doc["notrack_candidates"][0]["share"] == 60.0
    # the snapshot's ip-addr says 192.0.2.10 is the host's: 8983 is served here
    assert doc["notrack_candidates"][0]["direction"] == "server"
    assert doc["notrack_candidates"][0]["command"].endswith("--direction server")


def test_what_if_with_a_snapshot_uses_its_timeouts() -> None:
    doc = analyze_json("--root", str(HOT_PORT), "--what-if", "tcp_timeout_established=600")

    (row,) = doc["what_if"]
    assert row["timeout"] == "tcp_timeout_established"
    assert row["proposed"] == 600
    assert row["affected"] == 720


# ---- errors: one line on stderr, exit 3, no traceback ----


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    assert_one_line_error(analyze(str(missing)), str(missing), "no such file")


def test_a_directory(tmp_path: Path) -> None:
    assert_one_line_error(analyze(str(tmp_path)), "is a directory")


def test_a_file_of_garbage(tmp_path: Path) -> None:
    dump = tmp_path / "garbage.txt"
    dump.write_text("hello world\nnot a conntrack line\n")
    assert_one_line_error(analyze(str(dump)), "no conntrack entries", "line 1")


def test_an_empty_file_has_zero_entries(tmp_path: Path) -> None:
    """An idle host's `conntrack -L > file` is empty: a valid table of 0 entries."""
    dump = tmp_path / "empty.txt"
    dump.write_text("")
    doc = analyze_json(str(dump))
    assert (doc["entries"], doc["lines"], doc["notrack_candidates"]) == (0, 0, [])


def test_a_truncated_gzip(tmp_path: Path) -> None:
    whole = gzip.compress(proc_text().encode() * 20)
    dump = tmp_path / "cut.gz"
    dump.write_bytes(whole[: len(whole) // 2])
    assert_one_line_error(analyze(str(dump)), str(dump))


def test_a_gzip_of_garbage(tmp_path: Path) -> None:
    dump = tmp_path / "garbage.gz"
    dump.write_bytes(gzip.compress(b"nothing to see\n"))
    assert_one_line_error(analyze(str(dump)), "no conntrack entries")


def test_garbage_on_stdin() -> None:
    assert_one_line_error(analyze("-", input="junk\n"), "stdin", "no conntrack entries")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--by", "nonsense"], "--by"),
        (["--by", ","], "--by"),
        (["--top", "-1"], "--top"),
        (["--format", "yaml"], "--format"),
        (["--what-if", "foo"], "foo"),
        (["--what-if", "tcp_timeout_established=abc"], "tcp_timeout_established"),
        (["--what-if", "tcp_timeout_established=-5"], "tcp_timeout_established"),
        (["--what-if", ","], "--what-if"),
        (["--what-if", "nf_conntrack_max=5"], "not a conntrack timeout"),
    ],
)
def test_bad_usage(dumps: dict[str, Path], args: list[str], needle: str) -> None:
    assert_one_line_error(analyze(str(dumps["proc"]), *args), needle)


def test_what_if_names_a_timeout_the_host_lacks() -> None:
    done = analyze(
        str(HOT_PORT / "proc" / "net" / "nf_conntrack"),
        "--root",
        str(WITH_TIMEOUTS),
        "--what-if",
        "nonexistent_timeout=5",
    )
    assert_one_line_error(done, "nonexistent_timeout")
    done = analyze("--root", str(HOT_PORT), "--what-if", "nonexistent_timeout=5")
    assert_one_line_error(done, "nonexistent_timeout")


def test_a_snapshot_without_a_table() -> None:
    assert_one_line_error(analyze("--root", str(WITH_TIMEOUTS)), "table")


def test_root_and_netns_together() -> None:
    done = analyze("--root", str(HOT_PORT), "--netns", "whatever")
    assert_one_line_error(done, "--root", "--netns")


def test_file_and_netns_together(dumps: dict[str, Path]) -> None:
    assert_one_line_error(analyze(str(dumps["proc"]), "--netns", "whatever"), "--netns")


def test_live_read_as_non_root_is_one_line() -> None:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv is not installed (util-linux)")
    # the venv's script: a pyenv shim under /root is not executable by nobody
    script = Path(sys.executable).with_name("ctguard")
    binary = str(script) if script.exists() else ctguard_bin()
    argv = [binary, "analyze"]
    if os.geteuid() == 0:
        argv = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, cwd="/")
    if done.returncode in (126, 127) or "ctguard: error" not in done.stderr:
        pytest.skip(f"the console script does not run as nobody here: {done.stderr[-200:]}")
    assert_one_line_error(done, "root")


def test_a_snapshot_with_only_conntrack_l_is_analyzed_and_doctored_alike(tmp_path: Path) -> None:
    """A snapshot whose table came over netlink (ctguard_commands/conntrack-L, no procfs
    table) gives the same breakdowns, and doctor's CT505 fires from it."""
    root = tmp_path / "root"
    shutil.copytree(HOT_PORT, root, symlinks=True)
    proc = root / "proc/net/nf_conntrack"
    listed = [
        line.removeprefix("ipv4     2 ").replace(" zone=0 ", " ").replace("use=2", "use=1")
        for line in proc.read_text().splitlines()
    ]
    proc.unlink()
    (root / "ctguard_commands/conntrack-L").write_text("\n".join(listed) + "\n")

    from_procfs = analyze_json("--root", str(HOT_PORT))
    from_netlink = analyze_json("--root", str(root))
    assert from_procfs.pop("source") == "snapshot proc/net/nf_conntrack"
    assert from_netlink.pop("source") == "snapshot ctguard_commands/conntrack-L"
    assert from_netlink == from_procfs

    done = run_ctguard("doctor", "--root", str(root), "--only", "CT505", "--format", "json")
    (finding,) = json.loads(done.stdout)["findings"]
    assert (finding["status"], finding["severity"]) == ("found", "info")


PROXY = Path(__file__).parents[2] / "examples" / "proxy-table.txt.gz"


def test_a_proxys_own_dns_queries_are_a_client_candidate() -> None:
    """examples/proxy-table: udp/53 is the proxy's own queries (10.0.0.10, 2001:db8::10 to
    resolvers). `--direction server` would untrack none of them (issue 16 item 7)."""
    doc = analyze_json(str(PROXY), "--local-address", "10.0.0.10,2001:db8::10")
    rows = {(c["protocol"], c["port"]): c for c in doc["notrack_candidates"]}
    assert rows[("udp", 53)]["direction"] == "client"
    assert rows[("udp", 53)]["split"] == {"client": 4141}
    assert (
        rows[("udp", 53)]["command"] == "ctguard notrack --port 53 --proto udp --direction client"
    )
    assert rows[("tcp", 8983)]["direction"] == "server"
    assert [(p["protocol"], p["port"]) for p in doc["notrack_passed_over"]] == [("tcp", 443)]
    # without the host's addresses nothing is proposed, and the report says why
    bare = analyze_json(str(PROXY))
    assert bare["notrack_candidates"] == []
    assert "--local-address" in bare["notrack_skipped"]


def test_local_address_is_for_a_file_and_must_be_an_address() -> None:
    done = analyze("--root", str(HOT_PORT), "--local-address", "192.0.2.10")
    assert done.returncode == 3 and "--local-address is for a FILE" in done.stderr
    done = analyze(str(PROXY), "--local-address", "10.0.0.300")
    assert done.returncode == 3 and "10.0.0.300" in done.stderr
