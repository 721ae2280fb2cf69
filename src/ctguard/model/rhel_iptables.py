"""The RHEL 6/7 ``iptables`` service, modelled once for the rules and the planner.

``service iptables stop`` unloads nf_conntrack (``IPTABLES_MODULES_UNLOAD``); ``start``
loads it back and re-applies only the sysctl lines that ``fgrep`` of each
``IPTABLES_SYSCTL_LOAD_LIST`` item finds in the files the script greps (CT304). An init
script edited so that stop keeps nf_conntrack (CT305) should go back to the stock line:
stop must stay able to empty a full table. The edits themselves are in
``remediation/rhel_service.py``. Whether that unload succeeds right now is
``ipv6_hold``: IPv6 rules that use conntrack keep it loaded until ip6tables stops too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import PurePosixPath

from ctguard.missing import Missing
from ctguard.model.firewall import needs_conntrack
from ctguard.sources.iptables_service import (
    STOCK_NF_MODULES_COMMON,
    GrepHit,
    InitScript,
    IptablesConfig,
    simulate_fgrep,
)
from ctguard.sources.modules import PROC_MODULES, ModuleLine
from ctguard.sources.ruleset import Rule, Ruleset, describe
from ctguard.sources.sysctl_conf import parse_sysctl_conf, runtime_name

LOAD_LIST = "IPTABLES_SYSCTL_LOAD_LIST"
STOCK_MODULES_LINE = f"NF_MODULES_COMMON=({' '.join(STOCK_NF_MODULES_COMMON)})"


def unload_setting(config: IptablesConfig, script: InitScript) -> tuple[bool, str]:
    """Whether ``IPTABLES_MODULES_UNLOAD`` is on (stop unloads the listed modules), and the
    line or default that says so. Decided by what the script does: one that never runs
    rmmod or modprobe -r (iptables-services 1.4.21-29 and later) unloads nothing, whatever
    the variable says. Every RHEL 5/6/7 script tests ``[ "x$IPTABLES_MODULES_UNLOAD" =
    "xyes" ]``: case-sensitive, so "YES" or "Yes" unloads nothing either."""
    if not script.unloads_modules:
        return False, f"{script.path} never unloads a module (no rmmod or modprobe -r)"
    var = config.get("IPTABLES_MODULES_UNLOAD")
    value = var.value if var is not None else (script.unload_default or "yes")
    shown = (
        f"{config.path}:{var.line}: {var.text.strip()}"
        if var
        else f"IPTABLES_MODULES_UNLOAD unset (default {value})"
    )
    return value == "yes", shown


def unloads_conntrack(config: IptablesConfig, script: InitScript, restored: bool) -> bool:
    """Whether ``service iptables stop`` unloads nf_conntrack (with the stock module list
    when ``restored``): then ``start`` loads it with kernel defaults."""
    unload, _ = unload_setting(config, script)
    modules = STOCK_NF_MODULES_COMMON if restored else script.nf_modules_common
    return unload and (modules is None or "nf_conntrack" in modules)


IPV6_L3 = "nf_conntrack_ipv6"  # a module of its own until 4.19 (merged into nf_conntrack)


@dataclass(frozen=True)
class Ipv6Hold:
    """What keeps nf_conntrack loaded through ``service iptables stop`` right now."""

    rules: tuple[Rule, ...]  # ip6tables rules whose match or target uses nf_conntrack
    module: ModuleLine | None  # nf_conntrack_ipv6 with references no module names

    @property
    def shown(self) -> str:
        parts = []
        if self.rules:
            more = len(self.rules) - 1
            parts.append(
                describe(self.rules[0])
                + (f" and {more} more ip6tables rule{'s' * (more > 1)}" if more else "")
            )
        if self.module is not None:
            line = self.module
            unnamed = line.refcount - len(line.used_by)
            named = f"{', '.join(line.used_by)} and {unnamed} unnamed" if line.used_by else None
            users = named or "no module named"
            parts.append(f"{PROC_MODULES}: {line.name} used by {line.refcount} ({users})")
        return "; ".join(parts)


def ipv6_hold(
    ruleset: Ruleset | Missing, modules: Mapping[str, ModuleLine] | Missing
) -> Ipv6Hold | None:
    """Why ``service iptables stop`` fails, right now, to unload nf_conntrack; None when
    nothing seen stops it.

    Its ``rmmod_r`` removes the users ``lsmod`` names first, then runs ``modprobe -r`` on
    each module and ignores failures. The iptables service flushes only IPv4 rules: an
    IPv6 rule matching on state (``-m state``, ``-m conntrack``: RHEL 6's and 7's stock
    ip6tables rules), using NAT or the CT target, or NOTRACK (xt_NOTRACK and xt_CT use
    nf_conntrack too) keeps its match or target module, and nf_conntrack_ipv6, referenced
    by the rule and not by a module ``lsmod`` names, so their ``modprobe -r`` fails and
    nf_conntrack, which they use, stays loaded with its values. ``service ip6tables stop``
    flushes those rules and unloads the same common modules (the same script with
    IPV=ip6); after it, an iptables stop unloads too.
    """
    rules: tuple[Rule, ...] = ()
    if not isinstance(ruleset, Missing):
        rules = tuple(
            rule
            for rule in ruleset.rules()
            if rule.backend == "ip6tables" and (needs_conntrack(rule) or rule.verdict == "notrack")
        )
    module = None if isinstance(modules, Missing) else modules.get(IPV6_L3)
    if module is not None and module.refcount <= len(module.used_by):
        module = None
    return Ipv6Hold(rules, module) if rules or module is not None else None


def needs_restore(script: InitScript) -> bool:
    return script.nf_modules_common is not None and "nf_conntrack" not in script.nf_modules_common


def prefixes_names(script: InitScript, files: tuple[tuple[str, str], ...]) -> bool:
    """fgrep over several files without -h prints "file:line", which sysctl -p rejects."""
    no_names = any(
        o == "--no-filename" or (o.startswith("-") and not o.startswith("--") and "h" in o)
        for o in script.grep_options
    )
    return len(files) > 1 and not no_names


def fgrep_reapplied(
    script: InitScript, items: Iterable[str], files: tuple[tuple[str, str], ...]
) -> dict[str, tuple[GrepHit, str]]:
    """Runtime name -> (line, value) the init script's ``fgrep | sysctl -p -`` re-applies."""
    result: dict[str, tuple[GrepHit, str]] = {}
    if script.grep_line is None or prefixes_names(script, files):
        return result
    for hit in simulate_fgrep(tuple(items), files):
        for assignment in parse_sysctl_conf(hit.text, hit.path).assignments:
            name = runtime_name(assignment.key)
            if name is not None:
                result[name] = (hit, assignment.value.strip())
    return result


def load_list_items(texts: list[str]) -> list[str]:
    """fgrep items that match every conntrack line: ".nf_conntrack" unless some line is
    written with "/" separators ("net/netfilter/nf_conntrack_max"), then "nf_conntrack"."""
    items = []
    for base in ("nf_conntrack", "ip_conntrack"):
        using = [text for text in texts if base in text]
        if using:
            dotted = all(f".{base}" in text for text in using)
            items.append(f".{base}" if dotted else base)
    return items


def grep_patterns(script: InitScript) -> tuple[str, ...]:
    """The script's grep operands as absolute paths (it runs in /)."""
    return tuple(str(PurePosixPath("/", pattern)) for pattern in script.grep_files)


def restart_greps(service: tuple[IptablesConfig, InitScript] | None) -> tuple[str, ...] | None:
    """Where a value must be for ``service iptables restart`` to re-apply it: the script's
    grep patterns when a restart reloads nf_conntrack (with the stock module list), else
    None (no restart resets anything, so any sysctl file will do)."""
    if service is None or not unloads_conntrack(*service, restored=True):
        return None
    return grep_patterns(service[1])


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
