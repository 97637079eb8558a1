"""`EmulatorServer`: the emulator app on a real loopback socket, served from a background thread."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from target_recotap.emulator.app import ADMIN_PATH, BASE_PATH, LOST_RESPONSE_KEY, EmulatorApp
from target_recotap.emulator.faults import Faults
from target_recotap.emulator.store import EmulatorStore
from target_recotap.settings import is_loopback

if TYPE_CHECKING:
    from types import TracebackType

DEFAULT_API_KEY = "emulator-key"


class _RequestHandler(WSGIRequestHandler):
    """werkzeug's handler, whose access log marks dropped responses."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Log one line per request, noting when the emulator dropped the response."""
        if getattr(self, "environ", {}).get(LOST_RESPONSE_KEY):
            code = f"{code} (response dropped)"
        super().log_request(code, size)


class _QuietRequestHandler(WSGIRequestHandler):
    """Request handler that does not print one line per request."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Skip the access log line."""


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
    ) -> None:
        if not is_loopback(host):
            raise ValueError(f"the emulator only listens on loopback addresses, not {host!r}")
        self.store = store if store is not None else EmulatorStore()
        self.faults = faults if faults is not None else Faults()
        self.app = EmulatorApp(self.store, api_key, self.faults)
        self.host = host
        self._requested_port = port
        self._log_requests = log_requests
        self._server: BaseWSGIServer | None = None
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
        return self._server.port

    @property
    def root_url(self) -> str:
        """http://HOST:PORT, without a path."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """API base URL, e.g. http://127.0.0.1:54321/api/v1."""
        return self.root_url + BASE_PATH

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
        handler = _RequestHandler if self._log_requests else _QuietRequestHandler
        server = make_server(
            self.host, self._requested_port, self.app, threaded=True, request_handler=handler
        )
        self._server = server
        # A short poll interval keeps stop() fast.
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"recotap-emulator-{server.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port; the store stays open."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        if thread is not None:
            thread.join()
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
