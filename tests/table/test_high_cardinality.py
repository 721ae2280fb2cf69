"""Addresses at high cardinality: nearly one source per entry, as behind a load balancer
or under a flood of spoofed sources. Both scanners, one process or a parallel split,
must show the top addresses with exact counts and count every distinct address once; an
"address" that is not one (a crafted 15 KB token) is a bad line, never a stored key.
The expected answers are computed here from what the generator wrote, not by ctguard."""

from __future__ import annotations

import gzip
import ipaddress
import json
import random
from collections import Counter
from pathlib import Path
from socket import AF_INET, AF_INET6, inet_ntop, inet_pton

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tablescan import FIELDS, KINDS, c_built, make_scan

from ctguard.table import reader
from ctguard.table import scanner as scanner_module
from ctguard.table.address_counts import AddressCounts
from ctguard.table.keys import ADDRESS, address_key
from ctguard.table.summary import summarize
from ctguard.table.tally import Tally
from helpers import run_ctguard


def entry(src: str, dst: str, sport: int, dport: int = 443) -> str:
    """One /proc/net/nf_conntrack line: an assured TCP connection src -> dst."""
    l3 = "ipv6     10" if ":" in src else "ipv4     2"
    return (
        f"{l3} tcp      6 431999 ESTABLISHED src={src} dst={dst} sport={sport} dport={dport} "
        f"src={dst} dst={src} sport={dport} dport={sport} [ASSURED] mark=0 zone=0 use=2"
    )


def spelled(address: str, rng: random.Random) -> str:
    """IPv6 as /proc prints it (in full) or as conntrack -L does (compressed), at random."""
    parsed = ipaddress.ip_address(address)
    if parsed.version == 6 and rng.random() < 0.5:
        return parsed.exploded
    return str(parsed)


def high_cardinality(seed: int, n: int) -> tuple[bytes, Counter[str], Counter[str]]:
    """``n`` entries, most from an address of their own; a few heavy sources (with ties)
    and three destinations; IPv4 and IPv6 in both spellings. Returns the dump and the
    true counts per source and destination (canonical text)."""
    rng = random.Random(seed)
    heavy = ["192.0.2.7", "192.0.2.30", "192.0.2.4", "2001:db8::1", "198.51.100.9"]
    servers = ["10.0.0.10", "10.0.0.11", "2001:db8::10"]
    lines: list[str] = []
    sources: Counter[str] = Counter()
    destinations: Counter[str] = Counter()
    for k in range(n):
        v6 = rng.random() < 0.3
        if rng.random() < 0.15:
            src = rng.choice([a for a in heavy if (":" in a) == v6])
        elif v6:
            src = str(ipaddress.IPv6Address(f"2001:db8:1::{k:x}"))
        else:
            src = str(ipaddress.IPv4Address((10 << 24 | 1 << 23) + k))
        dst = rng.choice([a for a in servers if (":" in a) == v6])
        lines.append(entry(spelled(src, rng), spelled(dst, rng), 32768 + k % 28000))
        sources[src] += 1
        destinations[dst] += 1
    return ("\n".join(lines) + "\n").encode(), sources, destinations


def ranked(counts: Counter[str]) -> list[tuple[str, int]]:
    """What an operator expects: most entries first; ties IPv4 before IPv6, then in
    numeric order; each address in its usual spelling (RFC 5952 for IPv6)."""

    def rank(item: tuple[str, int]) -> tuple[int, int, int]:
        address = ipaddress.ip_address(item[0])
        return -item[1], address.version, int(address)

    return [(canonical(a), c) for a, c in sorted(counts.items(), key=rank)]


def canonical(address: str) -> str:
    family = AF_INET6 if ":" in address else AF_INET
    return inet_ntop(family, inet_pton(family, address))


DATA, SOURCES, DESTINATIONS = high_cardinality(7, 6000)


def test_the_dump_is_high_cardinality_with_ties() -> None:
    assert len(SOURCES) > 5000  # nearly one source per entry
    top = ranked(SOURCES)
    assert top[0][1] > 100 and top[10][1] == 1  # a few heavy ones, then singles
    singles = [address for address, count in top if count == 1]
    assert singles != sorted(singles)  # ties whose numeric order is not their text order


@pytest.mark.parametrize("top", [1, 3, 10, None])
def test_c_and_python_show_the_same_exact_top_and_distinct(top: int | None) -> None:
    python, c = make_scan("python")(DATA), make_scan("c")(DATA)
    for name in FIELDS:
        assert getattr(c, name) == getattr(python, name), name
    for tally in (python, c):
        summary = summarize(tally, top)
        assert summary.sources == ranked(SOURCES)[:top]
        assert summary.destinations == ranked(DESTINATIONS)[:top]
        assert summary.distinct_sources == len(SOURCES)
        assert summary.distinct_destinations == len(DESTINATIONS) == 3


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("jobs", [2, 3])
def test_shown_counts_stay_exact_across_a_parallel_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, jobs: int
) -> None:
    if kind == "c" and not c_built():
        pytest.skip("C scanner not built yet")
    if kind == "python":
        monkeypatch.setattr(scanner_module, "_scan", None)
    monkeypatch.setattr(reader, "PARALLEL_MIN_BYTES", 1)
    monkeypatch.setattr(reader, "CHUNK", 4096)
    monkeypatch.setattr(reader, "_RECORDS_BLOCK", 24 * 7)  # records arrive in many blocks
    split: list[int] = []
    parallel = reader._scan_parallel

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        split.append(1)
        return parallel(*args, **kwargs)

    monkeypatch.setattr(reader, "_scan_parallel", spy)
    path = tmp_path / "dump"
    path.write_bytes(DATA)
    tally = reader.scan_path(str(path), jobs=jobs)
    assert split == [1]
    summary = summarize(tally, 10)
    # the heavy sources are spread over every range: each part holds only some of them
    assert summary.sources == ranked(SOURCES)[:10]
    assert summary.distinct_sources == len(SOURCES)
    assert summary.destinations == ranked(DESTINATIONS)[:10]
    assert tally.sources.as_dict() == dict(ranked(SOURCES))
    lean = reader.scan_path(str(path), jobs=jobs, by_address=False)
    assert (lean.entries, lean.sources.counted, lean.destinations.counted) == (6000, False, False)


NOT_ADDRESSES = {
    "15-KB": "10.0." + "7" * 15000,
    "one-past-the-longest": "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.2555",
    "octet-above-255": "10.0.0.256",
    "leading-zero": "10.0.0.01",
    "two-double-colons": "2001:db8::1::2",
    "a-name": "proxy-a",
    "nul-inside": "10.0.0.1\x00",
    "non-ascii": "10.0.0.1\xe9",
}


@pytest.mark.parametrize("text", list(NOT_ADDRESSES.values()), ids=list(NOT_ADDRESSES))
@pytest.mark.parametrize("where", ["src", "dst"])
def test_a_token_that_is_not_an_address_makes_the_line_bad(scanner, text: str, where: str) -> None:
    bad = entry(text, "10.0.0.10", 40000) if where == "src" else entry("10.0.0.1", text, 1)
    good = entry("192.0.2.1", "10.0.0.10", 40001)
    data = good.encode() + b"\n" + bad.encode("latin-1") + b"\n" + good.encode() + b"\n"
    tally = scanner(data)
    assert (tally.lines, tally.entries, tally.bad, tally.first_bad) == (3, 2, 1, 2)
    assert tally.first_bad_text == bad.encode("latin-1")[:200]
    assert tally.sources.as_dict() == {"192.0.2.1": 2}
    assert tally.destinations.as_dict() == {"10.0.0.10": 2}


IPV4_EDGES = [
    "0.0.0.0",  # noqa: S104 - an address in a dump line, nothing binds to it
    "255.255.255.255", "0.1.2.3", "256.1.1.1", "1.2.3", "1.2.3.4.", "1..2.3",
    "01.2.3.4", "0.0.0.00", "1.2.3.04", ".1.2.3", "1.2.3.4.5", "10.0.0.1x", "1.2.3.-1",
    "99.99.99.999", "4294967297.1.1.1", "1.2.3.4\x00",
]  # fmt: skip


@pytest.mark.parametrize("text", IPV4_EDGES)
def test_ipv4_is_read_as_inet_pton_reads_it(scanner, text: str) -> None:
    """The C scanner parses IPv4 itself (it is most lines): it must accept exactly what
    the C library's inet_pton accepts."""
    try:
        accepted = "\x00" not in text and bool(inet_pton(AF_INET, text))
    except OSError:
        accepted = False
    tally = scanner(entry(text, "10.0.0.10", 40000).encode("latin-1") + b"\n")
    assert (tally.entries, tally.bad) == ((1, 0) if accepted else (0, 1))
    if accepted:
        assert tally.sources.as_dict() == {text: 1}


def test_the_longest_address_text_is_still_an_address(scanner) -> None:
    longest = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"  # 45 characters
    assert len(longest) == 45
    tally = scanner(entry(longest, "10.0.0.10", 40000).encode() + b"\n")
    assert (tally.entries, tally.bad) == (1, 0)
    assert tally.sources.as_dict() == {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": 1}


def test_one_key_per_address_whatever_its_spelling(scanner) -> None:
    lines = [
        entry("2001:0db8:0000:0000:0000:0000:0000:0001", "10.0.0.10", 1),  # /proc
        entry("2001:db8::1", "10.0.0.10", 2),  # conntrack -L
        entry("2001:DB8::1", "10.0.0.10", 3),  # upper case is the same address
        entry("192.0.2.1", "10.0.0.10", 4),
        entry("::ffff:192.0.2.1", "10.0.0.10", 5),  # IPv4-mapped IPv6: another family
    ]
    summary = summarize(scanner("\n".join(lines).encode()), None)
    assert summary.distinct_sources == 3
    assert summary.sources == [("2001:db8::1", 3), ("192.0.2.1", 1), ("::ffff:192.0.2.1", 1)]


@pytest.mark.parametrize("kind", KINDS)
def test_by_address_false_counts_no_address_but_judges_lines_alike(kind: str) -> None:
    data = DATA + entry("proxy-a", "10.0.0.10", 1).encode() + b"\n"
    full = make_scan(kind)(data)
    lean = Tally()
    scanner_module.scan_into(data, lean, by_address=False, force_python=kind == "python")
    assert (lean.entries, lean.bad) == (full.entries, full.bad) == (6000, 1)
    summary = summarize(lean, 10)
    assert (summary.sources, summary.distinct_sources, summary.distinct_destinations) == (
        [],
        None,
        None,
    )


def test_translated_ports_do_not_multiply_the_shapes(scanner) -> None:
    """DNAT of 50 ports, each to 40 back ends' ports: 2,000 (dport, translated) pairs, but
    the breakdowns need only each marginal, so the shapes stay one per dport."""
    lines = [
        f"tcp      6 431999 ESTABLISHED src=198.51.100.{j + 1} dst=192.0.2.10 sport=40000 "
        f"dport={8000 + i} src=10.0.1.5 dst=198.51.100.{j + 1} sport={9000 + j} dport=40000 "
        "[ASSURED] mark=0 use=1"
        for i in range(50)
        for j in range(40)
    ]
    tally = scanner("\n".join(lines).encode())
    assert (tally.entries, len(tally.shapes), len(tally.nat_ports)) == (2000, 50, 40)
    summary = summarize(tally, 10)
    assert summary.nat_targets == {("tcp", 9000 + j): 50 for j in range(40)}
    assert summary.dports_nat == {("tcp", 8000 + i): 40 for i in range(50)}


def records(draw_keys: list[tuple[bool, int, int]]) -> AddressCounts:
    """Records from (ipv6, address number, count): few numbers, so ties and overlaps."""
    counts: dict[bytes, int] = {}
    for ipv6, number, count in draw_keys:
        text = f"2001:db8::{number:x}" if ipv6 else f"192.0.2.{number}"
        key = address_key(text.encode())
        assert key is not None
        counts[key] = counts.get(key, 0) + count
    return AddressCounts.from_keys(counts)


KEYS = st.lists(st.tuples(st.booleans(), st.integers(0, 40), st.integers(1, 5)), max_size=60)


@pytest.mark.skipif(not c_built(), reason="C scanner not built yet")
@settings(max_examples=200, deadline=None)
@given(KEYS, KEYS, st.one_of(st.none(), st.integers(0, 90)))
def test_c_merge_and_ranking_equal_python(
    a: list[tuple[bool, int, int]], b: list[tuple[bool, int, int]], top: int | None
) -> None:
    left, right = records(a), records(b)
    merged = left.merged(right)
    assert merged == left.merged(right, force_python=True)
    expected: Counter[str] = Counter(left.as_dict())
    expected.update(right.as_dict())
    assert merged.as_dict() == dict(expected)
    assert merged.distinct == len(expected)
    assert merged.top(top) == merged.top(top, force_python=True) == ranked(expected)[:top]


def test_records_must_be_whole() -> None:
    with pytest.raises(ValueError, match="whole number of records"):
        AddressCounts(b"\x00" * (ADDRESS.size + 1))


def analyze(path: Path, *args: str) -> dict[str, object]:
    done = run_ctguard("analyze", str(path), "--format", "json", *args)
    assert done.returncode == 0, done.stderr
    document: dict[str, object] = json.loads(done.stdout)
    return document


def test_cli_a_gzip_dump_of_long_addresses_is_bad_lines_and_bounded(tmp_path: Path) -> None:
    """The crafted shape of issue 17 (15 KB "addresses", gzip) at a small size: the long
    lines are bad, the good ones counted, and no long text is shown whole."""
    long_lines = [entry(f"10.{i}." + "7" * 15000, "10.0.0.10", 40000 + i) for i in range(50)]
    good = [entry(f"192.0.2.{i % 3 + 1}", "10.0.0.10", 41000 + i) for i in range(9)]
    path = tmp_path / "crafted.gz"
    path.write_bytes(gzip.compress(("\n".join(long_lines + good) + "\n").encode()))
    document = analyze(path)
    assert document["entries"] == 9
    assert document["bad_lines"] == {
        "count": 50,
        "first_line": 1,
        "first_text": long_lines[0][:200],
    }
    assert document["distinct"] == {"src": 3, "dst": 1}
    by = document["by"]
    assert isinstance(by, dict)
    assert by["src"] == [{"address": f"192.0.2.{i}", "count": 3} for i in (1, 2, 3)]


def test_cli_by_protocol_alone_does_not_count_addresses(tmp_path: Path) -> None:
    path = tmp_path / "dump"
    path.write_bytes(DATA)
    lean = analyze(path, "--by", "protocol")
    assert lean["distinct"] == {"src": None, "dst": None}  # not counted: not claimed
    full = analyze(path, "--by", "protocol,src")
    assert full["distinct"] == {"src": len(SOURCES), "dst": 3}
    assert lean["entries"] == full["entries"] == 6000
