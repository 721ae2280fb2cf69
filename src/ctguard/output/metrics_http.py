"""Serving /metrics: the loop of ``ctguard exporter --listen`` and how it stops."""

from __future__ import annotations

import signal
from typing import Protocol


class OneRequestServer(Protocol):
    """What the loop needs of a server (wsgiref's WSGIServer is one)."""

    timeout: float | None

    def handle_request(self) -> None: ...

    def server_close(self) -> None: ...


def serve_until_signal(server: OneRequestServer) -> None:
    """Answer scrapes until SIGTERM, SIGHUP or SIGINT, then exit with 128 + its number.

    The handlers only note the signal: an exception raised from one in the middle of a
    scrape would be caught by wsgiref's handler (it catches everything to answer 500), and
    the server would go on serving after a SIGTERM. A scrape being answered finishes."""
    stopped: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        stopped.append(signum)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, stop)
    server.timeout = 0.5  # handle_request returns this often with nothing to do
    try:
        while not stopped:
            server.handle_request()
    finally:
        server.server_close()
    raise SystemExit(128 + stopped[0])
