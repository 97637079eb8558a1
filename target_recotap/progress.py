"""Progress lines during a run: each loaded stream's counts, every ``progress_interval`` s."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging
    from collections.abc import Collection, Mapping

    from target_recotap.sinks.context import StreamStats


class ProgressLog:
    """One INFO line per loaded stream every ``interval`` seconds, from ``start`` to ``stop``.

    The lines come from a thread of their own, not from the reading thread: a reader blocked
    behind a full window (Recotap slow, or every request waiting out its retries) still shows
    that the run is alive, and reading pays nothing for it. An interval of 0 logs nothing.
    """

    def __init__(
        self,
        logger: logging.Logger,
        stream_stats: Mapping[str, StreamStats],
        streams: Collection[str],
        interval: float,
        *,
        dry_run: bool,
    ) -> None:
        self._logger = logger
        self._stream_stats = stream_stats
        self._streams = streams
        self._interval = interval
        self._dry_run = dry_run
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recotap-progress", daemon=True)

    def start(self) -> None:
        if self._interval > 0:
            self._thread.start()

    def stop(self) -> None:
        """Stop; once this returns no progress line follows (the summary comes next)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        last_time = time.monotonic()
        last_read: dict[str, int] = {}
        while not self._stopping.wait(self._interval):
            now = time.monotonic()
            # A copy: the reading thread adds a stream when its first SCHEMA arrives.
            for stream, stats in list(self._stream_stats.items()):
                if stream not in self._streams:
                    continue
                read = stats.received
                rate = (read - last_read.get(stream, 0)) / (now - last_time)
                last_read[stream] = read
                self._logger.info(
                    "Progress %s%s: read %s (%s/s over the last %s s), %s %s, rejected %s",
                    stream,
                    " (dry run)" if self._dry_run else "",
                    format(read, ","),
                    format(rate, ",.0f"),
                    format(self._interval, "g"),
                    "would send" if self._dry_run else "sent",
                    format(stats.sent, ","),
                    format(stats.rejected, ","),
                )
            last_time = now
