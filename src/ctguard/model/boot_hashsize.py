"""Where the conntrack hash size is set at boot, and which keys tuned owns (CT303, CT306).

The one answer the rules (CT303, CT306) and the planner (``remediation/hashsize.py``,
``remediation/agent_keys.py``) share: a modprobe ``options nf_conntrack hashsize=``, the
kernel command line, a sysctl file, or the active tuned profile. tuned keeps the size in
two ways: ``[net] nf_conntrack_hashsize`` writes the module parameter each time tuned
applies the profile, and ``[modules] nf_conntrack=... hashsize=N`` becomes
``options nf_conntrack hashsize=N`` in /etc/modprobe.d/tuned.conf (tuned commit
2bfa4423586bb516452c538a232c8f7075bafbdf, tuned/plugins/plugin_net.py and
tuned/plugins/plugin_modules.py). Either way the value comes back after a reboot, and a
file ctguard wrote would lose to tuned's own write.
"""

from __future__ import annotations

from dataclasses import dataclass

from ctguard.facts import Facts
from ctguard.missing import Missing
from ctguard.model.host_sizing import BUCKETS
from ctguard.model.values import NF_CONNTRACK, configured
from ctguard.sources.agents import TunedProfile, TunedSysctl
from ctguard.sources.modprobe_conf import ModprobeConfig
from ctguard.sources.sysctl_conf import runtime_name

TUNED_STOCK_DIR = "/usr/lib/tuned/"  # the package's profiles: an update overwrites them
TUNED_MODPROBE_FILE = "/etc/modprobe.d/tuned.conf"  # tuned's consts.MODULES_FILE


@dataclass(frozen=True)
class HashsizeSetting:
    value: int | None  # None: not a number
    where: str  # "path:line", or the kernel command line
    kind: str  # "modprobe", "cmdline", "sysctl" or "tuned"
    agent: str | None = None  # "tuned profile NAME" when tuned writes it


def _number(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def _where(option: TunedSysctl) -> str:
    return f"{option.path}:{option.line}: {option.text.strip()}"


def tuned_hashsize(tuned: TunedProfile | Missing) -> list[HashsizeSetting]:
    """The hash sizes the active tuned profile sets, ``[modules]`` before ``[net]``: tuned
    writes the module parameter after the module has loaded with its modprobe option."""
    if isinstance(tuned, Missing):
        return []
    agent = f"tuned profile {tuned.name}"
    places: list[HashsizeSetting] = []
    module = tuned.conntrack_module
    if module is not None:
        value = module.parameter("hashsize")
        if value is not None:
            places.append(HashsizeSetting(_number(value), _where(module.option), "tuned", agent))
    if tuned.net_hashsize is not None:
        option = tuned.net_hashsize
        places.append(HashsizeSetting(_number(option.value), _where(option), "tuned", agent))
    return places


def hashsize_settings(facts: Facts) -> list[HashsizeSetting]:
    """Every boot-time setting of the hash size, in the order they take effect."""
    places: list[HashsizeSetting] = []
    if isinstance(facts.modprobe, ModprobeConfig):
        option = facts.modprobe.option(NF_CONNTRACK, "hashsize")
        if option is not None:
            value, directive = option
            where = f"{directive.path}:{directive.line}"
            places.append(HashsizeSetting(_number(value), where, "modprobe"))
    if not isinstance(facts.cmdline, Missing):
        param = facts.cmdline.get("nf_conntrack.hashsize")  # "-" and "_" are the same here
        if param is not None:
            where = "kernel cmdline nf_conntrack.hashsize"
            places.append(HashsizeSetting(_number(param), where, "cmdline"))
    setting = configured(facts.sysctl_config).get(BUCKETS)
    if setting is not None:
        places.append(HashsizeSetting(setting.value, setting.quoted, "sysctl"))
    return places + tuned_hashsize(facts.tuned)


def tuned_owned(tuned: TunedProfile | Missing) -> dict[str, list[TunedSysctl]]:
    """Runtime name -> the tuned lines that set it (``[sysctl]``, ``[net]``, ``[modules]``)."""
    if isinstance(tuned, Missing):
        return {}
    owned: dict[str, list[TunedSysctl]] = {}
    for line in tuned.sysctls:
        name = runtime_name(line.key)
        if name is not None:
            owned.setdefault(name, []).append(line)
    module = tuned.conntrack_module
    if module is not None and module.parameter("hashsize") is not None:
        owned.setdefault(BUCKETS, []).append(module.option)
    if tuned.net_hashsize is not None:
        owned.setdefault(BUCKETS, []).append(tuned.net_hashsize)
    return owned


def tuned_knob(name: str) -> str:
    """The tuned profile line that sets runtime setting ``name``."""
    if name == BUCKETS:
        return "[net] nf_conntrack_hashsize"
    return f"[sysctl] net.netfilter.{name}"


def tuned_fix(tuned: TunedProfile, lines: list[TunedSysctl]) -> str:
    """Where to change what tuned sets: never a file under /usr/lib/tuned (the package owns
    it), but a profile of one's own under /etc/tuned, or the cluster's Tuned resource."""
    profile = tuned.name.split()[-1]
    stock = sorted({line.path for line in lines if line.path.startswith(TUNED_STOCK_DIR)})
    own = sorted({line.path for line in lines} - set(stock))
    fixes: list[str] = []
    if own:
        fixes.append(f"edit {', '.join(own)} (the profile's own lines)")
    if stock:
        fixes.append(
            f"{', '.join(stock)} belongs to the tuned package: do not edit it; create"
            f" /etc/tuned/{profile}-conntrack/tuned.conf with [main] include={profile} and"
            " the values you want in the same sections, then"
            f" 'tuned-adm profile {profile}-conntrack'"
        )
    if any("/openshift" in path for path in tuned.paths):
        fixes.append(
            "on an OpenShift node the Node Tuning Operator writes /etc/tuned: set them in a"
            " Tuned resource (tuned.openshift.io/v1) whose profile includes"
            f" {profile}, not on the node"
        )
    return "\n".join(fixes)


def overridden_by_tuned(facts: Facts) -> list[HashsizeSetting]:
    """Boot settings of the hash size outside tuned that tuned's own write replaces."""
    if not tuned_hashsize(facts.tuned):
        return []
    return [
        place
        for place in hashsize_settings(facts)
        if place.kind in ("modprobe", "cmdline") and not place.where.startswith(TUNED_MODPROBE_FILE)
    ]
