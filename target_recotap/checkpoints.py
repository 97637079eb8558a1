"""Which STATE may be written: only one whose every earlier record is settled."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Checkpoints:
    """Holds STATE messages until the records before them are settled, then writes the newest.

    A record is settled once the API accepted it, it was skipped as an existing pipeline, or it
    was rejected and recorded. Records are numbered from 1 in the order they were read; a STATE
    read after record ``n`` is safe once no record numbered ``n`` or less is unsettled.
    """

    def __init__(self, write: Callable[[dict[str, Any]], None]) -> None:
        self._write = write
        self._waiting: list[tuple[int, dict[str, Any]]] = []
        self.last_written: dict[str, Any] | None = None
        self._stopped = False

    def stop(self) -> None:
        """Write nothing more: the run is stopping, and has said which STATE it last wrote."""
        self._stopped = True

    def received(self, state: dict[str, Any], after_record: int) -> None:
        self._waiting.append((after_record, state))

    def advance(self, first_unsettled: int | None) -> None:
        """Write the newest waiting STATE that ``first_unsettled`` (None: all settled) allows."""
        if self._stopped:
            return
        safe = [
            entry
            for entry in self._waiting
            if first_unsettled is None or entry[0] < first_unsettled
        ]
        if not safe:
            return
        del self._waiting[: len(safe)]
        state = safe[-1][1]
        if state != self.last_written:
            self._write(state)
            self.last_written = state
