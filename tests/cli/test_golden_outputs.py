"""The whole output of each command, text and JSON, on one representative root, against
tests/cli/golden/ (the goldens that already existed have their own tests beside the
command's other tests: doctor text, plan text, notrack text, disable text, and status of
the tests/roots scenarios in tests/test_status_roots.py).

The console script runs in a subprocess from the repository's top directory with relative
paths, as an operator would run it, without COLUMNS/LINES (rich then renders 80 columns).
Normalised, because it truly varies and nothing else is:
  - plan: ``host.root`` is the absolute path of this checkout, and ``checksum`` covers it
    (the checksum is checked against the document before it is replaced);
  - analyze JSON: ``scanner`` is "c" or "python" depending on whether the C extension was
    built. analyze prints its JSON on one line; the golden holds it indented for review,
    compared as a document.
CTGUARD_UPDATE_GOLDEN=1 rewrites the files; read the diff before committing it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ctguard.remediation.plan_file import checksum
from helpers import check_golden, ctguard_bin

REPO = Path(__file__).parents[2]
RHEL6 = "examples/rhel6-table-full"
PROXY = "examples/proxy-table.txt.gz"
NFT = "tests/roots/doctor/ct501-notrack-nft"
IDLE = "tests/roots/disable/modular-idle"


def _plan(text: str) -> str:
    doc = json.loads(text)
    body = {key: value for key, value in doc.items() if key != "checksum"}
    assert doc["checksum"] == checksum(body)
    here = str(REPO.resolve())
    assert doc["host"]["root"] == f"{here}/{RHEL6}"
    return text.replace(here, "REPO").replace(doc["checksum"], "CHECKSUM")


def _analyze(text: str) -> str:
    doc = json.loads(text)
    assert doc["scanner"] in ("c", "python")
    doc["scanner"] = "SCANNER"
    return json.dumps(doc, indent=2) + "\n"


def _same(text: str) -> str:
    return text


# golden file -> (arguments, exit code, normaliser)
GOLDENS: dict[str, tuple[str, int, Callable[[str], str]]] = {
    "doctor-rhel6-table-full.json": (f"doctor --root {RHEL6} --format json", 2, _same),
    "status-rhel6-table-full.txt": (f"status --root {RHEL6} --interval 0", 0, _same),
    "status-rhel6-table-full.json": (f"status --root {RHEL6} --interval 0 --json", 0, _same),
    "analyze-proxy-table.txt": (f"analyze {PROXY}", 0, _same),
    "analyze-proxy-table.json": (f"analyze {PROXY} --format json", 0, _analyze),
    "analyze-proxy-table.csv": (f"analyze {PROXY} --format csv", 0, _same),
    "explain-CT302.txt": ("explain CT302", 0, _same),
    "explain-index.txt": ("explain", 0, _same),
    "plan-rhel6-table-full.json": (f"plan --root {RHEL6} --json", 0, _plan),
    "notrack-ct501-nft.json": (f"notrack --port 8983 --root {NFT} --json", 0, _same),
    "disable-modular-idle.json": (f"disable --root {IDLE} --json", 0, _same),
}


def _script() -> str:
    here = Path(sys.executable).parent / "ctguard"
    return str(here) if here.is_file() else ctguard_bin()


@pytest.mark.parametrize("name", sorted(GOLDENS))
def test_output_is_golden(name: str) -> None:
    args, code, normalise = GOLDENS[name]
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    done = subprocess.run(
        [_script(), *args.split()], capture_output=True, text=True, timeout=60, check=False,
        cwd=REPO, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (code, ""), done.stderr
    assert "\x1b[" not in done.stdout  # no colour codes when not a terminal
    check_golden(name, normalise(done.stdout))
