"""``build_plan(facts, ...) -> Plan``: pure. What to set, why, and the files that keep it.

The plan decides the values (sizing.py), then places them where they survive a reboot, a
module reload and a firewall restart on *this* host (design §7, §8): a winning sysctl.d
drop-in (or a block in a sysctl.conf that is read last), a udev rule that re-applies them
when nf_conntrack loads, ``options nf_conntrack hashsize=`` for a modular conntrack, the
RHEL iptables service's load list, and the stock NF_MODULES_COMMON line. Keys an agent
owns (kube-proxy, tuned) are not written: the plan says which knob of the agent to set.

A plan is a fixpoint: applied, the same host plans nothing (``apply`` is idempotent).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from ctguard.facts import Facts
from ctguard.firewall import nat_rules
from ctguard.missing import Missing
from ctguard.remediation import rhel_service, sysctl_dropin
from ctguard.remediation.changes import EDIT, GLOBAL, OURS, PER_NETNS, Note, SetSysctl, WriteFile
from ctguard.rules import Thresholds
from ctguard.rules.composition import dominant_kinds
from ctguard.rules.persistence import UDEV_RULE, reapply_mechanisms
from ctguard.rules.values import NF_CONNTRACK, Configured
from ctguard.sizing import (
    DEFAULT_BUDGET_PCT,
    NAT_MIN_ESTABLISHED,
    Sizing,
    SizingInput,
    Target,
    TimeoutNeed,
    default_buckets,
    default_max,
    entry_cost,
    kernel_buckets,
    size_table,
    size_timeouts,
)
from ctguard.sources.iptables_service import InitScript, IptablesConfig, IptablesService
from ctguard.sources.kernel import KernelVersion
from ctguard.sources.meminfo import Meminfo
from ctguard.sources.modprobe_conf import ModprobeConfig
from ctguard.sources.ruleset import Ruleset
from ctguard.sources.stats import ConntrackStats
from ctguard.sources.sysctl_conf import SYSCTL_CONF, SysctlAssignment, SysctlConfig, runtime_name
from ctguard.sources.sysctl_runtime import GLOBAL_KEYS, NETFILTER_DIR, ConntrackSysctls
from ctguard.table.whatif import what_if

FileReader = Callable[[str], bytes | None]  # host path -> bytes, None when absent

MODPROBE_D = "/etc/modprobe.d"
MODPROBE_NAMES = (
    "ctguard-conntrack.conf",
    "zz-ctguard-conntrack.conf",
    "zzzz-ctguard-conntrack.conf",
)
MODULES_SCRIPT = "/etc/sysconfig/modules/ctguard-conntrack.modules"
HASHSIZE_PARAM = "/sys/module/nf_conntrack/parameters/hashsize"
MAX, BUCKETS = "nf_conntrack_max", "nf_conntrack_buckets"
ESTABLISHED = "tcp_timeout_established"


@dataclass(frozen=True)
class PlanOptions:
    target_max: int | None = None
    budget_pct: float = DEFAULT_BUDGET_PCT
    established_timeout: int | None = None
    timeouts: Mapping[str, int] = field(default_factory=dict)  # short name -> seconds
    force: bool = False


@dataclass(frozen=True)
class Plan:
    netns: str | None
    sizing: Sizing | Missing
    timeouts: tuple[Target, ...]
    files: tuple[WriteFile, ...]
    sysctls: tuple[SetSysctl, ...]
    notes: tuple[Note, ...]
    conflicts: tuple[str, ...]  # other files' lines left alone, and why they do not matter
    addresses: tuple[str, ...]  # finding IDs found now that the plan fixes
    refusal: str | None  # set: refused unless --force
    forced: bool = False

    @property
    def empty(self) -> bool:
        return not self.files and not self.sysctls

    @property
    def refused(self) -> bool:
        return self.refusal is not None and not self.forced


@dataclass
class _Want:
    value: int
    why: str
    ids: set[str] = field(default_factory=set)


# -- inputs -------------------------------------------------------------------------------
def _runtime(facts: Facts) -> dict[str, int]:
    return dict(facts.sysctls.values) if isinstance(facts.sysctls, ConntrackSysctls) else {}


def _nat(facts: Facts) -> bool:
    return isinstance(facts.ruleset, Ruleset) and bool(nat_rules(facts.ruleset))


def _peak(facts: Facts, runtime: Mapping[str, int], found: Collection[str]) -> tuple[int, str]:
    seen: list[tuple[int, str]] = []
    if "nf_conntrack_count" in runtime:
        seen.append((runtime["nf_conntrack_count"], "nf_conntrack_count now"))
    if isinstance(facts.stats, ConntrackStats) and facts.stats.entries is not None:
        seen.append((facts.stats.entries, "stat entries"))
    if not isinstance(facts.table, Missing):
        seen.append((facts.table.summary.entries, "entries in the table read"))
    # CT102 (drops) says the table was full once, at whatever max it had then: the
    # counters outlive any change, so they cannot size it (a plan must be a fixpoint)
    return max(seen, default=(0, "no count readable"))


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


def _sizing(
    facts: Facts, options: PlanOptions, runtime: Mapping[str, int], found: Collection[str]
) -> Sizing | Missing:
    mem = facts.meminfo
    if not isinstance(mem, Meminfo):
        return Missing(f"memory unknown ({mem.reason}): the max is not sized")
    peak, source = _peak(facts, runtime, found)
    return size_table(
        SizingInput(
            mem_total=mem.mem_total,
            mem_available=mem.mem_available,
            cost=entry_cost(facts.slab, facts.kernel, facts.sysctls),
            kernel=facts.kernel,
            current_max=runtime.get(MAX),
            current_buckets=runtime.get(BUCKETS),
            peak=peak,
            peak_source=source,
            target_max=options.target_max,
            budget_pct=options.budget_pct,
            force=options.force,
        )
    )


def _timeout_needs(facts: Facts, found: Collection[str], limits: Thresholds) -> list[TimeoutNeed]:
    """What the table shows dominating: idle established flows (CT401), or one kind of
    short-lived entry (CT402)."""
    needs: list[TimeoutNeed] = []
    if "CT401" in found:
        needs.append(TimeoutNeed(ESTABLISHED, 0, "idle ESTABLISHED flows fill the table (CT401)"))
    if "CT402" in found and not isinstance(facts.table, Missing):
        table = facts.table
        current = {k.removeprefix("nf_conntrack_"): v for k, v in _runtime(facts).items()}
        for kind, count, share in dominant_kinds(table.summary, limits):
            row = what_if(table.tally, current, {kind.timeout: kind.proposed})[0]
            why = f"{kind.label} is {share:.0f} % of the table, {count:,} entries (CT402)"
            needs.append(TimeoutNeed(kind.timeout, kind.proposed, why, row.expired))
    return needs


# -- the plan -----------------------------------------------------------------------------
def build_plan(
    facts: Facts,
    options: PlanOptions,
    read: FileReader,
    found: Collection[str],
    limits: Thresholds | None = None,
) -> Plan:
    """Everything to change on this host (or namespace), with the reason for each change.

    ``found``: IDs the doctor found on these facts; ``read``: current bytes of the files
    the plan edits (the only host access, done by the caller through HostRoot)."""
    limits = limits or Thresholds()
    runtime = _runtime(facts)
    sizing = _sizing(facts, options, runtime, found)
    cost = entry_cost(facts.slab, facts.kernel, facts.sysctls)
    mem_total = facts.meminfo.mem_total if isinstance(facts.meminfo, Meminfo) else 0
    short = {k.removeprefix("nf_conntrack_"): v for k, v in runtime.items()}
    timeouts = size_timeouts(
        short,
        _timeout_needs(facts, found, limits),
        cost,
        mem_total,
        _nat(facts),
        options.established_timeout,
    )
    wants: dict[str, _Want] = {}
    for target in timeouts:
        ids = {"CT401"} if target.name.endswith(ESTABLISHED) else {"CT402"}
        wants[target.name] = _Want(target.value, target.reason, ids)
    for name, value in options.timeouts.items():
        full = f"nf_conntrack_{name}"
        wants[full] = _Want(value, "--timeout")
        timeouts = [t for t in timeouts if t.name != full]
        timeouts.append(Target(full, short.get(name), value, "--timeout"))
    notes: list[Note] = []
    refusal = sizing.refusal if isinstance(sizing, Sizing) else None
    if facts.netns is not None:
        return _namespace_plan(facts, options, sizing, tuple(timeouts), wants, runtime, refusal)
    if isinstance(sizing, Sizing):
        wants[MAX] = _Want(sizing.max.value, sizing.max.reason, {"CT201", "CT106"})
        wants[BUCKETS] = _Want(sizing.buckets.value, sizing.buckets.reason, {"CT105", "CT303"})
        notes += [Note(text) for text in sizing.notes]
    else:
        notes.append(Note(sizing.reason))
    if "CT102" in found:
        notes.append(
            Note(
                "packets were dropped when the table was full (CT102): the size above is from"
                " today's count; if the table held more when it overflowed, give --target-max"
            )
        )
    builder = _Builder(facts, read, runtime, wants, found, notes)
    builder.run()
    return Plan(
        netns=None,
        sizing=sizing,
        timeouts=tuple(timeouts),
        files=tuple(builder.files),
        sysctls=tuple(builder.sysctls),
        notes=tuple(builder.notes),
        conflicts=tuple(builder.conflicts),
        addresses=tuple(sorted(builder.addressed & set(found))),
        refusal=refusal,
        forced=options.force,
    )


def _namespace_plan(
    facts: Facts,
    options: PlanOptions,
    sizing: Sizing | Missing,
    timeouts: tuple[Target, ...],
    wants: Mapping[str, _Want],
    runtime: Mapping[str, int],
    refusal: str | None,
) -> Plan:
    """Inside a namespace only its own values can be set, and only at runtime: sysctl
    files configure the initial namespace (a container runtime sets a pod's)."""
    changes = [
        SetSysctl(
            name,
            f"{NETFILTER_DIR}/{name}",
            runtime.get(name),
            want.value,
            PER_NETNS,
            want.why,
            addresses=tuple(sorted(want.ids)),
        )
        for name, want in sorted(wants.items())
        if name in runtime and runtime[name] != want.value and name not in GLOBAL_KEYS
    ]
    changing = [
        name
        for name in (MAX, BUCKETS)
        if isinstance(sizing, Sizing) and (sizing.max if name == MAX else sizing.buckets).changes
    ]
    notes = [
        Note(f"{name} is global: set from the initial namespace ('ctguard plan' without --netns)")
        for name in changing
    ]
    if not changing:
        notes.append(
            Note(
                "nf_conntrack_max and nf_conntrack_buckets are global: set from the initial"
                " namespace ('ctguard plan' without --netns)"
            )
        )
    notes.append(
        Note(
            f"namespace {facts.netns}: values set now last until the namespace goes; set them"
            " where it is created too (container runtime, pod sysctls)"
        )
    )
    addressed = {i for change in changes for i in change.addresses}
    return Plan(
        facts.netns,
        sizing,
        timeouts,
        (),
        tuple(changes),
        tuple(notes),
        (),
        tuple(sorted(addressed)),
        refusal,
        options.force,
    )


class _Builder:
    """Turns the wanted values into changes for one host (initial namespace)."""

    def __init__(
        self,
        facts: Facts,
        read: FileReader,
        runtime: Mapping[str, int],
        wants: dict[str, _Want],
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
        self.others = sysctl_dropin.others_effective(self.config, self.our_dropins, self.our_span)
        self.owners = owned_keys(facts)
        if self.owners.get(MAX) == "kube-proxy":  # it sets hashsize = max / 4 too
            self.owners.setdefault(BUCKETS, "kube-proxy")
        kernel = facts.kernel
        self.old_kernel = isinstance(kernel, KernelVersion) and not kernel.at_least(4, 7)

    # -- steps ----------------------------------------------------------------------
    def run(self) -> None:
        for name, value in self._ours_now().items():
            self.wants.setdefault(name, _Want(value, "kept: set by ctguard's earlier apply"))
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
        for name, a in sorted(self._others().items()):
            value = a.value.strip()
            if name in self.wants or not value.isdigit() or name not in self.runtime:
                continue
            if name in self.owners:
                continue
            if int(value) != self.runtime[name]:
                self.wants[name] = _Want(int(value), f"configured in {a.path}:{a.line}", {"CT301"})

    def _find_ours(self) -> tuple[frozenset[str], tuple[int, int] | None]:
        """ctguard's own drop-ins, and the span of its block in sysctl.conf."""
        dropins = frozenset(
            f"{sysctl_dropin.SYSCTL_D}/{name}"
            for name in sysctl_dropin.DROPIN_NAMES
            if sysctl_dropin.is_ours(_text(self.read(f"{sysctl_dropin.SYSCTL_D}/{name}")))
        )
        return sysctl_dropin.ours_filter(dropins, _text(self.read(SYSCTL_CONF)))

    def _ours(self) -> tuple[frozenset[str], tuple[int, int] | None]:
        return self.our_dropins, self.our_span

    def _others(self) -> dict[str, SysctlAssignment]:
        return self.others

    def _ours_now(self) -> dict[str, int]:
        """Values ctguard's own lines set now (kept, so a second plan is the same)."""
        values: dict[str, int] = {}
        for a in self.config.assignments:
            name = runtime_name(a.key)
            ours = name and sysctl_dropin.is_our_line(a, self.our_dropins, self.our_span)
            if ours and name and a.value.strip().isdigit():
                values[name] = int(a.value.strip())
        return values

    def _persist(self, name: str, want: _Want) -> bool:
        others = self._others().get(name)
        if self._ours_now().get(name) == want.value:
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
        dropins, span = self._ours()
        service = self._service()
        grepped = None
        if service is not None and rhel_service.unloads_conntrack(*service, restored=True):
            grepped = tuple(str(p) if p.startswith("/") else f"/{p}" for p in service[1].grep_files)
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

    def _buckets_in_sysctl(self, want: _Want) -> bool:
        """Built-in conntrack keeps buckets in sysctl.d (writable since 4.7); a module gets
        them from ``hashsize``, unless a sysctl file would re-apply another value."""
        if self.old_kernel:
            return False
        if not self.modular:
            return True
        other = self._others().get(BUCKETS)
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
        if not isinstance(service, IptablesService):
            return None
        if not isinstance(service.config, IptablesConfig) or not isinstance(
            service.script, InitScript
        ):
            return None
        return service.config, service.script

    def _iptables_service(self, persisted: Mapping[str, int]) -> bool:
        """CT305 then CT304; True when a service restart re-applies every configured key."""
        service = self._service()
        if service is None or self.facts.presence.kind == "builtin":
            return False
        config, script = service
        restore = rhel_service.needs_restore(script)
        if restore:
            before = self.read(script.path)
            if before is not None:
                after = rhel_service.restored_script(
                    before.decode("utf-8", "surrogateescape"), script
                )
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
        if not rhel_service.unloads_conntrack(config, script, restored=True):
            return False
        if script.grep_line is None:
            self.notes.append(
                Note(
                    f"{script.path}: no 'fgrep ... | sysctl -p -' line found:"
                    " check by hand what 'service iptables start' re-applies"
                )
            )
            return False
        writes = {c.path: c.after.decode("utf-8", "surrogateescape") for c in self.files}
        files = rhel_service.grep_files_after(script, self.facts.grep_files, writes)
        wanted = self._configured_after(persisted)
        fix = rhel_service.load_list_fix(config, script, files, wanted)
        if fix.items:
            before = self.read(config.path)
            text = (before or b"").decode("utf-8", "surrogateescape")
            after = rhel_service.with_load_list(text, config, fix.items)
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
            for name, a in self._others().items()
            if a.value.strip()
        }
        for name, value in persisted.items():
            wanted[name] = (str(value), f"{sysctl_dropin.sysctl_key(name)} = {value}")
        return wanted

    def _reapply(self, persisted: Mapping[str, int], service_ok: bool) -> None:
        """CT302: a modular conntrack loads after boot-time sysctl; re-apply on load."""
        if not self.modular or service_ok:
            return
        items = [Configured(name, a) for name, a in self._others().items()]
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
        elif self.facts.iptables_service is not None and not isinstance(
            self.facts.iptables_service, Missing
        ):
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


# re-exported for renderers and the CLI
__all__ = ["NAT_MIN_ESTABLISHED", "FileReader", "Plan", "PlanOptions", "build_plan", "owned_keys"]
