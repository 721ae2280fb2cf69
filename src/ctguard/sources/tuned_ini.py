"""tuned's INI files (profiles, tuned-main.conf) read as tuned's ConfigParser reads them.

tuned reads them with ``ConfigParser(delimiters=('='), inline_comment_prefixes=('#'),
strict=False)`` and ``optionxform = str`` (tuned/profiles/loader.py, tuned/utils/global_config.py,
tuned commit 2bfa4423586bb516452c538a232c8f7075bafbdf): keys keep their case, a ``#`` after a
blank starts a comment, a repeated section adds to the first, and an indented line continues
the value above it (include= lists written over several lines, as the Node Tuning Operator's
rendered profiles do). Lines tuned would reject are skipped here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SECTION = re.compile(r"\[([^\]]*)\]")


@dataclass(frozen=True)
class TunedSysctl:
    """One option of a tuned file: a ``[sysctl]`` key, ``[net] nf_conntrack_hashsize``...

    ``value`` is what tuned uses once it has expanded ``${i:PROFILE_DIR}`` and the profile's
    ``[variables]``; ``unknown`` says why ctguard cannot tell the value offline (a
    ``${f:...}`` function, an undefined variable), and then ``value`` is the text as written.
    """

    key: str  # as written
    value: str
    path: str
    line: int  # the option's first line
    text: str  # the option's first line as written
    unknown: str | None = None


def ini_value(raw: str) -> str:
    """A ConfigParser value: ``#`` after a blank starts a comment; one pair of quotes goes
    (tuned's ``unquote`` before it writes a value)."""
    comment = re.search(r"[ \t]#", raw)
    value = (raw[: comment.start()] if comment else raw).strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return value


def parse_ini(text: str, path: str, header: str | None = None) -> dict[str, dict[str, TunedSysctl]]:
    """Section -> option -> record. ``header``: the section of lines before any (tuned reads
    tuned-main.conf under a magic header).

    >>> conf = parse_ini("[main]\\ninclude=a,\\n    b\\n[sysctl]\\nvm.swappiness=1\\n", "/x")
    >>> conf["main"]["include"].value, conf["sysctl"]["vm.swappiness"].line
    ('a,\\nb', 5)
    """
    sections: dict[str, dict[str, TunedSysctl]] = {}
    current = None if header is None else sections.setdefault(header, {})
    last: TunedSysctl | None = None  # the option an indented line continues
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if raw[:1] in (" ", "\t") and last is not None and current is not None:
            more = ini_value(line)
            joined = f"{last.value}\n{more}" if last.value else more
            last = TunedSysctl(last.key, joined, last.path, last.line, last.text)
            current[last.key] = last
            continue
        last = None
        match = _SECTION.fullmatch(line)
        if match:
            current = sections.setdefault(match[1].strip(), {})
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if sep and key and current is not None:
            last = TunedSysctl(key, ini_value(value), path, number, line)
            current[key] = last
    return sections
