"""Which sysctl file wins at boot, and ctguard's own lines in them (docs/design.md §7, §9):
where ``plan`` writes a value and where a doctor fix tells the operator to persist it.

systemd-sysctl applies every ``*.conf`` of the sysctl.d directories sorted by file name,
the last assignment winning; procps ``sysctl --system`` then reads ``/etc/sysctl.conf``
unless a ``99-sysctl.conf`` link already brought it in. So a drop-in wins when its name
sorts after every other file that sets the same keys, and ``/etc/sysctl.conf`` read last
can only be beaten inside itself: there the values go in a marked block at its end.
Other files' lines are never edited: a losing line is reported as a conflict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import PurePosixPath

from ctguard.sources.sysctl_conf import SYSCTL_CONF, SysctlAssignment, SysctlConfig, runtime_name

SYSCTL_D = "/etc/sysctl.d"
# Tried in order: the first that sorts after every other file setting our keys wins.
DROPIN_NAMES = (
    "90-ctguard-conntrack.conf",
    "99-ctguard-conntrack.conf",
    "99-zz-ctguard-conntrack.conf",
    "zz-ctguard-conntrack.conf",
    "zzzz-ctguard-conntrack.conf",
)
MARK = "# Written by ctguard"
HEADER = (
    f"{MARK}: conntrack settings sized for this host ('ctguard plan' shows why).\n"
    "# 'ctguard rollback' restores what was here before; 'ctguard doctor' checks it.\n"
)
BLOCK_BEGIN = "# BEGIN ctguard conntrack settings (ctguard apply; 'ctguard rollback' undoes)"
BLOCK_END = "# END ctguard conntrack settings"
# max first (it is what an operator looks for), then the table, then behaviour keys
_FIRST = ("nf_conntrack_max", "nf_conntrack_buckets", "nf_conntrack_expect_max")


def sysctl_key(name: str) -> str:
    return f"net.netfilter.{name}"


def ordered(names: Iterable[str]) -> list[str]:
    return sorted(names, key=lambda n: (_FIRST.index(n) if n in _FIRST else len(_FIRST), n))


def render_lines(values: Mapping[str, int]) -> str:
    return "".join(f"{sysctl_key(name)} = {values[name]}\n" for name in ordered(values))


@dataclass(frozen=True)
class Placement:
    """Where the values go: a drop-in (``block`` False) or a block in /etc/sysctl.conf."""

    path: str
    block: bool
    reason: str


def is_ours(text: str | None) -> bool:
    return text is not None and text.startswith(MARK)


def block_span(text: str) -> tuple[int, int] | None:
    """1-based first and last line of our block in sysctl.conf, or None."""
    lines = text.split("\n")
    begin = next((i for i, line in enumerate(lines) if line.startswith(BLOCK_BEGIN)), None)
    if begin is None:
        return None
    end = next((i for i in range(begin, len(lines)) if lines[i].startswith(BLOCK_END)), None)
    return (begin + 1, (end if end is not None else len(lines) - 1) + 1)


def is_our_line(a: SysctlAssignment, dropins: frozenset[str], span: tuple[int, int] | None) -> bool:
    if a.path in dropins:
        return True
    return a.path == SYSCTL_CONF and span is not None and span[0] <= a.line <= span[1]


def others_effective(
    config: SysctlConfig, dropins: frozenset[str], span: tuple[int, int] | None
) -> dict[str, SysctlAssignment]:
    """Runtime name -> the winning assignment, leaving ctguard's own lines out."""
    result: dict[str, SysctlAssignment] = {}
    for a in config.assignments:
        name = runtime_name(a.key)
        if name is not None and not is_our_line(a, dropins, span):
            result[name] = a
    return result


def choose_placement(
    config: SysctlConfig,
    names: Iterable[str],
    our_dropins: frozenset[str],
    span: tuple[int, int] | None,
    grepped: tuple[str, ...] | None = None,
) -> Placement:
    """Pick the drop-in name that wins for ``names``, or the sysctl.conf block.

    ``grepped``: when a RHEL iptables init script re-applies settings with fgrep, the
    patterns of the files it reads (our values must be in one of them)."""
    wanted = set(names)
    links = dict(config.links)
    setters = {
        a.path
        for a in config.assignments
        if runtime_name(a.key) in wanted and not is_our_line(a, our_dropins, span)
    }
    listed = [p for p in config.files if links.get(p, p) in setters]
    repeats = SYSCTL_CONF in listed and _agrees_unread(config, names, grepped)
    if repeats:
        listed.remove(SYSCTL_CONF)
    elif SYSCTL_CONF in listed:  # read after every directory: no drop-in name can beat it
        return Placement(SYSCTL_CONF, True, f"{SYSCTL_CONF} is read last and sets these keys")
    taken = {PurePosixPath(p).name for p in config.files if p not in our_dropins}
    beaten = [PurePosixPath(p).name for p in listed]
    for name in DROPIN_NAMES:
        path = f"{SYSCTL_D}/{name}"
        if name in taken or any(name <= other for other in beaten):
            continue
        if grepped is not None and not _grepped(path, grepped):
            break
        why = (
            f"sorts after {', '.join(sorted(beaten))}, which also set these keys"
            if beaten
            else "no other file sets these keys"
        )
        if repeats:
            why = (
                f"{SYSCTL_CONF} sets the same values but the iptables init script does not"
                f" grep it; {why.replace('other file', 'other drop-in')}"
            )
        return Placement(path, False, why)
    if grepped is not None and not _grepped(f"{SYSCTL_D}/{DROPIN_NAMES[0]}", grepped):
        return Placement(
            SYSCTL_CONF, True, "the iptables init script re-applies only what it greps"
        )
    return Placement(SYSCTL_CONF, True, "no drop-in name sorts after the files setting these keys")


def _grepped(path: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatchcase(path, pattern) for pattern in patterns)


def _agrees_unread(
    config: SysctlConfig, names: Iterable[str], grepped: tuple[str, ...] | None
) -> bool:
    """sysctl.conf sets these keys to the very values wanted, but the init script's fgrep
    does not read it (RHEL 7.5-7.6 grep only /etc/sysctl.d/*, and the 99-sysctl.conf link is
    gone): a drop-in it reads repeats them, and losing to sysctl.conf at boot changes nothing."""
    if grepped is None or not isinstance(names, Mapping):
        return False
    if grepped_file(config, SYSCTL_CONF, grepped):
        return False
    conf = {
        runtime_name(a.key): a.value.strip() for a in config.assignments if a.path == SYSCTL_CONF
    }
    return all(conf.get(name, str(value)) == str(value) for name, value in names.items())


def grepped_file(config: SysctlConfig, path: str, patterns: tuple[str, ...]) -> bool:
    """Whether a grep of ``patterns`` reads ``path``, itself or through a link to it (RHEL 7's
    /etc/sysctl.d/99-sysctl.conf -> ../sysctl.conf)."""
    return _grepped(path, patterns) or any(
        source == path and _grepped(link, patterns) for link, source in config.links
    )


def systemd_reads(config: SysctlConfig, path: str) -> bool:
    """Whether systemd-sysctl applies ``path`` at boot (and when a udev rule runs it): every
    sysctl.d file, but /etc/sysctl.conf only through a link to it there (the
    ``99-sysctl.conf`` most distributions ship); ``sysctl --system`` reads it either way."""
    return path != SYSCTL_CONF or any(source == SYSCTL_CONF for _, source in config.links)


def dropin_text(values: Mapping[str, int]) -> str:
    return HEADER + render_lines(values)


def with_block(conf_text: str, values: Mapping[str, int]) -> str:
    """sysctl.conf with our block replaced (or appended at the end); no block if no values."""
    lines = conf_text.split("\n")
    span = block_span(conf_text)
    if span is not None:
        del lines[span[0] - 1 : span[1]]
    text = "\n".join(lines)
    if not values:
        return text
    if text and not text.endswith("\n"):
        text += "\n"
    return f"{text}{BLOCK_BEGIN}\n{render_lines(values)}{BLOCK_END}\n"


def conflicts(
    config: SysctlConfig,
    values: Mapping[str, int],
    dropins: frozenset[str],
    span: tuple[int, int] | None,
) -> list[str]:
    """Other files' lines that set one of our keys to another value (left alone)."""
    found = []
    for a in config.assignments:
        name = runtime_name(a.key)
        if (
            name is not None
            and name in values
            and not is_our_line(a, dropins, span)
            and a.value.strip() != str(values[name])
        ):
            found.append(f"{a.path}:{a.line}: {a.text.strip()}")
    return found
