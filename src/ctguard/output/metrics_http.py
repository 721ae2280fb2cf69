"""Serving /metrics: the loop of ``ctguard exporter --listen`` and how it stops."""

from __future__ import annotations

import gzip
import io
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Protocol, cast


class OneRequestServer(Protocol):
    """What the loop needs of a server (MetricsServer below, or any socketserver)."""

    timeout: float | None

    def handle_request(self) -> None: ...

    def server_close(self) -> None: ...


def serve_until_signal(server: OneRequestServer) -> None:
    """Answer scrapes until SIGTERM, SIGHUP or SIGINT, then exit with 128 + its number.

    The handlers only note the signal: an exception raised from one in the middle of a
    scrape would be caught by the server's handler (it catches everything to go on
    serving), and the server would go on after a SIGTERM. A scrape being answered
    finishes."""
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


PENDING = 64  # connections whose request is still arriving; more are closed at once
CONNECTION_TIMEOUT = 10.0  # seconds a connection may take to send its whole request
MAX_REQUEST = 8192  # bytes of request line and headers (a scrape sends a few hundred)
WRITE_TIMEOUT = 5.0  # seconds the answer may take to leave
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Handler(BaseHTTPRequestHandler):
    """GET /metrics: the body of one scrape, gzipped when the scraper accepts it. The
    request was read whole before (MetricsServer), so nothing here waits on the client."""

    timeout = WRITE_TIMEOUT
    protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers
    server: MetricsServer

    def setup(self) -> None:
        super().setup()
        self.rfile = io.BytesIO(self.server.requests.pop(self.connection, b""))

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/metrics":
            self.send_error(404, "ctguard exporter serves /metrics")
            return
        body = self.server.render()
        gzipped = "gzip" in self.headers.get("Accept-Encoding", "")
        if gzipped:
            body = gzip.compress(body, compresslevel=1)
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class MetricsServer(HTTPServer):
    """Serves ``render()`` (the text format, 0.0.4, whatever Accept asks: what node_exporter
    serves by default and what --once and --textfile write), in one thread.

    A request is read as it arrives, without blocking, by ``handle_request``'s selector,
    and answered once it is whole: a client that connects and says nothing, or sends its
    request a byte at a time, never holds up a scrape; it is closed after
    CONNECTION_TIMEOUT. Past PENDING such connections a new one is closed at once. No
    thread per connection: starting one cost a sixth of a scrape (bench/exporter.py).
    """

    def __init__(self, address: tuple[str, int], render: Callable[[], bytes]) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._selector = selectors.DefaultSelector()
        self._pending: dict[socket.socket, tuple[float, object, bytearray]] = {}
        self.requests: dict[socket.socket, bytes] = {}  # read whole, for the handler
        super().__init__(address, _Handler)  # a bind that fails calls server_close first
        self.render = render
        self._selector.register(self.socket, selectors.EVENT_READ)

    def handle_request(self) -> None:
        """Wait at most ``timeout`` seconds: accept, read what arrived, answer the requests
        that are whole, close the connections that took too long."""
        for key, _ in self._selector.select(self.timeout):
            if key.fileobj is self.socket:
                self._accept()
            else:
                self._read(cast(socket.socket, key.fileobj))
        now = time.monotonic()
        for conn in [c for c, (deadline, _, _) in self._pending.items() if deadline < now]:
            self._drop(conn)

    def _accept(self) -> None:
        try:
            conn, address = self.get_request()
        except OSError:
            return
        if len(self._pending) >= PENDING:
            self.shutdown_request(conn)
            return
        conn.setblocking(False)
        self._pending[conn] = (time.monotonic() + CONNECTION_TIMEOUT, address, bytearray())
        self._selector.register(conn, selectors.EVENT_READ)

    def _read(self, conn: socket.socket) -> None:
        _, address, data = self._pending[conn]
        try:
            chunk = conn.recv(MAX_REQUEST + 1 - len(data))
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        data += chunk
        if not chunk or len(data) > MAX_REQUEST:
            self._drop(conn)  # closed before a whole request, or a request too large
        elif b"\r\n\r\n" in data or b"\n\n" in data:
            self._selector.unregister(conn)
            del self._pending[conn]
            self.requests[conn] = bytes(data)
            conn.setblocking(True)
            try:
                self.finish_request(conn, address)
            except OSError:
                pass  # the client went away or did not take the answer in time
            except Exception as exc:  # a bug: said, and the server lives on
                sys.stderr.write(f"ctguard exporter: {type(exc).__name__}: {exc}\n")
            finally:
                self.requests.pop(conn, None)
                self.shutdown_request(conn)

    def _drop(self, conn: socket.socket) -> None:
        self._selector.unregister(conn)
        del self._pending[conn]
        self.shutdown_request(conn)

    def server_close(self) -> None:
        for conn in list(self._pending):
            self._drop(conn)
        self._selector.close()
        super().server_close()
