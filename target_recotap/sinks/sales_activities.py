"""The sales_activities stream: calls and emails created through POST /sales-activities, at most
50 a request.

The endpoint is create-only: Recotap keeps the first activity it is sent under an
``externalActivityId`` and fails every later one as a duplicate. So an activity is never sent
twice at once: a later record with the ID of one still buffered or in flight waits for it, and
is skipped as existing once Recotap holds it, as Recotap would answer it sent on its own; if
Recotap did not store the first, the later one is sent in its place. A later record whose first
has landed already is sent, and Recotap's duplicate answer counts it skipped as existing (the
sink keeps no list of the IDs it sent, so memory stays flat). Either way what Recotap holds, and
how each record is counted, do not depend on which records shared a request.

An activity of another type than call or email is not sent and not rejected (Recotap would
skip it): it settles at once, and the end of the run names each such type with its count.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from target_recotap.endpoints import ACTIVITIES, Accepted, Existing, Outcome, Rejected
from target_recotap.normalize import (
    ACTIVITY_ID_NAMES,
    ACTIVITY_TYPES,
    UnhandledActivityType,
    activity_body,
)
from target_recotap.sinks.base import Item, RecotapSink
from target_recotap.wording import listing, plural

if TYPE_CHECKING:
    from target_recotap.settlement import Received


@dataclass
class ActivityItem(Item):
    """An activity, and the later records with its ID, each held in the ledger until it lands."""

    later: list[ActivityItem] = field(default_factory=list)


class SalesActivitiesSink(RecotapSink):
    """Buffers one item per ``externalActivityId`` at a time and sends full batches."""

    endpoint = ACTIVITIES
    id_fields = ACTIVITY_ID_NAMES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._buffer: list[ActivityItem] = []
        # ID -> the item buffered or in flight under it; read by the reading thread, let go by
        # the sending threads, under the lock.
        self._open: dict[str, ActivityItem] = {}
        self._lock = threading.Lock()
        self._unhandled: Counter[str] = Counter()  # activityType -> records not sent
        self._skipped_by_recotap: Counter[str] = Counter()  # sent, answered skipped; under lock

    @cached_property  # asked for every record; the setting cannot change during a run
    def max_size(self) -> int:
        return self.batch_limit

    @property
    def current_size(self) -> int:
        return len(self._buffer)

    def add(self, record: dict[str, Any], received: Received) -> None:
        try:
            body = activity_body(record)
        except UnhandledActivityType as unhandled:
            self._unhandled[unhandled.activity_type] += 1  # not held: the reader settles it
            return
        key = body[self.endpoint.key]
        item = ActivityItem(key, body, [received])
        with self._lock:
            self.ledger.hold(received)  # before a sending thread can let the first go
            first = self._open.get(key)
            if first is not None:
                first.later.append(item)
                return
            self._open[key] = item
        self._buffer.append(item)

    def process_batch(self, context: dict) -> None:
        batch, self._buffer = self._buffer, []
        size = self.max_size
        for start in range(0, len(batch), size):
            self.dispatch(list(batch[start : start + size]), self._send)

    def _send(self, items: list[Item]) -> None:
        reply = self.client.push(self.endpoint, [item.body for item in items])
        outcomes = self.endpoint.outcomes(reply.data, (item.key for item in items))
        self.stats.add(sent=len(items))
        for item in items:
            self._answered(item, outcomes[item.key])

    def _answered(self, item: Item, outcome: Outcome) -> None:
        if isinstance(outcome, Rejected):
            self.refused(item, outcome.reason)
            return
        if isinstance(outcome, Accepted):
            self.stats.add(accepted=1)
        elif isinstance(outcome, Existing):
            self.stats.add(skipped_existing=1)
            self.logger.debug("Sales activity %r is in Recotap already: %s", item.key, outcome.said)
        else:
            with self._lock:
                self._skipped_by_recotap[item.body["activityType"]] += 1
            self.logger.debug("Recotap skipped sales activity %r: %s", item.key, outcome.said)
            self._send_next(item)
            return
        later = self._close(item)
        if later:
            self.stats.add(skipped_existing=len(later))
            self.logger.debug(
                "Sales activity %r: %s with its ID skipped, as Recotap holds it",
                item.key,
                plural(len(later), "later record"),
            )
            self.ledger.settle(received for copy in later for received in copy.sources)

    def refused(self, item: Item, reason: str) -> None:
        """Recotap did not store ``item``: reject it, and send the next record with its ID."""
        super().refused(item, reason)
        self._send_next(item)

    def _send_next(self, item: Item) -> None:
        """Nothing was stored under ``item``'s ID: the next record with it goes in its place.

        This runs in the job that holds the ID, so nothing else with it is sent meanwhile.
        """
        with self._lock:
            later = self._open[item.key].later
            if not later:
                del self._open[item.key]
                return
            after, after.later = later[0], later[1:]
            self._open[item.key] = after
        self.deliver([after], self._send)
        self.ledger.settle(after.sources)

    def _close(self, item: Item) -> list[ActivityItem]:
        """Recotap holds ``item``'s ID: let it go, with the later records that waited for it."""
        with self._lock:
            return self._open.pop(item.key).later

    def summary_skipped(self) -> str:
        by_type = self._unhandled + self._skipped_by_recotap
        counts = ", ".join(f"{name!r} {count}" for name, count in sorted(by_type.items()))
        return f"skipped by type {by_type.total()}{f' ({counts})' if counts else ''}, "

    def log_summary(self) -> None:
        """The summary line, then a warning for each activityType skipped."""
        super().log_summary()
        handled = listing(repr(name) for name in ACTIVITY_TYPES)
        for activity_type, count in sorted(self._unhandled.items()):
            self.logger.warning(
                "Skipped activityType %r in %s (%s), not sent: Recotap loads only %s activities%s",
                activity_type,
                self.stream_name,
                plural(count, "record"),
                handled,
                _lower_case_hint(activity_type),
            )
        for activity_type, count in sorted(self._skipped_by_recotap.items()):
            self.logger.warning(
                "Recotap skipped activityType %r in %s (%s sent), as a type it does not load; "
                "the debug log has its words",
                activity_type,
                self.stream_name,
                plural(count, "record"),
            )


def _lower_case_hint(activity_type: str) -> str:
    """How to load a type that is Recotap's in another case (HubSpot writes ``CALL``)."""
    if activity_type.lower() in ACTIVITY_TYPES:
        return f"; write it {activity_type.lower()!r}, e.g. with a stream map"
    return ""
