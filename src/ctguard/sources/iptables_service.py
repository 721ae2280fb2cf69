"""The RHEL 5/6/7 ``iptables`` service: ``/etc/sysconfig/iptables-config`` and its init script.

``service iptables stop`` (and every restart) unloads ``NF_MODULES_COMMON``, nf_conntrack
included, when ``IPTABLES_MODULES_UNLOAD="yes"`` (the script's default). The next load
resets every conntrack sysctl to its compiled-in default; ``start`` re-applies only the
lines of the sysctl files that ``fgrep`` finds for an item of ``IPTABLES_SYSCTL_LOAD_LIST``.
Both files are bash, so they are read as bash reads them (``shell_words.parse_shell``):
quotes removed, ``#`` comments skipped, the last assignment wins (docs/design.md §4
CT304/CT305, §7).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from ctguard.host.root import HostRoot
from ctguard.missing import Missing
from ctguard.sources.shell_words import Command, Word, parse_shell, split_fields

IPTABLES_CONFIG = "/etc/sysconfig/iptables-config"
# RHEL 5/6 install the script in /etc/rc.d/init.d (/etc/init.d links there); RHEL 7's
# iptables-services runs it from the systemd unit as /usr/libexec/iptables/iptables.init.
INIT_SCRIPTS = (
    "/etc/init.d/iptables",
    "/etc/rc.d/init.d/iptables",
    "/usr/libexec/iptables/iptables.init",
)
STOCK_NF_MODULES_COMMON = ("x_tables", "nf_nat", "nf_conntrack")
SCRIPT_MAX_BYTES = 256 << 10  # both files are a few KiB; more is not a real one
GREP_FILE_MAX_BYTES = 1 << 20


# -- assignments, from the commands shell_words reads -------------------------------------
@dataclass(frozen=True)
class _Assignment:
    name: str
    value: str
    items: tuple[str, ...] | None  # elements when NAME=(...)
    word: Word


def _assignments(command: Command) -> list[_Assignment]:
    """Assignments that persist: ``A=1 B=2`` or ``export A=1``, not ``A=1 some_command``."""
    words = command.words
    if words[0].raw == "export":
        words = tuple(w for w in words[1:] if w.items is not None or "=" in w.raw)
    found: list[_Assignment] = []
    for word in words:
        name = word.name
        if name is None:
            return []  # assignments before a command only live in that command's environment
        value = "" if word.items is not None else word.value[len(name) + 1 :]
        found.append(_Assignment(name, value, word.items, word))
    return found


def _source_text(lines: Sequence[str], first: Word, last: Word | None = None) -> str:
    """The source lines from ``first`` to ``last`` (default: ``first`` alone)."""
    end = (last or first).end_line
    return "\n".join(lines[first.line - 1 : end]).strip()


# -- iptables-config ----------------------------------------------------------------------
@dataclass(frozen=True)
class ShellVar:
    name: str
    value: str  # after shell quote removal; expansions such as $X are kept as written
    line: int
    text: str  # the raw line (lines, when a quoted value spans several)


@dataclass(frozen=True)
class IptablesConfig:
    path: str
    variables: Mapping[str, ShellVar]  # last assignment wins

    def get(self, name: str) -> ShellVar | None:
        return self.variables.get(name)

    @property
    def sysctl_load_list(self) -> tuple[str, ...]:
        """Items of ``IPTABLES_SYSCTL_LOAD_LIST``.

        The script expands it unquoted (``for item in $IPTABLES_SYSCTL_LOAD_LIST``), so
        bash splits it on the default IFS: space, tab and newline only.
        """
        var = self.variables.get("IPTABLES_SYSCTL_LOAD_LIST")
        return () if var is None else split_fields(var.value)


def parse_iptables_config(text: str, path: str = IPTABLES_CONFIG) -> IptablesConfig:
    """Parse ``/etc/sysconfig/iptables-config``, which the init script sources with ``.``.

    >>> c = parse_iptables_config(
    ...     '# Unload modules on restart and stop\\n'
    ...     'IPTABLES_MODULES_UNLOAD="yes"\\n'
    ...     "IPTABLES_SYSCTL_LOAD_LIST='.nf_conntrack .bridge-nf'  # re-applied on start\\n")
    >>> c.get("IPTABLES_MODULES_UNLOAD").value, c.get("IPTABLES_MODULES_UNLOAD").line
    ('yes', 2)
    >>> c.sysctl_load_list
    ('.nf_conntrack', '.bridge-nf')
    """
    lines = text.split("\n")
    # One string per span, shared: a crafted line of many assignments is not copied per one.
    texts: dict[tuple[int, int], str] = {}
    variables: dict[str, ShellVar] = {}
    for command in parse_shell(text).commands:
        for assignment in _assignments(command):
            value = assignment.value
            if assignment.items is not None:
                value = assignment.items[0] if assignment.items else ""  # $NAME of an array
            word = assignment.word
            span = (word.line, word.end_line)
            if span not in texts:
                texts[span] = _source_text(lines, word)
            variables[assignment.name] = ShellVar(assignment.name, value, word.line, texts[span])
    return IptablesConfig(path, variables)


# -- the init script ----------------------------------------------------------------------
@dataclass(frozen=True)
class InitScript:
    path: str
    nf_modules_common: tuple[str, ...] | None  # None when the script sets none
    modules_line: int | None
    modules_text: str | None
    unload_default: str | None  # IPTABLES_MODULES_UNLOAD set before the config is sourced
    grep_command: str | None  # "fgrep", "grep -F"... as written
    grep_files: tuple[str, ...]  # file operands of the grep in load_sysctl, as written
    grep_line: int | None
    grep_text: str | None
    # Options as written: without -h, fgrep of several files prefixes each line with its
    # file name, and sysctl -p - then rejects every line.
    grep_options: tuple[str, ...] = ()
    # Whether the script can unload a module at all (rmmod, modprobe -r): iptables-services
    # 1.4.21-29 and later (RHEL 7.7 on, RHBZ#1520534; 7.5's -24 and 7.6's -28 still unload)
    # dropped module unloading, and with it every use of IPTABLES_MODULES_UNLOAD; the
    # variable's default then means nothing.
    unloads_modules: bool = True


# grep(1) options that take an argument, short and long (GNU grep 2.6, RHEL 6, to 3.x).
_SHORT_WITH_ARGUMENT = "efmABCdD"
_LONG_WITH_ARGUMENT = frozenset({"regexp", "file", "max-count", "after-context",
    "before-context", "context", "directories", "devices", "binary-files", "label",
    "include", "exclude", "exclude-from", "exclude-dir", "color", "colour"})  # fmt: skip


@dataclass(frozen=True)
class _Grep:
    command: str
    options: tuple[str, ...]
    files: tuple[str, ...]


def _parse_grep(words: Sequence[Word]) -> _Grep | None:
    """``fgrep``/``grep -F`` with its operands, or None for any other command."""
    program = words[0].value
    name = PurePosixPath(program).name
    if name not in ("fgrep", "grep"):
        return None
    options: list[str] = []
    operands: list[str] = []
    fixed_by: str | None = program if name == "fgrep" else None
    pattern_in_option = False
    index = 1
    while index < len(words):
        word = words[index].value
        index += 1
        if word == "--":
            operands.extend(w.value for w in words[index:])
            break
        if word.startswith("--"):
            options.append(word)
            long_name, has_value, _ = word[2:].partition("=")
            if long_name == "fixed-strings" and fixed_by is None:
                fixed_by = f"{program} {word}"
            if long_name in ("regexp", "file"):
                pattern_in_option = True
            if long_name in _LONG_WITH_ARGUMENT and not has_value:
                index += 1
        elif word.startswith("-") and len(word) > 1:
            options.append(word)  # GNU grep permutes: options may follow operands
            for position, letter in enumerate(word[1:], start=2):
                if letter == "F" and fixed_by is None:
                    fixed_by = f"{program} {word}"
                if letter in _SHORT_WITH_ARGUMENT:
                    pattern_in_option |= letter in "ef"
                    index += position == len(word)  # the argument is the next word
                    break
        else:
            operands.append(word)
    if fixed_by is None:
        return None
    files = operands if pattern_in_option else operands[1:]
    return _Grep(fixed_by, tuple(options), tuple(files))


def _unloads(words: Sequence[Word]) -> bool:
    """``rmmod MOD`` or ``modprobe -r MOD`` (also ``--remove``, ``-rv``)."""
    name = PurePosixPath(words[0].value).name
    if name == "rmmod":
        return True
    return name == "modprobe" and any(
        w.value == "--remove" or (w.value[:1] == "-" and w.value[1:2] != "-" and "r" in w.value)
        for w in words[1:]
    )


def _is_config_source(words: Sequence[Word]) -> bool:
    """``. "$IPTABLES_CONFIG"`` or ``source /etc/sysconfig/iptables-config``."""
    return (
        words[0].value in (".", "source") and len(words) > 1 and "config" in words[1].value.lower()
    )


def parse_init_script(text: str, path: str) -> InitScript:
    """Parse the ``iptables`` init script for what CT304/CT305 need.

    >>> s = parse_init_script(
    ...     'IPTABLES_MODULES_UNLOAD="yes"\\n'
    ...     '[ -f "$IPTABLES_CONFIG" ] && . "$IPTABLES_CONFIG"\\n'
    ...     "NF_MODULES_COMMON=(x_tables nf_nat nf_conntrack) # Used by netfilter v4 and v6\\n"
    ...     "load_sysctl() {\\n"
    ...     "    for item in $IPTABLES_SYSCTL_LOAD_LIST; do\\n"
    ...     "        fgrep $item /etc/sysctl.conf | sysctl -p - >/dev/null\\n"
    ...     "    done\\n"
    ...     "}\\n", "/etc/init.d/iptables")
    >>> s.nf_modules_common, s.unload_default
    (('x_tables', 'nf_nat', 'nf_conntrack'), 'yes')
    >>> s.grep_command, s.grep_files, s.grep_line
    ('fgrep', ('/etc/sysctl.conf',), 6)
    >>> s.unloads_modules  # no rmmod or modprobe -r anywhere (1.4.21-29+, RHEL 7.7 on)
    False
    """
    lines = text.split("\n")
    commands = parse_shell(text).commands
    modules: _Assignment | None = None
    unload: str | None = None
    sourced = False
    grep: tuple[_Grep, Command] | None = None
    unloads = False
    for index, command in enumerate(commands):
        unloads |= _unloads(command.words)
        if _is_config_source(command.words):
            sourced = True
        for assignment in _assignments(command):
            if assignment.name == "NF_MODULES_COMMON" and assignment.items is not None:
                modules = assignment
            elif assignment.name == "IPTABLES_MODULES_UNLOAD" and not sourced:
                unload = assignment.value
        if grep is None and command.end == "|" and index + 1 < len(commands):
            after = commands[index + 1].words[0].value
            found = _parse_grep(command.words)
            if found is not None and PurePosixPath(after).name == "sysctl":
                grep = (found, command)
    return InitScript(
        path=path,
        nf_modules_common=modules.items if modules else None,
        modules_line=modules.word.line if modules else None,
        modules_text=_source_text(lines, modules.word) if modules else None,
        unload_default=unload,
        grep_command=grep[0].command if grep else None,
        grep_files=grep[0].files if grep else (),
        grep_line=grep[1].words[0].line if grep else None,
        grep_text=_source_text(lines, grep[1].words[0], grep[1].words[-1]) if grep else None,
        grep_options=grep[0].options if grep else (),
        unloads_modules=unloads,
    )


# -- what load_sysctl feeds to sysctl -p - ------------------------------------------------
@dataclass(frozen=True)
class GrepHit:
    item: str
    path: str  # host path of the file the line came from
    line: int
    text: str  # the matched line as fgrep prints it (without the file name)


def _lines(text: str) -> list[str]:
    """Lines as grep(1) sees them: ended by "\\n" only, a last line without one included."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def simulate_fgrep(items: Sequence[str], files: Sequence[tuple[str, str]]) -> tuple[GrepHit, ...]:
    """What ``for item in $LIST; do fgrep $item FILES | sysctl -p -; done`` feeds sysctl.

    Fixed, case-sensitive substrings anywhere in the line, comment lines included (sysctl
    skips those itself): ``net.nf_conntrack`` does not match ``net.netfilter.nf_conntrack_*``.

    >>> conf = ("/etc/sysctl.conf", "net.nf_conntrack_max = 262144\\n"
    ...         "net.netfilter.nf_conntrack_tcp_timeout_established = 3600\\n")
    >>> [hit.line for hit in simulate_fgrep(["net.nf_conntrack"], [conf])]
    [1]
    >>> [hit.line for hit in simulate_fgrep([".nf_conntrack"], [conf])]
    [1, 2]
    """
    split = [(path, _lines(text)) for path, text in files]
    return tuple(
        GrepHit(item, path, number, line)
        for item in items
        for path, lines in split
        for number, line in enumerate(lines, start=1)
        if item in line
    )


def _has_glob(part: str) -> bool:
    return any(char in part for char in "*?[")


def _expand_pattern(host: HostRoot, pattern: str) -> list[str]:
    """Host paths a bash glob names, sorted by name; a literal path is returned as is."""
    parts = PurePosixPath("/", pattern).parts[1:]  # relative: the init script runs in /
    paths = ["/"]
    for part in parts:
        if not _has_glob(part):
            paths = [str(PurePosixPath(directory, part)) for directory in paths]
            continue
        # bash without dotglob: a leading "." must be matched explicitly
        paths = [
            found
            for directory in paths
            for found in host.glob(directory, part)
            if part.startswith(".") or not PurePosixPath(found).name.startswith(".")
        ]
    return paths


def expand_grep_files(host: HostRoot, patterns: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """(host path, text) of each file the grep reads, in the order it reads them.

    A glob that matches nothing stays literal in bash, so fgrep fails to open it and
    ``-s`` hides that: such a pattern, a missing file or a directory contributes nothing.
    """
    files: list[tuple[str, str]] = []
    for pattern in patterns:
        for path in _expand_pattern(host, pattern):
            if not host.is_file(path):
                continue
            text = host.try_read_text(path, GREP_FILE_MAX_BYTES)
            if not isinstance(text, Missing):
                files.append((path, text))
    return tuple(files)


# -- reading a host -----------------------------------------------------------------------
@dataclass(frozen=True)
class IptablesService:
    config: IptablesConfig | Missing
    script: InitScript | Missing
    # False when no init script exists at all (RHCOS ships iptables-config alone): then
    # there is no service to stop or restart, rather than one that could not be read.
    has_script: bool = True

    @property
    def complete(self) -> tuple[IptablesConfig, InitScript] | None:
        """Both files read: what simulating the service needs."""
        if isinstance(self.config, IptablesConfig) and isinstance(self.script, InitScript):
            return self.config, self.script
        return None


def _read_init_script(host: HostRoot) -> InitScript | Missing:
    for path in INIT_SCRIPTS:
        if host.is_file(path):
            text = host.try_read_text(path, SCRIPT_MAX_BYTES)
            return text if isinstance(text, Missing) else parse_init_script(text, path)
    return Missing(f"no iptables init script: none of {', '.join(INIT_SCRIPTS)} exists")


def read_iptables_service(host: HostRoot) -> IptablesService | Missing:
    if not host.exists(IPTABLES_CONFIG):
        return Missing(f"no {IPTABLES_CONFIG}: not a RHEL iptables service host")
    text = host.try_read_text(IPTABLES_CONFIG, SCRIPT_MAX_BYTES)
    config = text if isinstance(text, Missing) else parse_iptables_config(text)
    has_script = any(host.exists(path) for path in INIT_SCRIPTS)
    return IptablesService(config, _read_init_script(host), has_script)
