"""``ctguard exporter``: Prometheus metrics of conntrack, served, printed or written."""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

import click

from ctguard.cli.emit import emit
from ctguard.cli.options import FilePath, FiniteRange, root_option
from ctguard.errors import CtguardError
from ctguard.output.metrics_http import serve_until_signal

if TYPE_CHECKING:
    from collections.abc import Iterable
    from wsgiref.simple_server import WSGIServer
    from wsgiref.types import StartResponse, WSGIEnvironment

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


Request = socket.socket | tuple[bytes, socket.socket]  # what socketserver hands a server
MAX_CONNECTIONS = 16  # connections served at once; more are closed at once
CONNECTION_TIMEOUT = 10.0  # seconds a connection may sit idle or trickle its request


def _server(registry: CollectorRegistry, host: str, port: int) -> WSGIServer:
    """A server that answers each connection in its own thread, with a read timeout: one
    client that connects and says nothing must not hold up every scrape. Scrapes
    themselves are taken one at a time (the collector's lock)."""
    import threading
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from prometheus_client import make_wsgi_app

    class Quiet(WSGIRequestHandler):
        timeout = CONNECTION_TIMEOUT

        def log_message(self, format: str, *args: object) -> None:
            pass

    class Server(ThreadingMixIn, WSGIServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        daemon_threads = True
        block_on_close = False
        slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

        def process_request(self, request: Request, client_address: object) -> None:
            if not self.slots.acquire(blocking=False):
                self.shutdown_request(request)  # too many at once: refused, not queued
                return
            super().process_request(request, client_address)

        def process_request_thread(self, request: Request, client_address: object) -> None:
            try:
                super().process_request_thread(request, client_address)
            finally:
                self.slots.release()

    metrics = make_wsgi_app(registry)

    def text_format(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        # the text format 0.0.4 whatever Accept asks: what node_exporter serves by default and
        # what --once and --textfile write. prometheus_client's OpenMetrics renderer (0.26)
        # checks every character of every name and label: 0.2 ms more per scrape, a sixth of
        # the whole (bench/exporter.py)
        body: Iterable[bytes] = metrics({**environ, "HTTP_ACCEPT": "text/plain"}, start_response)
        return body

    try:
        return make_server(host, port, text_format, Server, Quiet)
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
