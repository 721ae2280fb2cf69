"""Design §2, §9: only ``remediation/apply.py`` writes to a host. Its write primitives
(tree_fs, runtime_files) are imported by nothing else, and no other module calls a
writing function, except the few that write ctguard's own outputs (named here, with why)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "ctguard"
PRIMITIVES = {"ctguard.remediation.tree_fs", "ctguard.remediation.runtime_files"}
WRITERS = {
    "remediation/apply.py", "remediation/apply_steps.py", "remediation/rollback.py",
    "remediation/journal_writer.py", "remediation/runtime_files.py", "remediation/state_dir.py",
    "remediation/journal.py", "remediation/undo.py",
}  # fmt: skip
# module -> why it may write
OWN_OUTPUTS = {
    "remediation/tree_fs.py": "the writers' file primitives (through directory descriptors)",
    "remediation/apply_steps.py": "apply's steps, through tree_fs",
    "remediation/journal_writer.py": "the journal, through tree_fs",
    "remediation/rollback.py": "rollback's steps, through tree_fs",
    "snapshot/writer.py": "the snapshot archive or directory the operator asked for (-o)",
    "snapshot/capture.py": "asks snapshot/writer to add captured files",
    "host/archive.py": "extracts a snapshot into a private temporary directory",
    "usecases/plan.py": "plan -o FILE, the saved plan the operator asked for",
    "usecases/exporter_textfile.py": "exporter --textfile DIR: DIR/ctguard.prom, by rename",
    "cli/emit.py": "opens /dev/null for stdout once the reader of a pipe has gone",
}
# os/shutil functions that change a file system, and Path methods that do (Path.rename and
# Path.replace are left out: str.replace has the same name)
OS_WRITES = {"rename", "replace", "unlink", "remove", "rmdir", "mkdir", "makedirs", "chmod",
             "chown", "fchmod", "fchown", "setxattr", "truncate", "symlink", "link", "rmtree",
             "move", "copy", "copy2", "copyfile", "copytree"}  # fmt: skip
PATH_WRITES = {"write_text", "write_bytes", "mkdir", "unlink", "rmdir", "touch", "symlink_to",
               "hardlink_to", "chmod"}  # fmt: skip


def modules() -> list[tuple[str, ast.Module]]:
    return [
        (str(path.relative_to(SRC)), ast.parse(path.read_text(), str(path)))
        for path in sorted(SRC.rglob("*.py"))
    ]


def _writes(tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute):
            owner = func.value.id if isinstance(func.value, ast.Name) else None
            if (owner in ("os", "shutil") and func.attr in OS_WRITES) or (
                owner not in ("os", "shutil", "str") and func.attr in PATH_WRITES
            ):
                found.append(f"line {node.lineno}: {func.attr}()")
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        flags = {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
        if name == "open" and flags & {"O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"}:
            found.append(f"line {node.lineno}: os.open for writing")
        if name == "open" and len(node.args) > 1:
            mode = node.args[1]
            if isinstance(mode, ast.Constant) and any(c in str(mode.value) for c in "wax+"):
                found.append(f"line {node.lineno}: open(..., {mode.value!r})")
    return found


def test_only_apply_imports_the_write_primitives() -> None:
    allowed = WRITERS
    for name, tree in modules():
        imported = {
            node.module for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
        }  # fmt: skip
        if imported & PRIMITIVES:
            assert name in allowed, f"{name} imports a write primitive"


def test_no_other_module_writes() -> None:
    offenders = {
        name: calls
        for name, tree in modules()
        if name not in OWN_OUTPUTS and (calls := _writes(tree))
    }
    assert offenders == {}


def test_every_allowed_module_does_write() -> None:
    """Not vacuous, and no stale allowance: the scan sees each allowed module's writes."""
    found = dict(modules())
    assert {name: bool(_writes(found[name])) for name in OWN_OUTPUTS} == dict.fromkeys(
        OWN_OUTPUTS, True
    )
