"""What every sink of this target shares: accept, reject, split a refused request."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from singer_sdk import metrics
from singer_sdk.exceptions import MissingKeyPropertiesError
from singer_sdk.sinks import BatchSink

from target_recotap.client import EndpointStats
from target_recotap.errors import PayloadTooLarge, RequestRejected
from target_recotap.normalize import InvalidRecord, pick, to_text
from target_recotap.sinks.context import context_of
from target_recotap.validation import RecordValidator
from target_recotap.wording import plural

if TYPE_CHECKING:
    from singer_sdk import Target

    from target_recotap.endpoints import Endpoint
    from target_recotap.flow import Key
    from target_recotap.settlement import Received


class _UnloggedTimer(metrics.Timer):
    def __exit__(self, *exc_info: object) -> None:
        """Log nothing: see ``RecotapSink.get_batch_processing_timer``."""


@dataclass
class Item:
    """One request item (a deal or a pipeline) and the records it was made from."""

    key: str
    body: dict[str, Any]
    sources: list[Received]  # each held in the ledger by this sink until the item lands


class RecotapSink(BatchSink, abc.ABC):
    """A sink fed by ``accept``: it validates and normalises, or rejects with a reason.

    Batches go to the run's dispatcher. A record this sink buffers is held in the settlement
    ledger (``hold``) until the request carrying it landed, or it was rejected (``settle``).
    """

    #: Where the stream's items go.
    endpoint: Endpoint
    #: The fields that hold the ID Recotap knows a record by (the item's key), in that order.
    id_fields: tuple[str, ...]

    def __init__(
        self,
        target: Target,
        stream_name: str,
        schema: dict,
        key_properties: Sequence[str] | None,
    ) -> None:
        super().__init__(target, stream_name, schema, key_properties)
        context = context_of(target)
        self._validate = bool(self.config["validate_records"])
        # Source stream -> (validator, key properties): several streams may map onto this one.
        self._schemas: dict[str, tuple[RecordValidator | None, Sequence[str]]] = {}
        self.client = context.client
        self.dispatcher = context.dispatcher
        self.ledger = context.ledger
        self.rejects = context.rejects
        self.input = context.input
        self.dry_run = context.dry_run
        self.stats = context.stream_stats[stream_name]
        self.accounts_for_deals = context.accounts

    def use_schema(self, source: str, schema: dict, key_properties: Sequence[str] | None) -> None:
        """Judge records from ``source`` by this schema from now on."""
        validator = RecordValidator(schema) if self._validate else None
        self._schemas[source] = (validator, key_properties or ())

    def get_validator(self) -> None:
        """Validation is ``RecordValidator``'s, which rejects a record instead of stopping."""
        return None

    def get_batch_processing_timer(self) -> metrics.Timer:
        """A timer that logs nothing.

        The SDK's ``Target.drain_one`` times ``process_batch`` with this timer and logs a METRIC
        batch_processing_time for each batch. Here ``process_batch`` only hands the batch to the
        sending threads, so that time (a fraction of a millisecond) says nothing; what requests
        took is logged per endpoint at the end of the run.
        """
        return _UnloggedTimer(metrics.Metric.BATCH_PROCESSING_TIME)

    @property
    def batch_limit(self) -> int:
        """Most items a request carries: batch_size_rows may lower it, never raise it past the
        endpoint's limit."""
        return min(self.batch_size_rows or self.endpoint.per_request, self.endpoint.per_request)

    def dispatch_key(self, item_key: str) -> Key:
        """What a job sending the item ``item_key`` of this stream holds in the dispatcher."""
        return (self.endpoint.stream, item_key)

    def dispatch(
        self,
        batch: list[Item],
        send: Callable[[list[Item]], None],
        after: frozenset[Key] = frozenset(),
    ) -> None:
        """Send one batch through the dispatcher, once the jobs holding ``after`` have landed;
        its records settle once it has landed."""
        self.dispatcher.submit(
            frozenset(self.dispatch_key(item.key) for item in batch),
            partial(self.deliver, batch, send),
            partial(self._landed, batch),
            after,
        )

    def _landed(self, batch: list[Item]) -> None:
        """Every item of ``batch`` is accepted, skipped or rejected: none is held any more."""
        self.ledger.settle(received for item in batch for received in item.sources)

    @abc.abstractmethod
    def add(self, record: dict[str, Any], received: Received) -> None:
        """Buffer a valid record, held in the ledger; raise ``InvalidRecord`` if it cannot be
        sent (the reader then settles it, rejected)."""

    def accept(self, record: dict[str, Any], received: Received) -> None:
        """Take one record: buffer it, or reject it with the reason."""
        self.stats.received += 1  # only the reading thread counts what it received
        self.tally_record_read()
        validator, keys = self._schemas[received.message["stream"]]
        require_key_properties(record, keys, self.stream_name)
        try:
            problem = validator.problem(record) if validator else None
            if problem:
                raise InvalidRecord(problem)
            self.add(record, received)
        except InvalidRecord as exc:
            self.reject([received], str(exc), self.record_id(record))
        except RecursionError:
            self.reject([received], "the record is nested too deeply to read")

    def reject_unmapped(self, received: Received, reason: str) -> None:
        """Take a record that its stream map could not transform: received, and rejected."""
        self.stats.received += 1
        self.reject([received], reason)

    def record_id(self, record: dict[str, Any]) -> str | None:
        """The ID Recotap would know ``record`` by (as mapped), if it has a usable one: read as
        the item's key is read, so that ``77.0`` names the same pipeline as ``77``."""
        value = pick(record, self.id_fields)
        try:
            return None if value is None else to_text(value, self.id_fields[0])
        except InvalidRecord:
            return None

    def reject(
        self, sources: Sequence[Received], reason: str, record_id: str | None = None
    ) -> None:
        self.stats.add(rejected=len(sources))
        for received in sources:
            self.rejects.reject(self.stream_name, received, reason, record_id)

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
            if isinstance(exc, PayloadTooLarge):  # refused by Recotap (413), or not even sent
                reason = f"too large for a request of its own: {exc}"
            elif exc.violations:
                reason = "Recotap refused it: " + "; ".join(str(v) for v in exc.violations)
            else:
                reason = f"Recotap refused it: {exc}"
            self.refused(items[0], reason)

    def refused(self, item: Item, reason: str) -> None:
        """Recotap refused ``item``: reject the records it was made from."""
        self.reject(item.sources, reason, item.key)

    def log_summary(self) -> None:
        stats = self.stats
        calls = self.client.stats.get(self.endpoint.path) or EndpointStats()
        if self.dry_run:
            self.logger.info(
                "Summary %s (dry run): received %d, would send %d in %s, %srejected %d, "
                "merged duplicates %d",
                self.stream_name,
                stats.received,
                stats.sent,
                plural(calls.requests, "request"),
                self.summary_skipped(),
                stats.rejected,
                stats.merged,
            )
            return
        self.logger.info(
            "Summary %s: received %d, sent %d, %s %d, skipped as existing %d, "
            "%srejected %d, merged duplicates %d, requests %d, retries %d, "
            "request-seconds %.1f",
            self.stream_name,
            stats.received,
            stats.sent,
            self.endpoint.written_as,
            stats.accepted,
            stats.skipped_existing,
            self.summary_skipped(),
            stats.rejected,
            stats.merged,
            calls.requests,
            calls.retries,
            calls.seconds,
        )

    def summary_skipped(self) -> str:
        """What else the stream skipped, for its summary line (``"skipped ... 3, "``): none here."""
        return ""

    def process_record(self, record: dict, context: dict) -> None:
        """Unused: the target calls ``accept``, which buffers in the sink's own structures."""
        raise NotImplementedError


def require_key_properties(record: dict[str, Any], keys: Sequence[str], stream_name: str) -> None:
    """A record without one of its stream's key properties breaks the Singer spec: the run
    stops at its line, as in the SDK."""
    for key in keys:
        if key not in record:
            raise MissingKeyPropertiesError(
                f"Record is missing key property {key!r} of stream {stream_name!r}"
            )
