"""What every sink of this target shares: accept, reject, split a refused request."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from singer_sdk.sinks import BatchSink

from target_recotap.client import PayloadTooLarge, RequestRejected
from target_recotap.normalize import InvalidRecord
from target_recotap.validation import RecordValidator

if TYPE_CHECKING:
    from target_recotap.rejects import Received
    from target_recotap.target import TargetRecotap


@dataclass
class StreamStats:
    """Counts for a stream's end-of-run summary."""

    received: int = 0
    sent: int = 0
    accepted: int = 0
    skipped_existing: int = 0
    rejected: int = 0
    merged: int = 0


@dataclass
class Item:
    """One request item (a deal or a pipeline) and the records it was made from."""

    key: str
    body: dict[str, Any]
    sources: list[Received] = field(default_factory=list)


class RecotapSink(BatchSink, abc.ABC):
    """A sink fed by ``accept``: it validates and normalises, or rejects with a reason."""

    def __init__(
        self,
        target: TargetRecotap,
        stream_name: str,
        schema: dict,
        key_properties: Sequence[str] | None,
    ) -> None:
        self._record_validator = (
            RecordValidator(schema) if target.config.get("validate_records", True) else None
        )
        super().__init__(target, stream_name, schema, key_properties)
        self.target = target
        self.client = target.client
        self.rejects = target.rejects
        self.stats = target.stream_stats[stream_name]

    def get_validator(self) -> None:
        """Validation is ``RecordValidator``'s, which rejects a record instead of stopping."""
        return None

    @property
    @abc.abstractmethod
    def first_unsettled(self) -> int | None:
        """Position of the oldest record this sink holds unsettled, or None."""

    @abc.abstractmethod
    def add(self, record: dict[str, Any], received: Received) -> None:
        """Buffer a valid record; raise ``InvalidRecord`` if it cannot be sent."""

    def accept(self, record: dict[str, Any], received: Received) -> None:
        """Take one record: buffer it, or reject it with the reason."""
        self.stats.received += 1
        self.tally_record_read()
        try:
            problem = self._record_validator and self._record_validator.problem(record)
            if problem:
                raise InvalidRecord(problem)
            self.add(record, received)
        except InvalidRecord as exc:
            self.reject([received], str(exc))
        except RecursionError:
            self.reject([received], "the record is nested too deeply to read")

    def reject(self, sources: Sequence[Received], reason: str) -> None:
        for received in sources:
            self.stats.rejected += 1
            self.rejects.reject(self.stream_name, received, reason)

    def deliver(self, items: list[Item], send: Callable[[list[Item]], None]) -> None:
        """Send ``items``; if the API refuses the request, halve it to find the items to blame."""
        try:
            send(items)
        except (RequestRejected, PayloadTooLarge) as exc:
            if len(items) > 1:
                middle = len(items) // 2
                self.deliver(items[:middle], send)
                self.deliver(items[middle:], send)
                return
            reason = (
                "Recotap refused it: " + "; ".join(str(v) for v in exc.violations)
                if isinstance(exc, RequestRejected) and exc.violations
                else f"Recotap refused it: {exc}"
            )
            self.reject(items[0].sources, reason)

    def process_record(self, record: dict, context: dict) -> None:
        """Unused: the target calls ``accept``, which buffers in the sink's own structures."""
        raise NotImplementedError
