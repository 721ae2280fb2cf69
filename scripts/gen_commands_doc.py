#!/usr/bin/env python3
"""Print docs/commands.md, the command reference, from each click command's --help.

    .venv/bin/python scripts/gen_commands_doc.py > docs/commands.md    regenerate it
    .venv/bin/python scripts/gen_commands_doc.py --check                exit 1 if it is stale

The help is laid out as a terminal of 100 columns or more shows it (click caps the width
at the CLI's max_content_width), whatever terminal runs this, so the output depends only
on the code. Commands come in ``ctguard.cli.COMMANDS`` order. Nothing is run: the
commands are imported and asked for their help.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ctguard.cli import COMMANDS, cli

DOC = Path(__file__).resolve().parent.parent / "docs" / "commands.md"
REGENERATE = ".venv/bin/python scripts/gen_commands_doc.py > docs/commands.md"

HEADER = f"""\
# Command reference

Every `ctguard` command with its whole `--help`, as a terminal of 100 columns or more
prints it. Generated from the code by `scripts/gen_commands_doc.py`; do not edit by hand.
After changing a command's options or help text, regenerate it:

    {REGENERATE}

`tests/docs/test_commands_doc.py` fails while this page differs from the code. Exit codes
are in [exit-codes.md](exit-codes.md), JSON outputs in [json-schemas.md](json-schemas.md).
"""


def _root_context() -> click.Context:
    settings = dict(cli.context_settings)
    width = int(settings.get("max_content_width", 80))
    # what click lays out on any terminal at least this wide: the cap minus its margin of 2
    return click.Context(cli, info_name="ctguard", terminal_width=width - 2, **settings)


def _section(ctx: click.Context, command: click.Command) -> str:
    return f"## {ctx.command_path}\n\n```text\n{command.get_help(ctx)}\n```\n"


def render() -> str:
    """The whole page, as docs/commands.md must hold it."""
    root = _root_context()
    commands: list[tuple[str, click.Command]] = []
    for name in COMMANDS:
        command = cli.get_command(root, name)
        assert command is not None, name
        commands.append((name, command))
    index = "".join(
        f"- [`ctguard {name}`](#ctguard-{name}): {command.get_short_help_str(limit=200)}\n"
        for name, command in commands
    )
    parts = [HEADER, index, _section(root, cli)]
    for name, command in commands:
        parts.append(_section(click.Context(command, info_name=name, parent=root), command))
    return "\n".join(parts)


def main(argv: list[str]) -> int:
    text = render()
    if argv == ["--check"]:
        if DOC.read_text(encoding="utf-8") == text:
            return 0
        print(f"{DOC} is stale; regenerate it: {REGENERATE}", file=sys.stderr)
        return 1
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
