"""parse_new_events: the [NEW] lines of ``conntrack -E`` (conntrack-tools 1.4.7, kernel 6.18),
captured in a throw-away namespace while a UDP datagram, a TCP connection, an IPv6 datagram
and an ICMP echo went over loopback, and a ``conntrack -D`` deleted an entry."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ctguard.host.flow_watch import NewFlow, parse_new_events

UDP_NEW = (
    "    [NEW] udp      17 30 src=127.0.0.1 dst=127.0.0.1 sport=55046 dport=53 [UNREPLIED]"
    " src=127.0.0.1 dst=127.0.0.1 sport=53 dport=55046"
)
TCP_NEW = (
    "    [NEW] tcp      6 120 SYN_SENT src=127.0.0.1 dst=127.0.0.1 sport=57060 dport=8983"
    " [UNREPLIED] src=127.0.0.1 dst=127.0.0.1 sport=8983 dport=57060"
)
TCP_UPDATES = [
    f" [UPDATE] tcp      6 {timeout} {state} src=127.0.0.1 dst=127.0.0.1 sport=57060 dport=8983"
    f" src=127.0.0.1 dst=127.0.0.1 sport=8983 dport=57060{assured}"
    for timeout, state, assured in [
        (60, "SYN_RECV", ""),
        (432000, "ESTABLISHED", " [ASSURED]"),
        (120, "FIN_WAIT", " [ASSURED]"),
        (30, "LAST_ACK", " [ASSURED]"),
        (120, "TIME_WAIT", " [ASSURED]"),
    ]
]
UDP6_NEW = (
    "    [NEW] udp      17 30 src=::1 dst=::1 sport=60070 dport=5353 [UNREPLIED] src=::1"
    " dst=::1 sport=5353 dport=60070"
)
ICMP_NEW = (
    "    [NEW] icmp     1 30 src=127.0.0.1 dst=127.0.0.1 type=8 code=0 id=4660 [UNREPLIED]"
    " src=127.0.0.1 dst=127.0.0.1 type=0 code=0 id=4660"
)
ICMP_UPDATE = (
    " [UPDATE] icmp     1 30 src=127.0.0.1 dst=127.0.0.1 type=8 code=0 id=4660"
    " src=127.0.0.1 dst=127.0.0.1 type=0 code=0 id=4660"
)
UDP_DESTROY = (
    "[DESTROY] udp      17 29 src=127.0.0.1 dst=127.0.0.1 sport=40624 dport=53 [UNREPLIED]"
    " src=127.0.0.1 dst=127.0.0.1 sport=53 dport=40624 [USERSPACE] portid=2436889256"
)
SUMMARY = "conntrack v1.4.7 (conntrack-tools): 8 flow events have been shown."
SESSION = "\n".join([UDP_NEW, TCP_NEW, *TCP_UPDATES, UDP6_NEW, ICMP_NEW, ICMP_UPDATE, SUMMARY])


def test_tcp_new_is_the_original_direction():
    assert parse_new_events(TCP_NEW) == [NewFlow("tcp", 57060, 8983)]


def test_udp_new_ipv4_and_ipv6():
    assert parse_new_events(f"{UDP_NEW}\n{UDP6_NEW}\n") == [
        NewFlow("udp", 55046, 53),
        NewFlow("udp", 60070, 5353, ipv6=True),
    ]


def test_icmp_has_no_ports_and_is_skipped():
    assert parse_new_events(ICMP_NEW) == []


def test_updates_and_destroys_are_skipped():
    assert parse_new_events("\n".join([*TCP_UPDATES, ICMP_UPDATE, UDP_DESTROY])) == []


def test_a_whole_session_keeps_the_new_entries_in_order():
    assert parse_new_events(SESSION) == [
        NewFlow("udp", 55046, 53),
        NewFlow("tcp", 57060, 8983),
        NewFlow("udp", 60070, 5353, ipv6=True),
    ]


def test_garbage_lines_are_skipped():
    garbage = [
        "",
        SUMMARY,
        "[NEW]",
        "[NEW] tcp",
        "[NEW] tcp      6 120 SYN_SENT src=127.0.0.1 dst=127.0.0.1",  # cut before the ports
        "NEW tcp      6 120 SYN_SENT src=127.0.0.1 sport=1 dport=2",  # no brackets
        "[NEW]tcp 6 120 sport=1 dport=2",  # no blank after the event type
        "[NEW] tcp six 120 sport=1 dport=2",  # no protocol number
        "[NEW] tcp 6 120 sport=x dport=2",
        "conntrack v1.4.7 (conntrack-tools): Operation not permitted",
        "\x00\xff[NEW] \u2028",
    ]
    assert parse_new_events("\n".join([*garbage, UDP_NEW, *garbage])) == [NewFlow("udp", 55046, 53)]


def test_windows_line_ends_and_no_final_newline():
    assert parse_new_events(f"{UDP_NEW}\r\n{TCP_NEW}") == [
        NewFlow("udp", 55046, 53),
        NewFlow("tcp", 57060, 8983),
    ]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_never_raises_on_any_text(text):
    flows = parse_new_events(text)
    assert all(isinstance(flow, NewFlow) for flow in flows)


_LINES = st.sampled_from([UDP_NEW, TCP_NEW, UDP6_NEW, ICMP_NEW, UDP_DESTROY, SUMMARY, *TCP_UPDATES])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_LINES, st.text(max_size=80)), max_size=30))
def test_mixed_with_noise_finds_exactly_the_real_new_lines(lines):
    expected = {UDP_NEW: NewFlow("udp", 55046, 53), TCP_NEW: NewFlow("tcp", 57060, 8983),
                UDP6_NEW: NewFlow("udp", 60070, 5353, ipv6=True)}  # fmt: skip
    text = "\n".join(line.replace("\n", " ").replace("\r", " ") for line in lines)
    flows = parse_new_events(text)
    assert [f for f in flows if f in expected.values()] == [
        expected[line] for line in lines if line in expected
    ]
