"""Sysctl configuration files and the order systemd-sysctl applies them in.

sysctl.d(5): ``*.conf`` files from the directories in ``SYSCTL_DIRS``; a file name in an
earlier directory masks the same name in later ones (a link to /dev/null masks it with
nothing); the survivors are applied sorted by file name, whatever their directory, and
the last assignment of a key wins. ``sysctl --system`` (procps) reads the same
directories and then ``/etc/sysctl.conf``; systemd-sysctl reaches that file only
through the ``99-sysctl.conf`` link most distributions ship.

The ordering helpers here are shared with modprobe.d, modules-load.d and udev rules,
which kmod and systemd order by the same rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ctguard.host.root import HostRoot
from ctguard.missing import Missing

SYSCTL_DIRS = (
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
)
SYSCTL_CONF = "/etc/sysctl.conf"
SYSTEMD_SYSCTL_PATHS = ("/usr/lib/systemd/systemd-sysctl", "/lib/systemd/systemd-sysctl")
CONFIG_MAX_BYTES = 1 << 20  # far above any real config file; a crafted one stops here
DEV_NULL = "/dev/null"

# strstrip() in systemd and procps strips exactly these; str.strip() would also eat
# \x1c or U+2028, which neither tool treats as blank.
WHITESPACE = " \t\n\r\v\f"
_COMMENTS = "#;"
_GLOB = frozenset("*?[")


# -- text helpers shared by the config parsers ----------------------------------------
def physical_lines(text: str) -> list[str]:
    """Lines as the C tools count them: split at \\n only, a CR before it dropped.

    str.splitlines() would also split at \\x0b, \\x1c or U+2028 and shift every line
    number after them away from what ``grep -n`` shows the operator.
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def is_printable_name(name: str) -> bool:
    """A key or module name that can name a file: no blanks, controls or undecodable bytes."""
    return bool(name) and name.isprintable() and " " not in name and "\ufffd" not in name


# -- keys -----------------------------------------------------------------------------
def normalize_key(key: str) -> str:
    """The dotted form of a sysctl key, with literal dots written as "/".

    sysctl.d(5): if the first separator is "/", slashes separate and dots are literal
    (``net/ipv4/conf/eth0.100/rp_filter``); if it is ".", the two are swapped. systemd's
    sysctl_normalize() then drops empty and "." components (path_simplify()).

    >>> normalize_key(" net/ipv4/conf/eth0.100/rp_filter ")
    'net.ipv4.conf.eth0/100.rp_filter'
    >>> normalize_key("net.netfilter.nf_conntrack_max")
    'net.netfilter.nf_conntrack_max'
    """
    key = key.strip(WHITESPACE)
    slash, dot = key.find("/"), key.find(".")
    slash_first = slash >= 0 and (dot < 0 or slash < dot)
    if slash_first:
        components = key.split("/")
    else:
        components = [part.replace("/", ".") for part in key.split(".")]
    kept = [c for c in components if c not in ("", ".")]
    # Stripped again so that the result normalises to itself ("/ x" would not); a blank
    # first or last component would leave a bare separator behind ("0/\r/" is "0").
    while kept and not kept[-1].strip(WHITESPACE):
        kept.pop()
    while kept and not kept[0].strip(WHITESPACE):
        kept.pop(0)
    return ".".join(c.replace(".", "/") for c in kept).strip(WHITESPACE)


def has_dotted_form(key: str) -> bool:
    """False where a normalised key reads back as another one.

    A literal dot in the first component ("a.b/c" is "a/b.c") puts a "/" before the
    first ".", and a dotted key starting that way reads as the slash form. No /proc/sys
    directory at the top has a dot in its name, so such a key sets nothing.
    """
    slash, dot = key.find("/"), key.find(".")
    return slash < 0 or 0 <= dot < slash


def runtime_name(key: str) -> str | None:
    """The file under /proc/sys/net/netfilter that a conntrack sysctl key sets, else None.

    ``net.nf_conntrack_max`` is the init-netns alias of ``nf_conntrack_max``, and kernels
    with CONFIG_NF_CONNTRACK_PROC_COMPAT (RHEL 5/6) expose ``net.ipv4.netfilter.
    ip_conntrack_X`` for the same variable as ``nf_conntrack_X``. Glob keys name no
    single file and give None.

    >>> runtime_name("net.ipv4.netfilter.ip_conntrack_tcp_timeout_established")
    'nf_conntrack_tcp_timeout_established'
    >>> runtime_name("net/nf_conntrack_max"), runtime_name("net.ipv4.ip_forward")
    ('nf_conntrack_max', None)
    """
    key = normalize_key(key)
    if any(char in _GLOB for char in key):
        return None
    if key == "net.nf_conntrack_max":
        return "nf_conntrack_max"
    for prefix, old, new in (
        ("net.netfilter.", "nf_conntrack_", "nf_conntrack_"),
        ("net.ipv4.netfilter.", "ip_conntrack_", "nf_conntrack_"),
    ):
        name = key.removeprefix(prefix)
        if name != key and name.startswith(old) and len(name) > len(old) and "." not in name:
            return new + name[len(old) :]
    return None


# -- one file ---------------------------------------------------------------------------
@dataclass(frozen=True)
class SysctlAssignment:
    key: str  # normalised dotted form
    value: str
    path: str
    line: int
    text: str
    ignore_failure: bool


@dataclass(frozen=True)
class SysctlFile:
    path: str
    assignments: tuple[SysctlAssignment, ...]
    invalid_lines: tuple[int, ...]


def parse_sysctl_conf(text: str, path: str) -> SysctlFile:
    """Parse one sysctl.d file (or /etc/sysctl.conf).

    >>> f = parse_sysctl_conf(
    ...     "# raised for the proxy tier\\n"
    ...     "net.netfilter.nf_conntrack_max = 1048576\\n"
    ...     "-net/netfilter/nf_conntrack_tcp_timeout_established=7440\\n"
    ...     "nf_conntrack_buckets 262144\\n", "/etc/sysctl.d/90-ct.conf")
    >>> [(a.key, a.value, a.line, a.ignore_failure) for a in f.assignments]
    [('net.netfilter.nf_conntrack_max', '1048576', 2, False), \
('net.netfilter.nf_conntrack_tcp_timeout_established', '7440', 3, True)]
    >>> f.invalid_lines
    (4,)
    """
    assignments: list[SysctlAssignment] = []
    invalid: list[int] = []
    for number, raw in enumerate(physical_lines(text), start=1):
        line = raw.strip(WHITESPACE)
        if not line or line[0] in _COMMENTS:
            continue
        ignore_failure = line.startswith("-")
        body = line[1:] if ignore_failure else line
        key, sep, value = body.partition("=")
        if not sep and ignore_failure and is_printable_name(key.strip(WHITESPACE)):
            # sysctl.d(5), systemd 249+: "-key" alone excludes the key from a glob
            # assignment; it sets nothing and is not an error.
            continue
        normalized = normalize_key(key)
        if not sep or not is_printable_name(normalized) or not has_dotted_form(normalized):
            invalid.append(number)
            continue
        assignments.append(
            SysctlAssignment(normalized, value.strip(WHITESPACE), path, number, raw, ignore_failure)
        )
    return SysctlFile(path, tuple(assignments), tuple(invalid))


# -- precedence -------------------------------------------------------------------------
def _join(directory: str, name: str) -> str:
    return f"{directory.rstrip('/')}/{name}"


def order_config_files(
    dirs: Sequence[str], listing: Mapping[str, Sequence[str]]
) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """Which files apply, in which order: systemd's conf_files_list() and kmod's rule.

    A name in an earlier directory masks the same name in later ones; the survivors
    are sorted by file name alone. Returns (host paths in order, (masked, masker) pairs).

    >>> order_config_files(("/etc/sysctl.d", "/usr/lib/sysctl.d"), {
    ...     "/usr/lib/sysctl.d": ["50-default.conf", "10-a.conf"],
    ...     "/etc/sysctl.d": ["50-default.conf", "20-b.conf"]})
    (('/usr/lib/sysctl.d/10-a.conf', '/etc/sysctl.d/20-b.conf', '/etc/sysctl.d/50-default.conf'), \
(('/usr/lib/sysctl.d/50-default.conf', '/etc/sysctl.d/50-default.conf'),))
    """
    owner: dict[str, str] = {}
    masked: list[tuple[str, str]] = []
    for directory in dirs:
        for name in sorted(set(listing.get(directory, ()))):
            if name in owner:
                masked.append((_join(directory, name), _join(owner[name], name)))
            else:
                owner[name] = directory
    # Sorting str by code point is the strcmp() order of their UTF-8 bytes.
    ordered = tuple(_join(owner[name], name) for name in sorted(owner))
    return ordered, tuple(masked)


def order_sysctl_files(
    listing: Mapping[str, Sequence[str]],
) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    return order_config_files(SYSCTL_DIRS, listing)


@dataclass(frozen=True)
class ConfigFiles:
    """Config files of a directory set, as found on a host."""

    files: tuple[str, ...]  # host paths in application order, /dev/null masks left out
    masked: tuple[tuple[str, str], ...]  # (masked path, the path that masks it)
    unreadable: tuple[tuple[str, str], ...] = ()  # directories that could not be listed


def _is_config_name(name: str, suffixes: Sequence[str]) -> bool:
    # systemd and kmod skip hidden names (editor and package-manager leftovers).
    return not name.startswith(".") and any(
        name.endswith(suffix) and len(name) > len(suffix) for suffix in suffixes
    )


def realpath_or_self(host: HostRoot, path: str) -> str:
    """The host path ``path`` resolves to; itself where resolving fails."""
    try:
        return host.realpath(path)
    except OSError:  # a link loop inside a snapshot
        return path


def is_dev_null_link(host: HostRoot, path: str) -> bool:
    """A link to /dev/null: the systemd convention for masking a vendor file."""
    return host.is_symlink(path) and realpath_or_self(host, path) == DEV_NULL


def find_config_files(
    host: HostRoot, dirs: Sequence[str], suffixes: Sequence[str] = (".conf",)
) -> ConfigFiles:
    """List ``dirs`` on the host and order what they hold with order_config_files()."""
    listing: dict[str, list[str]] = {}
    unreadable: list[tuple[str, str]] = []
    seen: set[str] = set()
    for directory in dirs:
        real = realpath_or_self(host, directory)
        if real in seen:
            continue  # merged /usr: /lib is a link to usr/lib, the same files again
        seen.add(real)
        try:
            names = host.listdir(directory)
        except OSError as exc:
            unreadable.append((directory, exc.strerror or str(exc)))
            continue
        listing[directory] = [
            name
            for name in names
            if _is_config_name(name, suffixes) and not host.is_dir(_join(directory, name))
        ]
    ordered, masked = order_config_files(dirs, listing)
    applied = tuple(path for path in ordered if not is_dev_null_link(host, path))
    return ConfigFiles(applied, masked, tuple(unreadable))


def read_config_file(host: HostRoot, path: str) -> tuple[str, str | Missing]:
    """(the path the text comes from, the text): a link is read, and named, at its target."""
    source = realpath_or_self(host, path) if host.is_symlink(path) else path
    return source, host.try_read_text(path, CONFIG_MAX_BYTES)


# -- the whole configuration ------------------------------------------------------------
@dataclass(frozen=True)
class SysctlConfig:
    files: tuple[str, ...]
    assignments: tuple[SysctlAssignment, ...]
    masked: tuple[tuple[str, str], ...]
    invalid: tuple[tuple[str, int], ...]
    unreadable: tuple[tuple[str, str], ...] = ()  # (path, reason)
    links: tuple[tuple[str, str], ...] = ()  # (link in files, the file it was read at)

    def effective(self) -> dict[str, SysctlAssignment]:
        result: dict[str, SysctlAssignment] = {}
        for assignment in self.assignments:
            result[assignment.key] = assignment
        return result

    def setting(self, key: str) -> SysctlAssignment | None:
        found = self.assignments_for(key)
        return found[-1] if found else None

    def assignments_for(self, key: str) -> tuple[SysctlAssignment, ...]:
        wanted = normalize_key(key)
        return tuple(a for a in self.assignments if a.key == wanted)

    def runtime_assignments(self, name: str) -> tuple[SysctlAssignment, ...]:
        """Every line setting /proc/sys/net/netfilter/``name`` under any alias, in order.

        All aliases write one kernel variable, so the last line applied decides, as long
        as the kernel has that key (a RHEL 5 ``ip_conntrack_*`` line fails elsewhere).
        """
        return tuple(a for a in self.assignments if runtime_name(a.key) == name)

    def runtime_setting(self, name: str) -> SysctlAssignment | None:
        found = self.runtime_assignments(name)
        return found[-1] if found else None


def read_sysctl_config(host: HostRoot) -> SysctlConfig:
    found = find_config_files(host, SYSCTL_DIRS)
    paths = list(found.files)
    applied = {realpath_or_self(host, path) for path in paths}
    # procps `sysctl --system` reads /etc/sysctl.conf after the directories; where a
    # 99-sysctl.conf link already brought it in, reading it twice would change nothing.
    conf_present = host.exists(SYSCTL_CONF) or host.is_symlink(SYSCTL_CONF)  # dangling: noted
    conf_present = conf_present and not is_dev_null_link(host, SYSCTL_CONF)
    if conf_present and realpath_or_self(host, SYSCTL_CONF) not in applied:
        paths.append(SYSCTL_CONF)
    assignments: list[SysctlAssignment] = []
    invalid: list[tuple[str, int]] = []
    unreadable = list(found.unreadable)
    links: list[tuple[str, str]] = []
    for path in paths:
        source, text = read_config_file(host, path)
        if isinstance(text, Missing):
            unreadable.append((path, text.reason))
            continue
        if source != path:
            links.append((path, source))
        parsed = parse_sysctl_conf(text, source)
        assignments.extend(parsed.assignments)
        invalid.extend((source, number) for number in parsed.invalid_lines)
    return SysctlConfig(
        tuple(paths),
        tuple(assignments),
        found.masked,
        tuple(invalid),
        tuple(unreadable),
        tuple(links),
    )


def systemd_sysctl_path(host: HostRoot) -> str | None:
    """Where this distribution installs systemd-sysctl (for a udev re-apply rule)."""
    return next((path for path in SYSTEMD_SYSCTL_PATHS if host.is_file(path)), None)
