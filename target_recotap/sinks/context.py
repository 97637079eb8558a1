"""What passes between the target and its sinks: what a sink is handed (the run's collaborators,
how far the input is read, its stream's counts), and what the target calls on a sink.

The SDK builds each sink itself (``Target.add_sink`` is final) and passes it only the target.
So a sink takes its ``SinkContext`` from the target once, as it is built, through the
``SinkHost`` protocol, and never reaches into the target again.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence, Set
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from target_recotap.client import EndpointStats, Reply
    from target_recotap.endpoints import Endpoint
    from target_recotap.flow import Dispatcher
    from target_recotap.rejects import RejectLog
    from target_recotap.settlement import Received, SettlementLedger


@dataclass
class StreamStats:
    """Counts for a stream's end-of-run summary; ``add`` is safe from the sending threads."""

    received: int = 0
    sent: int = 0
    accepted: int = 0
    skipped_existing: int = 0
    rejected: int = 0
    merged: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, count in counts.items():
                setattr(self, name, getattr(self, name) + count)


@dataclass
class InputProgress:
    """How far the reading thread is; set by the target, read by the sinks."""

    finished: bool = False  # no more records will come (the end, or a bad line): all goes
    complete: bool = False  # the input was read to its end


class RecotapApi(Protocol):
    """What sinks ask of the API: ``RecotapClient``, or a fake one in a sink's unit test."""

    stats: dict[str, EndpointStats]  # per endpoint path, for the summary

    def push(self, endpoint: Endpoint, items: list[dict[str, Any]]) -> Reply:
        """Send ``items`` (at most ``endpoint.per_request``) in one request."""

    def stored_pipelines(self) -> dict[str, dict[str, Any]]:
        """pipelineId -> the pipeline as Recotap holds it."""

    def account_custom_fields(self) -> dict[str, dict[str, Any]]:
        """key -> each active account custom field."""

    def create_account_custom_field(self, field: dict[str, Any]) -> bool:
        """Create an account custom field; False if one with its key exists."""


class AccountBuffer(Protocol):
    """What deals ask of the accounts sink."""

    def buffered_before(self, key: str, position: int) -> bool:
        """Whether an account record of the cleaned domain ``key`` read before ``position``
        is buffered."""

    def send_before(self, keys: Set[str]) -> None:
        """Dispatch the accounts buffered that may go, those of the domains ``keys`` included."""


@dataclass
class AccountsForDeals:
    """Where deals find the accounts sink, once there is one: a deal is sent only after the
    account records read before it that share one of its domains have settled, so that
    Recotap links the deal to them (it stores a deal naming an unknown domain unlinked)."""

    sink: AccountBuffer | None = None


@dataclass(frozen=True)
class SinkContext:
    """Everything a sink works with besides its own stream, one instance for a run's sinks."""

    client: RecotapApi
    dispatcher: Dispatcher
    ledger: SettlementLedger
    rejects: RejectLog
    input: InputProgress
    dry_run: bool = False
    stream_stats: defaultdict[str, StreamStats] = field(
        default_factory=lambda: defaultdict(StreamStats)
    )
    accounts: AccountsForDeals = field(default_factory=AccountsForDeals)


class SinkHost(Protocol):
    """A target whose sinks are handed ``sink_context``."""

    sink_context: SinkContext


def context_of(target: object) -> SinkContext:
    """The context ``target`` hands its sinks; it is a ``SinkHost``."""
    return cast("SinkHost", target).sink_context


class StreamSink(Protocol):
    """What the target calls on each of its sinks, besides the SDK's own calls."""

    def use_schema(self, source: str, schema: dict, key_properties: Sequence[str] | None) -> None:
        """Judge records from the source stream ``source`` by this schema from now on."""

    def accept(self, record: dict[str, Any], received: Received) -> None:
        """Take one record, as mapped: buffer it (held in the ledger), or reject it."""

    def reject_unmapped(self, received: Received, reason: str) -> None:
        """Take a record that its stream map could not transform."""

    def log_summary(self) -> None:
        """The stream's line in the end-of-run summary."""
