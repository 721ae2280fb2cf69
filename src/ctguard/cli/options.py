"""Options shared by several commands."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from ctguard.errors import OptionError

if TYPE_CHECKING:
    from ctguard.host.target import Target

F = TypeVar("F", bound=Callable[..., Any])

root_option = click.option(
    "--root",
    metavar="DIR|FILE.tar.gz",
    help="Audit a snapshot (directory or archive from 'ctguard snapshot') instead of this host.",
)
netns_option = click.option(
    "--netns",
    metavar="NAME",
    help="Read inside the named network namespace (see 'ip netns list'); needs root.",
)

source_option = click.option(
    "--source",
    type=click.Choice(["auto", "procfs", "netlink"]),
    default="auto",
    show_default=True,
    help="Live table source: /proc/net/nf_conntrack (auto, when the kernel has it), or"
    " 'conntrack -L' over netlink.",
)


class FiniteRange(click.FloatRange):
    """A FloatRange that refuses nan and infinities ('1e400' parses as inf): click's lets
    nan through every bound, and the code after it would fail on them."""

    name = "finite float range"

    def convert(
        self,
        value: Any,  # noqa: ANN401
        param: click.Parameter | None,
        ctx: click.Context | None,
    ) -> Any:  # noqa: ANN401
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def _refuse_empty(value: object, param: click.Parameter | None, ctx: click.Context | None) -> None:
    if value == "":
        raise click.BadParameter("is empty", ctx, param)


class NonEmpty(click.ParamType[str]):
    """A name that may not be empty: to the OS, '' is the current directory, so an unset
    shell variable (``--state-dir "$DIR"``) would put a journal where nobody looks."""

    name = "text"

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        _refuse_empty(value, param, ctx)
        return value


class FilePath(click.Path):
    """A click.Path that may not be empty either."""

    def convert(
        self,
        value: Any,  # noqa: ANN401
        param: click.Parameter | None,
        ctx: click.Context | None,
    ) -> Any:  # noqa: ANN401
        _refuse_empty(value, param, ctx)
        return super().convert(value, param, ctx)


def format_option(*extra: str, schema: str = "") -> Callable[[F], F]:
    """``--format text|json`` (plus ``extra`` choices such as csv), with ``--json`` kept as
    an alias of ``--format json``; the command receives ``fmt``."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, as_json: bool, fmt: str, **kwargs: Any) -> Any:  # noqa: ANN401
            if as_json and fmt not in ("text", "json"):
                raise click.UsageError(f"--json and --format {fmt} cannot be combined")
            return func(*args, fmt="json" if as_json else fmt, **kwargs)

        shown = f" (schema {schema})" if schema else ""
        with_json = click.option("--json", "as_json", is_flag=True, help="Same as --format json.")(
            wrapper
        )
        with_format = click.option(
            "--format", "fmt", type=click.Choice(["text", "json", *extra]), default="text",
            show_default=True, help=f"Output format; json{shown} is for scripts.",
        )(with_json)  # fmt: skip
        return cast(F, with_format)

    return decorate


def option_errors(func: F) -> F:
    """A bad option value the use case found (an OptionError: a ``--root`` that is this
    host's /), shown as click shows one it found itself."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        try:
            return func(*args, **kwargs)
        except OptionError as exc:
            raise click.BadParameter(exc.reason, param_hint=exc.option) from None

    return cast(F, wrapper)


def target_of(root: str | None, netns: str | None) -> Target:
    """What the command works on; the two options exclude each other (Target says so)."""
    from ctguard.host.target import Target

    return Target(root, netns)
