"""docs/exit-codes.md has a table for every command, and each table lists every exit code
the command's --help names in its "Exit codes" paragraph."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from ctguard.cli import COMMANDS, cli
from ctguard.exit_codes import ExitCode

DOC = Path(__file__).resolve().parents[2] / "docs" / "exit-codes.md"
# "Exit codes: 0 plan made ..., 2 refused: a full table would take over 25 % ..., 3 error":
# a code opens the paragraph or follows ", " or ": " ("over 25 %" is not a code)
_CODE_IN_HELP = re.compile(r"(?:^|[,:]\s)([0-9])\s")


def _sections() -> dict[str, str]:
    """Command name -> the text of its section (up to the next heading)."""
    parts = re.split(r"^## ctguard (\S+)\n", DOC.read_text(encoding="utf-8"), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _table_codes(section: str) -> list[int]:
    return [int(code) for code in re.findall(r"^\| (\d+) \|", section, flags=re.M)]


def _help_codes(name: str) -> set[int]:
    root = click.Context(cli, info_name="ctguard")
    command = cli.get_command(root, name)
    assert command is not None
    text = " ".join(command.get_help(click.Context(command, parent=root)).split())
    paragraph = re.search(r"Exit codes[^:]*:(.*?)(?:\. [A-Z]|Examples:|Options:|$)", text)
    if paragraph is None:
        return set()
    return {int(code) for code in _CODE_IN_HELP.findall(paragraph.group(1).strip())}


def test_the_doc_has_one_section_per_command_in_the_cli() -> None:
    assert sorted(_sections()) == sorted(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_a_table_of_valid_codes(name: str) -> None:
    codes = _table_codes(_sections().get(name, ""))
    assert codes, f"docs/exit-codes.md: no table under '## ctguard {name}'"
    assert codes == sorted(set(codes)), f"{name}: codes listed twice or out of order"
    assert set(codes) <= {int(code) for code in ExitCode}
    assert 0 in codes


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_table_lists_every_code_the_help_names(name: str) -> None:
    missing = _help_codes(name) - set(_table_codes(_sections()[name]))
    assert not missing, f"ctguard {name} --help names exit codes {missing} the doc omits"


def test_the_help_paragraphs_are_read() -> None:
    """The parser finds the paragraphs it must (a broken regex would pass everything)."""
    assert _help_codes("doctor") == {0, 1, 2, 3}
    assert _help_codes("plan") == {0, 2, 3}
    assert _help_codes("analyze") == {0, 3}
