"""Shared test helpers: running the installed console script (importable: pythonpath=tests)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOTS = Path(__file__).parent / "roots"
GOLDEN = Path(__file__).parent / "cli" / "golden"
ERROR = "ctguard: error: "


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


def one_error_line(done: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    """The run failed with ``code`` and said why in exactly one stderr line."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip("\n").splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(ERROR), lines[0]
    assert "internal error" not in lines[0], lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def doctor_finding(root: Path, rule_id: str) -> dict[str, object]:
    """The one finding of ``rule_id`` that ``doctor --root ROOT --format json`` reports (in
    process, through the CLI)."""
    import contextlib
    import io

    from ctguard.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["doctor", "--root", str(root), "--only", rule_id, "--format", "json"])
    (finding,) = json.loads(out.getvalue())["findings"]
    return dict(finding)


def check_golden(name: str, text: str) -> None:
    """``text`` equals tests/cli/golden/NAME; CTGUARD_UPDATE_GOLDEN=1 rewrites the file."""
    golden = GOLDEN / name
    if os.environ.get("CTGUARD_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text()


# The system calls by which ctguard changes a file system (os.rename with dir_fd is
# renameat; os.unlink and os.rmdir with dir_fd are unlinkat; os.mkdir is mkdirat).
WRITE_SYSCALLS = ("write", "fsync", "fchmod", "fchown", "renameat", "renameat2", "mkdirat",
                  "unlinkat")  # fmt: skip
STRACE_ENV = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "LC_ALL": "C"}


def kill_points(argv: list[str], log: Path, timeout: float = 120) -> list[tuple[str, int]]:
    """Run ``argv`` under strace; (syscall, N) for every write system call it made, each
    a place where ``strace -e inject=SYSCALL:signal=KILL:when=N`` kills it."""
    traced = ["strace", "-o", str(log), "-e", f"trace={','.join(WRITE_SYSCALLS)}", "--", *argv]
    done = subprocess.run(traced, capture_output=True, text=True, timeout=timeout,
                          env=STRACE_ENV, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    counts: dict[str, int] = {}
    for line in log.read_text().splitlines():
        name = line.split("(", 1)[0]
        if name in WRITE_SYSCALLS:
            counts[name] = counts.get(name, 0) + 1
    return [(name, n) for name, count in sorted(counts.items()) for n in range(1, count + 1)]


def killed_by_strace(
    argv: list[str], point: tuple[str, int], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``argv`` run under strace, which kills it (SIGKILL) at the ``point``-th syscall."""
    name, n = point
    traced = ["strace", "-o", "/dev/null", "-e", f"trace={name}",
              "-e", f"inject={name}:signal=KILL:when={n}", "--", *argv]  # fmt: skip
    return subprocess.run(traced, capture_output=True, text=True, timeout=timeout,
                          env=STRACE_ENV, check=False)  # fmt: skip


@contextlib.contextmanager
def signals_kept() -> Iterator[None]:
    """main() installs SIGTERM/SIGHUP handlers for the CLI process; give pytest its own back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def manifest_of(archive: Path) -> dict[str, Any]:
    """The manifest of a snapshot archive (``ctguard snapshot``'s or the collector's)."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile("ctguard_manifest.json")
        assert member is not None
        data: dict[str, Any] = json.load(member)
    return data


def extra_shells() -> dict[str, str]:
    """More shells to run the generated sh scripts under, from CTGUARD_TEST_SHELLS: absolute
    paths separated by spaces, e.g. bash 4.1 and 4.2 built as CentOS 6 and 7 ship them
    (absent or empty: none, as in CI). Each is named for test ids by the directory above its
    ``bin/`` where that starts with the shell's name (``/tmp/oldsh/bash-4.1/bin/bash`` ->
    ``bash-4.1``), else by its path. A path that is not an executable file fails the run: a
    typo must not pass as "no extra shell"."""
    named: dict[str, str] = {}
    for path in os.environ.get("CTGUARD_TEST_SHELLS", "").split():
        shell = Path(path)
        if not (shell.is_absolute() and shell.is_file() and os.access(shell, os.X_OK)):
            pytest.fail(f"CTGUARD_TEST_SHELLS: {path} is not an executable file (absolute path)")
        prefix = shell.parent.parent.name
        name = prefix if shell.parent.name == "bin" and prefix.startswith(shell.name) else path
        if name in named:
            pytest.fail(f"CTGUARD_TEST_SHELLS: two shells named {name}: {named[name]}, {path}")
        named[name] = path
    return named


def posix_argv(path: str) -> list[str]:
    """How a host whose sh is that shell runs ``sh script``: bash in POSIX mode."""
    return [path, "--posix"] if Path(path).name == "bash" else [path]
