"""The RHEL 6/7 ``iptables`` service: what to change so that a restart keeps the values.

``service iptables stop`` unloads nf_conntrack (``IPTABLES_MODULES_UNLOAD``); ``start``
loads it back and re-applies only the sysctl lines that ``fgrep`` of each
``IPTABLES_SYSCTL_LOAD_LIST`` item finds in the files the script greps (CT304). An init
script edited so that stop keeps nf_conntrack (CT305) goes back to the stock line: stop
must stay able to empty a full table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import PurePosixPath

from ctguard.rules.persistence import fgrep_reapplied, load_list_items
from ctguard.sources.iptables_service import (
    STOCK_NF_MODULES_COMMON,
    InitScript,
    IptablesConfig,
)

LOAD_LIST = "IPTABLES_SYSCTL_LOAD_LIST"
STOCK_MODULES_LINE = f"NF_MODULES_COMMON=({' '.join(STOCK_NF_MODULES_COMMON)})"


def unloads_conntrack(config: IptablesConfig, script: InitScript, restored: bool) -> bool:
    var = config.get("IPTABLES_MODULES_UNLOAD")
    value = var.value if var is not None else (script.unload_default or "yes")
    modules = STOCK_NF_MODULES_COMMON if restored else script.nf_modules_common
    return value.lower() == "yes" and (modules is None or "nf_conntrack" in modules)


def needs_restore(script: InitScript) -> bool:
    return script.nf_modules_common is not None and "nf_conntrack" not in script.nf_modules_common


def restored_script(text: str, script: InitScript) -> str:
    """The script with its NF_MODULES_COMMON assignment back to the stock list."""
    assert script.modules_line is not None and script.modules_text is not None
    lines = text.split("\n")
    first = script.modules_line - 1
    count = script.modules_text.count("\n") + 1
    old = lines[first]
    indent = old[: len(old) - len(old.lstrip(" \t"))]
    comment = re.search(r"\)\s*(#.*)$", script.modules_text.split("\n")[-1])
    tail = f" {comment.group(1)}" if comment else ""
    lines[first : first + count] = [f"{indent}{STOCK_MODULES_LINE}{tail}"]
    return "\n".join(lines)


def grep_patterns(script: InitScript) -> tuple[str, ...]:
    """The script's grep operands as absolute paths (it runs in /)."""
    return tuple(str(PurePosixPath("/", pattern)) for pattern in script.grep_files)


def grep_files_after(
    script: InitScript,
    before: tuple[tuple[str, str], ...],
    writes: Mapping[str, str],
) -> tuple[tuple[str, str], ...]:
    """(path, text) the script's fgrep reads once ``writes`` (path -> new text) are made."""
    texts = dict(before)
    texts.update(writes)
    files: list[tuple[str, str]] = []
    for absolute in grep_patterns(script):
        if not any(char in absolute for char in "*?["):
            if absolute in texts:
                files.append((absolute, texts[absolute]))
            continue
        matched = sorted(
            path
            for path in texts
            if fnmatchcase(path, absolute) and not PurePosixPath(path).name.startswith(".")
        )
        files.extend((path, texts[path]) for path in matched)
    return tuple(files)


@dataclass(frozen=True)
class LoadListFix:
    items: tuple[str, ...]  # the new list; () = the current one already works
    missed: tuple[str, ...]  # runtime names no list can re-apply (not in a grepped file)


def load_list_fix(
    config: IptablesConfig,
    script: InitScript,
    files: tuple[tuple[str, str], ...],
    wanted: Mapping[str, tuple[str, str]],  # runtime name -> (value, the line that sets it)
) -> LoadListFix:
    """The load list that makes a restart re-apply every wanted value, checked by
    simulating the script's own ``fgrep ITEM FILES | sysctl -p -``."""

    def misses(items: tuple[str, ...]) -> tuple[str, ...]:
        again = fgrep_reapplied(script, items, files)
        return tuple(
            name for name, (value, _) in sorted(wanted.items())
            if name not in again or again[name][1] != value
        )  # fmt: skip

    current = config.sysctl_load_list
    if not misses(current):
        return LoadListFix((), ())
    keep = tuple(item for item in current if "conntrack" not in item)
    proposal = keep + tuple(load_list_items([line for _, line in wanted.values()]))
    return LoadListFix(proposal, misses(proposal))


def with_load_list(text: str, config: IptablesConfig, items: tuple[str, ...]) -> str:
    """iptables-config with the load list set (its line replaced, or appended)."""
    line = f'{LOAD_LIST}="{" ".join(items)}"'
    var = config.get(LOAD_LIST)
    lines = text.split("\n")
    if var is None:
        if text and not text.endswith("\n"):
            lines.append("")
        if lines and lines[-1] == "":
            lines.pop()
        lines += ["# re-apply every conntrack setting when the service reloads nf_conntrack", line]
        return "\n".join(lines) + "\n"
    first = var.line - 1
    lines[first : first + var.text.count("\n") + 1] = [line]
    return "\n".join(lines)
