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

tuned's ``[sysctl]`` keys are different: with ``reapply_sysctl`` on (the default) tuned writes
the system sysctl files again right after them, so a key those files also set is theirs
(``tuned_reapplied``); ``tuned_owned`` is what tuned really keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from ctguard.facts import Facts
from ctguard.missing import Missing
from ctguard.model.host_sizing import BUCKETS
from ctguard.model.values import NF_CONNTRACK, configured
from ctguard.sources.agents import TunedProfile, TunedSysctl
from ctguard.sources.modprobe_conf import ModprobeConfig
from ctguard.sources.sysctl_conf import SysctlAssignment, runtime_name
from ctguard.sources.tuned_config import OCP_TUNED_PROFILES

TUNED_STOCK_DIR = "/usr/lib/tuned/"  # the package's profiles: an update overwrites them
TUNED_MODPROBE_FILE = "/etc/modprobe.d/tuned.conf"  # tuned's consts.MODULES_FILE
NTO_NAMESPACE = "openshift-cluster-node-tuning-operator"


@dataclass(frozen=True)
class HashsizeSetting:
    value: int | None  # None: not a number, or not known offline (``unknown`` says why)
    where: str  # "path:line", or the kernel command line
    kind: str  # "modprobe", "cmdline", "sysctl" or "tuned"
    agent: str | None = None  # "tuned profile NAME" when tuned writes it
    unknown: str | None = None  # why the value cannot be told offline


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
            where = _where(module.option)
            unknown = module.option.unknown
            number = None if unknown else _number(value)
            places.append(HashsizeSetting(number, where, "tuned", agent, unknown))
    if tuned.net_hashsize is not None:
        option = tuned.net_hashsize
        number = None if option.unknown else _number(option.value)
        places.append(HashsizeSetting(number, _where(option), "tuned", agent, option.unknown))
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


def tuned_reapplied(facts: Facts) -> dict[str, tuple[TunedSysctl, SysctlAssignment]]:
    """Runtime name -> (tuned's ``[sysctl]`` line, the system file line that beats it).

    With ``reapply_sysctl`` on (tuned's default) tuned writes every key of /run/sysctl.d,
    /etc/sysctl.d and /etc/sysctl.conf again right after its own ``[sysctl]``
    (tuned/plugins/plugin_sysctl.py, ``_apply_system_sysctl``): for a key both set, the
    file wins, each time tuned applies the profile. Keys only in /usr/lib/sysctl.d are not
    re-applied: there the profile wins.
    """
    tuned, config = facts.tuned, facts.sysctl_config
    if isinstance(tuned, Missing) or isinstance(config, Missing):
        return {}
    files: dict[str, SysctlAssignment] = {}
    for assignment in config.assignments:
        name = runtime_name(assignment.key)
        if name is not None and tuned.main.reapplies(assignment.path, assignment.key):
            files[name] = assignment
    beaten: dict[str, tuple[TunedSysctl, SysctlAssignment]] = {}
    for line in tuned.sysctls:
        name = runtime_name(line.key)
        if name is not None and name in files:
            beaten[name] = (line, files[name])
    return beaten


def tuned_owned(facts: Facts) -> dict[str, list[TunedSysctl]]:
    """Runtime name -> the tuned lines that set it and win (``[sysctl]``, ``[net]``,
    ``[modules]``). A ``[sysctl]`` key a system file sets again after tuned (``reapply_sysctl``)
    is the file's, not tuned's."""
    tuned = facts.tuned
    if isinstance(tuned, Missing):
        return {}
    beaten = tuned_reapplied(facts)
    owned: dict[str, list[TunedSysctl]] = {}
    for line in tuned.sysctls:
        name = runtime_name(line.key)
        if name is None or name in beaten:
            continue
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


def _profile_of(path: str) -> str:
    return PurePosixPath(path).parent.name


def tuned_fix(tuned: TunedProfile, lines: list[TunedSysctl]) -> str:
    """Where to change what tuned sets: never a file under /usr/lib/tuned (the package owns
    it) nor under /var/lib/ocp-tuned (the Node Tuning Operator rewrites it), but a profile of
    one's own under /etc/tuned, or the cluster's Tuned resource."""
    profile = tuned.name.split()[-1]
    if tuned.operator:
        holders = sorted({_profile_of(line.path) for line in lines if line.path.startswith(
            OCP_TUNED_PROFILES)})  # fmt: skip
        where = (
            f"the Tuned resource that holds profile {', '.join(holders)}"
            if holders
            else f"a Tuned resource whose profile has include={profile}"
        )
        return (
            "the Node Tuning Operator runs tuned on this node and rewrites its files"
            f" ({OCP_TUNED_PROFILES}, stock profiles in its pod): do not edit them; set the"
            f" values in {where} (oc edit tuned -n {NTO_NAMESPACE}; a new one needs a"
            " recommend entry matching this node, with a lower priority number than the"
            f" current one: the {profile} profile)"
        )
    stock = sorted({line.path for line in lines if line.path.startswith(TUNED_STOCK_DIR)})
    own = sorted({line.path for line in lines} - set(stock))
    fixes: list[str] = []
    if own:
        fixes.append(f"edit {', '.join(own)} (the profile's own lines)")
    if stock:
        mine = f"{tuned.main.user_dir}/{profile}-conntrack/tuned.conf"
        fixes.append(
            f"{', '.join(stock)} belongs to the tuned package: do not edit it; create"
            f" {mine} with [main] include={profile} and"
            " the values you want in the same sections, then"
            f" 'tuned-adm profile {profile}-conntrack'"
        )
    if any("/openshift" in path for path in tuned.paths):
        fixes.append(
            "on an OpenShift node the Node Tuning Operator writes the profiles: set them in a"
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
