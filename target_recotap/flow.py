"""Requests in flight: a window that adapts to the API, keeps each deal's versions in order, and
makes the reader wait when it is full (so memory stays bounded)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

# Rate learned from a 429: a little under what went through in the second before it.
RATE_MARGIN = 0.95
# After a 429, probe upwards: this many requests/s more for every second of success. A limit
# with a burst allowance (a token bucket) lets a probe run a while before it answers 429.
RATE_PROBE_PER_SECOND = 0.5
# Simultaneous failures of requests already in flight are one congestion event, not several.
DECREASE_COOLDOWN = 0.5
# Batches ready to go beyond the window, so that a freed place is taken at once, not after
# the reader has built the next batch.
LOOKAHEAD = 2


class Throttle:
    """How many requests may be in flight and how fast they may start.

    Concurrency is additive-increase / multiplicative-decrease: halved on a 429 or a 5xx, then
    grown by one for every window of successes, up to ``max_in_flight``. A 429 also pauses every
    request until its Retry-After has passed, and sets a pace learned from the requests that
    went through in the second before it, if at least a window of them did; the pace then
    creeps up while requests succeed.
    """

    def __init__(self, max_in_flight: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_in_flight = max_in_flight
        self._clock = clock
        self._window = float(max_in_flight)
        self._rate: float | None = None
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._no_decrease_until = -math.inf
        self._recent_successes: deque[float] = deque()
        self._lock = threading.Lock()

    @property
    def window(self) -> int:
        """Requests that may be in flight now."""
        return max(1, int(self._window))

    @property
    def rate(self) -> float | None:
        """Requests per second allowed to start, or None before any 429."""
        return self._rate

    def wait_turn(self, stopping: threading.Event) -> bool:
        """Wait until a request may start (after any pause, at the pace); False if stopping."""
        while not stopping.is_set():
            with self._lock:
                now = self._clock()
                start = max(now, self._paused_until)
                if self._rate is not None:
                    start = max(start, self._next_slot)
                if start <= now:
                    if self._rate is not None:
                        self._next_slot = now + 1 / self._rate
                    return True
            stopping.wait(start - now)
        return False

    def on_success(self) -> None:
        with self._lock:
            now = self._clock()
            self._recent_successes.append(now)
            while self._recent_successes[0] < now - 1:
                self._recent_successes.popleft()
            self._window = min(self.max_in_flight, self._window + 1 / self._window)
            if self._rate is not None:
                self._rate += RATE_PROBE_PER_SECOND / self._rate

    def on_throttled(self, wait: float) -> None:
        """A 429: everyone pauses ``wait`` seconds; the pace and the window come down."""
        with self._lock:
            now = self._clock()
            self._paused_until = max(self._paused_until, now + wait)
            if now < self._no_decrease_until:
                return
            self._no_decrease_until = now + max(wait, DECREASE_COOLDOWN)
            self._window = max(1.0, self._window / 2)
            went_through = sum(1 for t in self._recent_successes if t >= now - 1)
            # Fewer than a window's worth say nothing of the rate allowed: a 429 right after
            # the run's first request would else pace it at one request a second.
            if went_through >= self.window:
                learned = RATE_MARGIN * went_through
                self._rate = learned if self._rate is None else min(self._rate, learned)

    def on_failure(self) -> None:
        """A 5xx, a timeout or a lost connection: fewer requests in flight for a while."""
        with self._lock:
            now = self._clock()
            if now >= self._no_decrease_until:
                self._no_decrease_until = now + DECREASE_COOLDOWN
                self._window = max(1.0, self._window / 2)


# What a job in flight holds, so that no other job with it starts: (stream, item key). The
# stream keeps a deal and a pipeline, or an account, that happen to share an ID apart.
Key = tuple[str, str]


class Dispatcher:
    """Runs send jobs on worker threads, at most ``throttle.window`` at once.

    ``submit`` blocks while the window and its ``LOOKAHEAD`` are full (so reading waits and
    memory stays bounded), or while a job in flight holds one of the new job's keys: a later
    version of a deal never overtakes an earlier one. A job that raises stops the run: its
    error is raised by the next ``submit`` or by ``wait_all``.
    """

    def __init__(self, throttle: Throttle) -> None:
        self._throttle = throttle
        # A thread for each job the window and lookahead let in, and for each that waits for
        # the jobs it comes after (``submit``): a job never waits for a thread.
        self._pool = ThreadPoolExecutor(
            2 * throttle.max_in_flight + LOOKAHEAD, thread_name_prefix="recotap-send"
        )
        self._lock = threading.Lock()
        # Two conditions on one lock: a finished job wakes the reader and one waiting sender,
        # not every thread at once.
        self._changed = threading.Condition(self._lock)
        self._gate = threading.Condition(self._lock)
        self._in_flight = 0  # submitted and not finished
        self._sending = 0  # of those, past the window's gate
        self._waiting = 0  # of those, waiting for the jobs they come after
        self._busy_keys: set[Key] = set()
        self._error: BaseException | None = None

    def submit(
        self,
        keys: frozenset[Key],
        job: Callable[[], None],
        settled: Callable[[], None],
        after: frozenset[Key] = frozenset(),
    ) -> None:
        """Start ``job`` when it may go; ``settled`` runs after it if it succeeded.

        ``after``: keys the job does not hold but waits for, on its worker thread: the jobs
        holding them now, and any that take them before it starts, land first. While it
        waits it takes no place in the window or the lookahead (it would else keep a place
        for two requests' time, and the run would send fewer at once); at most
        ``max_in_flight`` jobs wait so, and the pool has a thread for each.
        """
        with self._changed:
            while True:
                self._raise_error()
                room = self._in_flight - self._waiting < self._throttle.window + LOOKAHEAD
                if after:
                    room = room and self._waiting < self._throttle.max_in_flight
                if room and self._busy_keys.isdisjoint(keys):
                    break
                self._changed.wait()
            self._in_flight += 1
            if after:
                self._waiting += 1
            self._busy_keys |= keys
        self._pool.submit(self._run, keys, job, settled, after)

    def is_busy(self, key: Key) -> bool:
        """Whether a job in flight holds ``key``."""
        with self._changed:
            return key in self._busy_keys

    def busy_among(self, keys: Iterable[Key]) -> set[Key]:
        """Those of ``keys`` that a job in flight holds."""
        with self._changed:
            return self._busy_keys.intersection(keys)

    def wait_until_free(self, keys: set[Key]) -> None:
        """Wait until a job in flight lets go of at least one of ``keys``."""
        with self._changed:
            while self._busy_keys.issuperset(keys):
                self._raise_error()
                self._changed.wait()

    def wait_all(self) -> None:
        """Wait until nothing is in flight; raise the first error a job raised."""
        with self._changed:
            while self._in_flight:
                self._changed.wait()
            self._raise_error()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(
        self,
        keys: frozenset[Key],
        job: Callable[[], None],
        settled: Callable[[], None],
        after: frozenset[Key],
    ) -> None:
        if after:
            with self._changed:
                while not self._busy_keys.isdisjoint(after):
                    self._changed.wait()
                self._waiting -= 1
                self._changed.notify_all()
        with self._gate:
            while self._sending >= self._throttle.window:
                self._gate.wait()
            self._sending += 1
        try:
            job()
            settled()  # before the job leaves the window: wait_all then sees it settled
        except BaseException as exc:
            with self._changed:
                self._error = self._error or exc
        finally:
            with self._changed:
                self._sending -= 1
                self._in_flight -= 1
                self._busy_keys -= keys
                self._gate.notify()
                self._changed.notify_all()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error
