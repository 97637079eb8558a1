"""Which STATE may be written: the one place that knows which records are settled.

The promise of this target: a STATE is written only once every record read before it, in every
stream, is settled with Recotap (accepted, skipped as existing, or rejected and recorded), and
as soon as that is true. ``SettlementLedger`` numbers the records as they are read and counts
who still holds each one: the reader while it routes the record, then each sink that buffers
it, holds it back or has it in flight. A record nobody holds is settled. A STATE waits until no
record before it is unsettled; the ledger then writes the newest such STATE itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Received:
    """A RECORD message as read: its place among the records (1 for the first), the message,
    and the input line it came on, with that line's number (what a person can find)."""

    position: int
    message: dict[str, Any]
    line: str
    line_number: int


class SettlementLedger:
    """Counts the holders of every unsettled record and writes each STATE once it is safe.

    Safe to call from the reading thread and the sending threads. ``write`` is called under the
    ledger's lock, so STATEs go out one at a time, oldest first.
    """

    def __init__(self, write: Callable[[dict[str, Any]], None]) -> None:
        self._write = write
        self._lock = threading.Lock()
        self._holders: dict[int, int] = {}  # position -> holders, for unsettled records only
        self._read = 0  # position of the last record read
        self._oldest = 1  # no record before this position is unsettled
        self._waiting: list[tuple[int, dict[str, Any]]] = []  # (records read before it, STATE)
        self._stopped = False
        self.last_written: dict[str, Any] | None = None

    def receive(self, message: dict[str, Any], line: str, line_number: int) -> Received:
        """Number a record as read. The reader holds it until ``settle`` says it is routed."""
        with self._lock:
            self._read += 1
            self._holders[self._read] = 1
            return Received(self._read, message, line, line_number)

    def hold(self, received: Received) -> None:
        """One more holder of ``received``: a sink buffered it, holds it back or sends it."""
        with self._lock:
            self._holders[received.position] += 1

    def settle(self, records: Iterable[Received]) -> None:
        """Each holder of ``records`` lets go once: landed, rejected, or routed by the reader."""
        with self._lock:
            for received in records:
                position = received.position
                left = self._holders[position] - 1
                if left:
                    self._holders[position] = left
                else:
                    del self._holders[position]
            self._advance()

    def state(self, value: dict[str, Any]) -> None:
        """A STATE read now: written once every record read before it is settled."""
        with self._lock:
            self._waiting.append((self._read, value))
            self._advance()

    def stop(self) -> None:
        """Write nothing more: the run is stopping, and says which STATE it last wrote."""
        with self._lock:
            self._stopped = True

    def _advance(self) -> None:
        """Write the newest waiting STATE that no unsettled record comes before."""
        while self._oldest <= self._read and self._oldest not in self._holders:
            self._oldest += 1
        safe = 0
        while safe < len(self._waiting) and self._waiting[safe][0] < self._oldest:
            safe += 1
        if not safe or self._stopped:
            return
        state = self._waiting[safe - 1][1]
        del self._waiting[:safe]
        if state != self.last_written:
            self._write(state)
            self.last_written = state
