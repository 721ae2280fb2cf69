"""Shared test helpers: running the installed console script (importable: pythonpath=tests)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOTS = Path(__file__).parent / "roots"


def ctguard_bin() -> str:
    path = shutil.which("ctguard")
    if path is None:
        pytest.fail("the ctguard console script is not installed (pip install -e .)")
    return path


def run_ctguard(*args: str, timeout: float = 120, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ctguard_bin(), *args], capture_output=True, text=True, timeout=timeout, check=False, **kw
    )


def run_json(*args: str, timeout: float = 120) -> Any:
    done = run_ctguard(*args, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def assert_one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode == 3, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("ctguard: error: "), lines[0]
    assert "Traceback" not in done.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
