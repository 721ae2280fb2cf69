"""The README and docs/design.md show real output: each `$ ctguard ...` block is run again
from the top of the checkout, and every line it shows must appear in what the command prints
now, in the same order ("..." marks lines left out). A following `$ echo $?` names the exit
code.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from helpers import ctguard_bin

REPO = Path(__file__).resolve().parents[2]
SHOWN = (REPO / "README.md", REPO / "docs" / "design.md")


def _tour() -> list[tuple[str, list[str], int | None]]:
    """(command line, lines shown, exit code shown) of each `$ ctguard` block."""
    text = "".join(doc.read_text(encoding="utf-8") for doc in SHOWN)
    blocks = re.findall(r"^```\n(\$ ctguard .*?)^```$", text, flags=re.M | re.S)
    tour = []
    for block in blocks:
        lines = block.splitlines()
        command = lines.pop(0)
        while command.endswith("\\"):
            command = command[:-1] + lines.pop(0).strip()
        code = None
        if "$ echo $?" in lines:
            at = lines.index("$ echo $?")
            code, lines = int(lines[at + 1]), lines[:at]
        tour.append((command[2:], lines, code))
    return tour


def test_there_are_transcripts() -> None:
    assert len(_tour()) >= 6


@pytest.mark.parametrize(("command", "shown", "code"), _tour(), ids=lambda v: str(v)[:40])
def test_tour_output_is_what_the_command_prints(
    command: str, shown: list[str], code: int | None
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    argv = [ctguard_bin(), *shlex.split(command)[1:]]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, env=env, timeout=120)
    if code is not None:
        assert done.returncode == code, done.stderr
    printed = done.stdout.splitlines()
    at = 0
    for line in shown:
        if line.strip() == "...":
            continue
        assert line in printed[at:], f"the docs show a line `{command}` no longer prints:\n{line}"
        at = printed.index(line, at) + 1
