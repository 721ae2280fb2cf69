"""docs/commands.md is what scripts/gen_commands_doc.py prints from the code today."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gen_commands_doc.py"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_commands_doc", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_commands_doc_is_what_the_generator_prints_now() -> None:
    gen = _generator()
    if (REPO / "docs" / "commands.md").read_text(encoding="utf-8") != gen.render():
        pytest.fail(f"docs/commands.md differs from the commands' --help; regenerate it:\n"
                    f"    {gen.REGENERATE}\nand commit the result")  # fmt: skip


@pytest.mark.parametrize("columns", ["40", "300"])
def test_the_page_does_not_depend_on_the_terminal(
    monkeypatch: pytest.MonkeyPatch, columns: str
) -> None:
    first = _generator().render()
    monkeypatch.setenv("COLUMNS", columns)
    assert os.environ["COLUMNS"] == columns
    assert _generator().render() == first


def test_every_command_has_a_section() -> None:
    from ctguard.cli import COMMANDS

    text = (REPO / "docs" / "commands.md").read_text(encoding="utf-8")
    for name in COMMANDS:
        assert f"\n## ctguard {name}\n" in text
        assert f"\nUsage: ctguard {name} [OPTIONS]" in text
