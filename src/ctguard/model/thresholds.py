"""The limits behind the doctor's judgements, shared with the planner (CT402's share)."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Thresholds:
    """Defaults of docs/design.md §4; each can be changed with ``doctor --threshold NAME=VALUE``."""

    usage_warning: float = 80.0  # CT101, % of nf_conntrack_max
    usage_critical: float = 95.0
    memory_warning: float = 10.0  # CT201, % of MemTotal
    memory_critical: float = 25.0
    entries_per_bucket: float = 4.0  # CT105
    established_timeout: float = 86400  # CT401, seconds
    established_usage: float = 50.0  # CT401: % of the table idle ESTABLISHED (or full)
    composition_share: float = 50.0  # CT402: % of entries in one unhealthy kind
    port_share: float = 50.0  # CT505: % of entries on one NAT-free (protocol, port)
    table_min_entries: float = 1000  # CT402/CT505: below this the composition is noise

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def contradiction(self) -> str | None:
        """Why these limits cannot all be meant (a warning above its critical: usage_critical=9
        for 95 would page every host), or None.

        >>> Thresholds(usage_critical=9).contradiction()
        'usage_warning 80 is above usage_critical 9'
        """
        for kind in ("usage", "memory"):
            warning = getattr(self, f"{kind}_warning")
            critical = getattr(self, f"{kind}_critical")
            if warning > critical:
                return f"{kind}_warning {warning:g} is above {kind}_critical {critical:g}"
        return None
