"""``ctguard exporter``: Prometheus metrics of conntrack, served, printed or written."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from ctguard.cli.emit import emit
from ctguard.cli.options import FilePath, FiniteRange, root_option
from ctguard.errors import CtguardError
from ctguard.output.metrics_http import MetricsServer, serve_until_signal

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

# marked FREE in a copy of Prometheus' default port allocations wiki; the range was reported
# full in 2023 and 9659 is not registered for ctguard yet: docs/exporter.md, "Port"
DEFAULT_PORT = 9659
DEFAULT_LISTEN = f"127.0.0.1:{DEFAULT_PORT}"


def parse_listen(value: str) -> tuple[str, int]:
    """``ADDR:PORT``, ``[V6ADDR]:PORT`` or ``:PORT`` (all addresses)."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise click.BadParameter(
            f"{value!r}: expected ADDR:PORT, PORT 1-65535", param_hint="--listen"
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "0.0.0.0", int(port_text)  # noqa: S104 - asked for with ':PORT'


def _server(registry: CollectorRegistry, host: str, port: int) -> MetricsServer:
    from prometheus_client import generate_latest

    try:
        return MetricsServer((host, port), lambda: generate_latest(registry))
    except OSError as exc:
        raise CtguardError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


@click.command("exporter")
@root_option
@click.option(
    "--listen", default=DEFAULT_LISTEN, show_default=True, metavar="ADDR:PORT",
    help="Serve /metrics here (default: localhost only).",
)  # fmt: skip
@click.option(
    "--textfile", type=FilePath(file_okay=False), metavar="DIR",
    help="Write DIR/ctguard.prom once (atomically) for node_exporter's textfile collector,"
    " then exit; run it from a timer.",
)  # fmt: skip
@click.option("--once", is_flag=True, help="Print the metrics once to stdout and exit.")
@click.option(
    "--netns", "netns", type=click.Choice(["all"]), metavar="all",
    help="Also export each network namespace's entries and counters (named ones and those"
    " held by processes), labelled netns, container_id and pod_uid. Needs CAP_SYS_ADMIN"
    " (setns) and CAP_SYS_PTRACE (namespaces held by other users' processes).",
)  # fmt: skip
@click.option(
    "--max-netns", type=click.IntRange(1, 10000), default=100, show_default=True,
    metavar="N", help="With --netns all: export at most N namespaces, those seen longest"
    " first (a new one never pushes out an old one); ctguard_netns_left_out counts the rest.",
)  # fmt: skip
@click.option(
    "--doctor-interval", type=FiniteRange(0, 86400), default=300.0, show_default=True,
    metavar="SECONDS", help="Re-run the doctor rules at most this often; findings are cached"
    " in between.",
)  # fmt: skip
def exporter_command(
    root: str | None,
    listen: str,
    textfile: str | None,
    once: bool,
    netns: str | None,
    max_netns: int,
    doctor_interval: float,
) -> int:
    """Prometheus metrics: table size, counters, memory, timeouts, drift and findings.

    Reads on each scrape (no background loop). Counters are `_total` counters summed over
    CPUs, named alike whether read from procfs or netlink; a source that cannot be read
    shows as ctguard_source_up 0. See docs/exporter.md for every metric.

    \b
    Examples:
      sudo ctguard exporter                        serve 127.0.0.1:9659/metrics
      sudo ctguard exporter --listen :9659         on every address
      sudo ctguard exporter --netns all            every container's table too
      sudo ctguard exporter --textfile /var/lib/prometheus/node-exporter
      ctguard exporter --once --root host.tar.gz   the metrics of a snapshot
    """
    from prometheus_client import generate_latest
    from prometheus_client.registry import CollectorRegistry

    from ctguard.host.target import Target, open_target
    from ctguard.output.exporter_metrics import ExporterCollector
    from ctguard.usecases.exporter import Sampler
    from ctguard.usecases.exporter_netns import NamespacesReader
    from ctguard.usecases.exporter_textfile import write_textfile

    if once and textfile:
        raise click.UsageError("--once and --textfile cannot be combined")
    address = parse_listen(listen)
    target = Target(root, None)
    if target.live and os.geteuid() != 0:
        raise CtguardError(
            "the exporter needs root on a live host (the table and counters are root's);"
            " --root SNAPSHOT exports a snapshot"
        )
    if netns and not target.live:
        raise click.UsageError(
            "--netns all reads live namespaces: it cannot be combined with --root"
        )
    with open_target(target) as opened:
        readers = NamespacesReader(max_netns) if netns else None
        sampler = Sampler(opened, doctor_interval, namespaces=readers)
        try:
            registry = CollectorRegistry(auto_describe=False)
            registry.register(ExporterCollector(sampler.sample))
            if once:
                emit(generate_latest(registry).decode())
            elif textfile:
                write_textfile(textfile, generate_latest(registry))
            else:
                serve_until_signal(_server(registry, *address))
        finally:
            sampler.close()
    return 0
