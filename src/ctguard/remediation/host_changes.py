"""Where a plan's values go on one host, so they survive a reboot, a module reload and a
firewall restart (design §7, §9): ``HostChanges`` turns the wanted values into file and
runtime changes. Pure: files are read through the ``FileReader`` the caller passes.

Steps, in order: keys an agent owns are left to it (CT306); values the sysctl files ask for
but the kernel lacks are wanted too (CT301); the values that must survive a reboot go into
a winning drop-in or the sysctl.conf block (sysctl_dropin); the hash size into modprobe.d
or a cmdline note (CT303); the RHEL iptables service's NF_MODULES_COMMON and load list
(CT305, CT304, rhel_service); a re-apply hook when nf_conntrack is a module (CT302); and
last the runtime values that differ.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from ctguard.facts import Facts
from ctguard.missing import Missing
from ctguard.model import rhel_iptables
from ctguard.model.host_sizing import BUCKETS, MAX
from ctguard.model.reapply import UDEV_RULE, reapply_mechanisms
from ctguard.model.sizing import (
    default_buckets,
    default_max,
    kernel_buckets,
)
from ctguard.model.values import NF_CONNTRACK, Configured
from ctguard.remediation import rhel_service, sysctl_dropin
from ctguard.remediation.changes import EDIT, GLOBAL, OURS, PER_NETNS, Note, SetSysctl, WriteFile
from ctguard.sources.iptables_service import InitScript, IptablesConfig, IptablesService
from ctguard.sources.kernel import KernelVersion
from ctguard.sources.meminfo import Meminfo
from ctguard.sources.modprobe_conf import ModprobeConfig
from ctguard.sources.modules import HASHSIZE_PARAM
from ctguard.sources.stats import ConntrackStats
from ctguard.sources.sysctl_conf import SYSCTL_CONF, SysctlAssignment, SysctlConfig, runtime_name
from ctguard.sources.sysctl_runtime import GLOBAL_KEYS, NETFILTER_DIR

FileReader = Callable[[str], bytes | None]  # host path -> bytes, None when absent

MODPROBE_D = "/etc/modprobe.d"
MODPROBE_NAMES = (
    "ctguard-conntrack.conf",
    "zz-ctguard-conntrack.conf",
    "zzzz-ctguard-conntrack.conf",
)
MODULES_SCRIPT = "/etc/sysconfig/modules/ctguard-conntrack.modules"


@dataclass
class Want:
    """A value the plan wants, why, and the finding IDs setting it fixes."""

    value: int
    why: str
    ids: set[str] = field(default_factory=set)


def owned_keys(facts: Facts) -> dict[str, str]:
    """Runtime name -> the agent that writes it at runtime (CT306): kube-proxy, tuned."""
    owners: dict[str, str] = {}
    kube = facts.kube_proxy
    if kube is not None:
        for key in kube.managed_keys():
            name = runtime_name(key)
            if name is not None:
                owners[name] = "kube-proxy"
    if not isinstance(facts.tuned, Missing):
        for line in facts.tuned.sysctls:
            name = runtime_name(line.key)
            if name is not None:
                owners.setdefault(name, f"tuned profile {facts.tuned.name}")
    return owners


class HostChanges:
    """Turns the wanted values into changes for one host (initial namespace)."""

    def __init__(
        self,
        facts: Facts,
        read: FileReader,
        runtime: Mapping[str, int],
        wants: dict[str, Want],
        found: Collection[str],
        notes: list[Note],
    ) -> None:
        self.facts, self.read, self.runtime, self.wants = facts, read, runtime, wants
        self.found = found
        self.notes = notes
        self.files: list[WriteFile] = []
        self.sysctls: list[SetSysctl] = []
        self.conflicts: list[str] = []
        self.addressed: set[str] = set()
        self.config = (
            facts.sysctl_config
            if isinstance(facts.sysctl_config, SysctlConfig)
            else SysctlConfig((), (), (), ())
        )
        self.modular = facts.presence.kind == "module" or (
            facts.presence.kind == "absent" and not facts.presence.loaded
        )
        self.placement = sysctl_dropin.Placement(sysctl_dropin.SYSCTL_D, False, "")
        self.our_dropins, self.our_span = self._find_ours()
        self.ours_now = self._our_values()
        self.others = sysctl_dropin.others_effective(self.config, self.our_dropins, self.our_span)
        self.owners = owned_keys(facts)
        if self.owners.get(MAX) == "kube-proxy":  # it sets hashsize = max / 4 too
            self.owners.setdefault(BUCKETS, "kube-proxy")
        kernel = facts.kernel
        self.old_kernel = isinstance(kernel, KernelVersion) and not kernel.at_least(4, 7)

    # -- steps ----------------------------------------------------------------------
    def run(self) -> None:
        for name, value in self.ours_now.items():
            self.wants.setdefault(name, Want(value, "kept: set by ctguard's earlier apply"))
        self._agents()
        self._configured()
        persisted = self._settings_file()
        self._hashsize(persisted)
        service_ok = self._iptables_service(persisted)
        self._reapply(persisted, service_ok)
        self._runtime_values()
        if self._configured_matches_runtime(persisted):
            self.addressed.add("CT301")
        else:
            self.addressed.discard("CT301")

    def _configured_matches_runtime(self, persisted: Mapping[str, int]) -> bool:
        """CT301 after the plan: every configured value is the running one."""
        after = dict(self.runtime)
        after.update({change.name: change.after for change in self.sysctls})
        for name, (value, _) in self._configured_after(persisted).items():
            if name in after and value.isdigit() and int(value) != after[name]:
                return False
        return True

    def _agents(self) -> None:
        owners = self.owners
        kube = self.facts.kube_proxy
        for name, agent in sorted(owners.items()):
            want = self.wants.pop(name, None)
            if want is None or self.runtime.get(name) == want.value:
                continue
            if name == BUCKETS and agent == "kube-proxy":
                continue  # kube-proxy derives it from the max
            if agent == "kube-proxy" and kube is not None:
                value = self._kube_value(name, want.value)
                knob = kube.flag_for(f"net.netfilter.{name}")
                text = f"{name}: kube-proxy sets it: set {knob}={value} ({want.why})"
            else:
                text = f"{name}: {agent} sets it: set {want.value} there ({want.why})"
            self.notes.append(Note(text, ("CT306",)))

    def _kube_value(self, name: str, value: int) -> str:
        if name == MAX:
            stats = self.facts.stats
            cpus = stats.cpus if isinstance(stats, ConntrackStats) and stats.cpus else None
            if cpus:
                return f"{math.ceil(value / cpus)} (x {cpus} CPUs = {value})"
            return f"{value} / number of CPUs"
        return f"{value}s"

    def _configured(self) -> None:
        """Values the sysctl files ask for but the kernel does not have (CT301)."""
        if not self.facts.presence.loaded:
            return
        for name, a in sorted(self.others.items()):
            value = a.value.strip()
            if name in self.wants or not value.isdigit() or name not in self.runtime:
                continue
            if name in self.owners:
                continue
            if int(value) != self.runtime[name]:
                self.wants[name] = Want(int(value), f"configured in {a.path}:{a.line}", {"CT301"})

    def _find_ours(self) -> tuple[frozenset[str], tuple[int, int] | None]:
        """ctguard's own drop-ins, and the span of its block in sysctl.conf."""
        dropins = frozenset(
            f"{sysctl_dropin.SYSCTL_D}/{name}"
            for name in sysctl_dropin.DROPIN_NAMES
            if sysctl_dropin.is_ours(_text(self.read(f"{sysctl_dropin.SYSCTL_D}/{name}")))
        )
        conf = _text(self.read(SYSCTL_CONF))
        return dropins, None if conf is None else sysctl_dropin.block_span(conf)

    def _our_values(self) -> dict[str, int]:
        """Values ctguard's own lines set now (kept, so a second plan is the same)."""
        values: dict[str, int] = {}
        for a in self.config.assignments:
            name = runtime_name(a.key)
            ours = name and sysctl_dropin.is_our_line(a, self.our_dropins, self.our_span)
            if ours and name and a.value.strip().isdigit():
                values[name] = int(a.value.strip())
        return values

    def _persist(self, name: str, want: Want) -> bool:
        others = self.others.get(name)
        if self.ours_now.get(name) == want.value:
            return True
        if others is not None:
            return others.value.strip() != str(want.value)
        now = self.runtime.get(name)
        default = self._default(name)
        if default is not None:
            return want.value != default
        return now is None or want.value != now

    def _default(self, name: str) -> int | None:
        mem = self.facts.meminfo
        if not isinstance(mem, Meminfo):
            return None
        if name == MAX:
            return default_max(mem.mem_total, self.facts.kernel)
        if name == BUCKETS:
            return default_buckets(mem.mem_total, self.facts.kernel)
        return None

    def _settings_file(self) -> dict[str, int]:
        """The sysctl drop-in (or sysctl.conf block): the values that must survive a reboot."""
        values: dict[str, int] = {}
        ids: set[str] = set()
        for name, want in self.wants.items():
            if name == BUCKETS and not self._buckets_in_sysctl(want):
                continue
            if self._persist(name, want):
                values[name] = want.value
                ids |= want.ids
        dropins, span = self.our_dropins, self.our_span
        service = self._service()
        grepped = None
        if service is not None and rhel_iptables.unloads_conntrack(*service, restored=True):
            grepped = rhel_iptables.grep_patterns(service[1])
        placement = sysctl_dropin.choose_placement(self.config, values, dropins, span, grepped)
        self.placement = placement
        winner = "the ctguard block below it" if placement.block else placement.path
        self.conflicts += [
            f"{line}  ({winner} wins)"
            for line in sysctl_dropin.conflicts(self.config, values, dropins, span)
        ]
        if placement.block:
            before = self.read(SYSCTL_CONF)
            after = sysctl_dropin.with_block(_text(before) or "", values).encode()
            self._write(
                SYSCTL_CONF,
                before,
                after,
                0o644,
                f"conntrack values, in a marked block at the end ({placement.reason})",
                EDIT,
                ids,
            )
            for path in dropins:  # an earlier drop-in of ours would now be shadowed
                self.notes.append(Note(f"{path}: an older ctguard drop-in; remove it by hand"))
        elif values or placement.path in dropins:
            before = self.read(placement.path)
            after = sysctl_dropin.dropin_text(values).encode()
            self._write(
                placement.path,
                before,
                after,
                0o644,
                f"conntrack values that win at boot ({placement.reason})",
                OURS,
                ids,
            )
        return values

    def _buckets_in_sysctl(self, want: Want) -> bool:
        """Built-in conntrack keeps buckets in sysctl.d (writable since 4.7); a module gets
        them from ``hashsize``, unless a sysctl file would re-apply another value."""
        if self.old_kernel:
            return False
        if not self.modular:
            return True
        other = self.others.get(BUCKETS)
        return other is not None and other.value.strip() != str(want.value)

    def _hashsize(self, persisted: Mapping[str, int]) -> None:
        want = self.wants.get(BUCKETS)
        if want is None:
            return
        needed = self._persist(BUCKETS, want) or self._hashsize_differs(want.value)
        if not needed:
            return
        if not self.modular:
            if BUCKETS not in persisted or self.old_kernel:
                self.notes.append(
                    Note(
                        f"built-in conntrack: add nf_conntrack.hashsize={want.value} to the kernel"
                        " command line (GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub"
                        " or grub2-mkconfig) so the table starts at that size",
                        ("CT303",),
                    )
                )
            else:
                self.addressed |= {"CT303"} & set(self.found)
            return
        path, before = self._modprobe_file(want.value)
        after = (
            "# Written by ctguard: the conntrack hash table size at module load\n"
            f"options nf_conntrack hashsize={want.value}\n"
        ).encode()
        self._write(
            path,
            before,
            after,
            0o644,
            f"hash table size when nf_conntrack loads ({want.value} buckets)",
            OURS,
            {"CT303", "CT105"},
        )

    def _hashsize_differs(self, value: int) -> bool:
        modprobe = self.facts.modprobe
        if not self.modular or not isinstance(modprobe, ModprobeConfig):
            return False
        option = modprobe.option(NF_CONNTRACK, "hashsize")
        if option is None:
            return value != self._default(BUCKETS)
        text = option[0]
        return not text.isdigit() or kernel_buckets(int(text)) != kernel_buckets(value)

    def _modprobe_file(self, value: int) -> tuple[str, bytes | None]:
        modprobe = self.facts.modprobe
        others: list[tuple[str, str]] = []
        if isinstance(modprobe, ModprobeConfig):
            for d in modprobe.for_module(NF_CONNTRACK, "options"):
                if "hashsize" in d.args and not d.path.endswith(MODPROBE_NAMES):
                    others.append((d.path.rsplit("/", 1)[-1], f"{d.path}:{d.line}: {d.text}"))
        for name in MODPROBE_NAMES:
            if all(name > other for other, _ in others):
                for _, line in others:
                    self.conflicts.append(f"{line}  ({MODPROBE_D}/{name} is read later)")
                path = f"{MODPROBE_D}/{name}"
                return path, self.read(path)
        path = f"{MODPROBE_D}/{MODPROBE_NAMES[-1]}"
        return path, self.read(path)

    def _service(self) -> tuple[IptablesConfig, InitScript] | None:
        service = self.facts.iptables_service
        return service.complete if isinstance(service, IptablesService) else None

    def _iptables_service(self, persisted: Mapping[str, int]) -> bool:
        """CT305 then CT304; True when a service restart re-applies every configured key."""
        service = self._service()
        if service is None or self.facts.presence.kind == "builtin":
            return False
        config, script = service
        restore = rhel_iptables.needs_restore(script)
        if restore:
            before = self.read(script.path)
            if before is not None:
                after = rhel_service.restored_script(_text(before) or "", script)
                self._write(
                    script.path,
                    before,
                    after.encode("utf-8", "surrogateescape"),
                    0o755,
                    "the stock NF_MODULES_COMMON, so 'service iptables stop' can empty a"
                    " full table again (CT305)",
                    EDIT,
                    {"CT305"},
                )
        if not rhel_iptables.unloads_conntrack(config, script, restored=True):
            return False
        if script.grep_line is None:
            self.notes.append(
                Note(
                    f"{script.path}: no 'fgrep ... | sysctl -p -' line found:"
                    " check by hand what 'service iptables start' re-applies"
                )
            )
            return False
        writes = {c.path: _text(c.after) or "" for c in self.files}
        files = rhel_iptables.grep_files_after(script, self.facts.grep_files, writes)
        wanted = self._configured_after(persisted)
        fix = rhel_iptables.load_list_fix(config, script, files, wanted)
        if fix.items:
            before = self.read(config.path)
            after = rhel_service.with_load_list(_text(before) or "", config, fix.items)
            self._write(
                config.path,
                before,
                after.encode("utf-8", "surrogateescape"),
                0o600,
                "re-apply every conntrack setting when the service reloads the module (CT304)",
                EDIT,
                {"CT304", "CT302"},
            )
        if fix.missed:
            self.notes.append(
                Note(
                    "'service iptables restart' will still lose: "
                    + ", ".join(fix.missed)
                    + f" (not in a file {script.path} greps)",
                    ("CT304",),
                )
            )
            return False
        return True

    def _configured_after(self, persisted: Mapping[str, int]) -> dict[str, tuple[str, str]]:
        """Runtime name -> (value, line) configured once the plan is applied."""
        wanted = {
            name: (a.value.strip(), a.text.strip())
            for name, a in self.others.items()
            if a.value.strip()
        }
        for name, value in persisted.items():
            wanted[name] = (str(value), f"{sysctl_dropin.sysctl_key(name)} = {value}")
        return wanted

    def _reapply(self, persisted: Mapping[str, int], service_ok: bool) -> None:
        """CT302: a modular conntrack loads after boot-time sysctl; re-apply on load."""
        if not self.modular or service_ok:
            return
        items = [Configured(name, a) for name, a in self.others.items()]
        path = self.placement.path
        for name, value in persisted.items():
            key = sysctl_dropin.sysctl_key(name)
            items.append(Configured(name, SysctlAssignment(key, str(value), path, 0, key, False)))
        if not items:
            return
        covered = reapply_mechanisms(self.facts, items)
        if all(item.name in covered for item in items):
            return
        systemd_sysctl = self.facts.systemd_sysctl
        if systemd_sysctl:
            rule = (
                "# Written by ctguard: re-apply the conntrack sysctls whenever nf_conntrack"
                " loads\n# (its keys do not exist before, so boot-time sysctl misses them)\n"
                'ACTION=="add", SUBSYSTEM=="module", KERNEL=="nf_conntrack", '
                f'RUN+="{systemd_sysctl} --prefix=/net/netfilter --prefix=/net/nf_conntrack_max"\n'
            )
            self._write(
                UDEV_RULE,
                self.read(UDEV_RULE),
                rule.encode(),
                0o644,
                "re-apply the values when nf_conntrack loads (CT302)",
                OURS,
                {"CT302"},
            )
        elif isinstance(self.facts.iptables_service, IptablesService):
            script = (
                "#!/bin/sh\n# Written by ctguard: load nf_conntrack before rc.sysinit applies"
                " sysctl settings,\n# so its keys exist when they are set.\n"
                "/sbin/modprobe nf_conntrack >/dev/null 2>&1\n"
            )
            self._write(
                MODULES_SCRIPT,
                self.read(MODULES_SCRIPT),
                script.encode(),
                0o755,
                "load nf_conntrack before boot-time sysctl (CT302)",
                OURS,
                {"CT302"},
            )
        else:
            self.notes.append(
                Note(
                    "no systemd and no RHEL rc.sysinit here: load nf_conntrack before sysctl runs"
                    " at boot by this init system's own means",
                    ("CT302",),
                )
            )

    def _runtime_values(self) -> None:
        if not self.facts.presence.loaded:
            if self.wants:
                self.notes.append(
                    Note("nf_conntrack is not loaded: the values take effect when it loads")
                )
            return
        order = [BUCKETS, MAX, *sorted(n for n in self.wants if n not in (MAX, BUCKETS))]
        for name in order:
            want = self.wants.get(name)
            now = self.runtime.get(name)
            if want is None or now is None or now == want.value:
                continue
            scope = GLOBAL if name in GLOBAL_KEYS else PER_NETNS
            path, expect = f"{NETFILTER_DIR}/{name}", None
            if name == BUCKETS:
                expect = kernel_buckets(want.value)
                if expect == now:
                    continue
                if self.old_kernel:  # read-only sysctl before 4.7: the module parameter
                    path = HASHSIZE_PARAM
            ids = want.ids | ({"CT301"} if "CT301" in self.found else set())
            self.sysctls.append(
                SetSysctl(name, path, now, want.value, scope, want.why, expect, tuple(sorted(ids)))
            )
            self.addressed |= ids

    def _write(
        self,
        path: str,
        before: bytes | None,
        after: bytes,
        mode: int,
        why: str,
        kind: str,
        ids: set[str],
    ) -> None:
        if before == after:
            self.addressed |= ids
            return
        self.files = [c for c in self.files if c.path != path]
        self.files.append(WriteFile(path, before, after, mode, why, kind, tuple(sorted(ids))))
        self.addressed |= ids


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "surrogateescape")
