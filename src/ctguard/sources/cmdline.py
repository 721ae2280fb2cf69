"""The kernel command line, ``/proc/cmdline``.

A built-in nf_conntrack takes its ``hashsize`` only from here (``nf_conntrack.hashsize=N``);
kmod also reads ``module.param=value`` words from it for loadable modules
(``kmod_config_parse_kcmdline``), so a value here outlives every modprobe.d file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ctguard.host.root import SMALL_FILE_BYTES, HostRoot
from ctguard.missing import Missing

CMDLINE = "/proc/cmdline"

# isspace() of the kernel's lib/ctype.c for the ASCII range.
_KERNEL_SPACE = frozenset(" \t\n\v\f\r")


def param_key(name: str) -> str:
    """The form parameter names compare in: kernel/params.c parameq() treats - and _ alike."""
    return name.replace("-", "_")


def _skip_spaces(text: str, index: int) -> int:
    while index < len(text) and text[index] in _KERNEL_SPACE:
        index += 1
    return index


def _next_arg(text: str, start: int) -> tuple[str, str | None, int]:
    """One word the way kernel/params.c next_arg() cuts it: (name, value or None, next index).

    Double quotes protect spaces; a leading quote on the word or on the value is dropped
    with its closing partner at the end of the word, nothing else is unescaped.
    """
    quoted = text[start] == '"'
    if quoted:
        start += 1
    in_quote = quoted
    equals = 0  # next_arg() also uses 0 for "no = seen", so a leading = is part of the name
    end = start
    while end < len(text):
        char = text[end]
        if char in _KERNEL_SPACE and not in_quote:
            break
        if equals == 0 and char == "=":
            equals = end - start
        if char == '"':
            in_quote = not in_quote
        end += 1
    word_end = end
    if not equals:
        if quoted and word_end > start and text[word_end - 1] == '"':
            word_end -= 1
        return text[start:word_end], None, _skip_spaces(text, end + 1)
    value_start = start + equals + 1
    trimmed = False
    if value_start < word_end and text[value_start] == '"':
        value_start += 1
        if text[word_end - 1] == '"':
            word_end -= 1
            trimmed = True
    if quoted and not trimmed and text[word_end - 1] == '"':
        word_end -= 1
    value = text[value_start:word_end] if value_start < word_end else ""
    name = text[start : start + equals]
    return name, value, _skip_spaces(text, end + 1)


def split_kernel_args(text: str) -> tuple[list[tuple[str, str | None]], list[str]]:
    """Kernel parameters in order, and the words after ``--`` that go to init.

    >>> split_kernel_args('root=UUID=1 ro "acpi_osi=Linux test" quiet -- single')
    ([('root', 'UUID=1'), ('ro', None), ('acpi_osi', 'Linux test'), ('quiet', None)], ['single'])
    """
    params: list[tuple[str, str | None]] = []
    index = _skip_spaces(text, 0)
    while index < len(text):
        name, value, index = _next_arg(text, index)
        # parse_args() stops at a bare "--" (3.x+): the rest is init's argv, not parameters.
        if name == "--" and value is None:
            init: list[str] = []
            while index < len(text):
                word, word_value, index = _next_arg(text, index)
                init.append(word if word_value is None else f"{word}={word_value}")
            return params, init
        if name:
            params.append((name, value))
    return params, []


@dataclass(frozen=True)
class KernelCmdline:
    """Parameters of the running kernel; ``args`` keeps every word in order."""

    text: str
    params: Mapping[str, str]
    args: tuple[tuple[str, str], ...] = ()
    init_args: tuple[str, ...] = ()  # after "--": handed to init, never kernel parameters

    def get(self, name: str) -> str | None:
        """Value of the last parameter named ``name`` (- and _ alike), "" for a bare flag."""
        wanted = param_key(name)
        for arg, value in reversed(self.args):
            if param_key(arg) == wanted:
                return value
        return self.params.get(name)


def parse_cmdline(text: str) -> KernelCmdline:
    """Parse ``/proc/cmdline``.

    >>> c = parse_cmdline(
    ...     "BOOT_IMAGE=/vmlinuz-6.1.0-18-amd64 root=UUID=0b1c ro nf-conntrack.hashsize=131072 "
    ...     "quiet nf_conntrack.hashsize=262144\\n")
    >>> (c.get("nf_conntrack.hashsize"), c.get("quiet"), c.get("root"), c.get("splash"))
    ('262144', '', 'UUID=0b1c', None)
    """
    words, init = split_kernel_args(text)
    args = tuple((name, "" if value is None else value) for name, value in words)
    return KernelCmdline(text.rstrip("\n"), dict(args), args, tuple(init))


def read_cmdline(host: HostRoot) -> KernelCmdline | Missing:
    text = host.try_read_text(CMDLINE, SMALL_FILE_BYTES)
    if isinstance(text, Missing):
        return text
    return parse_cmdline(text)
