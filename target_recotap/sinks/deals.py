"""The deals stream: upserts through POST /deals, at most 100 a request."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from target_recotap.normalize import deal_body
from target_recotap.settings import DEALS_PER_REQUEST
from target_recotap.sinks.base import Item, RecotapSink

if TYPE_CHECKING:
    from target_recotap.rejects import Received


class DealsSink(RecotapSink):
    """Buffers one version per ``externalDealId`` (the latest) and sends full batches."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: dict[str, Item] = {}

    @property
    def max_size(self) -> int:
        # batch_size_rows may lower the batch, never raise it past the API's limit.
        return min(self.batch_size_rows or DEALS_PER_REQUEST, DEALS_PER_REQUEST)

    @property
    def current_size(self) -> int:
        return len(self._pending)

    def add(self, record: dict[str, Any], received: Received) -> None:
        body = deal_body(record)
        key = body["externalDealId"]
        if self._pending.pop(key, None) is not None:
            self.stats.merged += 1  # only the reading thread merges
        self._pending[key] = Item(key, body, [received])
        self.note_buffered(received)

    def process_batch(self, context: dict) -> None:
        batch, self._pending = list(self._pending.values()), {}
        self.dispatch([batch] if batch else [], self._send)

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
                self.reject(item.sources, "Recotap's answer left this deal out: outcome unknown")
            elif outcome.get("status") == "upserted":
                upserted += 1
            else:
                error = outcome.get("error") or f"status {outcome.get('status')!r}"
                self.reject(item.sources, f"Recotap did not upsert it: {error}")
        self.stats.add(sent=len(items), accepted=upserted)
