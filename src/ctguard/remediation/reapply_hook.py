"""Re-applying the values when nf_conntrack loads (CT302): a modular conntrack loads after
boot-time sysctl ran, so its keys start at the kernel's defaults. Unless something on the
host re-applies them already (``model/reapply``), a udev rule with systemd, else a RHEL
sysconfig modules script that loads it before rc.sysinit's sysctl, else a note.
"""

from __future__ import annotations

from ctguard.model import sysctl_files
from ctguard.model.reapply import UDEV_RULE, reapply_mechanisms
from ctguard.model.values import Configured
from ctguard.remediation.change_set import ChangeSet
from ctguard.remediation.changes import OURS, Note
from ctguard.remediation.host_settings import HostSettings
from ctguard.remediation.sysctl_file import Persisted
from ctguard.sources.iptables_service import IptablesService
from ctguard.sources.sysctl_conf import SysctlAssignment

MODULES_SCRIPT = "/etc/sysconfig/modules/ctguard-conntrack.modules"


def reapply_on_load(host: HostSettings, persisted: Persisted, changes: ChangeSet) -> None:
    """A hook that re-applies the configured keys on load, unless each one is already."""
    if not host.modular:
        return
    items = [Configured(name, a) for name, a in host.others.items()]
    for name, value in persisted.values.items():
        key = sysctl_files.sysctl_key(name)
        line = SysctlAssignment(key, str(value), persisted.path, 0, key, False)
        items.append(Configured(name, line))
    if not items:
        return
    covered = reapply_mechanisms(host.facts, items)
    if all(item.name in covered for item in items):
        return
    systemd_sysctl = host.facts.systemd_sysctl
    if systemd_sysctl:
        rule = (
            "# Written by ctguard: re-apply the conntrack sysctls whenever nf_conntrack"
            " loads\n# (its keys do not exist before, so boot-time sysctl misses them)\n"
            'ACTION=="add", SUBSYSTEM=="module", KERNEL=="nf_conntrack", '
            f'RUN+="{systemd_sysctl} --prefix=/net/netfilter --prefix=/net/nf_conntrack_max"\n'
        )
        changes.write(
            UDEV_RULE,
            host.read(UDEV_RULE),
            rule.encode(),
            0o644,
            "re-apply the values when nf_conntrack loads (CT302)",
            OURS,
            {"CT302"},
        )
    elif isinstance(host.facts.iptables_service, IptablesService):
        script = (
            "#!/bin/sh\n# Written by ctguard: load nf_conntrack before rc.sysinit applies"
            " sysctl settings,\n# so its keys exist when they are set.\n"
            "/sbin/modprobe nf_conntrack >/dev/null 2>&1\n"
        )
        changes.write(
            MODULES_SCRIPT,
            host.read(MODULES_SCRIPT),
            script.encode(),
            0o755,
            "load nf_conntrack before boot-time sysctl (CT302)",
            OURS,
            {"CT302"},
        )
    else:
        changes.notes.append(
            Note(
                "no systemd and no RHEL rc.sysinit here: load nf_conntrack before sysctl runs"
                " at boot by this init system's own means",
                ("CT302",),
            )
        )
