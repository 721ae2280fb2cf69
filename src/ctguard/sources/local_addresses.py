"""The host's own addresses, from ``ip -j addr show``: what tells a conntrack entry's
direction. An entry whose original destination is one of them was opened *to* this host
(it serves the port); one whose original source is one of them was opened *by* it (a
client); neither: forwarded through it.

Only the address text is kept, in every spelling a table prints it in: ``conntrack -L``
writes IPv6 compressed (``2001:db8::10``), /proc/net/nf_conntrack in full
(``2001:0db8:0000:0000:0000:0000:0000:0010``).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

from ctguard.errors import ParseError
from ctguard.host.commands import Commands
from ctguard.missing import Missing

IP_ADDR = "ip-addr"
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


def read_local_addresses(commands: Commands) -> LocalAddresses | Missing:
    text = commands.output(IP_ADDR)
    if isinstance(text, Missing):
        return text
    try:
        return parse_ip_addr_json(text)
    except ParseError as exc:
        return Missing(str(exc))
