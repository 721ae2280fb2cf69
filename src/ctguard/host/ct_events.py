"""Count new conntrack entries by listening to ctnetlink NEW events for a while.

Since Linux 5.10 the procfs ``new`` column is a constant 0 and ``insert`` counts only
entries created over ctnetlink, so no counter says how many entries the kernel creates
per second. Each entry created while a listener is bound to NFNLGRP_CONNTRACK_NEW is
announced to it (needs ``nf_conntrack_events`` != 0; with the default 2, events are
generated for entries created while someone listens), so counting events over the
interval measures the rate directly. A full socket buffer (ENOBUFS) makes the count a
lower bound; the result says so.
"""

from __future__ import annotations

import errno
import select
import socket
import struct
import time
from dataclasses import dataclass

from ctguard.missing import Missing

NETLINK_NETFILTER = 12
NFNLGRP_CONNTRACK_NEW = 1
_SO_RCVBUFFORCE = 33
_NLMSG_HDR = struct.Struct("=IHHII")


@dataclass(frozen=True)
class NewEvents:
    count: int
    lower_bound: bool  # the kernel dropped events (socket buffer overflow)


def count_messages(data: bytes) -> int:
    """Number of netlink messages in one datagram (headers walked by length)."""
    count, offset = 0, 0
    while offset + _NLMSG_HDR.size <= len(data):
        length = _NLMSG_HDR.unpack_from(data, offset)[0]
        if length < _NLMSG_HDR.size:
            break
        count += 1
        offset += (length + 3) & ~3
    return count


EVENT_BUFFER = 16 << 20  # room for a burst of events between two reads


def open_new_events_socket() -> socket.socket | Missing:
    """A netlink socket bound to NFNLGRP_CONNTRACK_NEW in the caller's namespace."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    except OSError as exc:
        return Missing(f"ctnetlink events unavailable: {exc.strerror or exc}")
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, EVENT_BUFFER)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, EVENT_BUFFER)
        sock.bind((0, 1 << (NFNLGRP_CONNTRACK_NEW - 1)))
    except OSError as exc:
        sock.close()
        return Missing(f"ctnetlink events: {exc.strerror or exc} (needs root)")
    return sock


def count_new_events(seconds: float) -> NewEvents | Missing:
    """Listen for ``seconds`` and count entries created meanwhile."""
    sock = open_new_events_socket()
    if isinstance(sock, Missing):
        time.sleep(seconds)
        return sock
    with sock:
        count, overflow = 0, False
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                break
            try:
                count += count_messages(sock.recv(1 << 17))
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                overflow = True
    return NewEvents(count, overflow)
