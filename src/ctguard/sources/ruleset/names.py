"""Netfilter names both syntaxes meet: protocols, and the iptables extensions that use
conntrack. iptables-save prints them, and ``nft -j`` shows an iptables-nft rule as ``xt``
expressions that name the same extensions."""

from __future__ import annotations

# /etc/protocols numbers iptables-save may print instead of names (`-p 6`).
_PROTO_NUMBERS = {
    "1": "icmp", "6": "tcp", "17": "udp", "33": "dccp", "47": "gre", "50": "esp",
    "51": "ah", "58": "ipv6-icmp", "132": "sctp", "136": "udplite",
}  # fmt: skip
PROTO_ALIASES = {"icmpv6": "ipv6-icmp", "icmp6": "ipv6-icmp", "ipv6-icmp": "ipv6-icmp"}


def proto_name(value: str) -> str | None:
    """Canonical protocol name; None for "any" (``-p all``, ``-p 0``)."""
    name = value.lower()
    if name in ("all", "0"):
        return None
    return _PROTO_NUMBERS.get(name) or PROTO_ALIASES.get(name, name)


def nat_target_verdict(name: str, chain: str) -> str | None:
    """The NAT verdict of an iptables target in ``chain``; None for any other target."""
    if name in ("DNAT", "SNAT", "MASQUERADE", "REDIRECT"):
        return name.lower()
    if name == "NETMAP":  # maps destinations in PREROUTING/OUTPUT, sources in POSTROUTING/INPUT
        return "snat" if chain in ("POSTROUTING", "INPUT") else "dnat"
    return None


# Matches and targets that look at or create conntrack entries (iptables-extensions(8)).
CONNTRACK_MATCHES = frozenset(
    {"state", "conntrack", "connmark", "connlimit", "connbytes", "connlabel", "helper"}
)
CONNTRACK_TARGETS = frozenset(
    {"DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NETMAP", "CONNMARK", "CONNSECMARK", "SYNPROXY"}
)
