"""summarize(scan(dump)) against an independent, slow computation of every breakdown.

The dump comes from tablegen (seeded, mixed: a hot HTTPS port, TIME_WAIT, DNS with
[UNREPLIED], ICMP, IPv6, DNAT and SNAT, marks, zones, offloaded entries, the three formats,
some bad and blank lines). The reference parses it with regular expressions, one field at a
time, and counts with collections.Counter; it is itself checked against what the generator
wrote.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cache

import pytest
from tablegen import L4_NAMES, Conn, Line, dump, to_bytes

from ctguard.table.summary import HISTOGRAM_BOUNDS, TableSummary, summarize

STATEFUL = {"tcp", "sctp", "dccp"}
WITH_PORTS = {"tcp", "udp", "udplite", "sctp", "dccp"}
# what the summary calls a protocol number the kernel prints as "unknown"
NUMBERED = {2: "igmp", 41: "ipv6"}


def one_spelling(address: str) -> str:
    """IPv6 in RFC 5952 form: /proc prints it in full, conntrack -L compressed."""
    try:
        return ipaddress.ip_address(address).compressed if ":" in address else address
    except ValueError:
        return address


@dataclass
class Expected:
    lines: int = 0
    entries: int = 0
    bad: int = 0
    first_bad: int | None = None
    first_bad_text: str = ""
    families: Counter[str] = field(default_factory=Counter)
    protocols: Counter[str] = field(default_factory=Counter)
    states: Counter[tuple[str, str]] = field(default_factory=Counter)
    dports: Counter[tuple[str, int]] = field(default_factory=Counter)
    dports_nat: Counter[tuple[str, int]] = field(default_factory=Counter)
    sports: Counter[tuple[str, int]] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)
    destinations: Counter[str] = field(default_factory=Counter)
    zones: Counter[int] = field(default_factory=Counter)
    marks: Counter[int] = field(default_factory=Counter)
    flags: Counter[str] = field(default_factory=Counter)  # assured ... nated
    timeouts: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    no_timeout: int = 0

    def bad_line(self, number: int, text: str) -> None:
        self.bad += 1
        if self.first_bad is None:
            self.first_bad, self.first_bad_text = number, text[:200]

    def entry(
        self,
        family: str,
        protocol: str,
        state: str,
        timeout: int | None,
        orig: dict[str, str],
        nat: bool,
        flags: set[str],
        mark: int,
        zone: int,
    ) -> None:
        self.entries += 1
        self.families[family] += 1
        self.protocols[protocol] += 1
        if state:
            self.states[protocol, state] += 1
        if "dport" in orig:
            self.dports[protocol, int(orig["dport"])] += 1
            self.sports[protocol, int(orig["sport"])] += 1
            if nat:
                self.dports_nat[protocol, int(orig["dport"])] += 1
        self.sources[one_spelling(orig["src"])] += 1
        self.destinations[one_spelling(orig["dst"])] += 1
        self.zones[zone] += 1
        self.marks[mark] += 1
        for name in ("ASSURED", "UNREPLIED", "OFFLOAD", "HW_OFFLOAD"):
            self.flags[name.lower()] += name in flags
        self.flags["offloaded"] += bool(flags & {"OFFLOAD", "HW_OFFLOAD"})
        self.flags["nated"] += nat
        if timeout is None:
            self.no_timeout += 1
        else:
            bucket = bisect.bisect_left(HISTOGRAM_BOUNDS, timeout)  # t <= bound: that bucket
            histogram = self.timeouts.setdefault((protocol, state), [0] * 6)
            histogram[bucket] += 1

    def normal(self) -> dict[str, object]:
        """Plain dicts without zero counts, for == with a summary's."""
        out = {}
        for name, value in vars(self).items():
            if isinstance(value, Counter):
                value = {k: v for k, v in value.items() if v}
            elif name == "timeouts":
                value = {k: tuple(v) for k, v in value.items()}
            out[name] = value
        out["flags"].pop("offload", None)  # the summary's "offloaded" counts both kinds
        return out


# ---- the reference: regular expressions, one field at a time ------------------------

HEAD = re.compile(
    r"^\s*(?:(?P<l3>ipv4|ipv6)\s+(?P<l3num>\d+)\s+)?"
    r"(?P<l4>[a-z0-9]+)\s+(?P<l4num>\d+)\s+"
    r"(?:(?P<timeout>\d+)\s+)?"
    r"(?:timeout=\d+,\s+stream_timeout=\d+\s+)?"
    r"(?:(?P<state>[A-Z][A-Z0-9_]*)\s+)?"
    r"(?P<rest>src=.*)$"
)
PAIR = re.compile(r"(?<!\S)([a-z-]+)=(\S*)")
FLAG = re.compile(r"(?<!\S)\[([A-Z_]+)\](?!\S)")
TUPLE_START = re.compile(r"(?<!\S)(?=src=)")
NUMBER = re.compile(r"\d{1,10}")


def reference(text: str) -> Expected:
    expected = Expected()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, 1):
        expected.lines += 1
        if line.strip() == "":
            continue
        if not _reference_line(line, expected):
            expected.bad_line(number, line)
    return expected


def _reference_line(line: str, expected: Expected) -> bool:
    head = HEAD.match(line)
    if not head or int(head["l4num"]) > 255:
        return False
    segments = TUPLE_START.split(head["rest"])[1:]
    if len(segments) < 2:
        return False
    orig = dict(PAIR.findall(segments[0]))
    reply: dict[str, str] = {}
    for key, value in PAIR.findall(" ".join(segments[1:])):
        if key in ("src", "dst", "sport", "dport"):
            reply.setdefault(key, value)
    everything = dict(reversed(PAIR.findall(line)))  # the first mark=/zone= wins
    for side in (orig, reply):
        if "dst" not in side:
            return False
        for port in ("sport", "dport"):
            if port in side and not (NUMBER.fullmatch(side[port]) and int(side[port]) < 65536):
                return False
    mark = everything.get("mark", "0")
    zone = everything.get("zone", "0")
    if not NUMBER.fullmatch(mark) or not NUMBER.fullmatch(zone) or int(zone) > 0xFFFF:
        return False
    number = int(head["l4num"])
    protocol = head["l4"] if head["l4"] != "unknown" else NUMBERED.get(number, str(number))
    family = head["l3"] or ("ipv6" if ":" in orig["src"] else "ipv4")
    nat = (reply["src"], reply["dst"], reply.get("sport"), reply.get("dport")) != (
        orig["dst"],
        orig["src"],
        orig.get("dport"),
        orig.get("sport"),
    )
    timeout = None if head["timeout"] is None else int(head["timeout"])
    expected.entry(
        family,
        protocol,
        head["state"] or "",
        timeout,
        orig,
        nat,
        set(FLAG.findall(line)),
        int(mark),
        int(zone),
    )
    return True


# ---- the truth: what the generator wrote --------------------------------------------


def truth(lines: list[Line]) -> Expected:
    expected = Expected()
    for number, line in enumerate(lines, 1):
        expected.lines += 1
        if line.bad:
            expected.bad_line(number, line.text)
        elif line.conn is not None:
            _truth_entry(line.conn, line.text, expected)
    return expected


def _truth_entry(conn: Conn, text: str, expected: Expected) -> None:
    protocol = L4_NAMES.get(conn.proto) or NUMBERED.get(conn.proto, str(conn.proto))
    # the text as printed: /proc expands IPv6 addresses, conntrack -L compresses them
    src, dst = re.search(r"src=(\S+) dst=(\S+)", text).groups()  # type: ignore[union-attr]
    orig = {"src": src, "dst": dst}
    if conn.sport is not None:
        orig |= {"sport": str(conn.sport), "dport": str(conn.dport)}
    flags = {conn.flag} | ({"UNREPLIED"} if conn.unreplied else set())
    expected.entry(
        "ipv6" if conn.ipv6 else "ipv4",
        protocol,
        conn.state,
        conn.timeout,
        orig,
        conn.nat,
        flags,
        conn.mark,
        conn.zone,
    )


# ---- the summary, in the same shape --------------------------------------------------


def from_summary(summary: TableSummary) -> dict[str, object]:
    return {
        "lines": summary.lines,
        "entries": summary.entries,
        "bad": summary.bad_lines,
        "first_bad": summary.first_bad_line,
        "first_bad_text": summary.first_bad_text,
        "families": summary.families,
        "protocols": summary.protocols,
        "states": summary.states,
        "dports": summary.dports,
        "dports_nat": summary.dports_nat,
        "sports": dict(summary.sports),
        "sources": dict(summary.sources),
        "destinations": dict(summary.destinations),
        "zones": summary.zones,
        "marks": summary.marks,
        "flags": {
            name: count
            for name, count in (
                ("assured", summary.assured),
                ("unreplied", summary.unreplied),
                ("hw_offload", summary.hw_offloaded),
                ("offloaded", summary.offloaded),
                ("nated", summary.nated),
            )
            if count
        },
        "timeouts": summary.timeouts,
        "no_timeout": summary.no_timeout,
    }


@cache
def generated(seed: int, size: int) -> tuple[bytes, dict[str, object]]:
    lines = dump(seed, size)
    data = to_bytes(lines, final_newline=seed % 2 == 0)
    expected = reference(data.decode())
    assert expected.normal() == truth(lines).normal()  # the reference reads what was written
    return data, expected.normal()


@pytest.mark.parametrize(("seed", "size"), [(1, 2000), (2, 2000), (3, 20000), (4, 20000)])
def test_summary_matches_reference(scanner, seed: int, size: int) -> None:
    data, expected = generated(seed, size)
    assert expected["bad"] and expected["no_timeout"] and expected["dports_nat"]  # mixed enough
    tally = scanner(data)
    summary = summarize(tally, top=None)
    got = from_summary(summary)
    for name in expected:
        assert got[name] == expected[name], name
    assert summary.distinct_sources == len(summary.sources)
    assert summary.distinct_destinations == len(summary.destinations)
    assert summary.sources == ranked_addresses(expected["sources"])  # top=None: all, ranked
    assert summary.sports == ranked_ports(expected["sports"])


def ranked_addresses(counts: object) -> list[tuple[str, int]]:
    """Most first, ties IPv4 before IPv6, then in numeric address order (10.0.0.9 before
    10.0.0.10, as an operator reads them)."""
    assert isinstance(counts, dict)

    def rank(item: tuple[str, int]) -> tuple[int, int, int]:
        address = ipaddress.ip_address(item[0])
        return -item[1], address.version, int(address)

    return sorted(counts.items(), key=rank)


PROTOCOL_NUMBERS = {name: number for number, name in (L4_NAMES | NUMBERED).items()}


def ranked_ports(counts: object) -> list[tuple[tuple[str, int], int]]:
    """Most first, ties by protocol number, then port."""
    assert isinstance(counts, dict)
    return sorted(counts.items(), key=lambda kv: (-kv[1], PROTOCOL_NUMBERS[kv[0][0]], kv[0][1]))


@pytest.mark.parametrize("top", [1, 5, 17, 10_000])
def test_top_n(scanner, top: int) -> None:
    data, expected = generated(2, 2000)
    summary = summarize(scanner(data), top=top)
    assert summary.sources == ranked_addresses(expected["sources"])[:top]
    assert summary.destinations == ranked_addresses(expected["destinations"])[:top]
    assert summary.sports == ranked_ports(expected["sports"])[:top]
    assert summary.distinct_sources == len(expected["sources"])  # type: ignore[arg-type]
    assert summary.distinct_destinations == len(expected["destinations"])  # type: ignore[arg-type]
    # the generated sources have ties, so the address order is really exercised
    counts = Counter(expected["sources"].values())  # type: ignore[union-attr]
    assert any(n > 1 for n in counts.values())


def test_summary_of_nothing(scanner) -> None:
    summary = summarize(scanner(b""), top=5)
    assert (summary.entries, summary.lines, summary.bad_lines, summary.first_bad_line) == (
        0,
        0,
        0,
        None,
    )
    assert summary.sources == summary.destinations == []
    assert summary.families == summary.timeouts == {}
