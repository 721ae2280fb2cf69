"""Agents that write conntrack sysctls themselves: kube-proxy and tuned (docs/design.md §4 CT306).

A value such an agent owns comes back after every restart of the agent, whatever the
sysctl files say, so the fix is the agent's own knob, not another sysctl.d file.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath

from ctguard.host.root import HostRoot
from ctguard.missing import Missing
from ctguard.sources.sysctl_conf import runtime_name
from ctguard.sources.tuned_config import (
    TUNED_ACTIVE_PROFILE,
    TUNED_DEFAULT_DIRS,
    TUNED_FILE_MAX_BYTES,
    ActiveProfiles,
    TunedMain,
    read_active,
    tuned_config_paths,
)
from ctguard.sources.tuned_expand import Variables, expand_profile_dir, split_include, unresolved
from ctguard.sources.tuned_ini import TunedSysctl, parse_ini

__all__ = ["TunedSysctl"]  # re-exported: the record of a tuned option

# -- ps -----------------------------------------------------------------------------------
_PS_LINE = re.compile(r"[ \t]*([0-9]{1,10})[ \t]+(\S.*?)\s*")


@dataclass(frozen=True)
class Process:
    pid: int
    args: str


def parse_ps(text: str) -> tuple[Process, ...]:
    """Parse ``ps -eo pid,args``; the header and any line without a pid are skipped.

    >>> parse_ps("    PID COMMAND\\n"
    ...          "   1402 /usr/local/bin/kube-proxy --config=/var/lib/kube-proxy/config.conf\\n")
    (Process(pid=1402, args='/usr/local/bin/kube-proxy --config=/var/lib/kube-proxy/config.conf'),)
    """
    processes: list[Process] = []
    for line in text.split("\n"):
        match = _PS_LINE.fullmatch(line)
        if match:
            processes.append(Process(int(match[1]), match[2]))
    return tuple(processes)


# -- kube-proxy ---------------------------------------------------------------------------
_MAX = "net.netfilter.nf_conntrack_max"
_ESTABLISHED = "net.netfilter.nf_conntrack_tcp_timeout_established"
_CLOSE_WAIT = "net.netfilter.nf_conntrack_tcp_timeout_close_wait"
_UDP = "net.netfilter.nf_conntrack_udp_timeout"
_UDP_STREAM = "net.netfilter.nf_conntrack_udp_timeout_stream"
_BE_LIBERAL = "net.netfilter.nf_conntrack_tcp_be_liberal"
DEFAULT_MANAGED_KEYS = (_MAX, _ESTABLISHED, _CLOSE_WAIT)

# sysctl file name -> (command-line flag, KubeProxyConfiguration field). Buckets follow
# max: kube-proxy raises the hashsize module parameter to max / 4 when it is lower.
_KNOBS: dict[str, tuple[str, str]] = {
    "nf_conntrack_max": ("--conntrack-max-per-core", "conntrack.maxPerCore"),
    "nf_conntrack_buckets": ("--conntrack-max-per-core", "conntrack.maxPerCore"),
    "nf_conntrack_tcp_timeout_established": (
        "--conntrack-tcp-timeout-established",
        "conntrack.tcpEstablishedTimeout",
    ),
    "nf_conntrack_tcp_timeout_close_wait": (
        "--conntrack-tcp-timeout-close-wait",
        "conntrack.tcpCloseWaitTimeout",
    ),
    "nf_conntrack_udp_timeout": ("--conntrack-udp-timeout", "conntrack.udpTimeout"),
    "nf_conntrack_udp_timeout_stream": (
        "--conntrack-udp-timeout-stream",
        "conntrack.udpStreamTimeout",
    ),
    "nf_conntrack_tcp_be_liberal": ("--conntrack-tcp-be-liberal", "conntrack.tcpBeLiberal"),
}
# pflag booleans take no separate value word ("--masquerade-all --v=2").
_BOOL_FLAGS = frozenset({"conntrack-tcp-be-liberal", "masquerade-all", "cleanup",
    "cleanup-ipvs", "profiling", "enable-profiling", "ipvs-strict-arp", "init-only",
    "bind-address-hard-fail", "iptables-localhost-nodeports", "alsologtostderr",
    "logtostderr", "add-dir-header", "skip-headers", "skip-log-headers", "one-output",
    "version"})  # fmt: skip
_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})  # strconv.ParseBool
_GO_DURATION = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
             "m": 60.0, "h": 3600.0}  # fmt: skip


def _go_duration_seconds(text: str) -> float | None:
    """Seconds in a Go ``time.ParseDuration`` string ("24h0m0s", "0", "-1s"), else None."""
    sign = -1.0 if text.startswith("-") else 1.0
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0.0
    total = 0.0
    pos = 0
    while pos < len(body):
        part = _GO_DURATION.match(body, pos)
        if part is None or part[1] in ("", "."):
            return None
        total += float(part[1]) * _GO_UNITS[part[2]]
        pos = part.end()
    return sign * total if body else None


def _is_positive_duration(value: str) -> bool:
    """kube-proxy writes a timeout only when it is > 0; a value Go rejects counts as set."""
    seconds = _go_duration_seconds(value)
    return seconds is None or seconds > 0


def _is_positive_int(value: str) -> bool:
    try:
        return int(value) > 0
    except ValueError:
        return True  # kube-proxy would not have started: do not claim the key is free


@dataclass(frozen=True)
class KubeProxy:
    pid: int
    args: str
    flags: Mapping[str, str]  # every --flag=value / --flag value, names without "--"
    config_path: str | None  # --config value

    def managed_keys(self) -> tuple[str, ...]:
        """Dotted sysctl keys this kube-proxy writes at start (cmd/kube-proxy/app).

        Defaults: ``--conntrack-max-per-core=32768`` (max = that x CPUs, at least
        ``--conntrack-min=131072``), established 24h, close_wait 1h; each is skipped when
        its value is 0. UDP timeouts and ``tcp_be_liberal`` are written only when set.

        With ``--config`` the file decides (kube-proxy replaces its flag values with the
        file's, so conntrack flags given beside it do not count). Its defaults are the
        same as the flags', so the three default keys are returned: ctguard does not read
        the file, which may live in a container.
        """
        if self.config_path is not None:
            return DEFAULT_MANAGED_KEYS
        flags = self.flags
        keys: list[str] = []
        per_core = flags.get("conntrack-max-per-core")
        legacy_max = flags.get("conntrack-max")  # removed in 1.19; was absolute
        if (per_core is None or _is_positive_int(per_core)) or (
            legacy_max is not None and _is_positive_int(legacy_max)
        ):
            keys.append(_MAX)
        for key, flag in ((_ESTABLISHED, "conntrack-tcp-timeout-established"),
                          (_CLOSE_WAIT, "conntrack-tcp-timeout-close-wait")):  # fmt: skip
            value = flags.get(flag)
            if value is None or _is_positive_duration(value):
                keys.append(key)
        for key, flag in ((_UDP, "conntrack-udp-timeout"),
                          (_UDP_STREAM, "conntrack-udp-timeout-stream")):  # fmt: skip
            value = flags.get(flag)
            if value is not None and _is_positive_duration(value):
                keys.append(key)
        if flags.get("conntrack-tcp-be-liberal") in _GO_TRUE:
            keys.append(_BE_LIBERAL)
        return tuple(keys)

    def flag_for(self, key: str) -> str:
        """The kube-proxy flag, or config field with ``--config``, to set instead of ``key``."""
        knob = _KNOBS.get(runtime_name(key) or key)
        if knob is None:
            return "the kube-proxy configuration" if self.config_path else "kube-proxy flags"
        return knob[1] if self.config_path is not None else knob[0]


def _parse_flags(argv: Sequence[str]) -> dict[str, str]:
    """pflag syntax: ``--name=value``, ``--name value``, a bare boolean ``--name``."""
    flags: dict[str, str] = {}
    index = 0
    while index < len(argv):
        word = argv[index]
        index += 1
        if not word.startswith("-") or word in ("-", "--"):
            continue
        name, has_value, value = word.lstrip("-").partition("=")
        name = name.replace("_", "-")  # k8s flag sets normalise "_" to "-"
        if not name:
            continue
        if not has_value and name not in _BOOL_FLAGS:
            # pflag takes the next word as the value even when it starts with "-" (-999)
            if index < len(argv) and not argv[index].startswith("--"):
                value = argv[index]
                index += 1
            else:
                value = "true"
        elif not has_value:
            value = "true"
        flags[name] = value
    return flags


def _kube_proxy_argv(args: str) -> list[str] | None:
    """The flag words when ``args`` runs kube-proxy (also ``hyperkube kube-proxy|proxy``)."""
    argv = args.split()
    if not argv:
        return None
    program = PurePosixPath(argv[0]).name
    if program == "kube-proxy":
        return argv[1:]
    if program == "hyperkube" and len(argv) > 1 and argv[1] in ("kube-proxy", "proxy"):
        return argv[2:]
    return None


def find_kube_proxy(processes: Sequence[Process]) -> KubeProxy | None:
    """The first kube-proxy process, its flags parsed.

    ``ps`` joins argv with spaces, so a value containing a space cannot be told apart;
    kube-proxy's conntrack flags never contain one.

    >>> kp = find_kube_proxy(parse_ps(
    ...     "  PID COMMAND\\n 2211 /usr/local/bin/kube-proxy --conntrack-max-per-core=0 --v=2\\n"))
    >>> kp.pid, kp.flags["conntrack-max-per-core"]
    (2211, '0')
    >>> kp.managed_keys()
    ('net.netfilter.nf_conntrack_tcp_timeout_established', \
'net.netfilter.nf_conntrack_tcp_timeout_close_wait')
    >>> kp.flag_for("net.netfilter.nf_conntrack_max")
    '--conntrack-max-per-core'
    """
    for process in processes:
        argv = _kube_proxy_argv(process.args)
        if argv is not None:
            flags = _parse_flags(argv)
            return KubeProxy(process.pid, process.args, flags, flags.get("config"))
    return None


# -- tuned --------------------------------------------------------------------------------
# How tuned finds, merges and expands profiles: sources/tuned_config.py (which profiles,
# where, reapply_sysctl), sources/tuned_ini.py (the file format), sources/tuned_expand.py.
TUNED_MAX_INCLUDE_DEPTH = 16  # tuned has none: a file is read once, which ends any cycle
_SAFE_PROFILE_NAME = re.compile(r"[a-zA-Z0-9_.-]+")  # tuned's loader.safe_name
# Options every tuned unit accepts; a sysctl unit's other options are sysctl keys.
_UNIT_OPTIONS = frozenset({"type", "replace", "enabled", "devices", "devices_udev_regex",
    "script_pre", "script_post", "drop", "priority", "uname_regex", "cpuinfo_regex",
    "prepend"})  # fmt: skip
_TRUE_WORDS = frozenset({"1", "true", "yes", "y", "on"})


@dataclass(frozen=True)
class TunedModule:
    """A ``[modules]`` line for one module: tuned writes ``options MODULE ARGS`` to
    /etc/modprobe.d/tuned.conf, and with ``+r`` also unloads and reloads the module at once
    (tuned/plugins/plugin_modules.py, _instance_apply_static, tuned commit
    2bfa4423586bb516452c538a232c8f7075bafbdf)."""

    option: TunedSysctl  # the line as written ("nf_conntrack=+r hashsize=1048576")
    reload: bool  # "+r": tuned (re)loads it when the profile is applied
    args: str  # what tuned writes after "options MODULE", "" for none

    def parameter(self, name: str) -> str | None:
        """A ``name=value`` word of ``args``, as modprobe would read it."""
        for word in self.args.split():
            key, sep, value = word.partition("=")
            if sep and key.replace("-", "_") == name:
                return value
        return None


@dataclass(frozen=True)
class TunedProfile:
    name: str
    sysctls: tuple[TunedSysctl, ...]  # includes first, then each profile's own lines
    # [net] nf_conntrack_hashsize: tuned writes it to
    # /sys/module/nf_conntrack/parameters/hashsize whenever it applies the profile
    # (tuned/plugins/plugin_net.py, _set_nf_conntrack_hashsize, tuned commit
    # 2bfa4423586bb516452c538a232c8f7075bafbdf): after boot, and after every restart.
    net_hashsize: TunedSysctl | None = None
    conntrack_module: TunedModule | None = None  # [modules] nf_conntrack=...
    paths: tuple[str, ...] = ()  # every tuned.conf read, includes first
    main: TunedMain = field(default_factory=lambda: TunedMain(TUNED_DEFAULT_DIRS, True, ""))
    # include= parts ctguard could not follow, each a sentence: what it read may be incomplete
    unread: tuple[str, ...] = ()
    active_from: str = TUNED_ACTIVE_PROFILE

    @property
    def operator(self) -> bool:
        """Run by the OpenShift Node Tuning Operator (its profiles come from Tuned resources)."""
        return self.main.operator


@dataclass(frozen=True)
class TunedConf:
    """One ``tuned.conf``: its ``include=`` names and every option of every section
    (each kept as a TunedSysctl record: key, value and where it was written), with
    ``${i:PROFILE_DIR}`` already expanded, as tuned does when it loads the file."""

    path: str
    includes: tuple[str, ...]
    sections: Mapping[str, Mapping[str, TunedSysctl]] = field(default_factory=dict)

    @property
    def include_line(self) -> TunedSysctl | None:
        return self.sections.get("main", {}).get("include")


def parse_tuned_conf(text: str, path: str) -> TunedConf:
    """Parse a tuned profile (``tuned.conf``); lines tuned would reject are skipped.

    >>> conf = parse_tuned_conf(
    ...     "[main]\\nsummary=Kubernetes node\\ninclude=throughput-performance\\n\\n"
    ...     "[sysctl]\\nnet.netfilter.nf_conntrack_max=1048576\\n",
    ...     "/etc/tuned/k8s-node/tuned.conf")
    >>> conf.includes, conf.sections["sysctl"]["net.netfilter.nf_conntrack_max"].value
    (('throughput-performance',), '1048576')
    """
    directory = posixpath.dirname(path)
    sections = {
        name: {
            key: replace(option, value=expand_profile_dir(option.value, directory))
            for key, option in options.items()
        }
        for name, options in parse_ini(text, path).items()
    }
    include = sections.get("main", {}).get("include")
    names = split_include(include.value) if include else []
    return TunedConf(path, tuple(names), sections)


def _locate_profile(
    host: HostRoot, dirs: Sequence[str], name: str, skip: Sequence[str]
) -> str | None:
    """tuned's locator: the last profile directory holding the profile wins; a file already
    loaded is passed over, so /etc/tuned/X/tuned.conf may include the stock X it overrides.
    "" when tuned skips the name silently: a ``-NAME`` (conditional) include that is not
    found, or a name whose only file was loaded already."""
    conditional = name.startswith("-")
    base = name[1:] if conditional else name
    found: str | None = "" if conditional else None
    if not _SAFE_PROFILE_NAME.fullmatch(base) or base in (".", ".."):
        return found
    for directory in reversed(dirs):
        path = posixpath.normpath(f"{directory}/{base}/tuned.conf")
        if path in skip:
            found = ""
            continue
        if host.is_file(path):
            return path
    return found


@dataclass
class _Loading:
    host: HostRoot
    dirs: Sequence[str]
    operator: bool
    loaded: list[TunedConf] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)  # tuned's processed_files
    unread: list[str] = field(default_factory=list)

    def load(self, names: Sequence[str], origin: TunedSysctl | None, depth: int) -> list[str]:
        """Append the profiles to ``loaded``, includes first, as tuned's loader does;
        return the names not found."""
        not_found: list[str] = []
        for name in names:
            where = f"{origin.path}:{origin.line}: include {name}" if origin else name
            why = unresolved(name)
            if why is not None and "${f:" not in name:
                why = "tuned expands include= before it reads [variables]: it names no profile"
            if why is not None:
                self.unread.append(
                    f"{where}: {why}: which profile it names, and what that sets, is not known"
                )
                continue
            path = _locate_profile(self.host, self.dirs, name, self.seen)
            if path == "":
                continue
            text = self.host.try_read_text(path, TUNED_FILE_MAX_BYTES) if path else None
            if path is None or text is None or isinstance(text, Missing):
                not_found.append(name)
                if origin is not None:
                    self.unread.append(f"{where}: {self._not_here(name)}")
                continue
            self.seen.append(path)
            conf = parse_tuned_conf(text, path)
            if conf.includes and depth < TUNED_MAX_INCLUDE_DEPTH:
                self.load(conf.includes, conf.include_line, depth + 1)
            self.loaded.append(conf)
        return not_found

    def _not_here(self, name: str) -> str:
        if self.operator:
            return (
                "not on this node (the operator's tuned pod holds the stock profiles),"
                " so what it sets is not known here"
            )
        return f"not found in {', '.join(reversed(self.dirs))}: tuned refuses to load the profile"


def _is_true(option: TunedSysctl | None) -> bool:
    return option is not None and option.value.strip().lower() in _TRUE_WORDS


def _unit_type(name: str, options: Mapping[str, TunedSysctl]) -> str:
    kind = options.get("type")
    return kind.value if kind else name


def merge_tuned_units(confs: Sequence[TunedConf]) -> dict[str, dict[str, TunedSysctl]]:
    """Merge units like tuned's Merger: same-named units update, ``replace=1`` starts over,
    ``drop=`` removes the parent's options."""
    units: dict[str, dict[str, TunedSysctl]] = {}
    for conf in confs:
        for name, options in conf.sections.items():
            if name == "main" or _unit_type(name, options) == "variables":
                continue
            if _is_true(options.get("replace")) or name not in units:
                units[name] = dict(options)
                continue
            drop = options.get("drop")
            for key in re.split(r"\s*[,;]\s*", drop.value) if drop else ():
                units[name].pop(key, None)
            units[name].update(options)
    return units


def _merged_variables(host: HostRoot, confs: Sequence[TunedConf]) -> Variables:
    """The merged ``[variables]``; ``include=FILE`` there reads ``NAME=value`` lines."""
    items: list[tuple[str, str]] = []
    for conf in confs:
        for name, options in conf.sections.items():
            if _unit_type(name, options) != "variables":
                continue
            if _is_true(options.get("replace")):
                items = []
            items += [(key, option.value) for key, option in options.items()
                      if key not in ("type", "replace", "prepend")]  # fmt: skip
    variables = Variables()
    for key, value in items:
        if key != "include":
            variables.add(key, value)
            continue
        text = host.try_read_text(posixpath.normpath(value), TUNED_FILE_MAX_BYTES)
        if isinstance(text, Missing):
            continue
        for options in parse_ini(text, value, "variables").values():
            variables.add_all([(k, o.value) for k, o in options.items()])
    return variables


def _expanded(option: TunedSysctl, variables: Variables) -> TunedSysctl:
    result = variables.expand(option.value)
    return replace(option, value=result.value, unknown=result.unknown)


def _plugin_units(
    units: Mapping[str, Mapping[str, TunedSysctl]], plugin: str
) -> list[Mapping[str, TunedSysctl]]:
    """The enabled units of one plugin: by name (``[net]``) or by ``type=net``."""
    chosen: list[Mapping[str, TunedSysctl]] = []
    for name, options in units.items():
        enabled = options.get("enabled")
        if _unit_type(name, options) != plugin:
            continue
        if enabled is not None and not _is_true(enabled):
            continue
        chosen.append(options)
    return chosen


def merge_tuned_sysctls(confs: Sequence[TunedConf]) -> tuple[TunedSysctl, ...]:
    """The merged ``[sysctl]`` keys (a unit named so, or with ``type=sysctl``)."""
    sysctls: list[TunedSysctl] = []
    for options in _plugin_units(merge_tuned_units(confs), "sysctl"):
        sysctls.extend(
            option
            for key, option in options.items()
            if key not in _UNIT_OPTIONS and ("." in key or "/" in key)
        )
    return tuple(sysctls)


def _tuned_net_hashsize(units: Mapping[str, Mapping[str, TunedSysctl]]) -> TunedSysctl | None:
    found: TunedSysctl | None = None
    for options in _plugin_units(units, "net"):
        found = options.get("nf_conntrack_hashsize", found)
    return found


def _tuned_conntrack_module(
    units: Mapping[str, Mapping[str, TunedSysctl]],
) -> TunedModule | None:
    found: TunedModule | None = None
    for options in _plugin_units(units, "modules"):
        option = options.get("nf_conntrack")
        if option is not None:
            # tuned's own pattern for the prefix: "+r", then an optional comma
            match = re.match(r"\s*\+r\s*,?\s*", option.value)
            args = option.value[match.end() :] if match else option.value
            found = TunedModule(option, match is not None, args.strip())
    return found


def tuned_profile(
    name: str, confs: Sequence[TunedConf], variables: Variables | None = None
) -> TunedProfile:
    """What a merged chain of profiles sets for conntrack, its values expanded.

    >>> stock = parse_tuned_conf("[main]\\ninclude=network-throughput\\n[net]\\n"
    ...     "nf_conntrack_hashsize=1048576\\n[sysctl]\\nnet.netfilter.nf_conntrack_max=1048576\\n",
    ...     "/usr/lib/tuned/openshift/tuned.conf")
    >>> node = parse_tuned_conf("[main]\\ninclude=openshift\\n[modules]\\nnf_conntrack=+r\\n",
    ...     "/etc/tuned/openshift-node/tuned.conf")
    >>> profile = tuned_profile("openshift-node", [stock, node])
    >>> profile.net_hashsize.value, profile.conntrack_module.reload, profile.conntrack_module.args
    ('1048576', True, '')
    """
    known = variables if variables is not None else Variables()
    units = {
        unit: {key: _expanded(option, known) for key, option in options.items()}
        for unit, options in merge_tuned_units(confs).items()
    }
    sysctls = tuple(_expanded(option, known) for option in merge_tuned_sysctls(confs))
    return TunedProfile(
        name,
        sysctls,
        _tuned_net_hashsize(units),
        _tuned_conntrack_module(units),
        tuple(conf.path for conf in confs),
    )


def _loading(host: HostRoot) -> tuple[ActiveProfiles, _Loading, list[str]] | Missing:
    active = read_active(host)
    if isinstance(active, Missing):
        return active
    loading = _Loading(host, active.main.profile_dirs, active.main.operator)
    names = [name for name in active.names if _SAFE_PROFILE_NAME.fullmatch(name)]
    not_found = loading.load(names, None, depth=0) if names else list(active.names)
    return active, loading, not_found


def tuned_profile_paths(host: HostRoot) -> tuple[str, ...]:
    """Every file ``read_tuned`` reads on this host (tuned-main.conf, active_profile, every
    tuned.conf of the include chains...): what a snapshot must hold for doctor to read the
    same profile there."""
    got = _loading(host)
    configs = tuple(tuned_config_paths(host))
    if isinstance(got, Missing):
        return configs
    _active, loading, _ = got
    variables = [
        posixpath.normpath(options["include"].value)
        for conf in loading.loaded
        for name, options in conf.sections.items()
        if _unit_type(name, options) == "variables" and "include" in options
    ]
    found = [path for path in variables if host.is_file(path)]
    return configs + tuple(conf.path for conf in loading.loaded) + tuple(found)


def read_tuned(host: HostRoot) -> TunedProfile | Missing:
    """What the active tuned profiles (several names: merged in order) set for conntrack."""
    got = _loading(host)
    if isinstance(got, Missing):
        return got
    active, loading, not_found = got
    if not loading.loaded:
        where = ", ".join(reversed(active.main.profile_dirs))
        return Missing(f"tuned profile {' '.join(not_found)} not found in {where}")
    profile = tuned_profile(
        " ".join(active.names), loading.loaded, _merged_variables(host, loading.loaded)
    )
    unread = loading.unread + [
        f"{active.where}: {name}: {loading._not_here(name)}" for name in not_found
    ]
    return replace(profile, main=active.main, unread=tuple(unread), active_from=active.where)
