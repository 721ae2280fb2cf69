"""/proc/net/stat/nf_conntrack and `conntrack -S` parsing, and read_stats' fallbacks."""

from __future__ import annotations

import random

import pytest

from ctguard.errors import ParseError
from ctguard.host.commands import NETLINK_STATS
from ctguard.missing import Missing
from ctguard.sources.stats import (
    STAT_FILE,
    ConntrackStats,
    canonical,
    parse_conntrack_s,
    parse_stat_file,
    read_stats,
)

# Header lines exactly as the kernel prints them (note the double spaces).
HEADER_6X = (
    "entries  clashres found new invalid ignore delete chainlength insert insert_failed "
    "drop early_drop icmp_error  expect_new expect_create expect_delete search_restart"
)
HEADER_OLD = (
    "entries  searched found new invalid ignore delete delete_list insert insert_failed "
    "drop early_drop icmp_error  expect_new expect_create expect_delete search_restart"
)
# net/netfilter/nf_conntrack_standalone.c, ct_cpu_seq_show()
_LINE_FORMAT = (
    "%08x  %08x %08x %08x %08x %08x %08x %08x %08x %08x %08x %08x %08x  %08x %08x %08x %08x"
)

CANON_6X = [
    "clash_resolve", "found", "new", "invalid", "ignore", "delete", "chaintoolong", "insert",
    "insert_failed", "drop", "early_drop", "error", "expect_new", "expect_create",
    "expect_delete", "search_restart",
]  # fmt: skip
CANON_OLD = [
    "searched", "found", "new", "invalid", "ignore", "delete", "delete_list", "insert",
    "insert_failed", "drop", "early_drop", "error", "expect_new", "expect_create",
    "expect_delete", "search_restart",
]  # fmt: skip


def stat_text(header: str, rows: list[list[int]]) -> str:
    return header + "\n" + "".join(_LINE_FORMAT % tuple(row) + "\n" for row in rows)


def random_rows(cpus: int, entries: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[entries] + [rng.randrange(0, 1 << 32) for _ in range(16)] for _ in range(cpus)]


# -- parse_stat_file -----------------------------------------------------------------------
@pytest.mark.parametrize(("header", "names"), [(HEADER_6X, CANON_6X), (HEADER_OLD, CANON_OLD)])
@pytest.mark.parametrize("cpus", [1, 64])
def test_stat_file_sums_every_column_over_cpus(header, names, cpus):
    rows = random_rows(cpus, entries=0x1234, seed=cpus)
    stats = parse_stat_file(stat_text(header, rows))

    expected = {name: sum(row[i + 1] for row in rows) for i, name in enumerate(names)}
    assert stats.source == "procfs"
    assert stats.cpus == cpus
    assert dict(stats.totals) == expected
    assert stats.entries == 0x1234


def test_stat_file_one_cpu_hand_written_values():
    text = (
        HEADER_6X + "\n"
        "00000021  00000000 00000007 00000000 00000003 00000000 00000000 00000000 "
        "0000002a 00000000 000000ff 00000010 00000001  00000000 00000000 00000000 "
        "00000005\n"
    )
    stats = parse_stat_file(text)
    assert stats.cpus == 1
    assert stats.entries == 33
    assert stats.get("found") == 7
    assert stats.get("invalid") == 3
    assert stats.get("insert") == 42
    assert stats.get("drop") == 255
    assert stats.get("early_drop") == 16
    assert stats.get("error") == 1
    assert stats.get("search_restart") == 5


def test_stat_file_entries_is_global_taken_from_first_line():
    rows = [[0x10] + [1] * 16, [0x99] + [1] * 16, [0x77] + [1] * 16]
    stats = parse_stat_file(stat_text(HEADER_6X, rows))
    assert stats.entries == 0x10  # not 0x10 + 0x99 + 0x77
    assert "entries" not in stats.totals
    assert stats.get("found") == 3


def test_stat_file_canonical_names():
    rows = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]]
    stats = parse_stat_file(stat_text(HEADER_6X, rows))
    # Column positions in the 6.x header: clashres=1, chainlength=7, icmp_error=12.
    assert stats.totals["clash_resolve"] == 1
    assert stats.totals["chaintoolong"] == 7
    assert stats.totals["error"] == 12
    for raw in ("clashres", "chainlength", "icmp_error"):
        assert raw not in stats.totals
    # get() accepts either spelling.
    assert stats.get("clashres") == stats.get("clash_resolve") == 1
    assert stats.get("chainlength") == stats.get("chaintoolong") == 7
    assert stats.get("icmp_error") == stats.get("error") == 12


def test_canonical_map():
    assert canonical("clashres") == "clash_resolve"
    assert canonical("chainlength") == "chaintoolong"
    assert canonical("chain_toolong") == "chaintoolong"
    assert canonical("icmp_error") == "error"
    assert canonical("drop") == "drop"


def test_stat_file_header_without_a_column_reports_it_absent():
    header = "entries searched found new invalid ignore delete insert drop"
    text = f"{header}\n0000000a 1 2 3 4 5 6 7 8\n0000000a 10 20 30 40 50 60 70 80\n"
    stats = parse_stat_file(text)
    assert stats.get("early_drop") is None
    assert stats.get("insert_failed") is None
    assert stats.get("drop") == 0x8 + 0x80
    assert stats.get("searched") == 0x1 + 0x10
    assert stats.entries == 10
    assert stats.cpus == 2


def test_stat_file_without_entries_column():
    stats = parse_stat_file("found drop\n1 2\n3 4\n")
    assert stats.entries is None
    assert dict(stats.totals) == {"found": 4, "drop": 6}


def test_stat_file_ignores_blank_lines_and_surrounding_whitespace():
    text = "\n  entries found drop  \n\n00000002 0000000f 00000001\n   \n00000002 1 1\n\n"
    stats = parse_stat_file(text)
    assert stats.cpus == 2
    assert dict(stats.totals) == {"found": 16, "drop": 2}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("\n  \n\t\n", "empty"),
        (HEADER_6X + "\n", "no per-CPU lines"),
        (HEADER_6X, "no per-CPU lines"),
        (HEADER_6X + "\n" + " ".join(["00000001"] * 16) + "\n", "16 values for 17 columns"),
        (HEADER_6X + "\n" + " ".join(["00000001"] * 18) + "\n", "18 values for 17 columns"),
        ("entries found\n0000000g 00000001\n", "not hexadecimal"),
        ("entries found\n00000001 zz\n", "not hexadecimal"),
        ("entries found\n00000001 -1\n", "not hexadecimal"),
        ("entries found\n00000001 0x1f\n", "not hexadecimal"),
        ("entries found\n00000001 1_f\n", "not hexadecimal"),
        ("entries found\n00000001 +1\n", "not hexadecimal"),
        ("entries found\n00000001 \u0663\n", "not hexadecimal"),
        ("00000001 00000002\n00000001 00000002\n", "not a header"),
        ("entries found found\n1 2 3\n", "repeats"),
        ("entries clashres clash_resolve\n1 2 3\n", "repeats"),
    ],
)
def test_stat_file_rejects(text, message):
    with pytest.raises(ParseError, match=message):
        parse_stat_file(text)


def test_stat_file_error_names_the_line():
    text = HEADER_6X + "\n" + _LINE_FORMAT % tuple(range(17)) + "\n" + "00000001 2\n"
    with pytest.raises(ParseError, match=r"line 3: 2 values for 17 columns"):
        parse_stat_file(text)


# -- parse_conntrack_s ---------------------------------------------------------------------
# conntrack-tools 1.4.7, kernel 6.1 (ctnetlink stats): `cpu=%-4u\t` then `name=%u `.
CONNTRACK_S_147 = (
    "cpu=0   \tfound=0 invalid=0 insert=0 insert_failed=0 drop=0 early_drop=0 error=0 "
    "search_restart=0 clash_resolve=0 chaintoolong=0 \n"
    "cpu=1   \tfound=3 invalid=117 insert=0 insert_failed=2 drop=2 early_drop=0 error=9 "
    "search_restart=41 clash_resolve=5 chaintoolong=0 \n"
    "cpu=2   \tfound=1 invalid=4 insert=0 insert_failed=0 drop=0 early_drop=7 error=0 "
    "search_restart=0 clash_resolve=0 chaintoolong=1 \n"
)
# Older conntrack-tools: the procfs counters, `entries=` and `searched=` on every line.
CONNTRACK_S_OLD = (
    "cpu=0   \tentries=13 searched=66 found=2424 new=152 invalid=0 ignore=97 delete=144 "
    "delete_list=144 insert=152 insert_failed=0 drop=0 early_drop=0 error=0 "
    "search_restart=0 \n"
    "cpu=1   \tentries=14 searched=10 found=100 new=20 invalid=3 ignore=1 delete=5 "
    "delete_list=5 insert=20 insert_failed=1 drop=1 early_drop=2 error=4 "
    "search_restart=6 \n"
)


def test_conntrack_s_147_sums_over_cpus():
    stats = parse_conntrack_s(CONNTRACK_S_147)
    assert stats.source == "conntrack -S"
    assert stats.cpus == 3
    assert stats.entries is None
    assert dict(stats.totals) == {
        "found": 4,
        "invalid": 121,
        "insert": 0,
        "insert_failed": 2,
        "drop": 2,
        "early_drop": 7,
        "error": 9,
        "search_restart": 41,
        "clash_resolve": 5,
        "chaintoolong": 1,
    }
    assert stats.get("clashres") == 5
    assert stats.get("icmp_error") == 9


def test_conntrack_s_old_form_takes_entries_once():
    # entries is global: the first line's value, never a sum (13 + 14) nor the last line's.
    stats = parse_conntrack_s(CONNTRACK_S_OLD)
    assert stats.cpus == 2
    assert stats.entries == 13
    assert "entries" not in stats.totals
    assert "cpu" not in stats.totals
    assert stats.get("searched") == 76
    assert stats.get("found") == 2524
    assert stats.get("delete_list") == 149
    assert stats.get("early_drop") == 2
    assert stats.get("search_restart") == 6
    assert stats.get("clash_resolve") is None


def test_conntrack_s_many_cpus_against_independent_sum():
    rng = random.Random(7)
    names = ["found", "invalid", "insert", "insert_failed", "drop", "early_drop", "error"]
    rows = [{n: rng.randrange(0, 1 << 32) for n in names} for _ in range(64)]
    text = "".join(
        f"cpu={cpu:<4}\t" + "".join(f"{n}={v} " for n, v in row.items()) + "\n"
        for cpu, row in enumerate(rows)
    )
    stats = parse_conntrack_s(text)
    assert stats.cpus == 64
    assert dict(stats.totals) == {n: sum(r[n] for r in rows) for n in names}


def test_conntrack_s_netlink_names_and_source():
    # Our netlink capture prints CTA_STATS_* names lowercased, e.g. chain_toolong.
    text = "cpu=0\tfound=1 chain_toolong=4 clash_resolve=2\ncpu=1\tfound=2 chain_toolong=1\n"
    stats = parse_conntrack_s(text, source="netlink")
    assert stats.source == "netlink"
    assert stats.get("chaintoolong") == 5
    assert stats.get("found") == 3
    assert stats.get("clash_resolve") == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no per-CPU lines"),
        ("\n \n", "no per-CPU lines"),
        ("cpu=0 found=1 garbage\n", "expected name=value, got 'garbage'"),
        ("cpu=0 =5\n", "expected name=value"),
        ("cpu=0 found=x\n", "found is not a number"),
        ("cpu=0 found=\n", "found is not a number"),
        ("cpu=0 found=0x10\n", "found is not a number"),
        ("cpu=0 found=-1\n", "found is not a number"),
        ("cpu=0 found=1_000\n", "found is not a number"),
        ("cpu=0 found=+5\n", "found is not a number"),
        ("cpu=0 found=" + "9" * 5000 + "\n", "found is not a number"),
        ("found=1 drop=2\n", "no cpu= field"),
        ("cpu=0 found=1\nfound=2\n", "line 2: no cpu= field"),
        ("conntrack v1.4.7 (conntrack-tools): Operation not permitted\n", "expected name=value"),
    ],
)
def test_conntrack_s_rejects(text, message):
    with pytest.raises(ParseError, match=message):
        parse_conntrack_s(text)


# -- read_stats ----------------------------------------------------------------------------
def test_read_stats_prefers_procfs(host, write, fake_commands):
    write(STAT_FILE, stat_text(HEADER_6X, [[5] + [1] * 16, [5] + [2] * 16]))
    commands = fake_commands({"conntrack-S": CONNTRACK_S_147})
    stats = read_stats(host, commands)
    assert isinstance(stats, ConntrackStats)
    assert stats.source == "procfs"
    assert stats.get("drop") == 3
    assert commands.asked == []


def test_read_stats_falls_back_to_netlink_then_tool(host, fake_commands):
    netlink = fake_commands({NETLINK_STATS: "cpu=0\tdrop=4\n", "conntrack-S": CONNTRACK_S_147})
    stats = read_stats(host, netlink)
    assert isinstance(stats, ConntrackStats)
    assert (stats.source, stats.get("drop")) == ("netlink", 4)

    tool = fake_commands({"conntrack-S": CONNTRACK_S_147})
    stats = read_stats(host, tool)
    assert isinstance(stats, ConntrackStats)
    assert (stats.source, stats.get("invalid")) == ("conntrack -S", 121)
    assert tool.asked == [NETLINK_STATS, "conntrack-S"]


def test_read_stats_missing_gives_every_reason(host, fake_commands):
    result = read_stats(host, fake_commands())
    assert isinstance(result, Missing)
    assert STAT_FILE in result.reason
    assert "netlink-stats not captured" in result.reason
    assert "conntrack-S not captured" in result.reason
