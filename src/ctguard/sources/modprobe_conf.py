"""modprobe.d(5): module options, blacklists and install commands.

kmod reads ``*.conf`` (and the old ``*.alias``) from ``MODPROBE_DIRS`` ordered like
sysctl.d (name masks name, sorted by name), then ``module.param=value`` words of the
kernel command line (libkmod-config.c, kmod_config_parse_kcmdline()), so those come
last and win. module-init-tools (RHEL 5) also read ``/etc/modprobe.conf``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

from ctguard.host.root import HostRoot
from ctguard.missing import Missing
from ctguard.sources.cmdline import (
    CMDLINE,
    KernelCmdline,
    param_key,
    read_cmdline,
    split_kernel_args,
)
from ctguard.sources.shell_words import parse_shell
from ctguard.sources.sysctl_conf import (
    find_config_files,
    is_dev_null_link,
    physical_lines,
    read_config_file,
)

MODPROBE_D = "/etc/modprobe.d"  # where an administrator (and ctguard) writes
MODPROBE_DIRS = (
    MODPROBE_D,
    "/run/modprobe.d",
    "/usr/local/lib/modprobe.d",
    "/usr/lib/modprobe.d",
    "/lib/modprobe.d",
)
LEGACY_MODPROBE_CONF = "/etc/modprobe.conf"  # RHEL 5 era, read first if present
# kmod's conf_files_filter_out() still takes the module-init-tools ".alias" suffix.
MODPROBE_SUFFIXES = (".conf", ".alias")
KINDS = ("options", "blacklist", "install", "remove", "softdep", "alias")
# Commands whose third word onwards is one argument string (strtok_r(NULL, "\0")).
_REST_IS_ARGUMENT = frozenset({"options", "install", "remove", "softdep"})
_BLANKS = " \t"


def module_name(name: str) -> str:
    """kmod's underscores(): "-" is "_" in module names, except inside [...] of a pattern.

    >>> module_name("nf-conntrack"), module_name("pci:v*d[0-9]-x")
    ('nf_conntrack', 'pci:v*d[0-9]_x')
    """
    out: list[str] = []
    depth = 0
    for char in name:
        if char == "[":
            depth += 1
        elif char == "]" and depth:
            depth -= 1
        out.append("_" if char == "-" and not depth else char)
    return "".join(out)


@dataclass(frozen=True)
class ModprobeDirective:
    kind: str  # one of KINDS
    module: str  # "-" normalised to "_"; for alias: the alias pattern
    args: str  # the rest of the line; for alias: the module it names
    path: str
    line: int  # where the directive starts
    text: str  # continuation lines joined with a space

    @property
    def install_program(self) -> str | None:
        """The file name of the program an ``install`` command runs first; None for
        another kind. modprobe hands the command to ``/bin/sh -c`` (kmod's system()).

        >>> args = "FOO=1 '/bin/true'; echo disabled"
        >>> ModprobeDirective("install", "nf_conntrack", args, "", 1, "").install_program
        'true'
        """
        commands = parse_shell(self.args).commands if self.kind == "install" else ()
        argv = commands[0].argv if commands else ()
        return PurePosixPath(argv[0]).name if argv else None


def logical_lines(text: str) -> Iterator[tuple[int, str, str]]:
    """(first line number, line as kmod reads it, raw text for evidence).

    kmod's getline_wrapped(): a backslash before the newline joins the next line with
    nothing in between; a backslash before any other character stands for that character.
    """
    start = 0
    parts: list[str] = []
    shown: list[str] = []
    for number, raw in enumerate(physical_lines(text), start=1):
        if not parts and "\\" not in raw:
            yield number, raw, raw.strip()
            continue
        if not parts:
            start = number
        trailing = len(raw) - len(raw.rstrip("\\"))
        continued = trailing % 2 == 1
        body = raw[:-1] if continued else raw
        parts.append(_unescape(body))
        shown.append(body.strip())
        if not continued:
            yield start, "".join(parts), " ".join(s for s in shown if s)
            parts, shown = [], []
    if parts:
        yield start, "".join(parts), " ".join(s for s in shown if s)


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out: list[str] = []
    escaped = False
    for char in text:
        if escaped or char != "\\":
            out.append(char)
            escaped = False
        else:
            escaped = True
    return "".join(out)


def _directive(line: str) -> tuple[str, str, str] | None:
    """(kind, module, args) of one logical line, or None where kmod ignores it."""
    if not line or line[0] == "#":  # kmod: only a "#" in column 0 starts a comment
        return None
    words = _split_blanks(line, 2)
    if len(words) < 2 or words[0] not in KINDS:
        return None
    kind = words[0]
    if kind == "alias":
        target = _split_blanks(words[2], 1) if len(words) == 3 else []
        return ("alias", module_name(words[1]), module_name(target[0])) if target else None
    rest = words[2].strip(_BLANKS) if len(words) == 3 else ""
    if kind in _REST_IS_ARGUMENT and not rest:
        return None  # kmod: "ignoring bad line"
    if kind == "blacklist":
        rest = ""  # kmod reads one word after blacklist and ignores the rest
    return kind, module_name(words[1]), rest.replace("\t", " ") if kind == "options" else rest


def _split_blanks(line: str, maxsplit: int) -> list[str]:
    """str.split() on spaces and tabs only, as strtok_r(line, "\\t ") does."""
    words: list[str] = []
    index = 0
    while len(words) < maxsplit:
        while index < len(line) and line[index] in _BLANKS:
            index += 1
        end = index
        while end < len(line) and line[end] not in _BLANKS:
            end += 1
        if end == index:
            return words
        words.append(line[index:end])
        index = end
    rest = line[index:].lstrip(_BLANKS)
    if rest:
        words.append(rest)
    return words


def parse_modprobe_conf(text: str, path: str) -> tuple[ModprobeDirective, ...]:
    """Parse one modprobe.d file.

    >>> d = parse_modprobe_conf(
    ...     "# keep the buckets after a reboot\\n"
    ...     "options nf_conntrack hashsize=131072 \\\\\\n"
    ...     "    expect_hashsize=2048 hashsize=262144\\n"
    ...     "blacklist nf-conntrack\\n"
    ...     "install nf_conntrack /bin/false\\n", "/etc/modprobe.d/ct.conf")
    >>> [(x.kind, x.module, x.line, x.text) for x in d]  # doctest: +NORMALIZE_WHITESPACE
    [('options', 'nf_conntrack', 2,
      'options nf_conntrack hashsize=131072 expect_hashsize=2048 hashsize=262144'),
     ('blacklist', 'nf_conntrack', 4, 'blacklist nf-conntrack'),
     ('install', 'nf_conntrack', 5, 'install nf_conntrack /bin/false')]
    >>> ModprobeConfig(d).option("nf_conntrack", "hashsize")[0]
    '262144'
    """
    directives: list[ModprobeDirective] = []
    for number, line, shown in logical_lines(text):
        found = _directive(line)
        if found is not None:
            kind, module, args = found
            directives.append(ModprobeDirective(kind, module, args, path, number, shown))
    return tuple(directives)


def _cmdline_directives(cmdline: KernelCmdline) -> list[ModprobeDirective]:
    """``module.param=value`` words as kmod turns them into options lines.

    kmod takes only words with a value, and ``modprobe.blacklist=a,b`` as blacklists.
    """
    directives: list[ModprobeDirective] = []
    words, _ = split_kernel_args(cmdline.text)
    for name, value in words:
        module, dot, param = name.partition(".")
        if value is None or not dot or not module or not param:
            continue
        shown = f"{name}={value}"
        if param_key(module) == "modprobe" and param_key(param) == "blacklist":
            for blocked in filter(None, value.split(",")):
                directives.append(
                    ModprobeDirective("blacklist", module_name(blocked), "", CMDLINE, 1, shown)
                )
            continue
        quoted = any(char.isspace() for char in value)
        args = f'{param}="{value}"' if quoted else shown.partition(".")[2]
        directives.append(
            ModprobeDirective("options", module_name(module), args, CMDLINE, 1, shown)
        )
    return directives


@dataclass(frozen=True)
class ModprobeConfig:
    directives: tuple[ModprobeDirective, ...]
    files: tuple[str, ...] = ()
    masked: tuple[tuple[str, str], ...] = ()
    unreadable: tuple[tuple[str, str], ...] = ()

    def for_module(self, module: str, kind: str | None = None) -> tuple[ModprobeDirective, ...]:
        wanted = module_name(module)
        return tuple(
            d for d in self.directives if d.module == wanted and (kind is None or d.kind == kind)
        )

    def option(self, module: str, name: str) -> tuple[str, ModprobeDirective] | None:
        """The value parameter ``name`` gets when ``module`` loads, and the line that sets it.

        kmod passes every options line of the module in order and the kernel applies the
        words left to right (kernel/params.c parse_args()), so the last one wins; a bare
        flag gives "".
        """
        wanted = param_key(name)
        found: tuple[str, ModprobeDirective] | None = None
        for directive in self.for_module(module, "options"):
            words, _ = split_kernel_args(directive.args)
            for param, value in words:
                if param_key(param) == wanted:
                    found = ("" if value is None else value, directive)
        return found


def read_modprobe_config(host: HostRoot, *, cmdline: bool = False) -> ModprobeConfig:
    """modprobe.d as kmod reads it.

    ``cmdline=True`` appends /proc/cmdline's ``module.param=value`` words as kmod does;
    off by default so a rule that also reads KernelCmdline does not count them twice.
    """
    found = find_config_files(host, MODPROBE_DIRS, MODPROBE_SUFFIXES)
    paths = list(found.files)
    legacy = host.is_file(LEGACY_MODPROBE_CONF) and not is_dev_null_link(host, LEGACY_MODPROBE_CONF)
    if legacy:
        paths.insert(0, LEGACY_MODPROBE_CONF)
    directives: list[ModprobeDirective] = []
    unreadable = list(found.unreadable)
    for path in paths:
        source, text = read_config_file(host, path)
        if isinstance(text, Missing):
            unreadable.append((path, text.reason))
            continue
        directives.extend(parse_modprobe_conf(text, source))
    if cmdline:
        kernel = read_cmdline(host)
        if not isinstance(kernel, Missing):
            directives.extend(_cmdline_directives(kernel))
    return ModprobeConfig(tuple(directives), tuple(paths), found.masked, tuple(unreadable))
