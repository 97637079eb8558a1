"""The deals stream: upserts through POST /deals, at most 100 a request."""

from __future__ import annotations

import itertools
from functools import cached_property
from typing import TYPE_CHECKING, Any

from target_recotap.normalize import (
    DEAL_ID_NAMES,
    DOUBLE_DIGITS,
    JSONNumber,
    deal_body,
    imprecise_amount,
)
from target_recotap.settings import DEALS_PER_REQUEST
from target_recotap.sinks.base import Item, RecotapSink

if TYPE_CHECKING:
    from target_recotap.rejects import Received


class DealsSink(RecotapSink):
    """Buffers one version per ``externalDealId`` (the latest) and sends full batches."""

    id_fields = DEAL_ID_NAMES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: dict[str, Item] = {}
        self._held: set[str] = set()  # buffered deals whose earlier version was in flight
        self._warned_imprecise = False  # one warning a run is enough to explain them all

    @cached_property  # asked for every record; the setting cannot change during a run
    def max_size(self) -> int:
        # batch_size_rows may lower the batch, never raise it past the API's limit.
        return min(self.batch_size_rows or DEALS_PER_REQUEST, DEALS_PER_REQUEST)

    @property
    def current_size(self) -> int:
        return len(self._pending)

    @property
    def is_full(self) -> bool:
        # Deals held back behind an earlier version do not take the next batch's places.
        return len(self._pending) - len(self._held) >= self.max_size

    def add(self, record: dict[str, Any], received: Received) -> None:
        body = deal_body(record)
        key = body["externalDealId"]
        if not self._warned_imprecise and "amount" in body and imprecise_amount(body["amount"]):
            self._warn_imprecise(key, body["amount"])
        earlier = self._pending.pop(key, None)
        if earlier is not None:
            self.stats.merged += 1  # only the reading thread merges
        since = received.position if earlier is None else earlier.since
        self._pending[key] = Item(key, body, [received], since)
        if self.target.dispatcher.is_busy(key):
            self._held.add(key)
        self.note_buffered(received)

    def _warn_imprecise(self, key: str, amount: JSONNumber) -> None:
        self._warned_imprecise = True
        self.logger.warning(
            "Deal %r: amount %s has more than %d significant digits; Recotap stores amounts as "
            "doubles, so it will hold %r. It is sent as read; other amounts like it in this run "
            "get no further warning",
            key,
            amount,
            DOUBLE_DIGITS,
            float(amount),
        )

    def process_batch(self, context: dict) -> None:
        """Send the buffered deals, except those with an earlier version still in flight.

        Those wait in the buffer for the next batch (a later version must never be overtaken
        by an earlier one); at the end of input, until their earlier version has landed.
        """
        dispatcher = self.target.dispatcher
        while self._pending:
            busy = dispatcher.busy_among(self._pending)
            if len(busy) == len(self._pending):
                dispatcher.wait_until_free(busy)
                continue
            ready = (item for key, item in self._pending.items() if key not in busy)
            batch = list(itertools.islice(ready, self.max_size))
            self.dispatch(batch, self._send)
            for item in batch:
                del self._pending[item.key]
            self._held = busy
            self.note_unbuffered(self._pending.values())
            if not self.target.input_finished:
                break

    def _send(self, items: list[Item]) -> None:
        reply = self.client.push_deals([item.body for item in items])
        results = reply.data.get("results")
        outcomes = {
            str(result.get("externalDealId")): result
            for result in (results if isinstance(results, list) else [])
            if isinstance(result, dict)
        }
        upserted = 0
        for item in items:
            outcome = outcomes.get(item.key)
            if outcome is None:
                self.reject(
                    item.sources, "Recotap's answer left this deal out: outcome unknown", item.key
                )
            elif outcome.get("status") == "upserted":
                upserted += 1
            else:
                error = outcome.get("error") or f"status {outcome.get('status')!r}"
                self.reject(item.sources, f"Recotap did not upsert it: {error}", item.key)
        self.stats.add(sent=len(items), accepted=upserted)
