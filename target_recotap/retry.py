"""When a request is tried again, and after how long: one small value object, as urllib3's
``Retry`` is. It says which answers are worth another attempt, keeps the history of one
request's failed attempts, and either gives the wait before the next or raises the error that
ends the request. The client only sends, asks it, and waits.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass, field, replace

from target_recotap.errors import ApiUnreachable, RetriesExhausted
from target_recotap.settings import MAX_RETRY_AFTER, MAX_RETRY_DELAY

RETRIABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# Before any answer in a run, a refused connection, a host name that does not resolve or a
# server without TLS almost always means a wrong address: two quick retries (1.5 s in all) and
# the run stops. They are there for a server that is restarting, or a local one (the emulator)
# started just before the run, which refuses for a moment; a wrong URL costs only those 1.5 s.
FIRST_CONTACT_RETRY_DELAYS = (0.5, 1.0)


@dataclass(frozen=True)
class FailedAttempt:
    """An attempt that may pass if made again: a retriable status, or no answer at all."""

    said: str  # "503 Service Unavailable", or where the connection failed and how
    status: int | None = None
    retry_after: str | None = None
    # No answer because nothing at the address speaks HTTP(S) (``TransportFailure``), and the
    # setting to check if that lasts.
    wrong_address: bool = False
    via_proxy: bool = False
    check: str = ""


@dataclass(frozen=True)
class Retry:
    """One retry granted: after which failure, how long to wait, and whether it was one of the
    quick first-contact checks (which the failure's own error explains if they run out)."""

    after: FailedAttempt
    wait: float
    first_contact: bool


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, honouring ``Retry-After``; ``history`` holds the
    retries one request has had. Each request starts from the configured policy, which is
    never changed: ``increment`` returns a new one."""

    max_retries: int = 8
    initial_delay: float = 1.0
    max_delay: float = MAX_RETRY_DELAY
    max_retry_after: float = MAX_RETRY_AFTER
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)
    history: tuple[Retry, ...] = ()

    @staticmethod
    def is_retriable(status: int) -> bool:
        """Whether an answer with ``status`` may pass if the request is sent again."""
        return status in RETRIABLE_STATUSES

    def increment(self, what: str, failure: FailedAttempt, *, answered: bool) -> RetryPolicy:
        """The policy for the attempt after ``failure``, its wait in ``history[-1]``.

        ``answered``: whether any request of this run got an HTTP answer, which proves the
        address right. Raises ``ApiUnreachable`` or ``RetriesExhausted`` when no retry is left.
        """
        retries = len(self.history)
        if failure.wrong_address and not answered:
            # Only before any answer: mid-run, even a server that stopped speaking TLS is
            # retried like any lost connection (a middlebox, a failover), not taken for a
            # wrong setting.
            if retries >= min(self.max_retries, len(FIRST_CONTACT_RETRY_DELAYS)):
                raise ApiUnreachable(f"{failure.said}: check {failure.check}")
            retry = Retry(failure, FIRST_CONTACT_RETRY_DELAYS[retries], first_contact=True)
        elif retries >= self.max_retries:
            if failure.status == 429:
                likely = "Recotap is limiting requests"
            elif failure.via_proxy:
                likely = "the proxy may be down"
            else:
                likely = "Recotap may be down"
            raise RetriesExhausted(
                f"{what} failed {retries + 1} times, the last: {failure.said}; {likely}: "
                "run again later (raise max_retries to wait longer)"
            )
        else:
            wait = self.delay(retries + 1, failure.retry_after)
            retry = Retry(failure, wait, first_contact=False)
        return replace(self, history=(*self.history, retry))

    def delay(self, retry: int, retry_after: str | None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        hinted = parse_retry_after(retry_after)
        if hinted is not None:
            return min(hinted, self.max_retry_after)
        ceiling = min(self.max_delay, self.initial_delay * 2 ** (retry - 1))
        return self.rng.uniform(ceiling / 2, ceiling)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds, from either form (delta-seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
