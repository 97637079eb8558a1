"""Streams this target does not load: counted, and named once in the log."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from singer_sdk.sinks import BatchSink

from target_recotap.endpoints import ENDPOINTS
from target_recotap.sinks.base import require_key_properties
from target_recotap.sinks.context import context_of
from target_recotap.wording import listing

if TYPE_CHECKING:
    from singer_sdk import Target

    from target_recotap.settlement import Received


class SkippedStreamSink(BatchSink):
    """Takes a stream's records and sends nothing; the target's summary names it."""

    def __init__(
        self,
        target: Target,
        stream_name: str,
        schema: dict,
        key_properties: Sequence[str] | None,
    ) -> None:
        super().__init__(target, stream_name, schema, key_properties)
        context = context_of(target)
        self.stats = context.stream_stats[stream_name]

    def get_validator(self) -> None:
        return None

    def use_schema(self, source: str, schema: dict, key_properties: Sequence[str] | None) -> None:
        """Records are not judged: nothing is sent."""

    def accept(self, record: dict[str, Any], received: Received) -> None:
        """Count the record; holding nothing, the reader settles it."""
        require_key_properties(record, self.key_properties, self.stream_name)
        self.stats.received += 1

    def reject_unmapped(self, received: Received, reason: str) -> None:
        """Count the record: skipped, its map's failure does not matter."""
        self.stats.received += 1

    def log_summary(self) -> None:
        self.logger.warning(
            "Skipped stream %r (%d records): this target loads only %s; rename a stream "
            "with a stream map to load it",
            self.stream_name,
            self.stats.received,
            listing(ENDPOINTS),
        )

    def process_record(self, record: dict, context: dict) -> None:
        raise NotImplementedError

    def process_batch(self, context: dict) -> None:
        """Nothing is ever buffered."""
