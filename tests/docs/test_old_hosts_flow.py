"""docs/old-hosts.md shows the end of the old-host flow on the shipped example: this runs
the same steps (plan --format sh, the script under sh on a copy of the tree, doctor) and
checks that every line the page shows is printed, in order, with the paths of this run."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import ctguard_bin, extra_shells, posix_argv

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "old-hosts.md"
EXAMPLE = REPO / "examples" / "rhel6-table-full"
# the page's sh, and each of CTGUARD_TEST_SHELLS as the sh of an old host
SHELLS = {"sh": ["sh"], **{name: posix_argv(path) for name, path in extra_shells().items()}}


def _shown() -> tuple[list[str], list[str]]:
    """The script's lines and doctor's lines, as the page shows them."""
    text = PAGE.read_text(encoding="utf-8")
    (block,) = re.findall(r"<!-- old-hosts-flow -->\n```\n(.*?)^```$", text, flags=re.M | re.S)
    lines = block.splitlines()
    at_sh = next(i for i, line in enumerate(lines) if line.startswith("$ CTGUARD_ROOT="))
    at_doctor = lines.index("$ ctguard doctor --root /tmp/web03")
    return lines[at_sh + 1 : at_doctor], lines[at_doctor + 1 :]


def _in_order(shown: list[str], printed: list[str]) -> None:
    at = 0
    for line in shown:
        assert line in printed[at:], f"docs/old-hosts.md shows a line no longer printed:\n{line}"
        at = printed.index(line, at) + 1


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_the_pages_flow_prints_what_it_shows(tmp_path: Path, shell: str) -> None:
    script_lines, doctor_lines = _shown()
    assert script_lines and doctor_lines
    plan = subprocess.run(
        [ctguard_bin(), "plan", "--root", str(EXAMPLE), "--format", "sh"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    (tmp_path / "fix.sh").write_text(plan.stdout)
    tree, backup = tmp_path / "web03", tmp_path / "web03-backup"
    shutil.copytree(EXAMPLE, tree, symlinks=True)
    ran = subprocess.run(
        [*SHELLS[shell], str(tmp_path / "fix.sh")],
        env={"PATH": "/usr/bin:/bin", "CTGUARD_ROOT": str(tree), "CTGUARD_BACKUP_DIR": str(backup)},
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    printed = ran.stdout.replace(str(backup), "/tmp/web03-backup").splitlines()
    _in_order(script_lines, printed)
    doctor = subprocess.run(
        [ctguard_bin(), "doctor", "--root", str(tree)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    found = [
        line for line in doctor.stdout.splitlines() if re.match(r"(CRITICAL|WARNING|INFO) CT", line)
    ]
    assert found == doctor_lines  # exactly these are left: the plan's fixes are gone
