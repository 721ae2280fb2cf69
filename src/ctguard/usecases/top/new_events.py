"""The ``new`` rate: ctnetlink NEW events, counted while ``top`` runs.

Since 5.10 no counter counts created entries (see host/ct_events.py), so ``top`` listens
to the events the kernel sends for them and counts those instead.
"""

from __future__ import annotations

import errno
import socket

from ctguard.host.ct_events import count_messages, open_new_events_socket
from ctguard.host.root import SMALL_FILE_BYTES, HostRoot
from ctguard.missing import Missing

EVENTS_SYSCTL = "/proc/sys/net/netfilter/nf_conntrack_events"


class NewEventCounter:
    """Counts ctnetlink NEW events, one per entry the kernel creates, while it is open."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.total = 0
        self.overflows = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def drain(self) -> None:
        """Count what is queued, without blocking."""
        while True:
            try:
                data = self.sock.recv(1 << 17, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                self.overflows += 1  # the kernel dropped events: the rate is a lower bound
                continue
            self.total += count_messages(data)

    def close(self) -> None:
        self.sock.close()


def open_new_events(host: HostRoot) -> NewEventCounter | Missing:
    """A listener on NFNLGRP_CONNTRACK_NEW in the caller's namespace, or why not."""
    from ctguard.sources.modules import ctnetlink_absent_reason

    blocked = ctnetlink_absent_reason(host)
    if blocked:
        return Missing(blocked)
    setting = host.try_read_text(EVENTS_SYSCTL, SMALL_FILE_BYTES)
    if not isinstance(setting, Missing) and setting.strip() == "0":
        return Missing("nf_conntrack_events is 0, the kernel announces no new entries")
    sock = open_new_events_socket()
    return sock if isinstance(sock, Missing) else NewEventCounter(sock)
