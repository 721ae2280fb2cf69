"""``ctguard doctor`` and ``ctguard explain``."""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import TYPE_CHECKING

import click

from ctguard.cli.emit import emit
from ctguard.cli.options import format_option, netns_option, root_option
from ctguard.findings import Severity

if TYPE_CHECKING:
    from ctguard.model.thresholds import Thresholds


def _thresholds(values: tuple[str, ...]) -> Thresholds:
    from ctguard.model.thresholds import Thresholds

    limits = Thresholds()
    changes: dict[str, float] = {}
    for item in values:
        name, sep, text = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in Thresholds.names():
            raise click.BadParameter(
                f"{item!r}: expected NAME=VALUE, NAME one of {', '.join(Thresholds.names())}",
                param_hint="--threshold",
            )
        try:
            number = float(text)
        except ValueError:
            raise click.BadParameter(
                f"{item!r}: {text!r} is not a number", param_hint="--threshold"
            ) from None
        if not number >= 0 or number == float("inf"):
            raise click.BadParameter(
                f"{item!r}: must be a finite number >= 0", param_hint="--threshold"
            )
        changes[name] = number
    limits = replace(limits, **changes)
    contradiction = limits.contradiction()
    if contradiction is not None:
        raise click.BadParameter(contradiction, param_hint="--threshold")
    return limits


@click.command("doctor")
@root_option
@netns_option
@format_option(schema="ctguard.doctor/1: one object per rule, found, passed or skipped")
@click.option(
    "--only", "only", multiple=True, metavar="PATTERN",
    help="Run only these IDs; shell patterns, comma-separated or repeated:"
    " --only 'CT3*,CT101'.",
)  # fmt: skip
@click.option(
    "--fail-on", type=click.Choice(["warning", "critical"]), default="warning", show_default=True,
    help="Least severity that makes the exit code non-zero.",
)  # fmt: skip
@click.option(
    "--threshold", "thresholds", multiple=True, metavar="NAME=VALUE",
    help="Change a default, repeatable: usage_warning=80, usage_critical=95 (% of max),"
    " memory_warning=10, memory_critical=25 (% of RAM), entries_per_bucket=4,"
    " established_timeout=86400 (s), established_usage=50 (%), composition_share=50 (%),"
    " port_share=50 (%), table_min_entries=1000.",
)  # fmt: skip
@click.option(
    "--no-table", is_flag=True,
    help="Do not read the conntrack table (one pass, ~1 s per million entries):"
    " CT402/CT505 are skipped and CT401 falls back to table usage.",
)  # fmt: skip
@click.option("-v", "--verbose", is_flag=True, help="Text: also say why each passed rule passed.")
def doctor_command(
    root: str | None,
    netns: str | None,
    fmt: str,
    only: tuple[str, ...],
    fail_on: str,
    thresholds: tuple[str, ...],
    no_table: bool,
    verbose: bool,
) -> int:
    """Check this host (or a snapshot) for every conntrack pitfall, with evidence and the fix.

    Each finding quotes the file line or counter it saw and gives the exact fix. A check
    whose input is missing says so ("skipped") instead of guessing.

    \b
    Exit codes (Nagios/Icinga convention):
      0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (nothing could be read, bad usage)

    \b
    Examples:
      sudo ctguard doctor                          this host
      ctguard doctor --root snap.tar.gz            a snapshot taken with 'ctguard snapshot'
      sudo ctguard doctor --netns web1             inside a named network namespace
      ctguard doctor --only 'CT3*' --format json   persistence checks, for scripts
      ctguard doctor --fail-on critical            warnings print but exit 0
    """
    from ctguard.host.target import Target
    from ctguard.rules import selected
    from ctguard.usecases.doctor import DoctorOptions, doctor

    given = only
    only = tuple(p.strip() for spec in only for p in spec.split(",") if p.strip())
    if given and not only:  # --only "$IDS" with IDS unset would run every check
        raise click.BadParameter(f"{','.join(given)!r} names no ID", param_hint="--only")
    if only and not selected(only):
        raise click.BadParameter(f"no rule matches {' '.join(only)}", param_hint="--only")
    options = DoctorOptions(
        only=only,
        fail_on=Severity.CRITICAL if fail_on == "critical" else Severity.WARNING,
        thresholds=_thresholds(thresholds),
        table=not no_table,
        debug=bool(click.get_current_context().find_root().params.get("debug")),
    )
    report = doctor(Target(root, netns), options)
    if fmt == "json":
        from ctguard.output.doctor_json import render_doctor_json

        emit(render_doctor_json(report))
    else:
        from ctguard.output.doctor_text import render_doctor_text

        emit(render_doctor_text(report, color=sys.stdout.isatty(), verbose=verbose))
    return report.exit_code


@click.command("explain")
@click.argument("finding_id", metavar="ID", required=False)
@format_option(schema="ctguard.explain/1")
def explain_command(finding_id: str | None, fmt: str) -> int:
    """The long story of one finding: cause, how to prove it on your host, fix, references.

    \b
    Examples:
      ctguard explain CT304      why 'service iptables restart' resets conntrack settings
      ctguard explain            list every ID
    """
    from ctguard.usecases.explain import explain

    report = explain(finding_id)
    if fmt == "json":
        from ctguard.output.explain_json import render_explain_json

        emit(render_explain_json(report))
    elif report.story is None:
        from ctguard.output.explain_text import render_index

        emit(render_index(report.index))
    else:
        from ctguard.output.explain_text import render_explain

        emit(render_explain(report.story))
    return 0
