"""The ``ctguard`` command: parse options, call the library, pick a renderer, exit.

Exit codes follow the monitoring-plugin convention (docs/design.md §3): 0 OK, 1 WARNING,
2 CRITICAL, 3 UNKNOWN (input unreadable, bad usage). Errors are one line on stderr,
``ctguard: error: ...``; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import signal
import sys

import click

from ctguard import __version__
from ctguard.cli import emit
from ctguard.errors import CtguardError, RefusedError
from ctguard.exit_codes import ERROR, REFUSED, ExitCode

# name -> (module, attribute): a command's module is imported only when it runs (or for
# --help), so `ctguard analyze` does not pay for status's or snapshot's imports
COMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("ctguard.cli.doctor", "doctor_command"),
    "explain": ("ctguard.cli.doctor", "explain_command"),
    "status": ("ctguard.cli.status", "status_command"),
    "snapshot": ("ctguard.cli.snapshot", "snapshot_command"),
    "collector": ("ctguard.cli.collector", "collector_command"),
    "analyze": ("ctguard.cli.analyze", "analyze_command"),
    "top": ("ctguard.cli.top", "top_command"),
    "plan": ("ctguard.cli.plan", "plan_command"),
    "apply": ("ctguard.cli.plan", "apply_command"),
    "rollback": ("ctguard.cli.plan", "rollback_command"),
    "disable": ("ctguard.cli.disable", "disable_command"),
    "notrack": ("ctguard.cli.notrack", "notrack_command"),
    "exporter": ("ctguard.cli.exporter", "exporter_command"),
    "report": ("ctguard.cli.report", "report_command"),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> object:
        # click takes every EPIPE for stdout's and exits 1 in silence; stdout's are emit's
        # (and a command's --help, printed by click), so any other is a pipe to a program
        # that closed early: an error, never a quiet success or a silent 1
        try:
            return super().invoke(ctx)
        except BrokenPipeError as exc:
            if emit.failed_in_click(exc):  # `ctguard plan --help | head -0`
                raise click.exceptions.Exit(ExitCode.OK) from None
            raise PipeClosedError(f"a pipe closed early: {exc}") from exc


class PipeClosedError(Exception):
    """A BrokenPipeError that is not stdout's (reported as an internal error)."""


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="ctguard")
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
def cli(debug: bool) -> None:
    """Find and fix Linux connection-tracking (nf_conntrack) pitfalls.

    \b
    Start with:
      ctguard doctor                 what is wrong, why, and the exact fix
      ctguard status                 how full is the table, what does it cost
      ctguard status --root SNAP     the same for a snapshot taken elsewhere
      ctguard analyze                what fills the table (ports, states, sources)
      ctguard top                    live view: usage, drop rates, top ports
      ctguard snapshot -o host.tgz   capture what ctguard reads, to audit elsewhere
      ctguard plan                   safe sizes for this host, and the files that keep them
      sudo ctguard apply             apply that plan (journalled); ctguard rollback undoes it
      ctguard notrack --port 8983    untrack a hot port, with the accepts that keep it reachable
      ctguard disable                what keeps conntrack loaded, and how to keep it out
      ctguard report results/        the fleet view of many hosts' doctor results

    Exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (unreadable input, bad usage).
    """


def _error(message: str) -> int:
    first = message.strip().splitlines()[0] if message.strip() else "unknown error"
    emit.note(f"ctguard: error: {first}\n")  # stderr gone too: the exit code says it
    return ERROR


def _exit_on_signal(signum: int, _frame: object) -> None:
    # SystemExit unwinds through every `finally`, so a snapshot in progress removes its
    # temporary files and a netns helper is stopped
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    emit.start()
    try:
        result = cli.main(args=args, prog_name="ctguard", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        emit.emit((exc.ctx.get_help() if exc.ctx else "") + "\n")
        return emit.finish(ExitCode.OK)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        return _error(f"{exc.format_message()}{hint}")
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.Abort:
        return _error("aborted")
    except KeyboardInterrupt:
        return 130
    except SystemExit:
        if emit.closed_pipe_in_click():  # click's own exit 1 on a closed pipe
            return emit.finish(ExitCode.OK)
        raise
    except CtguardError as exc:
        if debug:
            raise
        code = _error(str(exc))
        return REFUSED if isinstance(exc, RefusedError) else code
    except OSError as exc:
        if emit.failed_in_click(exc):  # --help or --version into a full disk or a closed pipe
            return emit.finish(ExitCode.OK)
        if debug:
            raise
        return _error(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug)")
    except Exception as exc:
        if debug:
            raise
        return _error(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug)")
    return emit.finish(int(result) if isinstance(result, int) else ExitCode.OK)
