"""Was the IPv6 filter read? (pure: the ruleset's gaps and the loaded modules in, a reason out)

IPv6 rules live in one of two places: legacy ip6tables tables (in the kernel's ip6_tables,
listed only by ``ip6tables-save``) or nft tables (native ``ip6``/``inet`` ones, and those
iptables-nft makes, listed by ``nft``). So an unreadable ``ip6tables-save`` hides nothing
when nft was read and no legacy ip6tables table can exist: ``ip6table_filter`` and the other
legacy tables need the ``ip6_tables`` module, so while it is not loaded there are none.
When /proc/modules was not read, ``iptables -V`` saying ``nf_tables`` is the next best
evidence. ``notrack`` untracks IPv6 only where the IPv6 filter was read; ``disable`` refuses
while rules that may need conntrack could not be read.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

IP6TABLES_SAVE = "ip6tables-save"
LEGACY_IPV6_MODULE = "ip6_tables"


def nft_was_read(gaps: Sequence[str]) -> bool:
    """No gap names nft (a gap names its command: "nft ... exited 1", "the snapshot has no
    nft-json output")."""
    return not any(
        "nft" in gap and IP6TABLES_SAVE not in gap and "iptables-save" not in gap for gap in gaps
    )


def ipv6_filter_unread(
    gaps: Sequence[str], modules: Collection[str] | None, iptables_variant: str | None = None
) -> str | None:
    """Why the IPv6 filter was not read, or None when it was (or nothing hides it).

    ``gaps``: the rule sources that could not be read, and why (``Ruleset.missing``);
    ``modules``: the names in /proc/modules (None: not read); ``iptables_variant``: "nft" or
    "legacy" from ``iptables -V`` or the ``iptables-save`` header (None: unknown).

    >>> gap = "ip6tables-save exited 1: Permission denied (you must be root)"
    >>> ipv6_filter_unread([gap], {"nf_tables"}) is None
    True
    >>> ipv6_filter_unread([gap], {"nf_tables", "ip6_tables"}).endswith("may hold IPv6 rules")
    True
    """
    why = next((gap for gap in gaps if IP6TABLES_SAVE in gap), None)
    if why is None:
        return None
    if not nft_was_read(gaps):
        return why
    if modules is not None:
        if LEGACY_IPV6_MODULE not in modules:
            return None
        return (
            f"{why}; {LEGACY_IPV6_MODULE} is loaded: legacy ip6tables tables, which nft does"
            " not list, may hold IPv6 rules"
        )
    return None if iptables_variant == "nft" else why
