"""Rejected records: one warning each, a count, and a dead-letter file that can be replayed.

The dead letter holds Singer messages the target reads back unchanged (``--input``): the
stream's SCHEMA once per run, then each rejected RECORD as it arrived, before any stream map,
with the reason under ``recotap_rejection``.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from singer_sdk.singerlib.json import serialize_json

REJECTION_KEY = "recotap_rejection"
_ID_FIELDS = ("externalDealId", "external_deal_id", "pipelineId", "pipeline_id", "id")


@dataclass(slots=True)
class Received:
    """A RECORD message as read, and its place in the input (1 for the first record)."""

    position: int
    message: dict[str, Any]

    @property
    def label(self) -> str:
        """A short name for the record in log lines: its ID if it has one."""
        record = self.message.get("record")
        if isinstance(record, dict):
            for name in _ID_FIELDS:
                value = record.get(name)
                if isinstance(value, (str, int)) and not isinstance(value, bool) and value != "":
                    return repr(str(value)[:100])
        return f"#{self.position}"


class RejectLog:
    """Records rejections; safe to call from the sinks' drain threads."""

    def __init__(self, logger: logging.Logger, dead_letter_path: str | None = None) -> None:
        self._logger = logger
        self.path = Path(dead_letter_path) if dead_letter_path else None
        self.counts: Counter[str] = Counter()
        self._schemas: dict[str, dict[str, Any]] = {}
        self._schemas_written: set[str] = set()
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def remember_schema(self, message: dict[str, Any]) -> None:
        """Keep a stream's latest SCHEMA message, to write before its first rejected record."""
        with self._lock:
            self._schemas[message["stream"]] = message
            self._schemas_written.discard(message["stream"])

    def reject(self, stream: str, received: Received, reason: str) -> None:
        """Count one rejected record, warn about it and append it to the dead letter."""
        self._logger.warning("Rejected %s record %s: %s", stream, received.label, reason)
        with self._lock:
            self.counts[stream] += 1
            if self.path is not None:
                self._append(self.path, received, reason)

    def _append(self, path: Path, received: Received, reason: str) -> None:
        source_stream = received.message.get("stream", "")
        lines = []
        schema = self._schemas.get(source_stream)
        if schema is not None and source_stream not in self._schemas_written:
            lines.append(serialize_json(schema))
            self._schemas_written.add(source_stream)
        rejection = {
            "reason": reason,
            "rejected_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        lines.append(serialize_json({**received.message, REJECTION_KEY: rejection}))
        with path.open("a", encoding="utf-8") as dead_letter:
            dead_letter.write("\n".join(lines) + "\n")
