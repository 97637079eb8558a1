"""Streams this target does not load: counted, and named once in the log."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from singer_sdk.sinks import BatchSink

if TYPE_CHECKING:
    from target_recotap.rejects import Received
    from target_recotap.target import TargetRecotap


class SkippedStreamSink(BatchSink):
    """Takes a stream's records and sends nothing; the target's summary names it."""

    def __init__(
        self,
        target: TargetRecotap,
        stream_name: str,
        schema: dict,
        key_properties: Sequence[str] | None,
    ) -> None:
        super().__init__(target, stream_name, schema, key_properties)
        self.stats = target.stream_stats[stream_name]

    def get_validator(self) -> None:
        return None

    @property
    def first_unsettled(self) -> int | None:
        return None

    def accept(self, record: dict[str, Any], received: Received) -> None:
        self._singer_validate_message(record)  # a key property missing breaks the spec
        self.stats.received += 1

    def process_record(self, record: dict, context: dict) -> None:
        raise NotImplementedError

    def process_batch(self, context: dict) -> None:
        """Nothing is ever buffered."""
