"""How one table entry is folded into integer keys, shared by both scanners.

A scanner (the C one in ``_scan.c`` or the pure-Python ``scan_py``) never builds an
object per entry: it packs the few fields a breakdown needs into one int and counts
that int in a dict. This module is the single description of those packings; the C
scanner mirrors it and ``tests/table`` checks that both agree.

shape key (one per entry)::

    bit  0      IPv6
    bits 1-8    l4 protocol number
    bits 9-14   state id (0: no state field, see STATES; OTHER_STATE: a word we do not know)
    bits 15-31  original-direction dport + 1 (0: the protocol has no ports)
    bit  32     [UNREPLIED]
    bits 33-34  FLAG_* ([ASSURED], [OFFLOAD], [HW_OFFLOAD])
    bit  35     NAT (the reply tuple is not the original one swapped)
    bits 36-52  0 (they held the translated port, now counted apart: nat port key below)
    bit  53     the original source is one of the host's own addresses (a scan told none: 0)
    bit  54     the original destination is one of the host's own addresses
    bit  55     the original source is the host's own and its source port lies outside
                ip_local_port_range (a client bound to its own port: its replies do not
                come back to that range); 0 when the scan was given no range

timeout key: ``((proto << 6 | state) << 2 | flag) << 33 | (remaining + 1)``; remaining + 1
= 0 when the entry shows no timeout (offloaded entries omit it). The flag is there because
an assured UDP/GRE entry runs on the ``*_stream`` timeout, an unassured one on the short one.
sport key: ``proto << 17 | (sport + 1)``. nat port key, NATed entries with a reply sport
only: ``proto << 17 | (reply sport + 1)``, the port the flow was translated to (DNAT 8080
-> 8983 gives 8983); counted apart from the shape so that a dport and a translated port
drawn independently (a crafted dump) cannot multiply the shape keys. mark/zone key:
``mark << 16 | zone`` (an absent ``zone=`` is zone 0: /proc prints ``zone=0``,
``conntrack -L`` omits it; an absent ``mark=``, CONFIG_NF_CONNTRACK_MARK off, is mark 0).

address key (the original source and destination): the address as ``inet_pton(3)`` packs
it, so ``/proc``'s full IPv6 spelling and ``conntrack -L``'s compressed one are one key.
A text that is not an address (longer than MAX_ADDRESS_TEXT, or that inet_pton refuses)
makes the line bad: the kernel and conntrack-tools only print addresses there, and a key
of fixed size keeps a crafted 15 KB "address" from costing 15 KB. Counts per address
leave a scan as ADDRESS_RECORD-sized records (``address_counts``), never as one Python
object per address: an address is 16 bytes (IPv4 in the first 4, the rest zero), then a
native-order uint64 ``count << 8 | family`` (4 or 6).
"""

from __future__ import annotations

import struct
from socket import AF_INET, AF_INET6, inet_ntop, inet_pton

# TCP (nf_conntrack_proto_tcp.c tcp_conntrack_names), SCTP and DCCP state words as
# /proc/net/nf_conntrack and conntrack -L print them. The id is the index + 1; the C
# scanner has the same list in the same order.
STATES: tuple[str, ...] = (
    "NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK",
    "TIME_WAIT", "CLOSE", "SYN_SENT2",
    "CLOSED", "COOKIE_WAIT", "COOKIE_ECHOED", "SHUTDOWN_SENT", "SHUTDOWN_RECD",
    "SHUTDOWN_ACK_SENT", "HEARTBEAT_SENT", "HEARTBEAT_ACKED",
    "REQUEST", "RESPOND", "PARTOPEN", "OPEN", "CLOSEREQ", "CLOSING", "TIMEWAIT", "IGNORE",
    "INVALID", "RETRANS", "UNACK",
)  # fmt: skip
STATE_IDS: dict[bytes, int] = {name.encode(): i + 1 for i, name in enumerate(STATES)}
NO_STATE = 0
OTHER_STATE = 63

FLAG_NONE, FLAG_ASSURED, FLAG_OFFLOAD, FLAG_HW_OFFLOAD = 0, 1, 2, 3
FLAG_NAMES = {FLAG_NONE: "", FLAG_ASSURED: "ASSURED", FLAG_OFFLOAD: "OFFLOAD",
              FLAG_HW_OFFLOAD: "HW_OFFLOAD"}  # fmt: skip
FLAG_IDS: dict[bytes, int] = {b"[ASSURED]": 1, b"[OFFLOAD]": 2, b"[HW_OFFLOAD]": 3}

# names the kernel's l4proto_name() prints; anything else is shown by number
PROTOCOLS: dict[int, str] = {
    1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 33: "dccp", 41: "ipv6", 47: "gre",
    58: "icmpv6", 132: "sctp", 136: "udplite",
}  # fmt: skip
PORTED = frozenset({6, 17, 33, 132, 136})  # protocols whose tuples carry sport/dport


def shape_key(
    ipv6: bool,
    proto: int,
    state: int,
    dport: int | None,
    unreplied: bool,
    flag: int,
    nat: bool,
    src_local: bool = False,
    dst_local: bool = False,
    fixed_sport: bool = False,
) -> int:
    port = 0 if dport is None else dport + 1
    return (
        int(ipv6) | proto << 1 | state << 9 | port << 15 | int(unreplied) << 32
        | flag << 33 | int(nat) << 35 | int(src_local) << 53
        | int(dst_local) << 54 | int(fixed_sport) << 55
    )  # fmt: skip


def timeout_key(proto: int, state: int, flag: int, remaining: int | None) -> int:
    return ((proto << 6 | state) << 2 | flag) << 33 | (0 if remaining is None else remaining + 1)


def sport_key(proto: int, sport: int | None) -> int:
    return proto << 17 | (0 if sport is None else sport + 1)


def nat_port_key(proto: int, port: int) -> int:
    """A NATed entry's translated port (its reply tuple's sport)."""
    return proto << 17 | (port + 1)


def markzone_key(mark: int, zone: int) -> int:
    return mark << 16 | zone


def outside(port: int | None, ephemeral: tuple[int, int] | None) -> bool:
    """``port`` is a source port outside ip_local_port_range ``ephemeral`` (low, high);
    False without a port or a range (keys.shape_key bit 55).

    >>> outside(123, (32768, 60999)), outside(40000, (32768, 60999)), outside(123, None)
    (True, False, False)
    """
    return port is not None and ephemeral is not None and not ephemeral[0] <= port <= ephemeral[1]


# INET6_ADDRSTRLEN - 1: the longest address text (``ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255``)
MAX_ADDRESS_TEXT = 45
ADDRESS = struct.Struct("=16sQ")  # one record; the C scanner writes the same layout
ADDRESS_RECORD = ADDRESS.size  # 24


def address_key(text: bytes) -> bytes | None:
    """The 17-byte key of an address text: 16 packed bytes then the family (4 or 6); None
    when ``text`` is not an address. The C scanner decides the same way (same inet_pton).

    >>> address_key(b"10.0.0.1").hex(), address_key(b"10.0.0.01"), address_key(b"x")
    ('0a00000100000000000000000000000004', None, None)
    >>> address_key(b"::1") == address_key(b"0000:0000:0000:0000:0000:0000:0000:0001")
    True
    """
    if not text or len(text) > MAX_ADDRESS_TEXT or b"\0" in text:
        return None
    try:
        spelled = text.decode("ascii")
        if ":" in spelled:
            return inet_pton(AF_INET6, spelled) + b"\x06"
        return inet_pton(AF_INET, spelled) + bytes(12) + b"\x04"
    except (UnicodeDecodeError, OSError, ValueError):
        return None


def address_text(family: int, packed: bytes) -> str:
    """The RFC 5952 (IPv6) or dotted-quad (IPv4) spelling of a packed address.

    >>> address_text(6, bytes(15) + b"\x01"), address_text(4, bytes([192, 0, 2, 1]))
    ('::1', '192.0.2.1')
    """
    if family == 4:
        return inet_ntop(AF_INET, packed[:4])
    return inet_ntop(AF_INET6, packed)


# a line longer than this is bad, whatever it holds (real ones are under 1 KiB; secctx and
# labels included): keeps one garbage "line" from costing unbounded memory
MAX_LINE = 1 << 16

# upper bounds (seconds) of the remaining-timeout histogram; the last bucket is open.
# The C scanner has the same list.
HISTOGRAM_BOUNDS: tuple[int, ...] = (10, 60, 300, 3600, 86400)


def bucketed(remaining: int) -> int:
    """``remaining`` rounded up to its histogram bound (a scan that needs no what-if keeps
    one timeout key per bucket instead of one per distinct second).

    >>> [bucketed(r) for r in (0, 10, 11, 86400, 432000)]
    [10, 10, 60, 86400, 86401]
    """
    for bound in HISTOGRAM_BOUNDS:
        if remaining <= bound:
            return bound
    return HISTOGRAM_BOUNDS[-1] + 1


def protocol_name(number: int) -> str:
    return PROTOCOLS.get(number, str(number))


def state_name(state: int) -> str:
    if state == NO_STATE:
        return ""
    if state == OTHER_STATE or state > len(STATES):
        return "OTHER"
    return STATES[state - 1]
