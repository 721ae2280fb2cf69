"""Test helper: the profiles of a Tuned resource YAML (``spec.profile[].data`` written as a
double-quoted scalar, as the Node Tuning Operator's rendered manifests are), decoded by YAML 1.2's
folding and escape rules (checked against PyYAML on the files under tests/realworld/tuned/)."""

from __future__ import annotations

import re

_ESC = {
    "n": "\n",
    "t": "\t",
    "\\": "\\",
    '"': '"',
    "/": "/",
    " ": " ",
    "0": "\0",
    "r": "\r",
    "\t": "\t",
}


def _unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append(_ESC[text[i + 1]])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _escaped_end(line: str) -> bool:
    run = len(line) - len(line.rstrip("\\"))
    return run % 2 == 1


def decode_double_quoted(raw: str) -> str:
    lines = raw.split("\n")
    text = ""
    pending: str | None = None  # separator before the next non-empty line
    for n, line in enumerate(lines):
        first, last = n == 0, n == len(lines) - 1
        if not first:
            line = line.lstrip(" \t")
        if not last:
            if _escaped_end(line):
                text += (pending or "") + line[:-1]
                pending = ""
                continue
            line = line.rstrip(" \t")
        if not first and not last and line == "" and pending is not None:
            pending = "\n" if pending == " " else pending + "\n"
            continue
        text += (pending or "") + line
        pending = " "
    return _unescape(text)


def profiles(yaml_text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for m in re.finditer(r'- data: "((?:[^"\\]|\\.)*)"\n\s*name: (\S+)', yaml_text, re.S):
        found[m[2]] = decode_double_quoted(m[1])
    return found
