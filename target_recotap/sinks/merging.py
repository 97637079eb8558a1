"""What the deals and accounts sinks share: one item per key, the versions of a record buffered
together merged as Recotap applies an upsert, and never a later version ahead of an earlier."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeGuard

from target_recotap.endpoints import Existing, Rejected
from target_recotap.sinks.base import Item, RecotapSink

if TYPE_CHECKING:
    from collections.abc import Iterable, Set

    from target_recotap.client import Reply
    from target_recotap.endpoints import Endpoint
    from target_recotap.flow import Key
    from target_recotap.settlement import Received


@dataclass
class MergedItem(Item):
    """An item merged from its versions buffered together.

    ``versions`` holds each one's body, in step with ``sources``, once there are two: most
    items have one version a batch, and cost no list for it.
    """

    versions: list[dict[str, Any]] | None = None

    def apart(self) -> list[MergedItem]:
        """One item per version, in the order they came."""
        return [
            MergedItem(self.key, body, [received])
            for body, received in zip(self.versions or [self.body], self.sources, strict=True)
        ]


def _merged(item: Item) -> TypeGuard[MergedItem]:
    """Whether ``item`` holds more than one version."""
    return isinstance(item, MergedItem) and item.versions is not None


class MergingSink(RecotapSink):
    """Buffers one item per key, its versions merged, and sends full batches."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: dict[str, MergedItem] = {}
        # Buffered items held back, which do not fill a batch: behind an earlier version in
        # flight, or waiting for what another sink buffers (``waits_for``).
        self._held: set[str] = set()
        # The buffer is changed by the reading thread and by drains, which the SDK runs in
        # threads of their own; another sink's drain may also send this one's (``send_before``).
        self._buffer_lock = threading.RLock()

    @cached_property  # asked for every record; the setting cannot change during a run
    def max_size(self) -> int:
        return self.batch_limit

    @property
    def current_size(self) -> int:
        return len(self._pending)

    @property
    def is_full(self) -> bool:
        # Items held back behind an earlier version do not take the next batch's places.
        return len(self._pending) - len(self._held) >= self.max_size

    def buffer(self, key: str, body: dict[str, Any], received: Received) -> None:
        """Buffer ``body``, a version of the item ``key``, held in the ledger."""
        with self._buffer_lock:
            self._buffer(key, body, received)

    def _buffer(self, key: str, body: dict[str, Any], received: Received) -> None:
        item = self._pending.get(key)
        if item is None:
            self._pending[key] = MergedItem(key, body, [received])
        else:
            # As Recotap applies an upsert: a field sent replaces the one held (a list whole),
            # a field left out (null or absent: never sent) keeps it. So one request carrying
            # the merge leaves what the versions sent one by one would.
            if item.versions is None:
                item.versions = [item.body]  # the first version, as it came
            item.body = {**item.body, **body}
            item.sources.append(received)
            item.versions.append(body)
            # Under the lock: a sending thread takes a merge back when it sends versions apart.
            self.stats.add(merged=1)
        if self.dispatcher.is_busy(self.dispatch_key(key)):
            self._held.add(key)
        self.ledger.hold(received)

    def waits_for(self, item: MergedItem) -> tuple[Iterable[Key], Set[str]]:
        """What ``item`` must wait for besides an earlier version of its own: jobs of another
        stream in flight, and items another sink buffers (none here)."""
        return (), set()

    def send_waited_for(self, items: Set[str]) -> None:
        """Dispatch what another sink buffers and ``items`` wait for (nothing here)."""

    def process_batch(self, context: dict) -> None:
        """Send the buffered items, except those with an earlier version in flight.

        Those wait in the buffer for the next batch (a later version must never be overtaken
        by an earlier one); at the end of input, until their earlier version has landed. An
        item that waits for jobs of another stream (``waits_for``) goes with its batch and
        waits on its worker thread; what it waits for in another sink's buffer is sent first.
        """
        with self._buffer_lock:
            while self._pending:
                held, after, buffered = self._waits()
                if buffered:
                    self.send_waited_for(set().union(*buffered.values()))
                    held, after, buffered = self._waits()
                # Still buffered there: behind an earlier version in flight, which goes first.
                held |= buffered.keys()
                self._held = held
                ready: list[Item] = [item for key, item in self._pending.items() if key not in held]
                if not ready:
                    if not self.input.finished:
                        break  # they go with a later batch: waiting would hold up reading
                    self._wait_for_any(held, after)
                    continue
                batch = ready[: self.max_size]
                waited = frozenset(k for item in batch for k in after.get(item.key, ()))
                self.dispatch(batch, self._send, waited)
                for item in batch:
                    del self._pending[item.key]
                if not self.input.finished:
                    break

    def _wait_for_any(self, held: set[str], after: dict[str, tuple[Key, ...]]) -> None:
        """Wait until a job in flight that holds back one of the ``held`` items lands: an
        earlier version of its own, or a job it comes after. Only keys still busy count (a key
        that is free would end the wait at once); if none is, the caller looks again."""
        keys = {self.dispatch_key(key) for key in held}
        keys.update(k for key in held for k in after.get(key, ()))
        busy = self.dispatcher.busy_among(keys)
        if busy:
            self.dispatcher.wait_until_free(busy)

    def _waits(self) -> tuple[set[str], dict[str, tuple[Key, ...]], dict[str, Set[str]]]:
        """The buffered items held back behind an earlier version in flight; the jobs of
        another stream each item waits for; and what of another sink's buffer each waits for
        (sent first, so that it need not wait for that batch to fill)."""
        held = {k for _, k in self.dispatcher.busy_among(map(self.dispatch_key, self._pending))}
        after: dict[str, tuple[Key, ...]] = {}
        buffered: dict[str, Set[str]] = {}
        for key, item in self._pending.items():
            in_flight, elsewhere = self.waits_for(item)
            if in_flight:
                after[key] = tuple(in_flight)
            if elsewhere:
                buffered[key] = elsewhere
        return held, after, buffered

    def buffered_before(self, key: str, position: int) -> bool:
        """Whether a record read before ``position`` is buffered in the item ``key``."""
        with self._buffer_lock:
            item = self._pending.get(key)
            return item is not None and item.sources[0].position < position

    def send_before(self, keys: Set[str]) -> None:
        """Dispatch the buffered items among ``keys`` that may go: records of another stream,
        read after them, wait for them to land. Others go with them only to fill the last
        request (sending every ready item would cut this sink's batches short). One held back
        behind an earlier version in flight stays, and goes at a later call."""
        with self._buffer_lock:
            if not keys & self._pending.keys():
                return
            held, _, buffered = self._waits()
            held |= buffered.keys()
            ready: list[Item] = [item for key, item in self._pending.items() if key not in held]
            # Full batches only, but for the last: those among ``keys`` first, the others
            # (oldest first) filling it; the rest stay for a later batch.
            needed = sum(1 for item in ready if item.key in keys)
            room = -(-needed // self.max_size) * self.max_size - needed
            chosen = {item.key for item in ready if item.key in keys}
            chosen.update([item.key for item in ready if item.key not in keys][:room])
            ready = [item for item in ready if item.key in chosen]
            for start in range(0, len(ready), self.max_size):
                self.dispatch(ready[start : start + self.max_size], self._send)
            for item in ready:
                del self._pending[item.key]
            self._held = held

    def _send(self, items: list[Item]) -> None:
        reply = self.client.push(self.endpoint, [item.body for item in items])
        self.settle_reply(self.endpoint, items, reply)

    def settle_reply(self, endpoint: Endpoint, items: list[Item], reply: Reply) -> None:
        """Count what ``endpoint`` answered for ``items``; reject or send apart what failed."""
        outcomes = endpoint.outcomes(reply.data, (item.key for item in items))
        written = existing = 0
        failed = []
        for item in items:
            outcome = outcomes[item.key]
            if isinstance(outcome, Existing):
                existing += 1
                self.logger.debug(
                    "%s %r is in Recotap already, skipped: %s",
                    endpoint.noun.capitalize(),
                    item.key,
                    outcome.said,
                )
            elif not isinstance(outcome, Rejected):
                written += 1
            elif outcome.answered:
                failed.append((item, outcome.reason))
            else:  # no answer to send its versions apart on: the records are rejected as one
                self.reject(item.sources, outcome.reason, item.key)
        # A merged item that failed is counted as sent once its versions are, apart.
        apart = sum(1 for item, _ in failed if _merged(item))
        self.stats.add(sent=len(items) - apart, accepted=written, skipped_existing=existing)
        for item, reason in failed:
            self.refused(item, reason)

    def refused(self, item: Item, reason: str) -> None:
        """Recotap refused an item. If it merged several versions, send them apart instead.

        One request each, in the order they came, as with ``batch_size_rows: 1``: the versions
        Recotap takes are stored, and only those it refuses are rejected, with its reason.
        This runs in the job that holds the item's key, so no later version overtakes them.
        """
        if _merged(item):
            self.stats.add(merged=1 - len(item.sources))
            for version in item.apart():
                self.deliver([version], self._send)
        else:
            super().refused(item, reason)
