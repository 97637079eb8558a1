"""`EmulatorServer`: the emulator app on a real loopback socket, served from a background thread.

The HTTP layer is the standard library's (``http.server`` and ``wsgiref`` build the request and
its WSGI environ). It keeps connections alive as a production API does: werkzeug's development
server closes every connection, so each request paid for a TCP connect and a new thread, and a
benchmark measured that instead of the client. Owning the loop also lets the lost-response fault
hang up on the request's own socket instead of answering it. Given a server SSL context it
answers over https, so that tests can check certificate handling.
"""

from __future__ import annotations

import contextlib
import io
import socket
import ssl
import sys
import threading
import time
import traceback
from http import HTTPStatus
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from recotap_emulator.app import (
    ADMIN_PATH,
    BASE_PATH,
    LOST_RESPONSE_KEY,
    RECEIVED_KEY,
    EmulatorApp,
)
from recotap_emulator.faults import Faults
from recotap_emulator.store import EmulatorStore
from target_recotap.addresses import is_loopback

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

DEFAULT_API_KEY = "emulator-key"
# An idle keep-alive connection is closed after this, so a client that went away frees its thread.
IDLE_TIMEOUT = 30.0
# Larger request bodies are refused before they are read (the API's own limit is far lower).
MAX_REQUEST_BYTES = 64 * 1024 * 1024


class _Server(ThreadingMixIn, WSGIServer):
    """One thread per connection; remembers open connections so that stop() can close them."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: EmulatorApp, *, log_requests: bool) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.app = app
        self.log_requests = log_requests
        self.connections_accepted = 0
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
            self.connections_accepted += 1
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)

    def close_connections(self) -> None:
        """Hang up every open connection: a stopped emulator answers nothing more."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _RequestHandler(WSGIRequestHandler):
    """HTTP/1.1 with keep-alive; an answer is sent whole, or lost as the app's fault says."""

    protocol_version = "HTTP/1.1"
    # Status line, headers and body go out without waiting for the client's ACK of the
    # previous segment (Nagle's algorithm would stall each answer by a delayed ACK).
    disable_nagle_algorithm = True
    timeout = IDLE_TIMEOUT
    server: _Server

    def handle(self) -> None:
        """Serve requests on this connection until either side closes it."""
        with contextlib.suppress(ConnectionError, TimeoutError):
            self.close_connection = True
            self.handle_one_request()
            while not self.close_connection:
                self.handle_one_request()

    def handle_one_request(self) -> None:
        self.raw_requestline = self.rfile.readline(65537)
        received = time.monotonic()
        if not self.raw_requestline:
            self.close_connection = True
            return
        if len(self.raw_requestline) > 65536:
            # What send_error reads, set as BaseHTTPRequestHandler.handle_one_request sets it
            # before its own 414: no line was parsed.
            self.requestline = self.request_version = self.command = ""
            self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
            return
        if not self.parse_request():  # it has answered the error
            return
        body = self._read_body()
        if body is None:
            return
        environ = self._environ(body)
        environ[RECEIVED_KEY] = received
        status, headers, body = self._call_app(environ)
        lost = environ.get(LOST_RESPONSE_KEY)
        if lost:
            # The write happened; the client is left with a closed connection and no answer,
            # or with an answer whose body stops halfway.
            self.close_connection = True
            if lost == "cut":
                self._send_answer(status, headers, body, send_bytes=len(body) // 2)
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            self.log_request(f"(response {lost})")
            return
        self._send_answer(status, headers, body)

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.send_error(HTTPStatus.LENGTH_REQUIRED, "Send a Content-Length")
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.send_error(HTTPStatus.BAD_REQUEST, "Bad Content-Length")
            return None
        if length > MAX_REQUEST_BYTES:
            self.send_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return None
        return self.rfile.read(length)

    def _environ(self, body: bytes) -> dict[str, Any]:
        environ = self.get_environ()
        environ.update(
            {
                "wsgi.version": (1, 0),
                "wsgi.url_scheme": "https"
                if isinstance(self.connection, ssl.SSLSocket)
                else "http",
                "wsgi.input": io.BytesIO(body),
                "wsgi.input_terminated": True,
                "wsgi.errors": sys.stderr,
                "wsgi.multithread": True,
                "wsgi.multiprocess": False,
                "wsgi.run_once": False,
            }
        )
        return environ

    def _call_app(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        started: list[Any] = []
        written: list[bytes] = []  # what the app passes to WSGI's write(), ahead of its body

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            started[:] = [status, headers]
            return written.append

        try:
            chunks = self.server.app(environ, start_response)
            try:
                body = b"".join([*written, *chunks])
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
        except Exception:
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            return "500 Internal Server Error", [("Content-Type", "text/plain")], b"emulator error"
        return started[0], started[1], body

    def _send_answer(
        self,
        status: str,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        send_bytes: int | None = None,
    ) -> None:
        """Answer with ``body`` (its whole length announced), or only its first ``send_bytes``."""
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason)
        length = str(len(body))
        for name, value in headers:
            if name.lower() == "content-length" and self.command == "HEAD":
                length = value  # no body: the length of the GET's, as the app reckons it
            elif name.lower() not in ("content-length", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", length)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()  # flushes status line and headers in one write
        self.wfile.write(body if send_bytes is None else body[:send_bytes])

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if self.server.log_requests:
            super().log_request(code, size)


class EmulatorServer:
    """A running emulator: `start()`, then call `url`; `stop()` (or use it as a context manager)."""

    def __init__(
        self,
        store: EmulatorStore | None = None,
        api_key: str = DEFAULT_API_KEY,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log_requests: bool = False,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if not is_loopback(host):
            raise ValueError(f"the emulator only listens on loopback addresses, not {host!r}")
        self.store = store if store is not None else EmulatorStore()
        self.faults = faults if faults is not None else Faults()
        self.app = EmulatorApp(self.store, api_key, self.faults)
        self.host = host
        self._requested_port = port
        self._log_requests = log_requests
        self._tls = tls  # a server context: answer over https with its certificate
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def api_key(self) -> str:
        """The key clients must send in X-Api-Key."""
        return self.app.api_key

    @api_key.setter
    def api_key(self, key: str) -> None:
        # Like issuing a new key in Recotap: the old one stops working at once.
        self.app.api_key = key

    @property
    def port(self) -> int:
        """The bound port (the free one picked when port 0 was asked for)."""
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return int(self._server.server_address[1])

    @property
    def connections_accepted(self) -> int:
        """TCP connections accepted since start(): a client that keeps them alive opens few."""
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return self._server.connections_accepted

    @property
    def root_url(self) -> str:
        """http(s)://HOST:PORT, without a path."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self._tls else 'http'}://{host}:{self.port}"

    @property
    def url(self) -> str:
        """API base URL, e.g. http://127.0.0.1:54321/api/v1."""
        return self.root_url + BASE_PATH

    @property
    def page_url(self) -> str:
        """The page showing what the emulator holds (no key needed)."""
        return self.root_url + "/"

    @property
    def admin_url(self) -> str:
        """Base URL of the emulator-only admin routes."""
        return self.root_url + ADMIN_PATH

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._server is not None

    def start(self) -> EmulatorServer:
        """Bind the socket and serve in a daemon thread; returns self."""
        if self._server is not None:
            return self
        address = (self.host, self._requested_port)
        server = _Server(address, self.app, log_requests=self._log_requests)
        if self._tls is not None:
            server.socket = self._tls.wrap_socket(server.socket, server_side=True)
        self._server = server
        # A short poll interval keeps stop() fast.
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"recotap-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, hang up open connections and release the port; the store stays open."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        if thread is not None:
            thread.join()
        server.close_connections()
        server.server_close()

    def __enter__(self) -> EmulatorServer:
        """Start on entering the `with` block."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop on leaving the `with` block."""
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self.running else "stopped"
        return f"EmulatorServer({where})"
