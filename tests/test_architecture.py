"""The code's own rules, checked: no module reaching into another's private names, and tests
that call use cases rather than CLI internals (the layer contracts are import-linter's, run
by scripts/test)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src" / "ctguard"
C_EXTENSIONS = {"ctguard.table._scan"}  # a module named privately, imported by its wrapper


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_reaches(path: Path) -> list[str]:
    """``from ctguard.x import _name`` and ``alias._name`` on an imported ctguard module,
    where the name belongs to another module than this file."""
    tree = ast.parse(path.read_text(), str(path))
    own = _module_name(path) if path.is_relative_to(SRC) else ""
    aliases: dict[str, str] = {}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ctguard"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if _private(alias.name) and node.module != own and full not in C_EXTENSIONS:
                    found.append(f"{path.name}:{node.lineno} imports {full}")
                aliases[alias.asname or alias.name] = full
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("ctguard"):
                    aliases[alias.asname or alias.name] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and _private(node.attr)
            and aliases[node.value.id] != own
        ):
            found.append(f"{path.name}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    return found


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_reaches_into_another_modules_private_names(path: Path) -> None:
    assert private_reaches(path) == []


def test_the_check_sees_a_private_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from ctguard.cli.plan import _confirm\nimport ctguard.facts as f\nf._x\n")
    assert len(private_reaches(sample)) == 2


def test_tests_use_the_cli_only_through_main() -> None:
    """Tests call use cases; the CLI is driven as users drive it (main, or the binary)."""
    allowed = {"main", "cli", "COMMANDS"}
    reaching = []
    for path in (REPO / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ctguard.cli"):
                names = {a.name for a in node.names}
                if node.module != "ctguard.cli" or not names <= allowed:
                    reaching.append(f"{path.relative_to(REPO)}:{node.lineno} {node.module}")
    assert reaching == []
