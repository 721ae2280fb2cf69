"""Build the C table scanner (src/ctguard/table/_scan.c) with AddressSanitizer and
UndefinedBehaviorSanitizer into a directory of its own, never into the source tree or the
venv, so the normal build stays the one ctguard imports.

    python scripts/build_sanitized_scanner.py OUT_DIR

writes ``OUT_DIR/_scan<EXT_SUFFIX>`` (the module ``ctguard.table._scan``) and prints its
path. Load it only in a process started with ``LD_PRELOAD=$(gcc -print-file-name=libasan.so)``
(ASan must be the first library in the process): tests/fuzz/scanner_asan_driver.py does,
through tests/fuzz/test_scanner_sanitized.py. Exit 2 with the reason when gcc or its
sanitizer runtimes are absent (Debian's gcc ships both: libasan8, libubsan1).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "src" / "ctguard" / "table" / "_scan.c"
# -fno-sanitize-recover=all: the first report aborts (a UBSan report is otherwise a
# warning on stderr and the run goes on); -O1 -g: readable stacks, still optimised enough
# that the scanner's hot loops run as in production
FLAGS = (
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
    "-O1",
    "-g",
    "-shared",
    "-fPIC",
    "-Wall",
    "-Wextra",
    "-Wno-missing-field-initializers",
)


def runtime(name: str) -> str | None:
    """The path of gcc's ``name`` (libasan.so, libubsan.so), None when gcc lacks it."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return None
    done = subprocess.run(
        [gcc, f"-print-file-name={name}"], capture_output=True, text=True, check=False
    )
    path = done.stdout.strip()
    # gcc prints the bare name back when it has no such file
    return path if done.returncode == 0 and os.path.isabs(path) and os.path.exists(path) else None


def why_unavailable() -> str | None:
    """Why the sanitized scanner cannot be built here, or None."""
    if shutil.which("gcc") is None:
        return "gcc is not installed"
    for lib in ("libasan.so", "libubsan.so"):
        if runtime(lib) is None:
            return f"gcc has no {lib} (install gcc's sanitizer runtimes)"
    include = sysconfig.get_paths()["include"]
    if not os.path.exists(os.path.join(include, "Python.h")):
        return f"no Python.h in {include} (install python3-dev)"
    return None


def build(out_dir: Path) -> Path:
    """Compile into ``out_dir``; the path of the module. CalledProcessError on failure."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"_scan{sysconfig.get_config_var('EXT_SUFFIX')}"
    include = sysconfig.get_paths()["include"]
    cmd = ["gcc", *FLAGS, f"-I{include}", str(SOURCE), "-o", str(target)]
    subprocess.run(cmd, check=True)
    return target


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: build_sanitized_scanner.py OUT_DIR", file=sys.stderr)
        return 2
    why = why_unavailable()
    if why is not None:
        print(f"cannot build the sanitized scanner: {why}", file=sys.stderr)
        return 2
    print(build(Path(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
