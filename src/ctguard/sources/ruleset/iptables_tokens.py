"""An ``iptables-save`` rule line as iptables-restore reads it: words (quotes undone), then
options with their arguments, negation and the ``-m`` module they belong to.

>>> words = iptables_words('-m tcp ! --dport 22 -m comment --comment "ssh in"')
>>> words
['-m', 'tcp', '!', '--dport', '22', '-m', 'comment', '--comment', 'ssh in']
>>> [option for option in iptables_options(words) if option.name == "--dport"]
[Option(name='--dport', args=('22',), negated=True, module='tcp')]
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import NamedTuple

# Options whose argument count the "next tokens not starting with -" rule gets wrong.
_ARITY = {
    "--comment": 1, "--log-prefix": 1, "--nflog-prefix": 1, "--tcp-flags": 2,
    "--set-counters": 2, "-c": 2, "--notrack": 0, "--syn": 0, "--clamp-mss-to-pmtu": 0,
    "--random": 0, "--random-fully": 0, "--persistent": 0, "--save-mark": 0,
    "--restore-mark": 0, "--rcheck": 0, "--update": 0, "--set": 0, "--remove": 0,
    "--log-uid": 0, "--log-tcp-sequence": 0, "--log-tcp-options": 0, "--log-ip-options": 0,
}  # fmt: skip
_NOT = "!"
_WORD = re.compile(r'"((?:[^"\\]|\\.)*)"|(\S+)')
_UNESCAPE = re.compile(r"\\(.)")


def iptables_words(text: str) -> list[str] | None:
    """Split like iptables-restore: iptables-save quotes a value with spaces ("a b") and
    escapes quotes and backslashes inside it (xtables_save_string()). None: unclosed quote.

    A regex, not shlex: kube-proxy hosts save tens of thousands of quoted comments.
    """
    if '"' not in text:
        return text.split()
    words: list[str] = []
    for found in _WORD.finditer(text):
        quoted, bare = found.group(1), found.group(2)
        if quoted is not None:
            words.append(_UNESCAPE.sub(r"\1", quoted))
        elif '"' in bare:
            return None
        else:
            words.append(bare)
    return words


class Option(NamedTuple):  # a tuple: tens of thousands per kube-proxy ruleset
    name: str
    args: tuple[str, ...]
    negated: bool
    module: str | None  # the -m module (or "target" after -j) the option belongs to


def iptables_options(tokens: Sequence[str]) -> Iterator[Option]:
    """Options with their arguments, negation (``! --dport 80``, old ``--dport ! 80``) and
    the module they follow, so that ``--mark`` after ``-m connmark`` is not ``-m mark``."""
    module: str | None = None
    negated = False
    i = 0
    while i < len(tokens):
        word = tokens[i]
        i += 1
        if word == _NOT:
            negated = True
            continue
        if not word.startswith("-"):
            yield Option("", (word,), negated, module)  # a stray word: keep it as a condition
            negated = False
            continue
        if i < len(tokens) and tokens[i] == _NOT:
            negated, i = True, i + 1
        arity = _ARITY.get(word)
        if arity is None:
            end = i
            while end < len(tokens) and not _is_option_word(tokens[end]):
                end += 1
            arity = end - i if word.startswith("--") else min(end - i, 1)
        args = tuple(tokens[i : i + arity])
        i += arity
        if word in ("-m", "--match") and args:
            module = args[0]
        elif word in ("-j", "--jump", "-g", "--goto"):
            module = "target"
        yield Option(word, args, negated, module)
        negated = False


def _is_option_word(word: str) -> bool:
    return word == _NOT or (word.startswith("-") and not word[1:].isdigit())
