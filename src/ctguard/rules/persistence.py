"""CT301-CT306: settings that do not survive a reboot, a module reload or a service restart."""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from ctguard.facts import Facts
from ctguard.findings import Severity
from ctguard.missing import Missing
from ctguard.model.boot_hashsize import (
    hashsize_settings,
    overridden_by_tuned,
    tuned_fix,
    tuned_knob,
    tuned_owned,
    tuned_reapplied,
)
from ctguard.model.host_sizing import MAX, host_sizing
from ctguard.model.reapply import UDEV_RULE, reapply_mechanisms
from ctguard.model.rhel_iptables import (
    fgrep_reapplied,
    grep_patterns,
    ipv6_hold,
    load_list_fix,
    prefixes_names,
    unload_setting,
)
from ctguard.model.sizing import Sizing, default_buckets, kernel_buckets
from ctguard.model.sysctl_files import SYSCTL_D, systemd_reads
from ctguard.model.thresholds import Thresholds
from ctguard.model.values import (
    NF_CONNTRACK,
    Configured,
    configured,
    differs,
    load_blocked,
    quote,
    runtime,
)
from ctguard.rules import Outcome, found, passed, rule, skipped
from ctguard.sources.agents import TunedProfile, TunedSysctl
from ctguard.sources.iptables_service import (
    INIT_SCRIPTS,
    IPTABLES_CONFIG,
    STOCK_NF_MODULES_COMMON,
    InitScript,
    IptablesConfig,
)
from ctguard.sources.meminfo import Meminfo
from ctguard.sources.sysctl_conf import SYSCTL_CONF, SysctlAssignment, SysctlConfig, runtime_name
from ctguard.sources.tuned_config import REAPPLIED_SYSCTL_DIRS


def _unit_of(item: Configured) -> str:
    return f"{item.assignment.key} ({item.quoted})"


def _pass_if_read(facts: Facts, reason: str, evidence: Iterable[str] = ()) -> Outcome:
    """A pass that rests on every sysctl file: skipped when some could not be read."""
    config = facts.sysctl_config
    if isinstance(config, SysctlConfig) and config.unreadable:
        gaps = "; ".join(f"{path}: {why}" for path, why in config.unreadable[:3])
        return skipped(f"not every sysctl file could be read ({gaps})")
    return passed(reason, evidence)


# --- CT301 ---------------------------------------------------------------------------


@rule("CT301")
def runtime_differs(facts: Facts, limits: Thresholds) -> Outcome:
    if isinstance(facts.sysctl_config, Missing):
        return skipped(f"sysctl files unreadable: {facts.sysctl_config.reason}")
    if facts.netns is not None:
        return skipped("sysctl files configure the initial namespace, not this one (see CT307)")
    if not facts.presence.loaded:
        return skipped("nf_conntrack is not loaded: no runtime values to compare (see CT302)")
    if isinstance(facts.sysctls, Missing):
        return skipped(f"runtime values unreadable: {facts.sysctls.reason}")
    wanted = configured(facts.sysctl_config)
    if not wanted:
        return _pass_if_read(facts, "no conntrack keys in sysctl files")
    evidence: list[str] = []
    fixes: list[str] = []
    owned = False
    for name, item in sorted(wanted.items()):
        now = runtime(facts, name)
        if now is None:
            evidence.append(f"{_unit_of(item)}: this kernel has no {name}: the line is skipped")
            continue
        if item.value is None:
            evidence.append(f"{_unit_of(item)}: not a number, the kernel rejects it")
            continue
        if differs(item, now):
            evidence.append(f"{_unit_of(item)} but the running value is {now}")
            owner = _agent_owning(facts, item.assignment.key)
            if owner:
                owned = True
                evidence.append(f"  {owner} sets {name} (CT306): set it there, not here")
            else:
                fixes.append(_restore_line(facts, name, item.value, limits))
    if not evidence:
        return _pass_if_read(facts, f"{len(wanted)} configured conntrack values are in effect")
    if owned:
        fixes.append(
            "for keys an agent owns: set them in its configuration (CT306), or remove the lines"
            " from the sysctl files so the two stop disagreeing"
        )
    fixes.append(
        "then find out what reset them: CT302 (module load), CT304 (iptables service),"
        " CT306 (kube-proxy, tuned)"
    )
    fix = "\n".join(fixes)
    return found(Severity.WARNING, evidence, fix)


def _restore_line(facts: Facts, name: str, value: int, limits: Thresholds) -> str:
    """Put the configured value back; for the max, the size ``plan`` gives when it differs."""
    sizing = host_sizing(facts, limits=limits) if name == MAX else None
    if not isinstance(sizing, Sizing) or sizing.max.value == value:
        return f"sysctl -w net.netfilter.{name}={value}"
    size = sizing.max.value
    why = "more than memory safely holds (CT201)" if size < value else "too small for the load"
    plan = f"'ctguard plan' puts {size} in the file ({sizing.max.reason})"
    if size == runtime(facts, name):
        return f"keep the running nf_conntrack_max {size}: the configured {value} is {why}; {plan}"
    return f"sysctl -w net.netfilter.{name}={size}   # not the configured {value}: {why}; {plan}"


def _agent_owning(facts: Facts, key: str) -> str | None:
    """The agent that writes this conntrack setting at runtime (kube-proxy, tuned), if any."""
    name = runtime_name(key)
    kube = facts.kube_proxy
    if kube is not None and name in {runtime_name(k) for k in kube.managed_keys()}:
        return "kube-proxy"
    if not isinstance(facts.tuned, Missing) and name in tuned_owned(facts):
        return f"tuned profile {facts.tuned.name}"
    return None


# --- CT302 ---------------------------------------------------------------------------


def reapply_fix(facts: Facts, lost: Iterable[Configured] = ()) -> str:
    if facts.systemd_sysctl:
        text = (
            f"Re-apply them whenever nf_conntrack loads: write {UDEV_RULE}:\n"
            f'ACTION=="add", SUBSYSTEM=="module", KERNEL=="nf_conntrack", '
            f'RUN+="{facts.systemd_sysctl} --prefix=/net/netfilter'
            ' --prefix=/net/nf_conntrack_max"\n'
            "or load it before sysctl runs: echo nf_conntrack > "
            "/etc/modules-load.d/ctguard-conntrack.conf\n"
            "or have it written and checked: ctguard plan, then ctguard apply"
        )
        config = facts.sysctl_config
        unread = [
            item
            for item in lost
            if isinstance(config, SysctlConfig) and not systemd_reads(config, item.assignment.path)
        ]
        if unread:
            # systemd-sysctl never reads these lines: neither way below would apply them
            text = (
                f"{facts.systemd_sysctl} reads {SYSCTL_CONF} only through"
                f" {SYSCTL_D}/99-sysctl.conf, which is not there, so it applies none of:\n"
                + "\n".join(item.quoted for item in unread)
                + f"\nFirst restore the link (ln -s ../sysctl.conf {SYSCTL_D}/99-sysctl.conf)"
                f" or move the lines to a file in {SYSCTL_D}. Then:\n" + text
            )
        return text
    return (
        "No systemd here: have the module loaded before sysctl runs, with\n"
        "/etc/sysconfig/modules/nf_conntrack.modules (mode 0755):\n"
        "#!/bin/sh\n/sbin/modprobe nf_conntrack\n"
        "and, for the iptables service, the IPTABLES_SYSCTL_LOAD_LIST that CT304 gives."
    )


@rule("CT302")
def applied_before_load(facts: Facts, _limits: Thresholds) -> Outcome:
    kind = facts.presence.kind
    if kind == "builtin":
        return passed("nf_conntrack is built in: its keys exist when sysctl files are applied")
    if kind == "unknown":
        return skipped("cannot tell whether nf_conntrack is a module or built in")
    blocked = load_blocked(facts)
    if blocked is not None and not facts.presence.loaded:
        return passed(f"nf_conntrack cannot load: {blocked}")
    if isinstance(facts.sysctl_config, Missing):
        return skipped(f"sysctl files unreadable: {facts.sysctl_config.reason}")
    wanted = configured(facts.sysctl_config)
    if not wanted:
        return _pass_if_read(facts, "no conntrack keys in sysctl files")
    covered = reapply_mechanisms(facts, wanted.values())
    lost = [item for name, item in sorted(wanted.items()) if name not in covered]
    if not lost:
        how = [f"{name}: {why}" for name, why in sorted(covered.items()) if name in wanted]
        return _pass_if_read(
            facts, "every configured conntrack key is re-applied when the module loads", how
        )
    state = (
        f"nf_conntrack is a loadable module ({facts.presence.evidence})"
        if kind == "module"
        else f"nf_conntrack is not loaded yet ({facts.presence.evidence}): when it loads,"
        " sysctl has already run"
    )
    evidence = [
        state,
        *(f"{_unit_of(item)}: nothing re-applies it when the module loads" for item in lost),
    ]
    return found(Severity.WARNING, evidence, reapply_fix(facts, lost))


# --- CT303 ---------------------------------------------------------------------------


@rule("CT303")
def hashsize_not_persistent(facts: Facts, limits: Thresholds) -> Outcome:
    if not facts.presence.loaded:
        return skipped("nf_conntrack is not loaded")
    buckets = runtime(facts, "nf_conntrack_buckets")
    if buckets is None:
        return skipped("nf_conntrack_buckets not readable")
    if not isinstance(facts.meminfo, Meminfo):
        return skipped(f"memory unknown, so the kernel default is too: {facts.meminfo.reason}")
    default = default_buckets(facts.meminfo.mem_total, facts.kernel)
    settings = hashsize_settings(facts)
    tuned = [p for p in settings if p.agent is not None]
    # tuned writes the parameter after the module has loaded: its value is the one that
    # stays, whatever a modprobe option or the command line said
    places = [(p.value, p.where) for p in (tuned[-1:] if tuned else settings)]
    kube = facts.kube_proxy
    if kube is not None and "net.netfilter.nf_conntrack_max" in kube.managed_keys():
        return passed("kube-proxy sets the hash size when it sets the max (see CT306)")
    if tuned and tuned[-1].unknown is not None:
        return skipped(
            f"{tuned[-1].agent} sets the hash size at {tuned[-1].where}, but {tuned[-1].unknown}:"
            f" the size it keeps is not known here ({buckets} buckets now)"
        )
    matching = [where for value, where in places if value and kernel_buckets(value) == buckets]
    if matching and tuned:
        return passed(
            f"{buckets} buckets, set by {tuned[-1].agent} each time tuned applies it"
            f" ({matching[0]}; see CT306)"
        )
    if matching:
        return passed(f"{buckets} buckets, set at boot by {matching[0]}")
    if buckets == default and not places:
        return passed(f"{buckets} buckets: the kernel default for this memory")
    profile = facts.tuned
    if not isinstance(profile, Missing) and profile.unread and not tuned:
        return skipped(
            f"{buckets} buckets, not the kernel default {default}, and tuned profile"
            f" {profile.name} includes profiles ctguard cannot read here, which may set it:"
            f" {profile.unread[0]}"
        )
    evidence = [f"nf_conntrack_buckets = {buckets} (kernel default here: {default})"]
    evidence += [f"{where} sets {value}, not {buckets}" for value, where in places]
    if not places:
        evidence.append(
            "nothing sets it at boot: a reboot or module reload returns it to the default"
        )
    sizing = host_sizing(facts, limits=limits)
    keep = sizing.buckets.value if isinstance(sizing, Sizing) else buckets
    if isinstance(sizing, Sizing) and keep != buckets:
        evidence.append(
            f"the size for nf_conntrack_max {sizing.max.value} is {keep} buckets"
            f" ({sizing.buckets.reason}): that is the value to keep"
        )
    if tuned and not isinstance(facts.tuned, Missing):
        lines = tuned_owned(facts).get("nf_conntrack_buckets", [])
        fix = f"{tuned[-1].agent} sets it: set {tuned_knob('nf_conntrack_buckets')}={keep}\n"
        fix += tuned_fix(facts.tuned, lines)
    elif facts.presence.kind == "builtin":
        fix = (
            f"Built-in conntrack: add nf_conntrack.hashsize={keep} to the kernel command line"
            " (GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub / grub2-mkconfig)"
            f", or net.netfilter.nf_conntrack_buckets = {keep} in /etc/sysctl.d/."
        )
    else:
        fix = (
            "Write /etc/modprobe.d/ctguard-conntrack.conf:\n"
            f"options nf_conntrack hashsize={keep}\n"
            "or have it written and checked: ctguard plan, then ctguard apply"
        )
    return found(Severity.WARNING, evidence, fix)


# --- CT304 / CT305 ---------------------------------------------------------------------


def _service(facts: Facts) -> tuple[IptablesConfig, InitScript] | Outcome:
    service = facts.iptables_service
    if isinstance(service, Missing):
        return passed(service.reason)
    if not service.has_script:
        return passed(
            f"does not apply: {IPTABLES_CONFIG} without an iptables init script"
            " (none of " + ", ".join(INIT_SCRIPTS) + "): no service stops or restarts"
        )
    if isinstance(service.config, Missing):
        return skipped(f"iptables-config unreadable: {service.config.reason}")
    if isinstance(service.script, Missing):
        return skipped(f"no iptables init script to simulate: {service.script.reason}")
    return service.config, service.script


@rule("CT304")
def service_resets_settings(facts: Facts, _limits: Thresholds) -> Outcome:
    got = _service(facts)
    if isinstance(got, Outcome):
        return got
    config, script = got
    if facts.presence.kind == "builtin":
        return passed("nf_conntrack is built in: the service cannot unload it")
    unload, unload_shown = unload_setting(config, script)
    if not unload:
        return passed(f"the service does not unload modules ({unload_shown})")
    modules = script.nf_modules_common
    if modules is not None and NF_CONNTRACK not in modules:
        return passed("the init script no longer unloads nf_conntrack (see CT305)")
    if isinstance(facts.sysctl_config, Missing):
        return skipped(f"sysctl files unreadable: {facts.sysctl_config.reason}")
    wanted = configured(facts.sysctl_config)
    if not wanted:
        return _pass_if_read(
            facts, "no conntrack keys in sysctl files: the defaults are what is wanted"
        )
    if script.grep_line is None:
        return skipped(f"{script.path}: no 'fgrep ... | sysctl -p -' line found to simulate")
    reapplied = fgrep_reapplied(script, config.sysctl_load_list, facts.grep_files)
    list_var = config.get("IPTABLES_SYSCTL_LOAD_LIST")
    evidence = [
        unload_shown,
        f"{config.path}:{list_var.line}: {list_var.text.strip()}"
        if list_var
        else "IPTABLES_SYSCTL_LOAD_LIST is not set",
        f"{script.path}:{script.grep_line}: {(script.grep_text or '').strip()}"
        f" (greps {' '.join(script.grep_files) or 'nothing'})",
    ]
    lost = 0
    for name, item in sorted(wanted.items()):
        again = reapplied.get(name)
        if again is None:
            evidence.append(f"{_unit_of(item)}: not re-applied by 'service iptables restart'")
            lost += 1
        elif item.value is not None and again[1] != str(item.value):
            hit = again[0]
            evidence.append(
                f"{_unit_of(item)}: restart re-applies {again[1]} from {hit.path}:{hit.line}"
            )
            lost += 1
    if not lost:
        return _pass_if_read(
            facts, "the load list re-applies every configured conntrack key", evidence
        )
    if prefixes_names(script, facts.grep_files):
        evidence.append(
            "fgrep reads several files without -h: every line it prints starts"
            " with a file name, so sysctl -p rejects them all"
        )
    hold = ipv6_hold(facts.ruleset, facts.modules)
    if hold is not None:
        evidence.append(
            f"right now IPv6 rules hold nf_conntrack ({hold.shown}), so 'service iptables stop'"
            " alone fails to unload it; stopping ip6tables too (its own stop unloads the same"
            " common modules, and an iptables stop or restart after it does) resets the values"
        )
    return found(Severity.WARNING, evidence, _load_list_fix(facts, config, script, wanted))


def _load_list_fix(
    facts: Facts, config: IptablesConfig, script: InitScript, wanted: dict[str, Configured]
) -> str:
    want = {
        name: (item.assignment.value.strip(), item.assignment.text) for name, item in wanted.items()
    }
    fix = load_list_fix(config, script, facts.grep_files, want)
    items = fix.items or config.sysctl_load_list
    text = f'In {config.path} set:\nIPTABLES_SYSCTL_LOAD_LIST="{" ".join(items)}"'
    if fix.missed:
        patterns = grep_patterns(script)
        text += (
            f"\nand repeat these lines in {' or '.join(patterns) or 'a file'}"
            f" (what {script.path} greps; 'ctguard plan' writes them there):\n"
        )
        text += "\n".join(wanted[name].quoted for name in fix.missed)
        if any(wanted[name].assignment.path == SYSCTL_CONF for name in fix.missed) and any(
            fnmatchcase(f"{SYSCTL_D}/99-sysctl.conf", pattern) for pattern in patterns
        ):
            text += f"\nor restore RHEL 7's link: ln -s ../sysctl.conf {SYSCTL_D}/99-sysctl.conf"
    return text


@rule("CT305")
def stop_cannot_relieve(facts: Facts, _limits: Thresholds) -> Outcome:
    got = _service(facts)
    if isinstance(got, Outcome):
        return got
    _config, script = got
    if not script.unloads_modules:
        return passed(
            f"{script.path} never unloads a module (no rmmod or modprobe -r, as in"
            " iptables-services 1.4.21-29 and later): stop was never a way to empty the table"
        )
    modules = script.nf_modules_common
    if modules is None:
        return passed("the init script has no NF_MODULES_COMMON list")
    if NF_CONNTRACK in modules:
        return passed(
            f"the init script unloads nf_conntrack on stop ({script.path}:{script.modules_line})"
        )
    evidence = [
        f"{script.path}:{script.modules_line}: {(script.modules_text or '').strip()}",
        "'service iptables stop' no longer unloads nf_conntrack: it cannot empty a full table,"
        " and the script no longer matches the package (updates may overwrite it)",
    ]
    stock = " ".join(STOCK_NF_MODULES_COMMON)
    fix = (
        f"Restore the stock line in {script.path} (keep a backup):\n"
        f"NF_MODULES_COMMON=({stock})\n"
        "and keep settings across restarts with the load list instead (CT304's fix)."
    )
    return found(Severity.WARNING, evidence, fix)


# --- CT306 ---------------------------------------------------------------------------


def _clip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _file_assignments(
    config: SysctlConfig | Missing, keys: Iterable[str]
) -> list[SysctlAssignment]:
    if isinstance(config, Missing):
        return []
    names = {runtime_name(k) for k in keys}
    return [a for a in config.assignments if runtime_name(a.key) in names]


def _file_settings(config: SysctlConfig | Missing, keys: Iterable[str]) -> list[str]:
    return [quote(a) for a in _file_assignments(config, keys)]


def _tuned_settings(facts: Facts, tuned: TunedProfile) -> tuple[list[str], list[str], bool]:
    """CT306's evidence, fixes and conflict for the active tuned profile."""
    owned = tuned_owned(facts)
    beaten = tuned_reapplied(facts)
    lines = [line for name in sorted(owned) for line in owned[name]]
    if not lines and not beaten:
        return [], [], False
    evidence = [f"tuned profile {tuned.name}: {_tuned_line(t)}" for t in lines]
    reapply = tuned.main.reapply_where
    for line, wins in (beaten[name] for name in sorted(beaten)):
        evidence.append(
            f"tuned profile {tuned.name}: {_tuned_line(line)}: has no effect: tuned re-applies"
            f" the system sysctl files after its own ({reapply}), so {quote(wins)} wins"
        )
    clashing = [
        a
        for a in _file_assignments(facts.sysctl_config, [f"net.netfilter.{n}" for n in owned])
        if runtime_name(a.key) not in beaten
    ]
    overridden = overridden_by_tuned(facts)
    for a in clashing:
        if not tuned.main.reapply_sysctl:
            why = f"tuned does not re-apply the system sysctl files ({reapply})"
        elif a.path == SYSCTL_CONF or a.path.startswith(REAPPLIED_SYSCTL_DIRS):
            why = "reapply_sysctl_exclude keeps it out of what tuned re-applies"
        else:
            why = "tuned re-applies only /run/sysctl.d, /etc/sysctl.d and /etc/sysctl.conf"
        evidence.append(f"also set by {quote(a)}: tuned's value wins: {why}")
    evidence += [
        f"also set by {place.where} (hashsize {place.value}): tuned writes its own"
        " size once the module has loaded"
        for place in overridden
    ]
    evidence += list(tuned.unread)
    fixes: list[str] = []
    if lines:
        fixes.append(tuned_fix(tuned, lines))
    if beaten:
        keys = ", ".join(line.key for line, _ in beaten.values())
        fixes.append(
            f"{keys}: the sysctl files decide; remove the line from the profile so the two"
            " stop disagreeing, or set the value you want in the file"
        )
    fixes += [f"remove the hash size at {p.where}: tuned's wins" for p in overridden]
    return evidence, fixes, bool(clashing) or bool(overridden)


def _tuned_line(line: TunedSysctl) -> str:
    text = f"{line.path}:{line.line}: {line.text.strip()}"
    if line.unknown is not None:
        text += f" (value not known offline: {line.unknown})"
    return text


@rule("CT306")
def agent_owns_settings(facts: Facts, _limits: Thresholds) -> Outcome:
    if isinstance(facts.processes, Missing) and isinstance(facts.tuned, Missing):
        return skipped(f"no process list ({facts.processes.reason}) and no tuned profile")
    evidence: list[str] = []
    fixes: list[str] = []
    conflict = False
    kube = facts.kube_proxy
    if kube is not None:
        keys = kube.managed_keys()
        evidence.append(f"kube-proxy (pid {kube.pid}) sets {', '.join(keys)}: {_clip(kube.args)}")
        clashing = _file_settings(facts.sysctl_config, keys)
        conflict = conflict or bool(clashing)
        evidence += [f"also set by {line}: kube-proxy overwrites it" for line in clashing]
        fixes += [f"{key}: set kube-proxy's {kube.flag_for(key)} instead" for key in keys]
    if not isinstance(facts.tuned, Missing):
        tuned_evidence, tuned_fixes, tuned_conflict = _tuned_settings(facts, facts.tuned)
        evidence += tuned_evidence
        fixes += tuned_fixes
        conflict = conflict or tuned_conflict
    if not evidence:
        if isinstance(facts.processes, Missing):  # kube-proxy unseen: not a pass either
            return skipped(f"no tuned profile setting conntrack keys, but processes not read"
                           f" ({facts.processes.reason}): kube-proxy unknown")  # fmt: skip
        if facts.processes_cut:  # kube-proxy may be past the cut: not a pass
            return skipped(f"no kube-proxy in the processes read, but {facts.processes_cut}")
        if not isinstance(facts.tuned, Missing) and facts.tuned.unread:
            return skipped(
                f"tuned profile {facts.tuned.name} sets no conntrack key ctguard can see, but"
                f" it includes profiles ctguard cannot read here: {facts.tuned.unread[0]}"
            )
        return passed("no kube-proxy and no tuned profile setting conntrack keys")
    severity = Severity.WARNING if conflict else Severity.INFO
    if facts.processes_cut:
        evidence.append(facts.processes_cut)
    return found(severity, evidence, "\n".join(fixes))
