"""Real conntrack lines through both scanners, checked field by field.

Formats: ``/proc/net/nf_conntrack`` (kernel ct_seq_show: ``"%-8s %u %-8s %u "`` l3/l4 names
and numbers, ``%ld `` remaining timeout unless offloaded, the state for tcp/sctp/dccp, the
tuples, ``[UNREPLIED]`` before the reply tuple, one of ``[HW_OFFLOAD]``/``[OFFLOAD]``/
``[ASSURED]``, ``mark=``, ``secctx=``, ``zone=`` (always, with CONFIG_NF_CONNTRACK_ZONES),
``delta-time=``, ``use=``), ``conntrack -L`` (no l3 prefix, ``zone=`` only when not 0) and
``conntrack -L -o extended[,id]`` (l3 prefix, ``id=`` at the end). Several lines below were
copied from a 6.x kernel and conntrack v1.4.7.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

import pytest

from ctguard.table.keys import FLAG_ASSURED, FLAG_HW_OFFLOAD, FLAG_NONE, FLAG_OFFLOAD
from ctguard.table.summary import decode_shape, decode_timeout, summarize
from ctguard.table.tally import Tally


@dataclass(frozen=True)
class Entry:
    protocol: str
    src: str
    dst: str
    family: str = "ipv4"
    state: str = ""
    sport: int | None = None
    dport: int | None = None
    remaining: int | None = None
    unreplied: bool = False
    flag: int = FLAG_NONE
    nat: bool = False
    mark: int = 0
    zone: int = 0


def only_entry(tally: Tally) -> Entry:
    """The one entry ``tally`` counted, decoded from every dict it is counted in."""
    assert (tally.lines, tally.entries, tally.bad, tally.first_bad) == (1, 1, 0, None)
    ((shape_key, n1),) = tally.shapes.items()
    ((timeout_key, n2),) = tally.timeouts.items()
    ((sport_key, n3),) = tally.sports.items()
    ((markzone, n4),) = tally.markzones.items()
    ((src, n5),) = tally.sources.as_dict().items()
    ((dst, n6),) = tally.destinations.as_dict().items()
    assert n1 == n2 == n3 == n4 == n5 == n6 == 1
    shape = decode_shape(shape_key)
    timeout = decode_timeout(timeout_key)
    assert (timeout.protocol, timeout.state, timeout.flag) == (
        shape.protocol,
        shape.state,
        shape.flag,
    )
    assert (sport_key >> 17) == (shape_key >> 1 & 0xFF)  # same protocol number
    sport = (sport_key & 0x1FFFF) - 1
    return Entry(
        protocol=shape.protocol,
        src=src,
        dst=dst,
        family=shape.family,
        state=shape.state,
        sport=None if sport < 0 else sport,
        dport=shape.dport,
        remaining=timeout.remaining,
        unreplied=shape.unreplied,
        flag=shape.flag,
        nat=shape.nat,
        mark=markzone >> 16,
        zone=markzone & 0xFFFF,
    )


V6A = "2001:0db8:0000:0000:0000:0000:0000:0001"
V6B = "2001:0db8:0000:0000:0000:0000:0000:0002"
LOOP6 = "0000:0000:0000:0000:0000:0000:0000:0001"

PROC = {
    "tcp-established": (
        "ipv4     2 tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=51234 "
        "dport=443 src=10.0.0.2 dst=10.0.0.1 sport=443 dport=51234 [ASSURED] mark=0 zone=0 use=2",
        Entry(
            "tcp",
            "10.0.0.1",
            "10.0.0.2",
            state="ESTABLISHED",
            sport=51234,
            dport=443,
            remaining=431999,
            flag=FLAG_ASSURED,
        ),
    ),
    "tcp-syn-sent-unreplied": (
        "ipv4     2 tcp      6 117 SYN_SENT src=10.0.0.1 dst=10.0.0.9 sport=40000 dport=22 "
        "[UNREPLIED] src=10.0.0.9 dst=10.0.0.1 sport=22 dport=40000 mark=0 zone=0 use=2",
        Entry(
            "tcp",
            "10.0.0.1",
            "10.0.0.9",
            state="SYN_SENT",
            sport=40000,
            dport=22,
            remaining=117,
            unreplied=True,
        ),
    ),
    "tcp-syn-recv": (
        "ipv4     2 tcp      6 57 SYN_RECV src=10.0.0.3 dst=10.0.0.2 sport=40001 dport=80 "
        "src=10.0.0.2 dst=10.0.0.3 sport=80 dport=40001 mark=0 zone=0 use=2",
        Entry("tcp", "10.0.0.3", "10.0.0.2", state="SYN_RECV", sport=40001, dport=80, remaining=57),
    ),
    "tcp-time-wait": (
        "ipv4     2 tcp      6 118 TIME_WAIT src=10.0.0.4 dst=10.0.0.2 sport=40002 dport=80 "
        "src=10.0.0.2 dst=10.0.0.4 sport=80 dport=40002 [ASSURED] mark=0 zone=0 use=2",
        Entry(
            "tcp",
            "10.0.0.4",
            "10.0.0.2",
            state="TIME_WAIT",
            sport=40002,
            dport=80,
            remaining=118,
            flag=FLAG_ASSURED,
        ),
    ),
    "tcp-close-wait": (
        "ipv4     2 tcp      6 43190 CLOSE_WAIT src=10.0.0.5 dst=10.0.0.2 sport=1 dport=5432 "
        "src=10.0.0.2 dst=10.0.0.5 sport=5432 dport=1 [ASSURED] mark=0 zone=0 use=2",
        Entry(
            "tcp",
            "10.0.0.5",
            "10.0.0.2",
            state="CLOSE_WAIT",
            sport=1,
            dport=5432,
            remaining=43190,
            flag=FLAG_ASSURED,
        ),
    ),
    "tcp-fin-wait-port-0-and-65535": (
        "ipv4     2 tcp      6 0 FIN_WAIT src=10.0.0.6 dst=10.0.0.2 sport=0 dport=65535 "
        "src=10.0.0.2 dst=10.0.0.6 sport=65535 dport=0 mark=0 zone=0 use=2",
        Entry("tcp", "10.0.0.6", "10.0.0.2", state="FIN_WAIT", sport=0, dport=65535, remaining=0),
    ),
    "tcp-last-ack": (
        "ipv4     2 tcp      6 29 LAST_ACK src=10.0.0.7 dst=10.0.0.2 sport=2 dport=25 "
        "src=10.0.0.2 dst=10.0.0.7 sport=25 dport=2 [ASSURED] mark=0 zone=0 use=2",
        Entry(
            "tcp",
            "10.0.0.7",
            "10.0.0.2",
            state="LAST_ACK",
            sport=2,
            dport=25,
            remaining=29,
            flag=FLAG_ASSURED,
        ),
    ),
    "tcp-close": (
        "ipv4     2 tcp      6 9 CLOSE src=10.0.0.8 dst=10.0.0.2 sport=3 dport=25 "
        "src=10.0.0.2 dst=10.0.0.8 sport=25 dport=3 mark=0 zone=0 use=2",
        Entry("tcp", "10.0.0.8", "10.0.0.2", state="CLOSE", sport=3, dport=25, remaining=9),
    ),
    "tcp-unknown-state-word": (
        "ipv4     2 tcp      6 9 BOGUS_STATE src=10.0.0.8 dst=10.0.0.2 sport=3 dport=25 "
        "src=10.0.0.2 dst=10.0.0.8 sport=25 dport=3 mark=0 zone=0 use=2",
        Entry("tcp", "10.0.0.8", "10.0.0.2", state="OTHER", sport=3, dport=25, remaining=9),
    ),
    "udp-replied": (
        "ipv4     2 udp      17 28 src=192.168.1.5 dst=192.168.1.1 sport=5353 dport=5353 "
        "src=192.168.1.1 dst=192.168.1.5 sport=5353 dport=5353 mark=0 zone=0 use=2",
        Entry("udp", "192.168.1.5", "192.168.1.1", sport=5353, dport=5353, remaining=28),
    ),
    "udp-unreplied-real": (
        "ipv4     2 udp      17 29 src=127.0.0.1 dst=127.0.0.1 sport=55416 dport=53 [UNREPLIED] "
        "src=127.0.0.1 dst=127.0.0.1 sport=53 dport=55416 mark=0 zone=0 use=2",
        Entry("udp", "127.0.0.1", "127.0.0.1", sport=55416, dport=53, remaining=29, unreplied=True),
    ),
    "udp-assured": (
        "ipv4     2 udp      17 179 src=10.0.0.1 dst=10.0.0.53 sport=4000 dport=53 "
        "src=10.0.0.53 dst=10.0.0.1 sport=53 dport=4000 [ASSURED] mark=0 zone=0 use=2",
        Entry(
            "udp", "10.0.0.1", "10.0.0.53", sport=4000, dport=53, remaining=179, flag=FLAG_ASSURED
        ),
    ),
    "udp-ipv6-real": (
        f"ipv6     10 udp      17 29 src={LOOP6} dst={LOOP6} sport=52714 dport=53 [UNREPLIED] "
        f"src={LOOP6} dst={LOOP6} sport=53 dport=52714 mark=0 zone=0 use=2",
        Entry(
            "udp", LOOP6, LOOP6, family="ipv6", sport=52714, dport=53, remaining=29, unreplied=True
        ),
    ),
    "udplite": (
        "ipv4     2 udplite  136 29 src=10.0.0.1 dst=10.0.0.2 sport=1000 dport=2000 [UNREPLIED] "
        "src=10.0.0.2 dst=10.0.0.1 sport=2000 dport=1000 mark=0 zone=0 use=2",
        Entry(
            "udplite", "10.0.0.1", "10.0.0.2", sport=1000, dport=2000, remaining=29, unreplied=True
        ),
    ),
    "icmp": (
        "ipv4     2 icmp     1 29 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=1234 "
        "src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=1234 mark=0 zone=0 use=2",
        Entry("icmp", "10.0.0.1", "10.0.0.2", remaining=29),
    ),
    "icmp-unreplied": (
        "ipv4     2 icmp     1 30 src=10.0.0.1 dst=10.0.0.3 type=8 code=0 id=7 [UNREPLIED] "
        "src=10.0.0.3 dst=10.0.0.1 type=0 code=0 id=7 mark=0 zone=0 use=2",
        Entry("icmp", "10.0.0.1", "10.0.0.3", remaining=30, unreplied=True),
    ),
    "icmpv6": (
        f"ipv6     10 icmpv6   58 29 src={V6A} dst={V6B} type=128 code=0 id=4711 "
        f"src={V6B} dst={V6A} type=129 code=0 id=4711 mark=0 zone=0 use=2",
        Entry("icmpv6", V6A, V6B, family="ipv6", remaining=29),
    ),
    "sctp-established": (
        "ipv4     2 sctp     132 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=36412 "
        "dport=36412 src=10.0.0.2 dst=10.0.0.1 sport=36412 dport=36412 [ASSURED] mark=0 zone=0 "
        "use=2",
        Entry(
            "sctp",
            "10.0.0.1",
            "10.0.0.2",
            state="ESTABLISHED",
            sport=36412,
            dport=36412,
            remaining=431999,
            flag=FLAG_ASSURED,
        ),
    ),
    "sctp-cookie-wait": (
        "ipv4     2 sctp     132 3 COOKIE_WAIT src=10.0.0.1 dst=10.0.0.2 sport=5000 dport=2905 "
        "[UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=2905 dport=5000 mark=0 zone=0 use=2",
        Entry(
            "sctp",
            "10.0.0.1",
            "10.0.0.2",
            state="COOKIE_WAIT",
            sport=5000,
            dport=2905,
            remaining=3,
            unreplied=True,
        ),
    ),
    "sctp-heartbeat-sent": (
        "ipv4     2 sctp     132 30 HEARTBEAT_SENT src=10.0.0.1 dst=10.0.0.2 sport=5000 "
        "dport=2905 src=10.0.0.2 dst=10.0.0.1 sport=2905 dport=5000 [ASSURED] mark=0 zone=0 use=2",
        Entry(
            "sctp",
            "10.0.0.1",
            "10.0.0.2",
            state="HEARTBEAT_SENT",
            sport=5000,
            dport=2905,
            remaining=30,
            flag=FLAG_ASSURED,
        ),
    ),
    "dccp-open": (
        "ipv4     2 dccp     33 43199 OPEN src=10.0.0.1 dst=10.0.0.2 sport=5001 dport=5004 "
        "src=10.0.0.2 dst=10.0.0.1 sport=5004 dport=5001 [ASSURED] mark=0 zone=0 use=2",
        Entry(
            "dccp",
            "10.0.0.1",
            "10.0.0.2",
            state="OPEN",
            sport=5001,
            dport=5004,
            remaining=43199,
            flag=FLAG_ASSURED,
        ),
    ),
    "dccp-request": (
        "ipv4     2 dccp     33 240 REQUEST src=10.0.0.1 dst=10.0.0.2 sport=5001 dport=5004 "
        "[UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=5004 dport=5001 mark=0 zone=0 use=2",
        Entry(
            "dccp",
            "10.0.0.1",
            "10.0.0.2",
            state="REQUEST",
            sport=5001,
            dport=5004,
            remaining=240,
            unreplied=True,
        ),
    ),
    "gre": (
        "ipv4     2 gre      47 179 src=10.0.0.1 dst=10.0.0.2 srckey=0x0 dstkey=0x0 "
        "src=10.0.0.2 dst=10.0.0.1 srckey=0x0 dstkey=0x0 [ASSURED] mark=0 zone=0 use=2",
        Entry("gre", "10.0.0.1", "10.0.0.2", remaining=179, flag=FLAG_ASSURED),
    ),
    "gre-old-kernel": (
        "ipv4     2 gre      47 29 timeout=30, stream_timeout=180 src=10.0.0.1 dst=10.0.0.2 "
        "srckey=0x0 dstkey=0x0 src=10.0.0.2 dst=10.0.0.1 srckey=0x0 dstkey=0x0 mark=0 use=2",
        Entry("gre", "10.0.0.1", "10.0.0.2", remaining=29),
    ),
    "unknown-igmp-real": (  # the kernel names protocol 2 "unknown"; keys names it igmp
        "ipv4     2 unknown  2 100 src=127.0.0.2 dst=127.0.0.1 [UNREPLIED] src=127.0.0.1 "
        "dst=127.0.0.2 mark=0 zone=0 use=2",
        Entry("igmp", "127.0.0.2", "127.0.0.1", remaining=100, unreplied=True),
    ),
    "unknown-esp": (
        "ipv4     2 unknown  50 599 src=10.0.0.1 dst=10.0.0.2 src=10.0.0.2 dst=10.0.0.1 "
        "mark=0 zone=0 use=2",
        Entry("50", "10.0.0.1", "10.0.0.2", remaining=599),
    ),
    "offload-tcp-no-timeout": (
        "ipv4     2 tcp      6 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=443 "
        "src=10.0.0.2 dst=10.0.0.1 sport=443 dport=40000 [OFFLOAD] mark=0 zone=0 use=3",
        Entry(
            "tcp",
            "10.0.0.1",
            "10.0.0.2",
            state="ESTABLISHED",
            sport=40000,
            dport=443,
            flag=FLAG_OFFLOAD,
        ),
    ),
    "hw-offload-udp-no-timeout": (
        "ipv4     2 udp      17 src=10.0.0.1 dst=10.0.0.2 sport=4789 dport=4789 "
        "src=10.0.0.2 dst=10.0.0.1 sport=4789 dport=4789 [HW_OFFLOAD] mark=0 zone=0 use=3",
        Entry("udp", "10.0.0.1", "10.0.0.2", sport=4789, dport=4789, flag=FLAG_HW_OFFLOAD),
    ),
    "every-optional-field": (
        "ipv4     2 tcp      6 299 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1 dport=80 "
        "packets=10 bytes=820 src=10.0.0.2 dst=10.0.0.1 sport=80 dport=1 packets=8 bytes=4000 "
        "[ASSURED] mark=4294967295 secctx=system_u:object_r:unlabeled_t:s0 zone=65535 "
        "delta-time=1234 use=2",
        Entry(
            "tcp",
            "10.0.0.1",
            "10.0.0.2",
            state="ESTABLISHED",
            sport=1,
            dport=80,
            remaining=299,
            flag=FLAG_ASSURED,
            mark=4294967295,
            zone=65535,
        ),
    ),
    "acct-unreplied": (
        "ipv4     2 udp      17 25 src=10.0.0.1 dst=10.0.0.2 sport=1 dport=161 packets=1 "
        "bytes=76 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=161 dport=1 packets=0 bytes=0 "
        "mark=16 zone=3 use=2",
        Entry(
            "udp",
            "10.0.0.1",
            "10.0.0.2",
            sport=1,
            dport=161,
            remaining=25,
            unreplied=True,
            mark=16,
            zone=3,
        ),
    ),
    "no-mark-no-zone-old-config": (
        "ipv4     2 udp      17 25 src=10.0.0.1 dst=10.0.0.2 sport=1 dport=161 "
        "src=10.0.0.2 dst=10.0.0.1 sport=161 dport=1 use=2",
        Entry("udp", "10.0.0.1", "10.0.0.2", sport=1, dport=161, remaining=25),
    ),
    "dnat": (
        "ipv4     2 tcp      6 86399 ESTABLISHED src=198.51.100.7 dst=203.0.113.1 sport=50000 "
        "dport=80 src=192.168.1.10 dst=198.51.100.7 sport=8080 dport=50000 [ASSURED] mark=0 "
        "zone=0 use=2",
        Entry(
            "tcp",
            "198.51.100.7",
            "203.0.113.1",
            state="ESTABLISHED",
            sport=50000,
            dport=80,
            remaining=86399,
            flag=FLAG_ASSURED,
            nat=True,
        ),
    ),
    "dnat-address-only": (
        "ipv4     2 udp      17 20 src=198.51.100.7 dst=203.0.113.1 sport=5000 dport=53 "
        "src=192.168.1.53 dst=198.51.100.7 sport=53 dport=5000 mark=0 zone=0 use=2",
        Entry("udp", "198.51.100.7", "203.0.113.1", sport=5000, dport=53, remaining=20, nat=True),
    ),
    "snat-masquerade": (
        "ipv4     2 tcp      6 300 ESTABLISHED src=192.168.1.10 dst=93.184.216.34 sport=40000 "
        "dport=443 src=93.184.216.34 dst=203.0.113.1 sport=443 dport=40000 [ASSURED] mark=0 "
        "zone=0 use=2",
        Entry(
            "tcp",
            "192.168.1.10",
            "93.184.216.34",
            state="ESTABLISHED",
            sport=40000,
            dport=443,
            remaining=300,
            flag=FLAG_ASSURED,
            nat=True,
        ),
    ),
    "snat-port-rewrite-only": (
        "ipv4     2 udp      17 30 src=192.168.1.10 dst=93.184.216.34 sport=40000 dport=443 "
        "src=93.184.216.34 dst=192.168.1.10 sport=443 dport=61000 mark=0 zone=0 use=2",
        Entry(
            "udp", "192.168.1.10", "93.184.216.34", sport=40000, dport=443, remaining=30, nat=True
        ),
    ),
    "redirect-port": (
        "ipv4     2 tcp      6 60 SYN_RECV src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 "
        "src=10.0.0.2 dst=10.0.0.1 sport=3128 dport=40000 mark=0 zone=0 use=2",
        Entry(
            "tcp",
            "10.0.0.1",
            "10.0.0.2",
            state="SYN_RECV",
            sport=40000,
            dport=80,
            remaining=60,
            nat=True,
        ),
    ),
    "icmp-snat": (
        "ipv4     2 icmp     1 29 src=192.168.1.10 dst=8.8.8.8 type=8 code=0 id=99 "
        "src=8.8.8.8 dst=203.0.113.1 type=0 code=0 id=99 mark=0 zone=0 use=2",
        Entry("icmp", "192.168.1.10", "8.8.8.8", remaining=29, nat=True),
    ),
}

LIST = {  # conntrack -L
    "tcp": (
        "tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=51234 dport=443 "
        "src=10.0.0.2 dst=10.0.0.1 sport=443 dport=51234 [ASSURED] mark=0 use=1",
        Entry(
            "tcp",
            "10.0.0.1",
            "10.0.0.2",
            state="ESTABLISHED",
            sport=51234,
            dport=443,
            remaining=431999,
            flag=FLAG_ASSURED,
        ),
    ),
    "tcp-zone-real": (
        "tcp      6 3599 ESTABLISHED src=127.0.0.2 dst=127.0.0.1 sport=1000 dport=8983 "
        "src=127.0.0.1 dst=127.0.0.2 sport=8983 dport=1000 [ASSURED] mark=7 zone=3 use=1",
        Entry(
            "tcp",
            "127.0.0.2",
            "127.0.0.1",
            state="ESTABLISHED",
            sport=1000,
            dport=8983,
            remaining=3599,
            flag=FLAG_ASSURED,
            mark=7,
            zone=3,
        ),
    ),
    "udp-ipv6-no-prefix-real": (
        "udp      17 29 src=::1 dst=::1 sport=52714 dport=53 [UNREPLIED] src=::1 dst=::1 "
        "sport=53 dport=52714 mark=0 use=1",
        Entry(
            "udp", "::1", "::1", family="ipv6", sport=52714, dport=53, remaining=29, unreplied=True
        ),
    ),
    "udp-v4-real": (
        "udp      17 29 src=127.0.0.1 dst=127.0.0.1 sport=55416 dport=53 [UNREPLIED] "
        "src=127.0.0.1 dst=127.0.0.1 sport=53 dport=55416 mark=0 use=1",
        Entry("udp", "127.0.0.1", "127.0.0.1", sport=55416, dport=53, remaining=29, unreplied=True),
    ),
    "icmp": (
        "icmp     1 29 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=1234 src=10.0.0.2 "
        "dst=10.0.0.1 type=0 code=0 id=1234 mark=0 use=1",
        Entry("icmp", "10.0.0.1", "10.0.0.2", remaining=29),
    ),
    "icmpv6-no-prefix": (
        "icmpv6   58 29 src=2001:db8::1 dst=2001:db8::2 type=128 code=0 id=7 src=2001:db8::2 "
        "dst=2001:db8::1 type=129 code=0 id=7 mark=0 use=1",
        Entry("icmpv6", "2001:db8::1", "2001:db8::2", family="ipv6", remaining=29),
    ),
    "sctp": (
        "sctp     132 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=36412 dport=36412 "
        "src=10.0.0.2 dst=10.0.0.1 sport=36412 dport=36412 [ASSURED] mark=0 use=1",
        Entry(
            "sctp",
            "10.0.0.1",
            "10.0.0.2",
            state="ESTABLISHED",
            sport=36412,
            dport=36412,
            remaining=431999,
            flag=FLAG_ASSURED,
        ),
    ),
    "dccp": (
        "dccp     33 240 REQUEST src=10.0.0.1 dst=10.0.0.2 sport=5001 dport=5004 [UNREPLIED] "
        "src=10.0.0.2 dst=10.0.0.1 sport=5004 dport=5001 mark=0 use=1",
        Entry(
            "dccp",
            "10.0.0.1",
            "10.0.0.2",
            state="REQUEST",
            sport=5001,
            dport=5004,
            remaining=240,
            unreplied=True,
        ),
    ),
    "gre": (
        "gre      47 179 src=10.0.0.1 dst=10.0.0.2 srckey=0x0 dstkey=0x0 src=10.0.0.2 "
        "dst=10.0.0.1 srckey=0x0 dstkey=0x0 [ASSURED] mark=0 use=1",
        Entry("gre", "10.0.0.1", "10.0.0.2", remaining=179, flag=FLAG_ASSURED),
    ),
    "udplite": (
        "udplite  136 29 src=10.0.0.1 dst=10.0.0.2 sport=1000 dport=2000 [UNREPLIED] "
        "src=10.0.0.2 dst=10.0.0.1 sport=2000 dport=1000 mark=0 use=1",
        Entry(
            "udplite", "10.0.0.1", "10.0.0.2", sport=1000, dport=2000, remaining=29, unreplied=True
        ),
    ),
    "snat": (
        "tcp      6 120 TIME_WAIT src=192.168.1.10 dst=93.184.216.34 sport=40000 dport=443 "
        "src=93.184.216.34 dst=203.0.113.1 sport=443 dport=1025 [ASSURED] mark=0 use=1",
        Entry(
            "tcp",
            "192.168.1.10",
            "93.184.216.34",
            state="TIME_WAIT",
            sport=40000,
            dport=443,
            remaining=120,
            flag=FLAG_ASSURED,
            nat=True,
        ),
    ),
}

EXTENDED = {  # conntrack -L -o extended[,id]
    "tcp-real": (
        "ipv4     2 tcp      6 3599 ESTABLISHED src=127.0.0.2 dst=127.0.0.1 sport=1000 "
        "dport=8983 src=127.0.0.1 dst=127.0.0.2 sport=8983 dport=1000 [ASSURED] mark=7 zone=3 "
        "use=1 id=2036105301",
        Entry(
            "tcp",
            "127.0.0.2",
            "127.0.0.1",
            state="ESTABLISHED",
            sport=1000,
            dport=8983,
            remaining=3599,
            flag=FLAG_ASSURED,
            mark=7,
            zone=3,
        ),
    ),
    "udp-ipv6-real": (
        "ipv6     10 udp      17 29 src=::1 dst=::1 sport=52714 dport=53 [UNREPLIED] src=::1 "
        "dst=::1 sport=53 dport=52714 mark=0 use=1 id=3333366944",
        Entry(
            "udp", "::1", "::1", family="ipv6", sport=52714, dport=53, remaining=29, unreplied=True
        ),
    ),
    "udp-without-id": (
        "ipv4     2 udp      17 29 src=127.0.0.1 dst=127.0.0.1 sport=55416 dport=53 "
        "[UNREPLIED] src=127.0.0.1 dst=127.0.0.1 sport=53 dport=55416 mark=0 use=1",
        Entry("udp", "127.0.0.1", "127.0.0.1", sport=55416, dport=53, remaining=29, unreplied=True),
    ),
    "unknown-real": (
        "ipv4     2 unknown  2 99 src=127.0.0.2 dst=127.0.0.1 [UNREPLIED] src=127.0.0.1 "
        "dst=127.0.0.2 mark=0 use=1 id=2101146679",
        Entry("igmp", "127.0.0.2", "127.0.0.1", remaining=99, unreplied=True),
    ),
    "icmp-with-id": (
        "ipv4     2 icmp     1 29 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=1234 "
        "src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=1234 mark=0 use=1 id=42",
        Entry("icmp", "10.0.0.1", "10.0.0.2", remaining=29),
    ),
}

CASES = [
    pytest.param(line, entry, id=f"{fmt}-{name}")
    for fmt, table in (("proc", PROC), ("list", LIST), ("extended", EXTENDED))
    for name, (line, entry) in table.items()
]


@pytest.mark.parametrize(("line", "expected"), CASES)
def test_one_line(scanner, line: str, expected: Entry) -> None:
    # addresses come back in one spelling: RFC 5952 for IPv6 (/proc prints them in full)
    expected = replace(
        expected,
        src=ipaddress.ip_address(expected.src).compressed,
        dst=ipaddress.ip_address(expected.dst).compressed,
    )
    assert only_entry(scanner(line.encode() + b"\n")) == expected
    assert only_entry(scanner(line.encode())) == expected  # no final newline
    assert only_entry(scanner(line.encode() + b"\r\n")) == expected  # CRLF copy of a dump


def test_conntrack_list_unknown_protocol(scanner) -> None:
    line = (
        b"unknown  2 99 src=127.0.0.2 dst=127.0.0.1 [UNREPLIED] src=127.0.0.1 dst=127.0.0.2 "
        b"mark=0 use=1\n"
    )
    assert only_entry(scanner(line)) == Entry(
        "igmp", "127.0.0.2", "127.0.0.1", remaining=99, unreplied=True
    )


def test_directional_zone_is_an_entry(scanner) -> None:
    # ct_show_zone prints zone-orig= after the original tuple, zone-reply= after the reply
    line = (
        b"ipv4     2 udp      17 29 src=10.0.0.1 dst=10.0.0.2 sport=1 dport=53 zone-orig=5 "
        b"src=10.0.0.2 dst=10.0.0.1 sport=53 dport=1 zone-reply=5 mark=0 use=2\n"
    )
    tally = scanner(line)
    assert (tally.entries, tally.bad) == (1, 0)
    assert decode_shape(next(iter(tally.shapes))).dport == 53


def test_by_sport_false_skips_only_sports(scanner) -> None:
    data = "\n".join(line for line, _ in PROC.values()).encode()
    full = scanner(data)
    lean = scanner(data, by_sport=False)
    assert lean.sports == {}
    assert full.sports
    for name in (
        "lines",
        "entries",
        "bad",
        "shapes",
        "timeouts",
        "markzones",
        "nat_ports",
        "sources",
        "destinations",
    ):
        assert getattr(lean, name) == getattr(full, name), name


def test_offloaded_entries_count_in_no_timeout(scanner) -> None:
    data = "\n".join(
        PROC[name][0] for name in ("offload-tcp-no-timeout", "hw-offload-udp-no-timeout", "icmp")
    ).encode()
    summary = summarize(scanner(data), top=10)
    assert summary.no_timeout == 2
    assert (summary.offloaded, summary.hw_offloaded, summary.assured) == (2, 1, 0)
    assert summary.timeouts == {("icmp", ""): (0, 1, 0, 0, 0, 0)}


BAD = {
    "garbage": "hello world",
    "one-word": "garbage",
    "prefix-only": "ipv4     2",
    "no-tuples": "ipv4     2 tcp      6 431999 ESTABLISHED",
    "no-tuples-list": "tcp      6 431999 ESTABLISHED mark=0 use=1",
    "cut-in-original-src": "ipv4     2 tcp      6 431999 ESTABLISHED src=10.0.",
    "cut-in-original-dst": "tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0",
    "cut-in-original-ports": "ipv4     2 udp      17 29 src=10.0.0.1 dst=10.0.0.2 sport=5 dpo",
    "cut-before-reply": "ipv4     2 udp      17 29 src=10.0.0.1 dst=10.0.0.2 sport=5 dport=53 ",
    "reply-without-dst": (
        "ipv4     2 udp      17 29 src=10.0.0.1 dst=10.0.0.2 sport=5 dport=53 src=10.0.0.2"
    ),
    "non-numeric-sport": (
        "ipv4     2 tcp      6 100 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=http dport=80 "
        "src=10.0.0.2 dst=10.0.0.1 sport=80 dport=1 [ASSURED] mark=0 zone=0 use=2"
    ),
    "non-numeric-dport": (
        "tcp      6 100 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1 dport=8o "
        "src=10.0.0.2 dst=10.0.0.1 sport=80 dport=1 [ASSURED] mark=0 use=1"
    ),
    "port-above-65535": (
        "udp      17 29 src=10.0.0.1 dst=10.0.0.2 sport=65536 dport=53 "
        "src=10.0.0.2 dst=10.0.0.1 sport=53 dport=65536 mark=0 use=1"
    ),
    "proto-above-255": (
        "ipv4     2 tcp      256 100 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1 dport=80 "
        "src=10.0.0.2 dst=10.0.0.1 sport=80 dport=1 mark=0 zone=0 use=2"
    ),
    "proto-above-255-list": (
        "udp      1000 29 src=10.0.0.1 dst=10.0.0.2 sport=1 dport=53 "
        "src=10.0.0.2 dst=10.0.0.1 sport=53 dport=1 mark=0 use=1"
    ),
    "proto-not-a-number": (
        "udp      seventeen 29 src=10.0.0.1 dst=10.0.0.2 sport=1 dport=53 "
        "src=10.0.0.2 dst=10.0.0.1 sport=53 dport=1 mark=0 use=1"
    ),
    "huge-proto-number": (
        "udp      99999999999999999999 29 src=10.0.0.1 dst=10.0.0.2 sport=1 dport=53 "
        "src=10.0.0.2 dst=10.0.0.1 sport=53 dport=1 mark=0 use=1"
    ),
}


@pytest.mark.parametrize("line", list(BAD.values()), ids=list(BAD))
def test_bad_line(scanner, line: str) -> None:
    tally = scanner(line.encode() + b"\n")
    assert (tally.lines, tally.entries, tally.bad, tally.first_bad) == (1, 0, 1, 1)
    assert tally.first_bad_text == line.encode()
    assert tally.shapes == tally.timeouts == tally.sports == tally.markzones == {}
    assert tally.nat_ports == {}
    assert tally.sources.distinct == tally.destinations.distinct == 0


def test_bad_and_blank_lines_in_a_dump(scanner) -> None:
    good = PROC["tcp-established"][0]
    lines = [
        good,
        "",
        BAD["garbage"],
        BAD["cut-in-original-dst"],
        "   ",
        good,
        "\t",
        BAD["non-numeric-sport"],
        BAD["proto-above-255"],
        LIST["udp-v4-real"][0],
    ]
    tally = scanner("\n".join(lines).encode() + b"\n")
    assert (tally.lines, tally.entries, tally.bad) == (10, 3, 4)
    assert tally.first_bad == 3
    assert tally.first_bad_text == b"hello world"
    summary = summarize(tally, top=10)
    assert (summary.lines, summary.entries, summary.bad_lines) == (10, 3, 4)
    assert (summary.first_bad_line, summary.first_bad_text) == (3, "hello world")
    assert summary.protocols == {"tcp": 2, "udp": 1}


def test_only_blank_lines(scanner) -> None:
    tally = scanner(b"\n\n   \n\t\n")
    assert (tally.lines, tally.entries, tally.bad, tally.first_bad) == (4, 0, 0, None)


def test_empty_input(scanner) -> None:
    assert scanner(b"") == Tally()


def test_first_bad_text_is_cut_at_200_bytes(scanner) -> None:
    line = b"x" * 500
    tally = scanner(PROC["icmp"][0].encode() + b"\n" + line + b"\n")
    assert (tally.bad, tally.first_bad, tally.first_bad_text) == (1, 2, line[:200])


def test_summary_of_the_line_cases(scanner) -> None:
    data = "\n".join(line for line, _ in PROC.values()).encode()
    summary = summarize(scanner(data), top=3)
    entries = [entry for _, entry in PROC.values()]
    assert summary.entries == len(entries)
    assert summary.nated == sum(e.nat for e in entries) == 6
    assert summary.unreplied == sum(e.unreplied for e in entries)
    assert summary.families == {"ipv4": len(entries) - 2, "ipv6": 2}
    assert summary.zones == {0: len(entries) - 2, 65535: 1, 3: 1}
    assert summary.marks == {0: len(entries) - 2, 4294967295: 1, 16: 1}
    assert summary.no_timeout == 2
    assert summary.states[("tcp", "ESTABLISHED")] == 5
    assert summary.states[("sctp", "ESTABLISHED")] == 1
    assert summary.dports_nat == {("tcp", 80): 2, ("udp", 53): 1, ("tcp", 443): 1, ("udp", 443): 1}
