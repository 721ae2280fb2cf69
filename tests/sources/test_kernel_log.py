"""Kernel "table full, dropping packet" lines: every message form, every prefix, tails."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctguard.host.root import HostRoot
from ctguard.missing import Missing
from ctguard.sources.kernel_log import (
    KERNEL_LOG_FILES,
    LOG_TAIL_BYTES,
    LogHit,
    TableFullLog,
    parse_kernel_log,
    read_kernel_logs,
    read_log_file,
)

EXAMPLE = Path(__file__).parents[2] / "examples" / "rhel6-table-full"

# (message, netns) as each kernel generation prints it.
MESSAGES = [
    ("nf_conntrack: nf_conntrack: table full, dropping packet", None),  # pr_fmt, 4.x-5.x
    ("nf_conntrack: table full, dropping packet.", None),  # RHEL 6, 2.6.32
    ("nf_conntrack: table full, dropping packet", None),
    ("nf_conntrack: nf_conntrack: table full in netns 4026532177, dropping packet", 4026532177),
    ("ip_conntrack: table full, dropping packet.", None),  # 2.6.9, RHEL 4/5
]
# (prefix, timestamp it carries)
PREFIXES = [
    ("", None),
    ("[ 1234.567890] ", "1234.567890"),
    ("[12345678.123456] ", "12345678.123456"),
    ("<4>[   81.100001] ", "81.100001"),  # dmesg -r
    ("[Wed Nov 25 10:00:01 2026] ", "Wed Nov 25 10:00:01 2026"),  # dmesg -T
    ("[Thu Nov  5 09:03:44 2026] ", "Thu Nov  5 09:03:44 2026"),
    ("Nov 25 10:00:01 web03 kernel: ", "Nov 25 10:00:01"),
    ("Mar  4 20:14:37 web03 kernel: ", "Mar  4 20:14:37"),
    ("Nov 25 10:00:01 web03 kernel: [1234.5678] ", "Nov 25 10:00:01"),
    ("2026-11-25T10:00:01.123456+00:00 web03 kernel: ", "2026-11-25T10:00:01.123456+00:00"),
    ("2026-11-25T10:00:01+0000 web03 kernel: ", "2026-11-25T10:00:01+0000"),  # short-iso
    ("2026-11-25T10:00:01Z web03 kernel: ", "2026-11-25T10:00:01Z"),
]


@pytest.mark.parametrize(("message", "netns"), MESSAGES)
@pytest.mark.parametrize(("prefix", "timestamp"), PREFIXES)
def test_every_form_and_prefix(message, netns, prefix, timestamp):
    text = "kernel: eth0: link up\n" + prefix + message + "\n"
    log = parse_kernel_log(text, "/var/log/messages")
    hit = LogHit(2, prefix + message, timestamp, netns)
    assert log == TableFullLog("/var/log/messages", 1, {netns: 1}, {netns: hit}, {netns: hit})


@pytest.mark.parametrize(
    "line",
    [
        "nf_conntrack: expectation table full",  # nf_conntrack_expect.c, another limit
        "nf_conntrack: table full",
        "NF_CONNTRACK: TABLE FULL, DROPPING PACKET",
        "nf_conntrack: Table full, dropping packet",
        "xt_hashlimit: table full, dropping packet",
        "neighbour: arp_cache: neighbor table overflow!",
        "nf_conntrack: falling back to vmalloc.",
        "nf_conntrack: nf_conntrack: table full in netns , dropping packet",
        "conntrack: table full, dropping packet",
        "_conntrack: table full, dropping packet",
        "nf_conntrack: table full  dropping packet",
        "nf_conntrack: nf_conntrack: table full in netns 123456789012345678901, dropping packet",
        "nf_conntrack version 0.5.0 (16384 buckets, 65536 max)",
    ],
)
def test_near_misses_do_not_count(line):
    log = parse_kernel_log(f"[ 12.000000] {line}\n", "dmesg")
    assert (log.count, dict(log.by_netns), dict(log.first), dict(log.last)) == (0, {}, {}, {})


def test_counts_first_and_last_per_netns():
    full = "nf_conntrack: nf_conntrack: table full, dropping packet"
    in_netns = "nf_conntrack: nf_conntrack: table full in netns {}, dropping packet".format
    lines = [
        f"[  100.000001] {full}",
        "[  100.000002] IPv6: ADDRCONF(NETDEV_CHANGE): veth1: link becomes ready",
        f"[  101.000003] {in_netns(4026532177)}",
        f"[  102.000004] {in_netns(4026532300)}",
        "[  103.000005] net_ratelimit: 312 callbacks suppressed",
        f"[  104.000006] {in_netns(4026532177)}",
        f"[  105.000007] {full}",
        f"[  106.000008] {in_netns(4026532177)}",
    ]
    log = parse_kernel_log("\n".join(lines) + "\n", "dmesg")
    assert log.source == "dmesg"
    assert log.count == 6
    assert dict(log.by_netns) == {None: 2, 4026532177: 3, 4026532300: 1}
    assert {k: (v.line, v.timestamp) for k, v in log.first.items()} == {
        None: (1, "100.000001"),
        4026532177: (3, "101.000003"),
        4026532300: (4, "102.000004"),
    }
    assert {k: (v.line, v.timestamp) for k, v in log.last.items()} == {
        None: (7, "105.000007"),
        4026532177: (8, "106.000008"),
        4026532300: (4, "102.000004"),
    }
    assert log.last[4026532177].text == lines[7]
    assert log.last[4026532177].netns == 4026532177
    assert not log.truncated


def test_netns_written_with_leading_zeros_is_one_namespace():
    text = (
        "nf_conntrack: table full in netns 0042, dropping packet\n"
        "nf_conntrack: table full in netns 42, dropping packet\n"
    )
    log = parse_kernel_log(text, "dmesg")
    assert dict(log.by_netns) == {42: 2}
    assert (log.first[42].line, log.last[42].line) == (1, 2)


def test_a_line_counts_once():
    line = "nf_conntrack: table full, dropping packet. nf_conntrack: table full, dropping packet."
    log = parse_kernel_log(line + "\n" + line + "\n", "dmesg")
    assert log.count == 2
    assert (log.first[None].line, log.last[None].line) == (1, 2)


def test_line_numbers_count_every_line_and_crlf_is_stripped():
    text = "\r\n".join(["boot"] * 41 + ["nf_conntrack: table full, dropping packet."]) + "\r\n"
    log = parse_kernel_log(text, "/var/log/messages")
    assert log.first[None] == LogHit(42, "nf_conntrack: table full, dropping packet.", None, None)


def test_last_line_without_newline():
    log = parse_kernel_log("a\nip_conntrack: table full, dropping packet.", "dmesg")
    assert log.last[None].line == 2


def test_empty_input():
    assert parse_kernel_log("", "dmesg") == TableFullLog("dmesg", 0, {}, {}, {})


def test_huge_line_text_is_capped():
    line = "x" * 100_000 + " nf_conntrack: table full, dropping packet"
    log = parse_kernel_log(line, "dmesg")
    assert log.count == 1
    assert len(log.first[None].text) == 4096


def test_example_host_dmesg_and_messages():
    dmesg = (EXAMPLE / "ctguard_commands/dmesg").read_text()
    log = parse_kernel_log(dmesg, "dmesg")
    assert log.count == 80
    assert (log.first[None].line, log.last[None].line) == (12, 103)
    assert log.first[None].timestamp is None  # RHEL 6 dmesg has no timestamps
    messages = (EXAMPLE / "var/log/messages").read_text()
    log = parse_kernel_log(messages, "/var/log/messages")
    assert log.count == 80
    assert log.first[None].timestamp == "Mar  4 20:14:37"
    assert log.last[None].timestamp == "Mar  4 21:04:51"


def test_100_mb_scans_in_seconds():
    quiet = "Nov 25 10:00:01 web03 kernel: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=60\n"
    full = "Nov 25 10:00:02 web03 kernel: nf_conntrack: table full, dropping packet.\n"
    block = quiet * 9 + full
    text = block * (100_000_000 // len(block))
    started = time.perf_counter()
    log = parse_kernel_log(text, "/var/log/messages")
    elapsed = time.perf_counter() - started
    assert log.count == 100_000_000 // len(block)
    assert log.last[None].line == 10 * log.count
    assert elapsed < 3.0, f"{elapsed:.2f} s for 100 MB"


# -- reading -------------------------------------------------------------------------------
DMESG = "[ 8812.104361] nf_conntrack: nf_conntrack: table full, dropping packet\n"
SYSLOG = "Nov 25 10:00:01 web03 kernel: [ 8812.104361] nf_conntrack: table full, dropping packet\n"


def test_read_dmesg_then_each_existing_file(host, write, fake_commands):
    write("/var/log/messages", SYSLOG * 3)
    write("/var/log/kern.log", SYSLOG)
    commands = fake_commands({"dmesg": DMESG * 2})
    results = read_kernel_logs(host, commands)
    assert commands.asked == ["dmesg"]
    assert [(r.source, r.count) for r in results if isinstance(r, TableFullLog)] == [
        ("dmesg", 2),
        ("/var/log/kern.log", 1),
        ("/var/log/messages", 3),
    ]
    assert len(results) == 3  # /var/log/syslog does not exist: not listed


NETNS_SYSLOG = (
    "Nov 25 10:00:02 web03 kernel: [ 912.1] nf_conntrack: nf_conntrack: table full in netns"
    " 4026532177, dropping packet\n"
)


def test_a_namespace_of_known_age_counts_no_file_line_naming_a_namespace(
    host, write, fake_commands
):
    """Files outlive namespaces and boots, and namespace numbers are handed out again: for a
    namespace whose age is known (dmesg is filtered by it) a file line naming 4026532177
    may be any earlier namespace's. Without an age, lines count as before."""
    write("/var/log/kern.log", SYSLOG + NETNS_SYSLOG * 2)
    commands = fake_commands({"dmesg": ""})
    (_, aged) = read_kernel_logs(host, commands, netns_born=1000.0)
    (_, unaged) = read_kernel_logs(host, commands)
    assert isinstance(aged, TableFullLog) and isinstance(unaged, TableFullLog)
    assert dict(aged.by_netns) == {None: 1} and aged.count == 1
    assert set(aged.first) == set(aged.last) == {None}
    assert dict(unaged.by_netns) == {None: 1, 4026532177: 2} and unaged.count == 3


def test_read_dmesg_missing_is_reported(host, fake_commands):
    results = read_kernel_logs(host, fake_commands())
    assert results == (Missing("dmesg not captured"),)


def test_read_unreadable_log_is_missing_with_reason(host, write, tmp_path, fake_commands):
    (tmp_path / "var/log/messages").mkdir(parents=True)
    write("/var/log/syslog", SYSLOG)
    results = read_kernel_logs(host, fake_commands({"dmesg": ""}))
    assert results[0] == TableFullLog("dmesg", 0, {}, {}, {})
    assert isinstance(results[1], Missing)
    assert results[1].reason.startswith("/var/log/messages: ")
    assert isinstance(results[2], TableFullLog)
    assert results[2].source == "/var/log/syslog"


def test_read_snapshot_example(fake_commands):
    from ctguard.host.commands import CapturedCommands

    host = HostRoot(EXAMPLE)
    results = read_kernel_logs(host, CapturedCommands(host))
    assert [(r.source, r.count, r.truncated) for r in results if isinstance(r, TableFullLog)] == [
        ("dmesg", 80, False),
        ("/var/log/messages", 80, False),
    ]


def test_tail_drops_the_partial_first_line(host, write):
    write("/var/log/messages", "first line is long\n" + SYSLOG + "quiet\n")
    size = len(SYSLOG) + len("quiet\n") + 5  # the window starts inside "first line is long"
    log = read_log_file(host, "/var/log/messages", tail_bytes=size)
    assert isinstance(log, TableFullLog)
    assert log.truncated
    assert log.count == 1
    assert log.first[None].line == 1  # counted within what was read, partial line dropped


def test_tail_starting_on_a_line_keeps_that_line(host, write):
    write("/var/log/messages", "old\n" + SYSLOG)
    log = read_log_file(host, "/var/log/messages", tail_bytes=len(SYSLOG))
    assert isinstance(log, TableFullLog)
    assert (log.truncated, log.count, log.first[None].line) == (True, 1, 1)


def test_tail_cutting_the_match_loses_it(host, write):
    write("/var/log/messages", SYSLOG)
    log = read_log_file(host, "/var/log/messages", tail_bytes=len(SYSLOG) - 1)
    assert isinstance(log, TableFullLog)
    assert (log.truncated, log.count) == (True, 0)


def test_file_as_large_as_the_tail_is_whole(host, write):
    write("/var/log/messages", SYSLOG)
    log = read_log_file(host, "/var/log/messages", tail_bytes=len(SYSLOG))
    assert isinstance(log, TableFullLog)
    assert (log.truncated, log.count) == (False, 1)


def test_read_kernel_logs_reads_only_the_last_32_mib(host, tmp_path, fake_commands):
    path = tmp_path / "var/log/kern.log"
    path.parent.mkdir(parents=True)
    with path.open("wb") as f:
        f.write(SYSLOG.encode())  # beyond the tail: not counted
        filler = b"Nov 25 10:00:01 web03 kernel: x\n" * (1 << 15)  # 1 MiB
        for _ in range(LOG_TAIL_BYTES // len(filler) + 1):
            f.write(filler)
        f.write(b"\xff\xfe " + SYSLOG.encode())  # not UTF-8 before the match
    results = read_kernel_logs(host, fake_commands({"dmesg": ""}))
    log = results[1]
    assert isinstance(log, TableFullLog)
    assert (log.source, log.truncated, log.count) == ("/var/log/kern.log", True, 1)
    assert log.first[None].text.startswith("\ufffd\ufffd Nov 25 10:00:01 web03 kernel:")


def test_log_file_paths():
    assert KERNEL_LOG_FILES == ("/var/log/kern.log", "/var/log/messages", "/var/log/syslog")


# -- no input makes the parser raise; hits are never lost ----------------------------------
_LOG_WORDS = st.sampled_from(
    [
        "nf_conntrack:", "ip_conntrack:", "table", "full,", "full", "in", "netns", "42",
        "4026532177,", "dropping", "packet", "packet.", "_conntrack: ", "[", "]", "1234.5",
        "Nov", "25", "10:00:01", "kernel:", "2026-11-25T10:00:01+0000", "\u00e9", "\x00",
    ]
)  # fmt: skip
_NEAR = st.lists(st.tuples(_LOG_WORDS, st.sampled_from([" ", "", "\n", "\r\n", "\t"])),
                 max_size=60).map(lambda pairs: "".join(w + s for w, s in pairs))  # fmt: skip
_DECODED = st.binary(max_size=600).map(lambda b: b.decode("utf-8", errors="replace"))


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(), _DECODED, _NEAR))
def test_parse_never_raises_and_is_consistent(text):
    log = parse_kernel_log(text, "dmesg")
    assert log.count == sum(log.by_netns.values())
    assert set(log.first) == set(log.last) == set(log.by_netns)
    for netns, first in log.first.items():
        assert first.line <= log.last[netns].line
        assert first.netns == netns
        assert "table full" in first.text


_JUNK_LINE = st.text(st.characters(blacklist_characters="\n"), max_size=80).filter(
    lambda line: "_conntrack" not in line
)


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.one_of(_JUNK_LINE, st.sampled_from([m for m, _ in MESSAGES])), max_size=30),
    prefix=st.sampled_from([p for p, _ in PREFIXES]),
)
def test_every_message_line_is_counted(lines, prefix):
    text = "\n".join(prefix + line for line in lines)
    log = parse_kernel_log(text, "dmesg")
    expected = [n for n, line in enumerate(lines, 1) if line in {m for m, _ in MESSAGES}]
    assert log.count == len(expected)
    if expected:
        hits = list(log.first.values()) + list(log.last.values())
        assert min(h.line for h in hits) == expected[0]
        assert max(h.line for h in hits) == expected[-1]


def test_lines_older_than_the_namespace_are_an_earlier_namespaces() -> None:
    """Inode numbers of freed namespaces are reused: a dmesg line that names this inode
    but predates this namespace belongs to the one before it."""
    named = "nf_conntrack: nf_conntrack: table full in netns 4026532177, dropping packet"
    text = (
        f"[  100.000001] {named}\n"
        "[  100.500000] nf_conntrack: nf_conntrack: table full, dropping packet\n"
        f"[  250.000001] {named}\n"
    )
    everything = parse_kernel_log(text, "dmesg")
    assert dict(everything.by_netns) == {4026532177: 2, None: 1}
    born_at_200 = parse_kernel_log(text, "dmesg", netns_born=200.0)
    assert dict(born_at_200.by_netns) == {4026532177: 1, None: 1}  # unnamed lines stay
    assert born_at_200.first[4026532177].timestamp == "250.000001"
    assert parse_kernel_log(text, "dmesg", netns_born=300.0).by_netns.get(4026532177) is None
