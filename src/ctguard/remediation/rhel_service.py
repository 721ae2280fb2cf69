"""Edits to the RHEL 6/7 ``iptables`` service files (the model is ``model/rhel_iptables``):
the init script's NF_MODULES_COMMON back to the stock list (CT305), and the load list in
iptables-config (CT304). ``service_changes`` decides them; the other functions are the
text edits."""

from __future__ import annotations

import re
from collections.abc import Mapping
from fnmatch import fnmatchcase

from ctguard.model.rhel_iptables import (
    LOAD_LIST,
    STOCK_MODULES_LINE,
    grep_files_after,
    grep_patterns,
    load_list_fix,
    needs_restore,
    unloads_conntrack,
)
from ctguard.model.sysctl_files import SYSCTL_D, grepped_file
from ctguard.remediation.change_set import ChangeSet
from ctguard.remediation.changes import EDIT, Note
from ctguard.remediation.host_settings import HostSettings, configured_after, decoded
from ctguard.sources.iptables_service import InitScript, IptablesConfig
from ctguard.sources.sysctl_conf import SYSCTL_CONF


def service_changes(host: HostSettings, persisted: Mapping[str, int], changes: ChangeSet) -> bool:
    """CT305 then CT304; True when a service restart re-applies every configured key.

    ``persisted``: what the sysctl file sets once the plan is applied."""
    if host.service is None or host.facts.presence.kind == "builtin":
        return False
    config, script = host.service
    if needs_restore(script):
        before = host.read(script.path)
        if before is not None:
            after = restored_script(decoded(before) or "", script)
            changes.write(
                script.path,
                before,
                after.encode("utf-8", "surrogateescape"),
                0o755,
                "the stock NF_MODULES_COMMON, so 'service iptables stop' can empty a"
                " full table again (CT305)",
                EDIT,
                {"CT305"},
            )
    if not unloads_conntrack(config, script, restored=True):
        return False
    if script.grep_line is None:
        changes.notes.append(
            Note(
                f"{script.path}: no 'fgrep ... | sysctl -p -' line found:"
                " check by hand what 'service iptables start' re-applies"
            )
        )
        return False
    writes = {c.path: decoded(c.after) or "" for c in changes.files}
    files = grep_files_after(script, host.facts.grep_files, writes)
    fix = load_list_fix(config, script, files, configured_after(host, persisted))
    if fix.items:
        before = host.read(config.path)
        after = with_load_list(decoded(before) or "", config, fix.items)
        changes.write(
            config.path,
            before,
            after.encode("utf-8", "surrogateescape"),
            0o600,
            "re-apply every conntrack setting when the service reloads the module (CT304)",
            EDIT,
            {"CT304", "CT302"},
        )
    if fix.missed:
        changes.notes.append(
            Note(
                "'service iptables restart' will still lose: "
                + ", ".join(fix.missed)
                + f" (not in a file {script.path} greps)"
                + _link_hint(host, script),
                ("CT304",),
            )
        )
        changes.withdraw("CT304")
        return False
    return True


def _link_hint(host: HostSettings, script: InitScript) -> str:
    """RHEL 7 greps /etc/sysctl.d/* and reads sysctl.conf through the stock link to it."""
    link = f"{SYSCTL_D}/99-sysctl.conf"
    patterns = grep_patterns(script)
    if grepped_file(host.config, SYSCTL_CONF, patterns) or not any(
        fnmatchcase(link, pattern) for pattern in patterns
    ):
        return ""
    return f"; restoring the stock link (ln -s ../sysctl.conf {link}) makes it read {SYSCTL_CONF}"


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
