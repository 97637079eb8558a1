"""Rejected records: one warning each, a count, and a dead-letter file that can be replayed.

The dead letter holds Singer messages the target reads back unchanged (``--input``): the
stream's SCHEMA once per run, then each rejected RECORD as it arrived, before any stream map,
with the reason under ``recotap_rejection``. A run that reads the dead letter itself moves it
aside first (``move_aside_if_read``), so that it replays what the file held and appends its own
rejections to a new file of that name, instead of reading them back forever.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from singer_sdk.singerlib.json import serialize_json

REJECTION_KEY = "recotap_rejection"


class DeadLetterUnwritable(Exception):
    """The dead letter cannot be written: the run stops, so that no rejection goes unrecorded."""


@dataclass(slots=True)
class Received:
    """A RECORD message as read, and its place in the input (1 for the first record)."""

    position: int
    message: dict[str, Any]


def record_label(
    received: Received, record_id: str | None, key_properties: Sequence[str] = ()
) -> str:
    """How log lines and the dead letter name a record.

    By the ID Recotap knows it by (``record_id``, taken from the record as mapped), else by the
    source stream's key properties, else by its place in the input. Never by another field
    that merely looks like an ID (a deal's ``pipelineId`` names its pipeline, not the deal).
    """
    if record_id is not None:
        return repr(record_id[:100])
    record = received.message.get("record")
    if (
        isinstance(record, dict)
        and key_properties
        and all(record.get(key) is not None for key in key_properties)
    ):
        return ", ".join(f"{key}={str(record[key])[:100]!r}" for key in key_properties)
    return f"#{received.position} of the input"


class RejectLog:
    """Records rejections; safe to call from the sinks' drain threads."""

    def __init__(self, logger: logging.Logger, dead_letter_path: str | None = None) -> None:
        self._logger = logger
        self.path = Path(dead_letter_path) if dead_letter_path else None
        self.counts: Counter[str] = Counter()
        self._schemas: dict[str, dict[str, Any]] = {}
        self._schemas_written: set[str] = set()
        self._lock = threading.Lock()

    def move_aside_if_read(self, source: IO[str]) -> Path | None:
        """If ``source`` is the dead letter itself, rename the file and return its new path.

        The open input goes on reading the renamed file, so the run replays exactly what it
        held; the run's own rejections go to a new file at ``path``. Files are compared by
        device and inode, so relative, absolute and symlinked spellings are all the same file.
        """
        if self.path is None:
            return None
        try:
            read, dead_letter = os.fstat(source.fileno()), self.path.stat()
        except (OSError, ValueError, io.UnsupportedOperation):  # no dead letter yet, or no file
            return None
        if (read.st_dev, read.st_ino) != (dead_letter.st_dev, dead_letter.st_ino):
            return None
        # Through a symlink, the file it names moves: the link then leads to the new file.
        real = self.path.resolve()
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        moved = real.with_name(f"{real.stem}.{stamp}{real.suffix}")
        for n in range(2, 1000):
            if not moved.exists():
                break
            moved = real.with_name(f"{real.stem}.{stamp}-{n}{real.suffix}")
        try:
            real.rename(moved)
        except OSError as exc:
            raise DeadLetterUnwritable(
                f"dead_letter_path {str(self.path)!r} is also this run's input, and it cannot "
                f"be moved aside to {moved.name!r} ({exc.strerror}): replay a copy of it instead"
            ) from None
        return moved

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def remember_schema(self, message: dict[str, Any]) -> None:
        """Keep a stream's latest SCHEMA message, to write before its first rejected record."""
        with self._lock:
            self._schemas[message["stream"]] = message
            self._schemas_written.discard(message["stream"])

    def reject(
        self, stream: str, received: Received, reason: str, record_id: str | None = None
    ) -> None:
        """Count one rejected record, warn about it and append it to the dead letter.

        ``record_id`` is the ID Recotap knows the record by, if it has one (see record_label).
        """
        with self._lock:
            schema = self._schemas.get(received.message.get("stream", ""))
            keys = schema.get("key_properties") if schema else None
            label = record_label(received, record_id, keys if isinstance(keys, list) else ())
            self._logger.warning("Rejected %s record %s: %s", stream, label, reason)
            self.counts[stream] += 1
            if self.path is not None:
                self._append(self.path, received, reason, label)

    def _append(self, path: Path, received: Received, reason: str, label: str) -> None:
        source_stream = received.message.get("stream", "")
        lines = []
        schema = self._schemas.get(source_stream)
        if schema is not None and source_stream not in self._schemas_written:
            lines.append(serialize_json(schema))
            self._schemas_written.add(source_stream)
        rejection = {
            "reason": f"record {label}: {reason}",
            "rejected_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        lines.append(serialize_json({**received.message, REJECTION_KEY: rejection}))
        try:
            with path.open("a", encoding="utf-8") as dead_letter:
                dead_letter.write("\n".join(lines) + "\n")
        except OSError as exc:
            raise DeadLetterUnwritable(
                f"the dead letter {str(path)!r} cannot be written ({exc.strerror}); the run "
                "stopped so that no rejection is lost"
            ) from None
