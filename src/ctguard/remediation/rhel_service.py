"""Edits to the RHEL 6/7 ``iptables`` service files (the model is ``model/rhel_iptables``):
the init script's NF_MODULES_COMMON back to the stock list (CT305), and the load list in
iptables-config (CT304)."""

from __future__ import annotations

import re

from ctguard.model.rhel_iptables import LOAD_LIST, STOCK_MODULES_LINE
from ctguard.sources.iptables_service import InitScript, IptablesConfig


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
