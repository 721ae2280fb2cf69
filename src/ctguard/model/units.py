"""Human units for the text renderers."""

from __future__ import annotations


def human_bytes(value: int | None) -> str:
    """Binary units, one decimal.

    >>> human_bytes(67108864)
    '64.0 MiB'
    """
    if value is None:
        return "?"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{value} B"


def number(value: float | None, unknown: str = "?") -> str:
    if value is None:
        return unknown
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


def percent(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f} %"
