"""The addresses this namespace owns, read once for the two things that need them.

- CT501: a packet to one of them is delivered locally (prerouting -> input) and never meets
  the forward hook, whatever ``ip_forward`` says.
- ``analyze`` and CT505: an entry whose original destination is one of them was opened *to*
  this host (it serves the port); one whose original source is one of them was opened *by*
  it (a client); neither: forwarded through it.

Read from ``/proc/net/fib_trie`` (IPv4) and ``/proc/net/if_inet6`` (any kernel, any
iproute2), else from ``ip -j addr show`` (a snapshot may hold only that). Tables print IPv6
compressed (``conntrack -L``) or in full (/proc/net/nf_conntrack): ``spellings`` has both.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

from ctguard.errors import ParseError
from ctguard.host.caps import MAX_FILE_BYTES
from ctguard.host.commands import Commands
from ctguard.host.root import HostRoot
from ctguard.missing import Missing

IP_ADDR = "ip-addr"
FIB_TRIE = "/proc/net/fib_trie"
IF_INET6 = "/proc/net/if_inet6"
# More than this many addresses (an IPVS node puts every service address on kube-ipvs0):
# the set is still exact, but a table scan checks two lookups per entry against it, so
# keep it bounded and say so rather than grow without limit.
MAX_ADDRESSES = 65536


@dataclass(frozen=True)
class LocalAddresses:
    addresses: frozenset[str]  # canonical (compressed) text

    def spellings(self) -> frozenset[bytes]:
        """Every text a conntrack table may print for these addresses.

        >>> sorted(LocalAddresses(frozenset({"10.0.0.10", "2001:db8::10"})).spellings())
        [b'10.0.0.10', b'2001:0db8:0000:0000:0000:0000:0000:0010', b'2001:db8::10']
        """
        out: set[bytes] = set()
        for text in self.addresses:
            address = ipaddress.ip_address(text)
            out.add(address.compressed.encode())
            out.add(address.exploded.encode())
        return frozenset(out)

    def cidrs(self) -> frozenset[str]:
        """Each address as a host route, ``/32`` or ``/128`` (what rule matches compare).

        >>> sorted(LocalAddresses(frozenset({"10.0.0.10", "::1"})).cidrs())
        ['10.0.0.10/32', '::1/128']
        """
        return frozenset(f"{a}/{ipaddress.ip_address(a).max_prefixlen}" for a in self.addresses)


def parse_ip_addr_json(text: str) -> LocalAddresses:
    """``ip -j addr show``: a list of interfaces, each with ``addr_info`` entries.

    >>> sample = ('[{"ifindex":1,"ifname":"lo","addr_info":[{"family":"inet",'
    ...   '"local":"127.0.0.1","prefixlen":8},{"family":"inet6","local":"::1"}]},'
    ...   '{"ifindex":2,"ifname":"eth0","addr_info":[{"family":"inet","local":"10.0.0.10",'
    ...   '"prefixlen":24},{"family":"inet6","local":"fe80::1","scope":"link"}]}]')
    >>> sorted(parse_ip_addr_json(sample).addresses)
    ['10.0.0.10', '127.0.0.1', '::1', 'fe80::1']
    """
    try:
        interfaces = json.loads(text)
    except ValueError as exc:
        raise ParseError(f"ip -j addr: not JSON ({exc})") from None
    if not isinstance(interfaces, list):
        raise ParseError("ip -j addr: expected a list of interfaces")
    found: set[str] = set()
    for interface in interfaces:
        infos = interface.get("addr_info", []) if isinstance(interface, dict) else []
        for info in infos if isinstance(infos, list) else []:
            local = info.get("local") if isinstance(info, dict) else None
            if not isinstance(local, str):
                continue
            try:
                found.add(ipaddress.ip_address(local.split("%")[0]).compressed)
            except ValueError:
                raise ParseError(f"ip -j addr: {local!r} is not an address") from None
            if len(found) > MAX_ADDRESSES:
                raise ParseError(f"ip -j addr: more than {MAX_ADDRESSES:,} addresses")
    return LocalAddresses(frozenset(found))


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
    ['127.0.0.1', '169.254.20.10']
    """
    found: set[str] = set()
    leaf: str | None = None
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "|--":
            leaf = words[1]
        elif leaf is not None and words[:1] == ["/32"] and words[-1:] == ["LOCAL"]:
            found.add(str(ipaddress.IPv4Address(leaf)))
    return frozenset(found)


def parse_if_inet6(text: str) -> frozenset[str]:
    """Column 1 is the address in 32 hex digits.

    >>> sorted(parse_if_inet6("fd000000000000000000000000000002 04 40 00 82     eth0\\n"))
    ['fd00::2']
    """
    found = set()
    for line in text.splitlines():
        words = line.split()
        if words and len(words[0]) == 32:
            found.add(str(ipaddress.IPv6Address(int(words[0], 16))))
    return frozenset(found)


def read_local_addresses(host: HostRoot, commands: Commands) -> LocalAddresses | Missing:
    """procfs first (it is there on every kernel; old iproute2 has no ``-j``), else the
    ``ip -j addr`` output; Missing with both reasons when neither is readable."""
    v4 = host.try_read_text(FIB_TRIE, MAX_FILE_BYTES)
    if not isinstance(v4, Missing):
        try:
            v6 = host.try_read_text(IF_INET6, MAX_FILE_BYTES)  # absent: IPv6 is off
            found = parse_fib_trie(v4) | (
                frozenset() if isinstance(v6, Missing) else parse_if_inet6(v6)
            )
        except ValueError as exc:
            return Missing(f"{FIB_TRIE}: {exc}")
        if len(found) > MAX_ADDRESSES:
            return Missing(f"{FIB_TRIE}: more than {MAX_ADDRESSES:,} addresses")
        return LocalAddresses(found)
    text = commands.output(IP_ADDR)
    if isinstance(text, Missing):
        return Missing(f"{v4.reason}; {text.reason}")
    try:
        return parse_ip_addr_json(text)
    except ParseError as exc:
        return Missing(str(exc))
