"""How tuned runs on this host: which profiles are active, where it looks for them, and
whether it re-applies the system sysctl files after its own ``[sysctl]``.

From tuned's source (commit 2bfa4423586bb516452c538a232c8f7075bafbdf): tuned/consts.py,
tuned/profiles/locator.py, tuned/daemon/daemon.py, tuned/plugins/plugin_sysctl.py,
tuned-main.conf; and the Node Tuning Operator's (openshift/cluster-node-tuning-operator commit
d2394aa81ffe6a5411a674128995979956f40193): pkg/tuned/controller.go,
hack/dockerfile_install_support.sh, assets/tuned/manifests/ds-tuned.yaml.

* ``/etc/tuned/active_profile`` lists the active profiles, space-separated; they are merged
  in order, a later one overriding. ``/etc/tuned/post_loaded_profile`` (tuned 2.22+) names
  one more, merged last.
* ``profile_dirs`` in ``/etc/tuned/tuned-main.conf`` (``,`` or ``;`` separated) lists where
  profiles are found; for a name, the last directory holding ``NAME/tuned.conf`` wins. Unset,
  tuned 2.24+ uses /usr/lib/tuned/profiles,/etc/tuned/profiles and older ones
  /usr/lib/tuned,/etc/tuned; ctguard does not know the version, so it looks in all four,
  /etc before /usr/lib.
* ``reapply_sysctl`` (default 1): after writing its ``[sysctl]`` keys tuned writes every
  key of /run/sysctl.d/*.conf, /etc/sysctl.d/*.conf and /etc/sysctl.conf again (since tuned
  2.13; /usr/lib/sysctl.d is no longer re-applied), except keys matching
  ``reapply_sysctl_exclude``. So with 1 those files win over the profile; with 0 the profile
  wins.
* On an OpenShift node the Node Tuning Operator runs tuned in a pod whose /etc/tuned is
  its own: on the node, the profiles it was given are in /var/lib/ocp-tuned/profiles, the
  chosen one in /var/lib/ocp-tuned/recommend.d/50-openshift.conf (``[NAME]``); its image sets
  ``profile_dirs = /usr/lib/tuned/profiles,/usr/lib/tuned,/var/lib/ocp-tuned/profiles``
  (/usr/lib/tuned there is the image's), and ``reapply_sysctl`` comes from the Tuned
  resource (``spec.recommend[].operand.tunedConfig.reapply_sysctl``, true unless set).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatch

from ctguard.host.root import HostRoot
from ctguard.missing import Missing
from ctguard.sources.tuned_ini import parse_ini

TUNED_MAIN_CONF = "/etc/tuned/tuned-main.conf"
TUNED_ACTIVE_PROFILE = "/etc/tuned/active_profile"
TUNED_POST_LOADED_PROFILE = "/etc/tuned/post_loaded_profile"
TUNED_FILE_MAX_BYTES = 1 << 20
# Searched when profile_dirs is not set, in tuned's order (the last holding a profile wins).
TUNED_DEFAULT_DIRS = ("/usr/lib/tuned", "/usr/lib/tuned/profiles", "/etc/tuned",
                      "/etc/tuned/profiles")  # fmt: skip
TUNED_STOCK_DIRS = ("/usr/lib/tuned/",)  # the package's profiles: an update overwrites them
OCP_TUNED_HOME = "/var/lib/ocp-tuned"
OCP_TUNED_PROFILES = f"{OCP_TUNED_HOME}/profiles"
OCP_TUNED_RECOMMEND = f"{OCP_TUNED_HOME}/recommend.d"
OCP_TUNED_DIRS = ("/usr/lib/tuned/profiles", "/usr/lib/tuned", OCP_TUNED_PROFILES)
# where the reapply re-reads system files (tuned/plugins/plugin_sysctl.py)
REAPPLIED_SYSCTL_DIRS = ("/run/sysctl.d/", "/etc/sysctl.d/")
REAPPLIED_SYSCTL_CONF = "/etc/sysctl.conf"
_TRUE = frozenset({"1", "yes", "true", "on"})  # ConfigParser.getboolean
_FALSE = frozenset({"0", "no", "false", "off"})
_HEADER = "__tuned_main__"


@dataclass(frozen=True)
class TunedMain:
    """tuned-main.conf as it bears on conntrack settings."""

    profile_dirs: tuple[str, ...]  # tuned's order: the last holding a profile wins
    reapply_sysctl: bool
    reapply_where: str  # the line that decides it, or why the default holds
    reapply_exclude: tuple[str, ...] = ()
    operator: bool = False  # run by the OpenShift Node Tuning Operator
    reapply_known: bool = True  # False: the operator's default, the Tuned resource unseen
    user_dir: str = "/etc/tuned"  # where a profile of one's own goes

    def reapplies(self, path: str, key: str) -> bool:
        """Whether tuned writes this system sysctl file's ``key`` again after its own."""
        if not self.reapply_sysctl:
            return False
        if not (path == REAPPLIED_SYSCTL_CONF or path.startswith(REAPPLIED_SYSCTL_DIRS)):
            return False
        return not any(fnmatch(key, pattern) for pattern in self.reapply_exclude)


def _split_list(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in re.split(r"[,;]", value) if part.strip())


def read_tuned_main(host: HostRoot) -> TunedMain:
    """``/etc/tuned/tuned-main.conf``; tuned's defaults where it is absent or silent."""
    text = host.try_read_text(TUNED_MAIN_CONF, TUNED_FILE_MAX_BYTES)
    options = {} if isinstance(text, Missing) else parse_ini(text, TUNED_MAIN_CONF, _HEADER)
    main = options.get(_HEADER, {})
    dirs = main.get("profile_dirs")
    profile_dirs = _split_list(dirs.value) if dirs is not None else TUNED_DEFAULT_DIRS
    reapply = True
    where = f"reapply_sysctl = 1: tuned's default ({TUNED_MAIN_CONF} does not set it)"
    option = main.get("reapply_sysctl")
    if option is not None and option.value.strip().lower() in _TRUE | _FALSE:
        reapply = option.value.strip().lower() in _TRUE
        where = f"{option.path}:{option.line}: {option.text.strip()}"
    exclude = main.get("reapply_sysctl_exclude")
    if dirs is not None:
        own = [d for d in profile_dirs if not d.startswith(("/usr/", "/lib/"))]
        user_dir = own[-1] if own else "/etc/tuned"
    else:  # tuned 2.24+ keeps profiles under .../profiles
        new = host.is_dir("/usr/lib/tuned/profiles") or host.is_dir("/etc/tuned/profiles")
        user_dir = "/etc/tuned/profiles" if new else "/etc/tuned"
    return TunedMain(
        profile_dirs or TUNED_DEFAULT_DIRS,
        reapply,
        where,
        _split_list(exclude.value) if exclude is not None else (),
        user_dir=user_dir,
    )


OPERATOR_MAIN = TunedMain(
    OCP_TUNED_DIRS,
    True,
    "reapply_sysctl: the Node Tuning Operator's default (true); a Tuned resource can turn it"
    " off (spec.recommend[].operand.tunedConfig.reapply_sysctl), which the node does not show",
    operator=True,
    reapply_known=False,
)


@dataclass(frozen=True)
class ActiveProfiles:
    names: tuple[str, ...]  # merged in this order
    where: str  # the file that names them
    main: TunedMain


def _recommended(host: HostRoot) -> tuple[str, str] | None:
    """The Node Tuning Operator's choice: the first ``[NAME]`` of its recommend.d files."""
    for path in sorted(host.glob(OCP_TUNED_RECOMMEND, "*.conf")):
        text = host.try_read_text(path, TUNED_FILE_MAX_BYTES)
        if isinstance(text, Missing):
            continue
        for line in text.split("\n"):
            match = re.fullmatch(r"\s*\[([^\]]+)\]\s*", line)
            if match:
                return match[1].strip(), path
    return None


def read_active(host: HostRoot) -> ActiveProfiles | Missing:
    """The active profile names and how tuned runs them. The Node Tuning Operator's choice
    comes first: where it runs, it is the tuned that applies settings (RHCOS may carry a
    tuned package whose /etc/tuned is not the operator's)."""
    recommended = _recommended(host)
    if recommended is not None:
        name, path = recommended
        return ActiveProfiles((name,), path, OPERATOR_MAIN)
    active = host.try_read_text(TUNED_ACTIVE_PROFILE, TUNED_FILE_MAX_BYTES)
    if isinstance(active, Missing):
        return active if host.exists(TUNED_ACTIVE_PROFILE) else Missing("tuned not in use")
    names = active.split()
    post = host.try_read_text(TUNED_POST_LOADED_PROFILE, TUNED_FILE_MAX_BYTES)
    if not isinstance(post, Missing) and len(post.split()) == 1:
        names.append(post.strip())
    if not names:
        return Missing(f"tuned not in use: {TUNED_ACTIVE_PROFILE} names no profile")
    return ActiveProfiles(tuple(names), TUNED_ACTIVE_PROFILE, read_tuned_main(host))


def tuned_config_paths(host: HostRoot) -> Sequence[str]:
    """The files besides the profiles that decide what tuned does here (for a snapshot)."""
    paths = [TUNED_MAIN_CONF, TUNED_ACTIVE_PROFILE, TUNED_POST_LOADED_PROFILE]
    paths += sorted(host.glob(OCP_TUNED_RECOMMEND, "*.conf"))
    return [path for path in paths if host.is_file(path)]
