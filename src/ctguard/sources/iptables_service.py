"""The RHEL 5/6/7 ``iptables`` service: ``/etc/sysconfig/iptables-config`` and its init script.

``service iptables stop`` (and every restart) unloads ``NF_MODULES_COMMON``, nf_conntrack
included, when ``IPTABLES_MODULES_UNLOAD="yes"`` (the script's default). The next load
resets every conntrack sysctl to its compiled-in default; ``start`` re-applies only the
lines of the sysctl files that ``fgrep`` finds for an item of ``IPTABLES_SYSCTL_LOAD_LIST``.
Both files are bash, so they are read as bash reads them: quotes removed, ``#`` comments
skipped, the last assignment wins (design §4 CT304/CT305, §7).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from ctguard.host.root import HostRoot
from ctguard.missing import Missing

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

# -- a small bash reader ------------------------------------------------------------------
# Enough of bash(1) "QUOTING", "REDIRECTION" and "Here Documents" to find assignments and
# one pipeline in these two files; expansions are kept as written, never evaluated.
_BLANK = " \t"  # bash separates words on blanks only: "\r" of a CRLF file stays in the word
_OPERATORS = ("&&", "||", ";;", "|", "&", ";", "(", ")")
_REDIRECTIONS = ("<<-", "<<", ">>", ">&", ">|", "<&", "<>", "&>>", "&>", ">", "<")
_PLAIN = re.compile(r"[^ \t\n|&;()<>'\"\\$`#]+")
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=")
# Words that may precede a simple command without being it (bash "Compound Commands").
_RESERVED = frozenset({"if", "then", "else", "elif", "fi", "do", "done", "while", "until",
                       "{", "}", "!", "time"})  # fmt: skip


class _Unterminated(Exception):
    """A quote or substitution runs to the end of the text: bash rejects the file there."""


@dataclass(frozen=True)
class _Token:
    kind: str  # "word", "array" or "op" (an operator; "!" marks a command bash rejects)
    value: str  # a word after quote removal, or the operator
    raw: str  # a word as written
    line: int
    end_line: int
    items: tuple[str, ...] = ()  # the elements of NAME=(a b c)


class _Lexer:
    """Splits shell text into words and operators, dropping comments and redirections."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.tokens: list[_Token] = []
        self.heredocs: list[tuple[str, bool]] = []  # (delimiter, strip leading tabs)

    def run(self) -> list[_Token]:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in _BLANK:
                self.pos += 1
            elif char == "\n":
                self._newline()
            elif char == "#":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            elif char == "\\" and text.startswith("\\\n", self.pos):
                self.pos += 2  # line continuation
                self.line += 1
            elif self._at_redirection():
                self._redirection()
            elif char in "|&;()":
                op = next(o for o in _OPERATORS if text.startswith(o, self.pos))
                self._emit("op", op, op, self.line)
                self.pos += len(op)
            else:
                self._word_token()
        return self.tokens

    def _emit(
        self, kind: str, value: str, raw: str, line: int, items: tuple[str, ...] = ()
    ) -> None:
        self.tokens.append(_Token(kind, value, raw, line, self.line, items))

    def _newline(self) -> None:
        self._emit("op", "\n", "\n", self.line)
        self.pos += 1
        self.line += 1
        if self.heredocs:
            self._skip_heredoc_bodies()

    def _skip_heredoc_bodies(self) -> None:
        for delimiter, strip_tabs in self.heredocs:
            while self.pos < len(self.text):
                end = self.text.find("\n", self.pos)
                end = len(self.text) if end < 0 else end
                body_line = self.text[self.pos : end]
                self.pos = end + 1
                self.line += 1
                if (body_line.lstrip("\t") if strip_tabs else body_line) == delimiter:
                    break
        self.heredocs = []

    def _at_redirection(self) -> bool:
        return self.text.startswith(("<", ">", "&>"), self.pos)

    def _redirection(self) -> None:
        op = next(o for o in _REDIRECTIONS if self.text.startswith(o, self.pos))
        self.pos += len(op)
        while self.pos < len(self.text) and self.text[self.pos] in _BLANK:
            self.pos += 1
        if self.pos >= len(self.text) or self.text[self.pos] in "\n|&;()<>":
            return
        try:
            target, _ = self._word()
        except _Unterminated:
            self._stop()
            return
        if op.startswith("<<"):
            self.heredocs.append((target, op == "<<-"))

    def _word_token(self) -> None:
        start_line = self.line
        try:
            value, raw = self._word()
        except _Unterminated:
            self._stop()
            return
        if self.text.startswith("(", self.pos) and _ASSIGNMENT.fullmatch(raw):
            self._array(raw, start_line)
        elif not (raw.isascii() and raw.isdigit() and self._at_redirection()):
            self._emit("word", value, raw, start_line)  # "2>/dev/null": 2 is no word

    def _array(self, raw: str, start_line: int) -> None:
        """``NAME=(a b c)``: elements may span lines and carry comments."""
        self.pos += 1
        items: list[str] = []
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in _BLANK + "\n":
                self.line += self.text[self.pos] == "\n"
                self.pos += 1
            if self.pos >= len(self.text):
                self._stop()
                return
            char = self.text[self.pos]
            if char == ")":
                self.pos += 1
                self._emit("array", raw, raw, start_line, tuple(items))
                return
            if char == "#":
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
                continue
            if char == "\\" and self.text.startswith("\\\n", self.pos):
                self.pos += 2
                self.line += 1
                continue
            if char in "|&;(<>":
                self._stop()
                return
            try:
                value, _ = self._word()
            except _Unterminated:
                self._stop()
                return
            items.append(value)

    def _stop(self) -> None:
        """Bash rejects the text from here on (an unclosed quote): drop the command, stop."""
        self.pos = len(self.text)
        self.heredocs = []
        self._emit("op", "!", "!", self.line)

    def _word(self) -> tuple[str, str]:
        """One word from ``self.pos``: its value after quote removal, and its raw text."""
        text = self.text
        start = self.pos
        value: list[str] = []
        while self.pos < len(text):
            char = text[self.pos]
            if plain := _PLAIN.match(text, self.pos):
                value.append(plain.group())
                self.pos = plain.end()
            elif char == "#":
                value.append(char)  # not at the start of a word: not a comment
                self.pos += 1
            elif char == "\\":
                self._backslash(value)
            elif char == "'":
                end = text.find("'", self.pos + 1)
                if end < 0:
                    raise _Unterminated
                value.append(text[self.pos + 1 : end])
                self._advance_to(end + 1)
            elif char == '"':
                self._double_quoted(value)
            elif char == "$" or char == "`":
                end = self._substitution_end(self.pos)
                value.append(text[self.pos : end])
                self._advance_to(end)
            else:
                break  # a blank, a newline or an operator ends the word
        return "".join(value), text[start : self.pos]

    def _advance_to(self, end: int) -> None:
        self.line += self.text.count("\n", self.pos, end)
        self.pos = end

    def _backslash(self, value: list[str]) -> None:
        nxt = self.text[self.pos + 1 : self.pos + 2]
        if nxt == "\n":
            self.pos += 2
            self.line += 1
        else:
            value.append(nxt or "\\")
            self.pos += 1 + len(nxt)

    def _double_quoted(self, value: list[str]) -> None:
        text = self.text
        self._advance_to(self.pos + 1)
        while self.pos < len(text):
            char = text[self.pos]
            if char == '"':
                self.pos += 1
                return
            if char == "\\" and text[self.pos + 1 : self.pos + 2] in ("$", "`", '"', "\\", "\n"):
                nxt = text[self.pos + 1]
                if nxt != "\n":
                    value.append(nxt)
                self._advance_to(self.pos + 2)
            elif char in "$`":
                end = self._substitution_end(self.pos)
                value.append(text[self.pos : end])
                self._advance_to(end)
            else:
                value.append(char)
                self._advance_to(self.pos + 1)
        raise _Unterminated

    def _substitution_end(self, start: int) -> int:
        """End of ``$(...)``, ``$((...))``, ``${...}`` or a backquote; else past the ``$``."""
        text = self.text
        if text[start] == "`":
            end = text.find("`", start + 1)
            if end < 0:
                raise _Unterminated
            return end + 1
        opener = text[start + 1 : start + 2]
        if opener == "{":
            end = text.find("}", start + 2)
            if end < 0:
                raise _Unterminated
            return end + 1
        if opener != "(":
            return start + 1
        depth = 0
        index = start + 1
        while index < len(text):
            char = text[index]
            if char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
                if depth == 0:
                    return index + 1
            elif char in "'\"":
                close = text.find(char, index + 1)
                if close < 0:
                    raise _Unterminated
                index = close
            elif char == "\\":
                index += 1
            index += 1
        raise _Unterminated


@dataclass(frozen=True)
class _Command:
    words: tuple[_Token, ...]  # words and arrays, reserved words in front removed
    end: str  # the operator after it ("|", ";", "\n"...), "" at the end of the text


def _commands(text: str) -> Iterator[_Command]:
    """Simple commands in order; a command bash would reject (unclosed quote) is skipped."""
    words: list[_Token] = []
    for token in [*_Lexer(text).run(), _Token("op", "", "", 0, 0)]:
        if token.kind != "op":
            words.append(token)
            continue
        while words and words[0].kind == "word" and words[0].raw in _RESERVED:
            words.pop(0)
        if words and token.value != "!":
            yield _Command(tuple(words), token.value)
        words = []


@dataclass(frozen=True)
class _Assignment:
    name: str
    value: str
    items: tuple[str, ...] | None  # elements when NAME=(...)
    token: _Token


def _assignments(command: _Command) -> list[_Assignment]:
    """Assignments that persist: ``A=1 B=2`` or ``export A=1``, not ``A=1 some_command``."""
    words = command.words
    if words[0].kind == "word" and words[0].raw == "export":
        words = tuple(w for w in words[1:] if w.kind == "array" or "=" in w.raw)
    found: list[_Assignment] = []
    for word in words:
        if word.kind == "array":
            found.append(_Assignment(word.raw[:-1], "", word.items, word))
            continue
        match = _ASSIGNMENT.match(word.raw)
        if match is None:
            return []  # assignments before a command only live in that command's environment
        found.append(_Assignment(match[1], word.value[match.end() :], None, word))
    return found


def _source_text(lines: Sequence[str], first: _Token, last: _Token | None = None) -> str:
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
        if var is None:
            return ()
        return tuple(item for item in re.split(r"[ \t\n]+", var.value) if item)


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
    variables: dict[str, ShellVar] = {}
    for command in _commands(text):
        for assignment in _assignments(command):
            value = assignment.value
            if assignment.items is not None:
                value = assignment.items[0] if assignment.items else ""  # $NAME of an array
            token = assignment.token
            variables[assignment.name] = ShellVar(
                assignment.name, value, token.line, _source_text(lines, token)
            )
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


def _parse_grep(words: Sequence[_Token]) -> _Grep | None:
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


def _is_config_source(words: Sequence[_Token]) -> bool:
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
    """
    lines = text.split("\n")
    commands = list(_commands(text))
    modules: _Assignment | None = None
    unload: str | None = None
    sourced = False
    grep: tuple[_Grep, _Command] | None = None
    for index, command in enumerate(commands):
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
        modules_line=modules.token.line if modules else None,
        modules_text=_source_text(lines, modules.token) if modules else None,
        unload_default=unload,
        grep_command=grep[0].command if grep else None,
        grep_files=grep[0].files if grep else (),
        grep_line=grep[1].words[0].line if grep else None,
        grep_text=_source_text(lines, grep[1].words[0], grep[1].words[-1]) if grep else None,
        grep_options=grep[0].options if grep else (),
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
    return IptablesService(config, _read_init_script(host))
