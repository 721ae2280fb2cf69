"""What the tests of ``plan --format sh`` share: fixture trees, a picture of a tree, the
script made for a tree, and running it (or its undo) under a shell with a root prefix."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ctguard.cli import main
from helpers import extra_shells

TESTS = Path(__file__).resolve().parent.parent
RHEL6 = TESTS.parent / "examples" / "rhel6-table-full"
RHEL7 = TESTS / "roots" / "doctor" / "ct304-rhel76-greps-sysctl-d-no-link"
TREES = {"rhel6": RHEL6, "rhel7": RHEL7}
EXTRA_SHELLS = extra_shells()  # CTGUARD_TEST_SHELLS, by name: "bash-4.1" -> its path
SHELLS = [*(s for s in ("dash", "bash") if shutil.which(s)), *EXTRA_SHELLS]
# busybox ash too, where it is installed (with this host's coreutils beside it)
WITH_BUSYBOX = [*SHELLS, *(["busybox sh"] if shutil.which("busybox") else [])]
RUN_TIMEOUT = 60.0

# path -> (kind, mode, bytes or link target)
Picture = dict[str, tuple[str, int, bytes]]


def picture(root: Path) -> Picture:
    """Every file, directory and link under ``root``: its kind, mode and bytes."""
    seen: Picture = {}
    for here, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(here) / name
            st = path.lstat()
            rel = str(path.relative_to(root))
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                seen[rel] = ("link", mode, os.readlink(path).encode())
            elif stat.S_ISDIR(st.st_mode):
                seen[rel] = ("dir", mode, b"")
            else:
                seen[rel] = ("file", mode, path.read_bytes())
    return seen


def copy_tree(source: Path, to: Path) -> Path:
    shutil.copytree(source, to, symlinks=True)
    return to


def cli_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, Any]:
    main(argv)
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def found(capsys: pytest.CaptureFixture[str], root: Path) -> set[str]:
    report = cli_json(capsys, ["doctor", "--root", str(root), "--format", "json"])
    return {f["id"] for f in report["findings"] if f["status"] == "found"}


STEP = "  N=$((N + 1))\n"
# what the tests add to a script to stop it at step K (CTGUARD_STOP_AT=K): the shipped
# script has no such hook, a root script must not die on an environment variable
STOP_HOOK = STEP + '  if [ "${CTGUARD_STOP_AT:-}" = "$N" ]; then kill -KILL $$; fi\n'


def make_script(
    capsys: pytest.CaptureFixture[str], root: Path, to: Path, stops: bool = False
) -> Path:
    """``ctguard plan --root ROOT --format sh`` saved as ``to``; ``stops``: with the
    tests' hook that kills it at step CTGUARD_STOP_AT."""
    capsys.readouterr()
    assert main(["plan", "--root", str(root), "--format", "sh"]) == 0
    script = capsys.readouterr().out
    assert "CTGUARD_STOP_AT" not in script and script.count(STEP) == 1
    to.write_text(script.replace(STEP, STOP_HOOK) if stops else script)
    return to


def shell_argv(shell: str) -> list[str]:
    """The command line that starts ``shell``: one of SHELLS or WITH_BUSYBOX."""
    program, *args = shell.split()
    return [EXTRA_SHELLS.get(program) or shutil.which(program) or program, *args]


def run(
    shell: str,
    script: Path,
    root: Path,
    backups: Path,
    stop_at: int | None = None,
    path: str | None = None,
    extra: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """The script (or an undo.sh) under ``shell``, working on the tree ``root``."""
    env = {
        "PATH": path or os.environ.get("PATH", "/usr/bin:/bin"),
        "CTGUARD_ROOT": str(root),
        "CTGUARD_BACKUP_DIR": str(backups),
        "LC_ALL": "C",
        **(extra or {}),
    }
    if stop_at is not None:
        env["CTGUARD_STOP_AT"] = str(stop_at)
    return subprocess.run(
        [*shell_argv(shell), str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
