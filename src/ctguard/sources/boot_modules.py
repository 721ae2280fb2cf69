"""What loads modules at boot, and what re-applies sysctls when a module loads.

systemd-sysctl runs early; the keys of a module that is not loaded yet are skipped
silently. They hold after boot only if the module loads first (modules-load.d(5),
Debian's /etc/modules, RHEL 5/6 ``/etc/sysconfig/modules/*.modules``, the
``modules_load=`` kernel parameter) or a udev rule re-applies them when it loads.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from ctguard.host.root import HostRoot
from ctguard.missing import Missing
from ctguard.sources.cmdline import CMDLINE, param_key, read_cmdline
from ctguard.sources.modprobe_conf import module_name
from ctguard.sources.shell_words import parse_shell, split_argv
from ctguard.sources.sysctl_conf import (
    CONFIG_MAX_BYTES,
    SYSCTL_CONF,
    WHITESPACE,
    find_config_files,
    is_printable_name,
    normalize_key,
    physical_lines,
    read_config_file,
    realpath_or_self,
)

MODULES_LOAD_DIRS = (
    "/etc/modules-load.d",
    "/run/modules-load.d",
    "/usr/local/lib/modules-load.d",
    "/usr/lib/modules-load.d",
    "/lib/modules-load.d",
)
DEBIAN_MODULES = "/etc/modules"
RHEL_MODULE_SCRIPTS = "/etc/sysconfig/modules"  # *.modules shell scripts run by rc.sysinit
UDEV_RULE_DIRS = (
    "/etc/udev/rules.d",
    "/run/udev/rules.d",
    "/usr/lib/udev/rules.d",
    "/lib/udev/rules.d",
)
# systemd-modules-load reads these kernel parameters too (rd. one in the initrd).
_CMDLINE_KEYS = ("modules_load", "rd.modules_load")


@dataclass(frozen=True)
class BootModule:
    module: str  # "-" normalised to "_"
    path: str
    line: int
    text: str


# -- modules-load.d and /etc/modules ------------------------------------------------------
def parse_modules_load(
    text: str, path: str, *, arguments: bool | None = None
) -> tuple[BootModule, ...]:
    """Module names, one a line; ``arguments``: words after the name are its parameters.

    modules(5) lets /etc/modules lines carry parameters (Debian's kmod init script passes
    them to modprobe), so that is the default for that path. systemd-modules-load takes
    the whole line as the name, so there a line with blanks loads nothing; pass
    ``arguments=False`` for /etc/modules reached through modules-load.d/modules.conf.

    >>> parse_modules_load(
    ...     "# conntrack before systemd-sysctl\\nnf_conntrack\\n; nf_nat\\n",
    ...     "/etc/modules-load.d/ct.conf")  # doctest: +NORMALIZE_WHITESPACE
    (BootModule(module='nf_conntrack', path='/etc/modules-load.d/ct.conf', line=2,
                text='nf_conntrack'),)
    >>> [m.module for m in parse_modules_load("nf-conntrack hashsize=262144\\n", "/etc/modules")]
    ['nf_conntrack']
    """
    with_arguments = path == DEBIAN_MODULES if arguments is None else arguments
    modules: list[BootModule] = []
    for number, raw in enumerate(physical_lines(text), start=1):
        line = raw.strip(WHITESPACE)
        if not line or line[0] in "#;":
            continue
        end = next((i for i, char in enumerate(line) if char in WHITESPACE), len(line))
        if end < len(line) and not with_arguments:
            continue
        name = line[:end]
        if is_printable_name(name):
            modules.append(BootModule(module_name(name), path, number, raw))
    return tuple(modules)


# -- RHEL /etc/sysconfig/modules/*.modules ------------------------------------------------
# Words in front that run the rest as the command.
_PRECOMMANDS = frozenset({"exec", "command", "nohup"})
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_MODULE_WORD = re.compile(r"[A-Za-z0-9_-]+")
# modprobe flags after which nothing is loaded: remove, dry run, print only.
_NOT_LOADING = frozenset("rnDcR")
_NOT_LOADING_LONG = frozenset(
    {"--remove", "--dry-run", "--show", "--show-depends", "--showconfig", "--show-config",
     "--resolve-alias", "--show-modversions", "--dump-modversions", "--help", "--version"}
)  # fmt: skip
_TAKES_VALUE = frozenset("CdS")  # -C config, -d dirname, -S version


def _modprobe_loads(words: list[str]) -> list[str]:
    """Modules a ``modprobe ...`` word list loads (none for -r, -n, --show...)."""
    names: list[str] = []
    every = False  # -a: every name is a module, not module then parameters
    skip_next = False
    for word in words[1:]:
        if skip_next:
            skip_next = False
            continue
        if word.startswith("--"):
            if word in _NOT_LOADING_LONG:
                return []
            every = every or word == "--all"
            skip_next = word in ("--config", "--dirname", "--set-version")
            continue
        if word.startswith("-") and len(word) > 1:
            flags = word[1:]
            if _NOT_LOADING.intersection(flags):
                return []
            every = every or "a" in flags
            skip_next = flags[-1] in _TAKES_VALUE
            continue
        if names and not every:
            continue  # module parameters follow the name
        names.append(word)
    return [name for name in names if _MODULE_WORD.fullmatch(name)]


def _commands(text: str) -> list[tuple[int, list[str]]]:
    """(line, argv) of each command shell ``text`` runs, those in $(...) included;
    exec/command/nohup and VAR= in front removed."""
    found: list[tuple[int, list[str]]] = []
    for command in parse_shell(text, substitutions=True).commands:
        words = command.words
        start = 0
        while start < len(words) and (
            words[start].value in _PRECOMMANDS or _ASSIGNMENT.match(words[start].value)
        ):
            start += 1
        if start < len(words):
            found.append((words[start].line, [word.value for word in words[start:]]))
    return found


def parse_module_script(text: str, path: str) -> tuple[BootModule, ...]:
    """Modules a RHEL ``/etc/sysconfig/modules/*.modules`` script loads with modprobe.

    >>> s = parse_module_script(
    ...     "#!/bin/sh\\n"
    ...     "if [ ! -c /dev/input/uinput ] ; then\\n"
    ...     "    exec /sbin/modprobe -b nf_conntrack hashsize=262144 >/dev/null 2>&1\\n"
    ...     "fi\\n", "/etc/sysconfig/modules/ct.modules")
    >>> [(m.module, m.line) for m in s]
    [('nf_conntrack', 3)]
    """
    # A CR before the newline goes, as in every file read here; bash would keep it in the
    # word (a CRLF script runs "modprobe nf_conntrack\r" and loads nothing).
    lines = physical_lines(text)
    modules: list[BootModule] = []
    for number, words in _commands("\n".join(lines)):
        if words[0].rsplit("/", 1)[-1] == "modprobe":
            modules.extend(
                BootModule(module_name(name), path, number, lines[number - 1])
                for name in _modprobe_loads(words)
            )
    return tuple(modules)


def _cmdline_modules(host: HostRoot) -> list[BootModule]:
    cmdline = read_cmdline(host)
    if isinstance(cmdline, Missing):
        return []
    modules: list[BootModule] = []
    for name, value in cmdline.args:
        if param_key(name) in _CMDLINE_KEYS:
            modules.extend(
                BootModule(module_name(m), CMDLINE, 1, f"{name}={value}")
                for m in value.split(",")
                if is_printable_name(m)
            )
    return modules


def read_boot_modules(host: HostRoot) -> tuple[BootModule, ...]:
    """Every module something loads at boot, with the line that loads it.

    Files that cannot be read are left out: they cannot be shown to load anything.
    """
    modules: list[BootModule] = []
    seen: set[str] = set()
    for path in find_config_files(host, MODULES_LOAD_DIRS).files:
        seen.add(realpath_or_self(host, path))
        source, text = read_config_file(host, path)
        if not isinstance(text, Missing):
            modules.extend(parse_modules_load(text, source, arguments=False))
    # Debian links modules-load.d/modules.conf to /etc/modules; without the link only the
    # sysvinit kmod script reads it.
    if host.is_file(DEBIAN_MODULES) and realpath_or_self(host, DEBIAN_MODULES) not in seen:
        text = host.try_read_text(DEBIAN_MODULES, CONFIG_MAX_BYTES)
        if not isinstance(text, Missing):
            modules.extend(parse_modules_load(text, DEBIAN_MODULES))
    for path in host.glob(RHEL_MODULE_SCRIPTS, "*.modules"):
        text = host.try_read_text(path, CONFIG_MAX_BYTES)
        if not isinstance(text, Missing):
            modules.extend(parse_module_script(text, path))
    modules.extend(_cmdline_modules(host))
    return tuple(modules)


# -- udev rules that re-apply sysctls on module load --------------------------------------
@dataclass(frozen=True)
class UdevReapply:
    path: str
    line: int
    text: str
    module: str  # the KERNEL=="..." pattern ("*" when the rule has none)
    command: str  # the RUN value
    prefixes: tuple[str, ...]  # systemd-sysctl --prefix values as given; () = every key
    keys: tuple[str, ...]  # dotted keys of `sysctl -w key=value`; () = not that form
    excluded: tuple[str, ...] = ()  # KERNEL!="..." patterns
    files: tuple[str, ...] = ()  # config files named on the command line, if any

    def covers(self, key: str, path: str | None = None) -> bool:
        """Does running this command set dotted ``key`` (set in file ``path``) again?

        systemd-sysctl compares --prefix component-wise (path_startswith()) after
        normalising it like a key; it still accepts the /proc/sys/... form that early
        versions required, so that leading part is dropped. A command that names its
        files (``sysctl -p`` reads /etc/sysctl.conf only) re-applies only what they hold.
        """
        if path is not None and self.files and path not in self.files:
            return False
        wanted = normalize_key(key)
        if self.keys:
            return wanted in {normalize_key(k) for k in self.keys}
        if self.prefixes:
            return any(_under(wanted, _prefix_key(p)) for p in self.prefixes)
        return True

    def matches_module(self, module: str) -> bool:
        name = module_name(module)
        return udev_match(self.module, name) and not any(udev_match(p, name) for p in self.excluded)


def udev_match(pattern: str, value: str) -> bool:
    """udev's match: fnmatch(3) globs, "|" between alternatives."""
    return any(fnmatch.fnmatchcase(value, alternative) for alternative in pattern.split("|"))


def _prefix_key(prefix: str) -> str:
    key = normalize_key(prefix)
    if key == "proc.sys":
        return ""
    return key.removeprefix("proc.sys.")


def _under(key: str, prefix: str) -> bool:
    return not prefix or key == prefix or key.startswith(prefix + ".")


_PAIR = re.compile(
    r"(?P<key>[A-Za-z_][A-Za-z0-9_]*)(?:\{(?P<attr>[^{}\"]*)\})?[ \t]*"
    r"(?P<op>==|!=|\+=|-=|:=|=)[ \t]*e?\"(?P<value>(?:\\\"|[^\"])*)\""
)
_PAIR_GAP = re.compile(r"[\s,]*")
UDEV_LINE_SIZE = 16 * 1024  # udev-rules.c
_SHELLS = frozenset({"sh", "bash", "dash", "ash"})


def _pairs(line: str) -> list[tuple[str, str, str, str]] | None:
    """(key, attribute, op, value) of a rule line; None where udev would reject the line."""
    pairs: list[tuple[str, str, str, str]] = []
    index = 0
    while True:
        gap = _PAIR_GAP.match(line, index)
        index = gap.end() if gap else index
        if index >= len(line):
            return pairs
        found = _PAIR.match(line, index)
        if found is None:
            return None
        value = found.group("value").replace('\\"', '"')
        attr = found.group("attr") or ""
        pairs.append((found.group("key"), attr, found.group("op"), value))
        index = found.end()


def _fires_on_module_add(pairs: list[tuple[str, str, str, str]]) -> bool:
    has_subsystem = has_kernel = False
    for key, _, op, value in pairs:
        if key == "ACTION" and op in ("==", "!="):
            if udev_match(value, "add") != (op == "=="):
                return False
        elif key == "SUBSYSTEM" and op in ("==", "!="):
            has_subsystem = has_subsystem or op == "=="
            if udev_match(value, "module") != (op == "=="):
                return False
        elif key == "KERNEL":
            has_kernel = True
    # A rule matching only KERNEL=="nf_conntrack" fires for the module uevent as well.
    return has_subsystem or has_kernel


def _systemd_sysctl(argv: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """(prefixes, files) of a systemd-sysctl command line; None when it applies nothing."""
    prefixes: list[str] = []
    files: list[str] = []
    words = iter(argv[1:])
    for word in words:
        if word == "--prefix":
            prefixes.append(next(words, ""))
        elif word.startswith("--prefix="):
            prefixes.append(word.partition("=")[2])
        elif word in ("-h", "--help", "--version", "--cat-config", "--tldr"):
            return None
        elif not word.startswith("-"):
            files.append(word)
    return tuple(prefixes), tuple(files)


def _sysctl(argv: list[str]) -> tuple[bool, tuple[str, ...], tuple[str, ...]] | None:
    """(loads files, keys written, files) of a procps ``sysctl`` line; None if it writes nothing."""
    load = False
    keys: list[str] = []
    files: list[str] = []
    for word in argv[1:]:
        if word == "--system":
            load = True
        elif word in ("--load", "-p", "-f") or word.startswith("--load="):
            load = True
            if "=" in word:
                files.append(word.partition("=")[2])
        elif word.startswith("--"):
            continue
        elif word.startswith("-") and len(word) > 1:
            flags = word[1:]
            for flag in ("p", "f"):
                if flag in flags:
                    load = True
                    rest = flags.partition(flag)[2]
                    if rest:
                        files.append(rest)
                    break
        elif "=" in word:
            keys.append(normalize_key(word.partition("=")[0]))
        elif load:
            files.append(word)
    if load:
        # `sysctl -p` without a file reads /etc/sysctl.conf only (procps sysctl(8)).
        return True, (), tuple(files) or ((SYSCTL_CONF,) if "--system" not in argv else ())
    return (False, tuple(k for k in keys if k), ()) if any(keys) else None


def _reapplies(
    argv: list[str], nested: bool = False
) -> list[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]]:
    """(prefixes, keys, files) for each sysctl-applying command in ``argv``."""
    program = argv[0].rsplit("/", 1)[-1]
    if program == "systemd-sysctl":
        found = _systemd_sysctl(argv)
        return [] if found is None else [(found[0], (), found[1])]
    if program == "sysctl":
        written = _sysctl(argv)
        return [] if written is None else [((), written[1], written[2])]
    if program in _SHELLS and not nested:
        for index, word in enumerate(argv[1:-1], start=1):
            if word.startswith("-") and "c" in word[1:]:
                return [
                    result
                    for _, command in _commands(argv[index + 1])
                    for result in _reapplies(command, nested=True)
                ]
    return []


def command_reapplies(
    command: str, path: str, line: int, text: str, module: str
) -> tuple[UdevReapply, ...]:
    """The sysctl re-applications a shell command line performs, e.g. a modprobe.d
    ``install nf_conntrack /sbin/modprobe --ignore-install nf_conntrack && sysctl -p``
    (modprobe runs install commands with /bin/sh -c, so each simple command counts)."""
    return tuple(
        UdevReapply(path, line, text, module, command, prefixes, keys, (), files)
        for _, argv in _commands(command)
        for prefixes, keys, files in _reapplies(argv)
    )


def parse_udev_rules(text: str, path: str) -> tuple[UdevReapply, ...]:
    """Rules that run systemd-sysctl or sysctl when a module is added.

    >>> r = parse_udev_rules(
    ...     '# re-apply conntrack sysctls once the module is there\\n'
    ...     'ACTION=="add", SUBSYSTEM=="module", KERNEL=="nf_conntrack", \\\\\\n'
    ...     '  RUN+="/usr/lib/systemd/systemd-sysctl --prefix=/net/netfilter"\\n',
    ...     "/etc/udev/rules.d/50-ct.rules")
    >>> (r[0].line, r[0].module, r[0].prefixes, r[0].covers("net.netfilter.nf_conntrack_max"))
    (2, 'nf_conntrack', ('/net/netfilter',), True)
    >>> r[0].covers("net.nf_conntrack_max")
    False
    """
    rules: list[UdevReapply] = []
    for number, line, shown in _udev_lines(text):
        pairs = _pairs(line)
        if not pairs or not _fires_on_module_add(pairs):
            continue
        kernel = [value for key, _, op, value in pairs if key == "KERNEL" and op == "=="]
        excluded = tuple(value for key, _, op, value in pairs if key == "KERNEL" and op == "!=")
        for key, attr, op, value in pairs:
            if key != "RUN" or op not in ("+=", "=", ":=") or attr == "builtin":
                continue
            for prefixes, keys, files in _reapplies(split_argv(value) or [""]):
                rules.append(
                    UdevReapply(
                        path,
                        number,
                        shown,
                        kernel[0] if kernel else "*",
                        value,
                        prefixes,
                        keys,
                        excluded,
                        files,
                    )
                )
    return tuple(rules)


def _udev_lines(text: str) -> list[tuple[int, str, str]]:
    """Logical rule lines: udev drops comment lines, joins "\\"-ended lines without the "\\".

    udev ignores a logical line of UDEV_LINE_SIZE characters or more ("Line is too long").
    """
    lines: list[tuple[int, str, str]] = []
    start = 0
    parts: list[str] = []
    for number, raw in enumerate(physical_lines(text), start=1):
        line = raw.lstrip(WHITESPACE)
        if line.startswith("#"):
            continue
        if not parts:
            start = number
        if line.endswith("\\"):
            parts.append(line[:-1])
            continue
        parts.append(line)
        joined = "".join(parts)
        if joined.strip(WHITESPACE) and len(joined) < UDEV_LINE_SIZE:
            lines.append((start, joined, " ".join(p.strip(WHITESPACE) for p in parts if p.strip())))
        parts = []
    return lines


def read_udev_reapply(host: HostRoot) -> tuple[UdevReapply, ...]:
    rules: list[UdevReapply] = []
    for path in find_config_files(host, UDEV_RULE_DIRS, (".rules",)).files:
        source, text = read_config_file(host, path)
        if not isinstance(text, Missing):
            rules.extend(parse_udev_rules(text, source))
    return tuple(rules)
