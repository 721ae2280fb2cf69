"""Which machine this is: its hostname and its machine id, read through the host root.

The hostname is the UTS namespace's (``/proc/sys/kernel/hostname``, what ``hostname``
prints). The machine id is systemd's ``/etc/machine-id`` (machine-id(5)); hosts without
systemd (CentOS 6) have only D-Bus's ``/var/lib/dbus/machine-id``, the same 32 hex digits
(systemd links the two, so whichever is read first is the same id). A reinstalled or
cloned host can share a hostname with another; the pair tells them apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ctguard.host.root import HostRoot
from ctguard.missing import Missing

HOSTNAME_FILE = "/proc/sys/kernel/hostname"
# in the order they are asked: systemd's, then D-Bus's (the only one on CentOS 6)
MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")
_SMALL = 4096  # a hostname is at most 64 bytes, a machine id 33
_MACHINE_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Identity:
    hostname: str | None  # None: not readable
    machine_id: str | None  # 32 lowercase hex digits; None: absent, empty or not an id


def parse_hostname(text: str) -> str | None:
    """The first line of ``/proc/sys/kernel/hostname``; None when empty.

    >>> parse_hostname("web03.example.com\\n")
    'web03.example.com'
    >>> parse_hostname("\\n") is None
    True
    """
    lines = text.strip().splitlines()
    return lines[0].strip() or None if lines else None


def parse_machine_id(text: str) -> str | None:
    """The id in a machine-id file: 32 hex digits on one line (machine-id(5)).

    An image built to be cloned ships the file empty or with ``uninitialized`` (systemd
    247+ writes that until first boot finishes): no id, rather than one every clone shares.

    >>> parse_machine_id("4b6fd9c1e63a4a58a2de5d3bc9e0a4f1\\n")
    '4b6fd9c1e63a4a58a2de5d3bc9e0a4f1'
    >>> parse_machine_id("uninitialized\\n") is None
    True
    """
    value = text.strip().lower()
    return value if _MACHINE_ID.fullmatch(value) else None


def read_identity(host: HostRoot) -> Identity:
    """Hostname and machine id of a host, a namespace's host or a snapshot; None for what
    cannot be read (an old snapshot has no machine id)."""
    text = host.try_read_text(HOSTNAME_FILE, _SMALL)
    hostname = None if isinstance(text, Missing) else parse_hostname(text)
    machine_id = None
    for path in MACHINE_ID_FILES:
        text = host.try_read_text(path, _SMALL)
        if not isinstance(text, Missing):
            machine_id = parse_machine_id(text)
            if machine_id is not None:
                break
    return Identity(hostname, machine_id)
