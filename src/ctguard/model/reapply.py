"""What re-applies conntrack settings when nf_conntrack loads after boot-time sysctl ran.

A value set in a sysctl file is applied once, at boot; a module loaded later starts with
kernel defaults (CT302). These mechanisms put the values back: a boot-time module load
before sysctl runs, a udev rule on the module's "add" event, a modprobe ``install``
command, and the RHEL iptables service's ``IPTABLES_SYSCTL_LOAD_LIST``.
"""

from __future__ import annotations

from collections.abc import Iterable

from ctguard.facts import Facts
from ctguard.missing import Missing
from ctguard.model.rhel_iptables import fgrep_reapplied
from ctguard.model.values import NF_CONNTRACK, Configured
from ctguard.sources.boot_modules import command_reapplies
from ctguard.sources.iptables_service import IptablesService
from ctguard.sources.modprobe_conf import ModprobeConfig

# Loading any of these loads nf_conntrack first (module dependencies).
_PULLS_IN = {
    "xt_conntrack", "xt_state", "xt_CT", "xt_connmark", "xt_CONNMARK", "xt_nat", "xt_MASQUERADE",
    "xt_REDIRECT", "iptable_nat", "ip6table_nat", "nft_ct", "nft_nat", "nft_masq",
    "nft_redir", "openvswitch", "ip_vs",
}  # fmt: skip
UDEV_RULE = "/etc/udev/rules.d/90-ctguard-conntrack.rules"


def pulls_in_conntrack(module: str) -> bool:
    return (
        module == NF_CONNTRACK
        or module.startswith(("nf_conntrack_", "nf_nat"))
        or module in _PULLS_IN
    )


def _service_reapplies(facts: Facts) -> dict[str, str]:
    service = facts.iptables_service
    parts = service.complete if isinstance(service, IptablesService) else None
    if parts is None:
        return {}
    config, script = parts
    hits = fgrep_reapplied(script, config.sysctl_load_list, facts.grep_files)
    return {
        name: f"IPTABLES_SYSCTL_LOAD_LIST matches {hit.path}:{hit.line}"
        for name, (hit, _) in hits.items()
    }


def reapply_mechanisms(facts: Facts, keys: Iterable[Configured]) -> dict[str, str]:
    """Runtime name -> what re-applies it when nf_conntrack loads after boot-time sysctl."""
    covered: dict[str, str] = {}
    items = list(keys)
    if not isinstance(facts.boot_modules, Missing):
        for module in facts.boot_modules:
            if pulls_in_conntrack(module.module):
                why = f"{module.path}:{module.line} loads {module.module} before sysctl runs"
                covered.update({item.name: why for item in items})
    if not isinstance(facts.udev, Missing):
        for udev in facts.udev:
            if udev.matches_module(NF_CONNTRACK):
                for item in items:
                    if udev.covers(item.assignment.key, item.assignment.path):
                        covered.setdefault(item.name, f"{udev.path}:{udev.line} re-applies it")
    if isinstance(facts.modprobe, ModprobeConfig):
        for d in facts.modprobe.for_module(NF_CONNTRACK, "install"):
            why = f"{d.path}:{d.line} runs sysctl on load"
            for hook in command_reapplies(d.args, d.path, d.line, d.text, NF_CONNTRACK):
                for item in items:
                    if hook.covers(item.assignment.key, item.assignment.path):
                        covered.setdefault(item.name, why)
    for name, why in _service_reapplies(facts).items():
        covered.setdefault(name, why)
    return covered
