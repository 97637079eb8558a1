"""A client that sends nothing: it writes each request body it would send to a file."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from target_recotap.client import (
    DEALS_PATH,
    PIPELINES_PATH,
    RecotapClient,
    Reply,
    encode_json,
)

# What the API would answer for each endpoint if every item went through.
_ASSUMED_RESULTS = {
    DEALS_PATH: ("deals", "externalDealId", "upserted"),
    PIPELINES_PATH: ("pipelines", "pipelineId", "created"),
}


class DryRunClient(RecotapClient):
    """Writes one JSON line per request body to ``path`` (created anew) and assumes success."""

    def __init__(self, path: str) -> None:
        super().__init__("https://dry-run.invalid", api_key="")
        self.path = Path(path)
        self.path.write_text("", encoding="utf-8")
        self._write_lock = threading.Lock()

    def post(self, path: str, body: dict[str, Any]) -> Reply:
        with self._write_lock, self.path.open("ab") as out:
            out.write(encode_json(body) + b"\n")
        self._count(path, 0.0, is_retry=False)
        items_key, id_key, status = _ASSUMED_RESULTS[path]
        results = [{id_key: item[id_key], "status": status} for item in body[items_key]]
        return Reply({"results": results, "summary": {"total": len(results)}})
