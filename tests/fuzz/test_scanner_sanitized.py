"""The C table scanner under AddressSanitizer and UndefinedBehaviorSanitizer.

scripts/build_sanitized_scanner.py builds src/ctguard/table/_scan.c with
``-fsanitize=address,undefined -fno-sanitize-recover=all`` into a temporary directory, and
scanner_asan_driver.py feeds that build mutated conntrack lines through the scanner's
public API, in a child process with libasan preloaded. Any sanitizer report aborts the
child, and the test fails with the report.

The environment of the child:
- ``LD_PRELOAD=libasan.so``: ASan must be the first library in a process, and python is not
  built with it;
- ``ASAN_OPTIONS=detect_leaks=0``: at exit CPython keeps interned strings, static types and
  module state allocated on purpose, which LeakSanitizer would report as leaks of the
  interpreter's, not the scanner's (a leak in the scanner grows with input: the memory
  tests of analyze catch that);
- ``PYTHONMALLOC=malloc``: Python objects come from malloc, so ASan guards the bytes the
  scanner reads and the objects it builds, not pymalloc's arenas around them.

Normal suite: CTGUARD_FUZZ_LINES lines (default 400,000, ~10 s here). A long run:
``CTGUARD_FUZZ_LINES=12000000 CTGUARD_FUZZ_SEED=7 pytest tests/fuzz/test_scanner_sanitized.py``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
BUILD = REPO / "scripts" / "build_sanitized_scanner.py"
DRIVER = HERE / "scanner_asan_driver.py"
LINES = int(os.environ.get("CTGUARD_FUZZ_LINES", "400000"))
SEED = int(os.environ.get("CTGUARD_FUZZ_SEED", "1"))
UNAVAILABLE = 2  # the build script's exit when gcc or its sanitizer runtimes are absent
REPORT = re.compile(r"ERROR: AddressSanitizer|runtime error:|Sanitizer", re.IGNORECASE)


@pytest.fixture(scope="module")
def sanitized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The sanitized module (built fresh, outside the venv) and the child's environment."""
    out = tmp_path_factory.mktemp("asan-scanner")
    done = subprocess.run([sys.executable, str(BUILD), str(out)], capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    if done.returncode == UNAVAILABLE:
        if os.environ.get("CTGUARD_REQUIRE_SANITIZERS") == "1":  # scripts/test as root
            pytest.fail(done.stderr.strip())
        pytest.skip(done.stderr.strip())
    assert done.returncode == 0, done.stderr
    module = Path(done.stdout.strip())
    assert module.is_file() and module.parent == out, module
    asan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    env = {
        **os.environ,
        "LD_PRELOAD": asan,
        "ASAN_OPTIONS": "detect_leaks=0:halt_on_error=1:abort_on_error=0",
        "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
        "PYTHONMALLOC": "malloc",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    return module, env


def drive(sanitized: tuple[Path, dict[str, str]], *args: str) -> subprocess.CompletedProcess[str]:
    module, env = sanitized
    return subprocess.run([sys.executable, str(DRIVER), "--module", str(module), *args],
                          capture_output=True, text=True, env=env, timeout=3600,
                          check=False)  # fmt: skip


def test_mutated_lines_raise_no_sanitizer_report(sanitized: tuple[Path, dict[str, str]]) -> None:
    done = drive(sanitized, "--lines", str(LINES), "--seed", str(SEED))
    report = done.stderr[-6000:]
    assert done.returncode == 0, f"{done.stdout}\n{report}"
    assert not REPORT.search(done.stderr), report
    fed = re.search(r"^lines=(\d+) ", done.stdout, re.MULTILINE)
    assert fed is not None and int(fed.group(1)) >= LINES, done.stdout
    print(done.stdout.strip().splitlines()[-1])  # with -s: how many lines, how long


def test_a_sanitizer_report_fails_the_run(sanitized: tuple[Path, dict[str, str]]) -> None:
    """The driver's self-check overflows a heap block on purpose: ASan must stop it, so a
    clean run above means the scanner made no report, not that none could be seen."""
    done = drive(sanitized, "--self-check")
    assert done.returncode != 0
    assert "ERROR: AddressSanitizer: heap-buffer-overflow" in done.stderr, done.stderr[-3000:]


def test_the_driver_refuses_an_unsanitized_process(
    sanitized: tuple[Path, dict[str, str]],
) -> None:
    """Without libasan preloaded the sanitized build cannot load: the driver never falls
    back to the normal build (which would make a clean run prove nothing)."""
    module, env = sanitized
    plain = {k: v for k, v in env.items() if k != "LD_PRELOAD"}
    done = drive((module, plain), "--lines", "10")
    assert done.returncode != 0
    assert "lines=" not in done.stdout
    assert "ASan runtime does not come first" in done.stderr or "not in this process" in (
        done.stderr
    ), done.stderr[-2000:]
