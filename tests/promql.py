"""Reading PromQL in tests: which metrics an expression reads (the alert rules' test and the
dashboard's test check them against src/ctguard/output/metric_names.ALL)."""

from __future__ import annotations

import re


def metrics_read(expr: str) -> set[str]:
    """Identifiers that are metrics: not functions, keywords, labels, durations or strings."""
    without_strings = re.sub(r'"[^"]*"', "", expr)
    without_matchers = re.sub(
        r"\{[^}]*\}|\[[^\]]*\]|\b(?:on|ignoring|by|without|group_left|group_right)\s*\([^)]*\)",
        "",
        without_strings,
    )
    words = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b(?!\s*\()", without_matchers))
    return words - {"and", "or", "unless", "bool", "offset", "group_left", "group_right"}
