"""A stock Singer SDK target that does nothing with its batches: the benchmark's baseline.

Everything the SDK does for any target still runs (reading and parsing each line, the stock
jsonschema validation of every record, parsing date-time fields into datetimes, batching,
STATE handling); only `process_batch` is empty. Its CPU time is the cost of "just being a
singer-sdk target" on the same input.

    python bench/stock_target.py < deals.singer.jsonl
"""

from __future__ import annotations

from singer_sdk import BatchSink, Target
from singer_sdk import typing as th


class NullBatchSink(BatchSink):
    """Collects records in batches (the SDK's default) and drops each batch."""

    def process_batch(self, context: dict) -> None:
        """Do nothing with the batch."""


class StockTarget(Target):
    """A singer-sdk target with default settings and a sink that discards everything."""

    name = "target-stock-null"
    config_jsonschema = th.PropertiesList().to_dict()
    default_sink_class = NullBatchSink


if __name__ == "__main__":
    StockTarget.cli()
