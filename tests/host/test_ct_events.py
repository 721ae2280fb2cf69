"""count_messages walks netlink headers in one datagram."""

from __future__ import annotations

import struct

from ctguard.host.ct_events import count_messages

# struct nlmsghdr (include/uapi/linux/netlink.h): len, type, flags, seq, pid; host order.
NLMSGHDR = "=IHHII"
HDR = struct.calcsize(NLMSGHDR)
IPCTNL_MSG_CT_NEW = (1 << 8) | 0  # NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_NEW


def message(payload: bytes, seq: int = 0, length: int | None = None) -> bytes:
    """One message, padded to NLMSG_ALIGNTO (4) like the kernel does."""
    size = HDR + len(payload) if length is None else length
    raw = struct.pack(NLMSGHDR, size, IPCTNL_MSG_CT_NEW, 0x0600, seq, 0) + payload
    return raw + b"\0" * (-len(raw) % 4)


def test_header_is_sixteen_bytes():
    assert HDR == 16


def test_empty_datagram():
    assert count_messages(b"") == 0


def test_one_message():
    assert count_messages(message(b"\x02\x00\x00\x00" + b"x" * 120)) == 1


def test_header_only_message():
    assert count_messages(message(b"")) == 1


def test_several_messages_with_padding():
    payloads = [b"a" * 1, b"b" * 4, b"c" * 7, b"", b"d" * 130]
    datagram = b"".join(message(p, seq=i) for i, p in enumerate(payloads))
    assert len(datagram) == sum(HDR + len(p) + (-len(p) % 4) for p in payloads)
    assert count_messages(datagram) == 5


def test_many_messages():
    datagram = b"".join(message(b"\0" * (i % 9), seq=i) for i in range(1000))
    assert count_messages(datagram) == 1000


def test_zero_length_header_stops_the_walk():
    # A length below the header size would loop forever if trusted.
    bad = struct.pack(NLMSGHDR, 0, 0, 0, 0, 0)
    assert count_messages(bad) == 0
    assert count_messages(message(b"ok") + bad + message(b"lost")) == 1
    short = struct.pack(NLMSGHDR, HDR - 1, 0, 0, 0, 0)
    assert count_messages(message(b"") + short) == 1


def test_trailing_bytes_shorter_than_a_header_are_ignored():
    assert count_messages(message(b"abcd") + b"\0" * (HDR - 1)) == 1
    assert count_messages(b"\x10\x00\x00") == 0


def test_length_beyond_the_datagram_counts_once():
    # A truncated last message is still one message; the walk ends there.
    assert count_messages(message(b"abcd", length=4096)) == 1
    assert count_messages(message(b"") + message(b"abcd", length=4096) + message(b"")) == 2
