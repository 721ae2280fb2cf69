"""The addresses this namespace owns: ``/proc/net/fib_trie`` (IPv4) and ``/proc/net/if_inet6``.

A packet to one of them is delivered locally (prerouting -> input) and never meets the
forward hook, whatever ``ip_forward`` says; CT501 needs that to know which filter chains
see a NOTRACK rule's packets.
"""

from __future__ import annotations

import ipaddress

from ctguard.host.root import MAX_FILE_BYTES, HostRoot
from ctguard.missing import Missing

FIB_TRIE = "/proc/net/fib_trie"
IF_INET6 = "/proc/net/if_inet6"


def parse_fib_trie(text: str) -> frozenset[str]:
    """Each leaf followed by a ``/32 host LOCAL`` line is a local address (the kernel prints
    the leaf's key, then one line per alias: prefix length, scope, route type).

    >>> sample = '''Local:
    ...   +-- 0.0.0.0/0 3 0 5
    ...      +-- 127.0.0.0/8 2 0 2
    ...            |-- 127.0.0.1
    ...               /32 host LOCAL
    ...      |-- 169.254.20.10
    ...         /32 host LOCAL
    ...      |-- 192.0.2.255
    ...         /32 link BROADCAST
    ... '''
    >>> sorted(parse_fib_trie(sample))
    ['127.0.0.1/32', '169.254.20.10/32']
    """
    found: set[str] = set()
    leaf: str | None = None
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "|--":
            leaf = words[1]
        elif leaf is not None and words[:1] == ["/32"] and words[-1:] == ["LOCAL"]:
            found.add(f"{ipaddress.IPv4Address(leaf)}/32")
    return frozenset(found)


def parse_if_inet6(text: str) -> frozenset[str]:
    """Column 1 is the address in 32 hex digits.

    >>> sorted(parse_if_inet6("fd000000000000000000000000000002 04 40 00 82     eth0\\n"))
    ['fd00::2/128']
    """
    found = set()
    for line in text.splitlines():
        words = line.split()
        if words and len(words[0]) == 32:
            found.add(f"{ipaddress.IPv6Address(int(words[0], 16))}/128")
    return frozenset(found)


def read_local_addresses(host: HostRoot) -> frozenset[str] | Missing:
    """Local addresses as ``/32`` and ``/128`` CIDRs; Missing without the IPv4 table (IPv6
    may be disabled: no if_inet6 then means no IPv6 address)."""
    v4 = host.try_read_text(FIB_TRIE, MAX_FILE_BYTES)
    if isinstance(v4, Missing):
        return v4
    v6 = host.try_read_text(IF_INET6, MAX_FILE_BYTES)
    return parse_fib_trie(v4) | (frozenset() if isinstance(v6, Missing) else parse_if_inet6(v6))
