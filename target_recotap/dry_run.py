"""A transport that sends nothing: it writes each request body to a file and answers success.

It stands where urllib3's connections stand under ``RecotapClient``, so a dry run goes through
everything a real run does before the network (the body size gate that splits a batch, the
counts per endpoint) and shows exactly the bodies a real run would send.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import msgspec
import urllib3

from target_recotap.client import encode_json
from target_recotap.endpoints import ENDPOINTS
from target_recotap.errors import RecotapError

_BY_PATH = {endpoint.path: endpoint for endpoint in ENDPOINTS.values()}


class DryRunUnwritable(RecotapError):
    """The dry run's file cannot be written (a full disk): the run stops, saying so."""


class DryRunTransport:
    """Writes one JSON line per request body to ``path`` (created anew); every item succeeds."""

    URL = "https://dry-run.invalid"  # the client's api_url: a name that can never resolve

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.path.write_text("", encoding="utf-8")
        self._write_lock = threading.Lock()

    def urlopen(
        self, method: str, url: str, redirect: bool = True, **kw: Any
    ) -> urllib3.BaseHTTPResponse:
        # Only POSTs come: GET /deal-stages follows a 409, which never comes here, and a dry
        # run does not list account custom fields.
        body: bytes = kw["body"]
        try:
            with self._write_lock, self.path.open("ab") as out:
                out.write(body + b"\n")
        except OSError as exc:
            raise DryRunUnwritable(
                f"dry_run_path {str(self.path)!r} cannot be written: {exc.strerror}"
            ) from None
        endpoint = _BY_PATH[urllib3.util.parse_url(url).path or ""]
        items = msgspec.json.decode(body)[endpoint.items_field]
        written = min(endpoint.written)  # any of them: each reads as written
        results = [{endpoint.key: item[endpoint.key], "status": written} for item in items]
        return urllib3.HTTPResponse(body=encode_json({"results": results}), status=200)

    def clear(self) -> None:
        """Nothing to close: the file is opened for each body."""
