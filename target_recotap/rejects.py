"""Rejected records: one warning each, a count, and a dead-letter file that can be replayed.

The dead letter holds Singer messages the target reads back unchanged (``--input``): the
stream's SCHEMA once per run, then each rejected RECORD as it arrived, before any stream map,
with the reason under ``recotap_rejection``. A RECORD is written from its input line's own
text, not from what was read of it: NaN, ``1E400`` or a key given twice come back as they
came, so that a replay is judged as the first run was. A run that reads the dead letter
itself moves it aside first (``move_aside_if_read``), so that it replays what the file held
and appends its own rejections to a new file of that name, instead of reading them back
forever.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import re
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from singer_sdk.singerlib.json import serialize_json

from target_recotap.settlement import Received

REJECTION_KEY = "recotap_rejection"

# A JSON string, or a character that opens, closes or separates: all it takes to find the
# members of a valid JSON object's top level without reading their values.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[][{},]')
_KEY = json.JSONDecoder()  # raw_decode reads a member's key, the JSON string it starts with
# Undecodable bytes on standard input are read as lone surrogates, which can only stand in a
# JSON string: written as \u escapes, they read back as the same characters, in valid UTF-8.
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class MovedAside:
    """The dead letter, renamed because the run reads it: from ``original`` to ``moved``."""

    original: Path
    moved: Path

    def put_back(self) -> None:
        """``moved`` is the dead letter again, in place of what the run wrote to it (every
        record of which ``moved`` holds too, since the run read nothing else)."""
        os.replace(self.moved, self.original)


class DeadLetterUnwritable(Exception):
    """The dead letter cannot be written: the run stops, so that no rejection goes unrecorded."""


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
    return f"on input line {received.line_number}"


class RejectLog:
    """Records rejections; safe to call from the sinks' drain threads."""

    def __init__(self, logger: logging.Logger, dead_letter_path: str | None = None) -> None:
        self._logger = logger
        self.path = Path(dead_letter_path) if dead_letter_path else None
        self.counts: Counter[str] = Counter()
        self._schemas: dict[str, dict[str, Any]] = {}
        self._schemas_written: set[str] = set()
        self._lock = threading.Lock()

    def move_aside_if_read(self, source: IO[str]) -> MovedAside | None:
        """If ``source`` is the dead letter itself, rename the file and say where it went.

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
        try:  # a name that is too long with the stamp fails already in exists()
            for n in range(2, 1000):
                if not moved.exists():
                    break
                moved = real.with_name(f"{real.stem}.{stamp}-{n}{real.suffix}")
            real.rename(moved)
        except OSError as exc:
            raise DeadLetterUnwritable(
                f"dead_letter_path {str(self.path)!r} is also this run's input, and it cannot "
                f"be moved aside to {moved.name!r} ({exc.strerror}): replay a copy of it instead"
            ) from None
        return MovedAside(real, moved)

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
        lines.append(_rejected_line(received.line, rejection))
        try:
            with path.open("a", encoding="utf-8") as dead_letter:
                dead_letter.write("\n".join(lines) + "\n")
        except OSError as exc:
            raise DeadLetterUnwritable(
                f"the dead letter {str(path)!r} cannot be written ({exc.strerror}), and no "
                "rejection may go unrecorded: free space or change dead_letter_path"
            ) from None


def _rejected_line(line: str, rejection: dict[str, Any]) -> str:
    """The input ``line``, a JSON object, with ``rejection`` under REJECTION_KEY.

    Every other member is kept as written. A rejection the line carries already (a replay of
    the dead letter) is replaced, not repeated: with the key twice, which one counted would be
    up to the parser that reads the file.
    """
    members = [m for m in _members(line) if _KEY.raw_decode(m)[0] != REJECTION_KEY]
    members.append(f'"{REJECTION_KEY}":{serialize_json(rejection)}')
    return _SURROGATE.sub(_escape, "{" + ",".join(members) + "}")


def _members(text: str) -> list[str]:
    """The ``"key": value`` texts of the top level of ``text``, a JSON object, as written."""
    members = []
    depth = start = 0
    for token in _TOKEN.finditer(text):
        char = token.group()
        if char in ("{", "["):
            depth += 1
            if depth == 1:
                start = token.end()
        elif char in ("}", "]"):
            depth -= 1
            if depth == 0:
                members.append(text[start : token.start()])
                break
        elif char == "," and depth == 1:
            members.append(text[start : token.start()])
            start = token.end()
    return [member.strip() for member in members if member.strip()]


def _escape(surrogate: re.Match[str]) -> str:
    return f"\\u{ord(surrogate.group()):04x}"
