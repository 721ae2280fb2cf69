"""Command lines split into commands and words, as the program that runs them splits them.

Two grammars, because two kinds of program run the text we read:

- :func:`parse_shell`: text a shell runs. The RHEL iptables init script and the
  iptables-config it sources, RHEL ``/etc/sysconfig/modules/*.modules``, modprobe.d
  ``install`` commands (modprobe hands them to ``/bin/sh -c``), the argument of ``sh -c``;
  :func:`split_fields` for the words an unquoted variable becomes there.
- :func:`split_argv`: a command line a program splits itself, with quotes but no shell:
  udev's ``RUN``.

Both are pure and total: any text gives a value, a text bash rejects gives the commands
before the error and a :class:`ParseError` saying where (snapshots may be crafted).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# -- what bash runs -----------------------------------------------------------------------
# Enough of bash(1) "QUOTING", "REDIRECTION", "Here Documents" and "Arrays" to find simple
# commands and assignments; expansions are kept as written, never evaluated. What it rejects
# is what stops the splitting (an open quote, a redirection without its word), not bash's
# grammar: an operator out of place (a leading "&&", a stray ")") only separates commands.
#
# Hand-written, not shlex: shlex.shlex(posix=True, punctuation_chars=True) removes quotes
# and splits at "|", ";" and "&&", but it cannot say where a word starts or how it was
# written (evidence quotes the source lines; a quoted "A=1" is no assignment), it takes a
# "#" inside a word for a comment, turns "\<newline>" into a newline instead of joining
# the lines, splits $(...) at its "(" and "|", keeps the backslash of "\$" inside double
# quotes, glues ");" into one token, and knows neither here-documents nor NAME=(...).
_BLANK = " \t"  # bash separates words on blanks only: "\r" of a CRLF file stays in the word
_OPERATORS = ("&&", "||", ";;", "|", "&", ";", "(", ")")
_REDIRECTIONS = ("<<-", "<<", ">>", ">&", ">|", "<&", "<>", "&>>", "&>", ">", "<")
_PLAIN = re.compile(r"[^ \t\n|&;()<>'\"\\$`#]+")
_DOUBLE_QUOTED_PLAIN = re.compile(r'[^"\\$`]+')
_NAME_IS = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=")
_IFS = re.compile(r"[ \t\n]+")
# Words that may precede a simple command without being it (bash "Compound Commands").
_RESERVED = frozenset({"if", "then", "else", "elif", "fi", "do", "done", "while", "until",
                       "{", "}", "!", "time"})  # fmt: skip
# The text of a $(...) is read once more for each level it is nested in: the cap keeps
# that linear in the length of the text, and the reading (one call a level) bounded.
MAX_SUBSTITUTION_DEPTH = 4


@dataclass(frozen=True)
class Word:
    """One word of a command, or one ``NAME=(a b c)`` array assignment."""

    value: str  # after quote removal; $X, ${X}, $(...) and `...` kept as written
    raw: str  # as written; "NAME=" for an array
    line: int  # where it starts (1-based)
    end_line: int  # where it ends: a quoted value or an array may span lines
    items: tuple[str, ...] | None = None  # the elements of NAME=(...); None: not an array

    @property
    def name(self) -> str | None:
        """NAME when this is ``NAME=value`` or ``NAME=(...)``: an unquoted name, then "="."""
        found = _NAME_IS.match(self.raw)
        return found[1] if found else None


@dataclass(frozen=True)
class Command:
    """A simple command: reserved words in front (``if``, ``then``, ``!``...) and
    redirections with their targets left out."""

    words: tuple[Word, ...]
    end: str  # the operator after it: "|", "&&", ";", "\n"...; "" at the end of the text

    @property
    def argv(self) -> tuple[str, ...]:
        """The words it runs: values after the ``NAME=value`` assignments in front."""
        index = 0
        while index < len(self.words) and self.words[index].name is not None:
            index += 1
        return tuple(word.value for word in self.words[index:])


@dataclass(frozen=True)
class ParseError:
    """Where bash stops reading the text: it ran the commands before, runs none after."""

    line: int
    reason: str


@dataclass(frozen=True)
class ShellScript:
    """The commands bash runs from the text, in order; where it stops, if it does."""

    commands: tuple[Command, ...]
    error: ParseError | None = None


def parse_shell(text: str, *, substitutions: bool = False) -> ShellScript:
    """The simple commands of shell ``text``, in the order bash reads them.

    ``substitutions``: also the commands inside ``$(...)`` and backquotes, each before the
    command whose word holds it (bash runs it first), up to ``MAX_SUBSTITUTION_DEPTH``.

    >>> script = parse_shell(
    ...     'IPTABLES_MODULES_UNLOAD="yes"  # stop unloads nf_conntrack\\n'
    ...     "NF_MODULES_COMMON=(x_tables nf_nat \\\\\\n    nf_conntrack)\\n"
    ...     "fgrep -hs $item /etc/sysctl.conf | sysctl -p - >/dev/null\\n")
    >>> [(c.argv, c.end) for c in script.commands]  # doctest: +NORMALIZE_WHITESPACE
    [((), '\\n'), ((), '\\n'),
     (('fgrep', '-hs', '$item', '/etc/sysctl.conf'), '|'), (('sysctl', '-p', '-'), '\\n')]
    >>> unload, = script.commands[0].words
    >>> unload.name, unload.value, unload.raw
    ('IPTABLES_MODULES_UNLOAD', 'IPTABLES_MODULES_UNLOAD=yes', 'IPTABLES_MODULES_UNLOAD="yes"')
    >>> modules, = script.commands[1].words
    >>> modules.name, modules.items, (modules.line, modules.end_line)
    ('NF_MODULES_COMMON', ('x_tables', 'nf_nat', 'nf_conntrack'), (2, 3))
    >>> parse_shell("modprobe nf_conntrack\\necho 'unclosed\\nmodprobe nf_nat\\n")
    ... # doctest: +NORMALIZE_WHITESPACE
    ShellScript(commands=(Command(words=(Word(value='modprobe', raw='modprobe', line=1,
      end_line=1, items=None), Word(value='nf_conntrack', raw='nf_conntrack', line=1,
      end_line=1, items=None)), end='\\n'),),
      error=ParseError(line=2, reason="unterminated '"))
    >>> [c.argv for c in parse_shell("x=$(modprobe -b nf_conntrack)", substitutions=True).commands]
    [('modprobe', '-b', 'nf_conntrack'), ()]
    """
    lexer = _Lexer(text, 1, MAX_SUBSTITUTION_DEPTH if substitutions else 0)
    lexer.run()
    return ShellScript(tuple(lexer.commands), lexer.error)


def split_fields(value: str) -> tuple[str, ...]:
    """The words an unquoted ``$VAR`` becomes: bash splits it on the default IFS, space,
    tab and newline (bash(1) "Word Splitting"); "\\r" and other blanks stay in the word.

    >>> split_fields(" .nf_conntrack\\t.bridge-nf\\n")
    ('.nf_conntrack', '.bridge-nf')
    """
    return tuple(field for field in _IFS.split(value) if field)


class _Rejected(Exception):
    """bash rejects the text here: a quote, substitution or array left open, an operator
    inside an array, a redirection without its target."""

    def __init__(self, reason: str, line: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line


class _Lexer:
    """Reads commands from ``text``; comments, redirections and here-document bodies go."""

    def __init__(self, text: str, line: int, depth: int) -> None:
        self.text = text
        self.pos = 0
        self.line = line
        self.depth = depth  # how many more levels of $(...) to read the commands of
        self.commands: list[Command] = []
        self.error: ParseError | None = None
        self.words: list[Word] = []  # of the command being read
        self.inner: list[Command] = []  # from its substitutions, to go in front of it
        self.heredocs: list[tuple[str, bool]] = []  # (delimiter, strip leading tabs)

    def run(self) -> None:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in _BLANK:
                self.pos += 1
            elif char == "\n":
                self._end_command("\n")
                self.pos += 1
                self.line += 1
                if self.heredocs:
                    self._skip_heredoc_bodies()
            elif char == "#":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            elif char == "\\" and text.startswith("\\\n", self.pos):
                self.pos += 2  # line continuation
                self.line += 1
            elif self._at_redirection():
                self._guarded(self._redirection)
            elif char in "|&;()":
                op = next(o for o in _OPERATORS if text.startswith(o, self.pos))
                self._end_command(op)
                self.pos += len(op)
            else:
                self._guarded(self._word_token)
        self._end_command("")

    def _guarded(self, read: Callable[[], None]) -> None:
        try:
            read()
        except _Rejected as stop:
            # bash rejects the text from here on: drop the command being read and stop
            self.error = ParseError(stop.line, stop.reason)
            self.pos = len(self.text)
            self.words, self.inner, self.heredocs = [], [], []

    def _end_command(self, op: str) -> None:
        start = 0
        while start < len(self.words) and self.words[start].raw in _RESERVED:
            start += 1
        self.commands.extend(self.inner)
        if start < len(self.words):
            self.commands.append(Command(tuple(self.words[start:]), op))
        self.words, self.inner = [], []

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
            raise _Rejected(f"{op} without a target", self.line)  # bash: syntax error
        target, _ = self._word()
        if op.startswith("<<"):
            self.heredocs.append((target, op == "<<-"))

    def _word_token(self) -> None:
        start_line = self.line
        value, raw = self._word()
        if self.text.startswith("(", self.pos) and _NAME_IS.fullmatch(raw):
            self._array(raw, start_line)
        elif not (raw.isascii() and raw.isdigit() and self._at_redirection()):
            self.words.append(Word(value, raw, start_line, self.line))  # "2>x": 2 is no word

    def _array(self, raw: str, start_line: int) -> None:
        """``NAME=(a b c)``: elements may span lines and carry comments."""
        self.pos += 1
        items: list[str] = []
        text = self.text
        while True:
            while self.pos < len(text) and text[self.pos] in _BLANK + "\n":
                self.line += text[self.pos] == "\n"
                self.pos += 1
            if self.pos >= len(text):
                raise _Rejected("unterminated (", start_line)
            char = text[self.pos]
            if char == ")":
                self.pos += 1
                self.words.append(Word(raw, raw, start_line, self.line, tuple(items)))
                return
            if char == "#":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            elif text.startswith("\\\n", self.pos):
                self.pos += 2
                self.line += 1
            elif char in "|&;(<>":
                raise _Rejected(f"{char} inside an array", self.line)
            else:
                items.append(self._word()[0])

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
                nxt = text[self.pos + 1 : self.pos + 2]
                if nxt == "\n":
                    self.line += 1
                else:
                    value.append(nxt or "\\")
                self.pos += 1 + len(nxt)
            elif char == "'":
                end = text.find("'", self.pos + 1)
                if end < 0:
                    raise _Rejected("unterminated '", self.line)
                value.append(text[self.pos + 1 : end])
                self._advance_to(end + 1)
            elif char == '"':
                self._double_quoted(value)
            elif char == "$" or char == "`":
                self._substitution(value)
            else:
                break  # a blank, a newline or an operator ends the word
        return "".join(value), text[start : self.pos]

    def _advance_to(self, end: int) -> None:
        self.line += self.text.count("\n", self.pos, end)
        self.pos = end

    def _double_quoted(self, value: list[str]) -> None:
        text = self.text
        opened = self.line
        self.pos += 1
        while self.pos < len(text):
            char = text[self.pos]
            if plain := _DOUBLE_QUOTED_PLAIN.match(text, self.pos):
                value.append(plain.group())
                self._advance_to(plain.end())
            elif char == '"':
                self.pos += 1
                return
            elif char == "\\":
                # inside double quotes a backslash escapes only these (bash "QUOTING")
                nxt = text[self.pos + 1 : self.pos + 2]
                if nxt in ("$", "`", '"', "\\"):
                    value.append(nxt)
                elif nxt != "\n":
                    value.append(char)
                    nxt = ""
                self._advance_to(self.pos + 1 + len(nxt))
            else:
                self._substitution(value)
        raise _Rejected('unterminated "', opened)

    def _substitution(self, value: list[str]) -> None:
        """``$...`` or a backquote, kept as written; its commands read when asked."""
        start, line = self.pos, self.line
        end = self._substitution_end(start)
        value.append(self.text[start:end])
        self._advance_to(end)
        if self.depth:
            if self.text.startswith("$(", start) and not self.text.startswith("$((", start):
                inner = self.text[start + 2 : end - 1]
            elif self.text[start] == "`":
                inner = self.text[start + 1 : end - 1]
            else:
                return  # a parameter or an arithmetic expansion runs no command
            nested = _Lexer(inner, line, self.depth - 1)
            nested.run()  # what it rejects inside is dropped; the text around it reads on
            self.inner.extend(nested.commands)

    def _substitution_end(self, start: int) -> int:
        """End of ``$(...)``, ``$((...))``, ``${...}`` or a backquote; else past the ``$``."""
        text = self.text
        if text[start] == "`":
            end = text.find("`", start + 1)
            if end < 0:
                raise _Rejected("unterminated `", self.line)
            return end + 1
        opener = text[start + 1 : start + 2]
        if opener == "{":
            end = text.find("}", start + 2)
            if end < 0:
                raise _Rejected("unterminated ${", self.line)
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
                    break
                index = close
            elif char == "\\":
                index += 1
            index += 1
        raise _Rejected("unterminated $(", self.line)


# -- what udev runs -----------------------------------------------------------------------
# systemd-udevd splits RUN with strv_split_full(EXTRACT_UNQUOTE | EXTRACT_RELAX |
# EXTRACT_RETAIN_ESCAPE) (udev-event.c): blanks separate; ' and " group, anywhere in a word,
# and go; a backslash and "#" are ordinary; an unclosed quote runs to the end of the text.
# Hand-written, not shlex: shlex gives the same words once escapes and comments are off,
# but raises on the unclosed quote and grows each word one character at a time by string
# concatenation, quadratic in the length of a word.
_ARGV_WORD = re.compile(r"""(?:[^ \t\n\r'"]|'[^']*'?|"[^"]*"?)+""")
_ARGV_PART = re.compile(r"""'([^']*)'?|"([^"]*)"?|([^'"]+)""")


def split_argv(command: str) -> list[str]:
    """The argv of a command line that is split without a shell, as udev splits ``RUN``.

    >>> split_argv("/bin/sh -c 'sysctl -p /etc/sysctl.d/ct.conf' # not a comment")
    ['/bin/sh', '-c', 'sysctl -p /etc/sysctl.d/ct.conf', '#', 'not', 'a', 'comment']
    >>> split_argv('/sbin/sysctl -w "net.netfilter.nf_conntrack_max=262144')
    ['/sbin/sysctl', '-w', 'net.netfilter.nf_conntrack_max=262144']
    """
    return [
        "".join(part.group(part.lastindex or 0) for part in _ARGV_PART.finditer(word.group()))
        for word in _ARGV_WORD.finditer(command)
    ]
