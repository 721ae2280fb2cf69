"""What tuned makes of ``${...}`` in a profile, as far as it can be decided offline.

tuned (commit 2bfa4423586bb516452c538a232c8f7075bafbdf) expands, in this order:

* ``${i:PROFILE_DIR}`` in every option of a file, to that file's directory, when it loads
  the file (tuned/profiles/loader.py, ``_expand_profile_dir``);
* ``${NAME}`` with the merged profile's ``[variables]`` (each variable expanded with the ones
  before it; ``include=FILE`` there reads more variables), then ``\\${NAME}`` becomes
  ``${NAME}`` (tuned/profiles/variables.py);
* ``${f:NAME:ARGS}`` functions: they run commands or read the CPU and kernel
  (``exec``, ``lscpu_check``, ``virt_check``, ``cpulist_invert``...): ctguard never runs them,
  so a value that still holds one is unknown, and says so.

An ``include=`` line is expanded before the profile's ``[variables]`` are known (the loader
adds them after merging every profile), so there only ``${i:PROFILE_DIR}`` and functions
count: a ``${NAME}`` in it names no profile when tuned starts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_PROFILE_DIR = re.compile(r"(?<!\\)\$\{i:PROFILE_DIR\}")
_VARIABLE = re.compile(r"(?<!\\)\$\{(\w+)\}")
_ESCAPED = re.compile(r"\\(\$\{\w+\})")


def expand_profile_dir(value: str, directory: str) -> str:
    return _PROFILE_DIR.sub(lambda _: directory, value)


def split_include(value: str) -> list[str]:
    """Split an include list on ``,`` and ``;`` (and the blanks around them) outside ``${...}``
    (tuned splits after expanding; a function's arguments are never names).

    >>> split_include("openshift-node,cpu-partitioning${f:x:a,b};\\n  other")
    ['openshift-node', 'cpu-partitioning${f:x:a,b}', 'other']
    """
    parts: list[str] = []
    depth = 0
    current = ""
    index = 0
    while index < len(value):
        char = value[index]
        if value.startswith("${", index):
            depth += 1
            current += "${"
            index += 2
            continue
        if char == "}" and depth:
            depth -= 1
        elif char in ",;" and not depth:
            parts.append(current.strip())
            current = ""
            index += 1
            continue
        current += char
        index += 1
    parts.append(current.strip())
    return [part for part in parts if part]


def unresolved(value: str) -> str | None:
    """Why ``value`` cannot be known offline once variables are expanded, or None."""
    if "${f:" in value:
        function = re.search(r"\$\{f:([\w]+)", value)
        name = function[1] if function else "?"
        return f"tuned computes it at run time (${{f:{name}:...}}); ctguard does not run it"
    variable = _VARIABLE.search(value)
    if variable:
        return f"${{{variable[1]}}} is not defined in the profile's [variables]"
    return None


@dataclass(frozen=True)
class Expanded:
    value: str  # expanded as far as possible
    unknown: str | None  # why the value is not known offline, None when it is


class Variables:
    """The merged ``[variables]`` of a profile, each expanded with the ones before it."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}

    def add(self, name: str, value: str) -> None:
        if re.fullmatch(r"\w+", name):
            self._values[name] = self._substitute(value)

    def add_all(self, items: Sequence[tuple[str, str]]) -> None:
        for name, value in items:
            self.add(name, value)

    def _substitute(self, value: str) -> str:
        return _VARIABLE.sub(lambda m: self._values.get(m[1], m[0]), value)

    def expand(self, value: str) -> Expanded:
        substituted = self._substitute(value)
        # an escaped \${NAME} is written as the text ${NAME}: literal, not unknown
        why = unresolved(_ESCAPED.sub("", substituted))
        return Expanded(_ESCAPED.sub(r"\1", substituted), why)

    @property
    def names(self) -> Mapping[str, str]:
        return self._values
