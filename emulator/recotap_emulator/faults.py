"""Fault injection for the emulator: configuration (`Faults`) and per-request decisions."""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from werkzeug.http import http_date

if TYPE_CHECKING:
    from collections.abc import Mapping

#: Outcomes a test can queue in `Faults.script`, consumed one per API request.
#: "lose" hangs up without an answer; "cut" sends the status line, headers and half the body.
SCRIPT_OUTCOMES = frozenset({"ok", "429", "500", "502", "503", "504", "lose", "cut"})
#: Statuses chosen from at random when `error_rate` fires.
SERVER_ERROR_STATUSES = (500, 502, 503, 504)
#: 409 customMessage variants: the documented one, with the trailing sentence some clients saw,
#: and one that names no IDs (to exercise a client's fallback).
CONFLICT_FORMS = ("short", "long", "unreadable")
#: How GET /deal-stages (undocumented) answers: the bare array a client saw, that array in the
#: envelope, or the 404 of a route that does not exist.
LISTING_FORMS = ("bare", "envelope", "absent")
DEFAULT_BODY_LIMIT = 100 * 1024  # Express/NestJS default JSON body limit ("100kb")

_SHARES = ("rate_429", "error_rate", "lose_rate")
_NON_NEGATIVE_INTS = ("latency_ms", "retry_after")


@dataclass
class Faults:
    """Faults the emulator injects; every field may be changed while the server runs.

    All faults are off by default. Shares (`rate_429`, `error_rate`, `lose_rate`) are
    probabilities between 0 and 1, drawn per request from an RNG seeded with `seed`.
    `fail_ids` fails the named deals or sales activities with the given error; `drop_ids`
    leaves them out of the `results` of POST /deals and /sales-activities (they are still
    processed and counted in the summary). `refuse_ids` (an externalDealId, pipelineId or
    externalActivityId to a message) makes any request holding one of them a whole-request
    400, as a validation rule the client does not know would.
    `fail_values` and `refuse_values` (a string to a message) do the same to a deal holding
    that string as one of its fields' values: a rule met by one version of a deal, not another.
    `deal_stages_listing` is one of `LISTING_FORMS`. `older_api` answers POST /accounts as the
    older API reference describes it: a body with `upsert` is refused 400, as class-validator's
    whitelist refuses a property the DTO does not declare.
    """

    latency_ms: int = 0
    rate_limit: float = 0.0
    rate_429: float = 0.0
    retry_after: int = 1
    retry_after_http_date: bool = False
    error_rate: float = 0.0
    lose_rate: float = 0.0
    body_limit: int = DEFAULT_BODY_LIMIT
    conflict_form: str = "short"
    deal_stages_listing: str = "bare"
    older_api: bool = False
    seed: int | None = None
    script: list[str] = field(default_factory=list)
    fail_ids: dict[str, str] = field(default_factory=dict)
    drop_ids: set[str] = field(default_factory=set)
    refuse_ids: dict[str, str] = field(default_factory=dict)
    fail_values: dict[str, str] = field(default_factory=dict)
    refuse_values: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Reject values the emulator could not act on; accept any list of IDs as `drop_ids`."""
        problems = _problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        self.drop_ids = set(self.drop_ids)

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-ready dict (the script is copied)."""
        return {f.name: _copy(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply a partial update atomically: either every change is valid and applied, or none."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(unknown)}")
        candidate = dataclasses.replace(self, **{k: _copy(v) for k, v in changes.items()})
        for name in changes:
            setattr(self, name, getattr(candidate, name))


def _copy(value: Any) -> Any:
    """A JSON-ready copy: containers are copied so callers cannot alter the live faults."""
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, (list, dict)):
        return value.copy()
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _problems(faults: Faults) -> list[str]:
    """List every invalid field of `faults` as a readable sentence."""
    problems = [
        f"{name} must be an integer >= 0"
        for name in _NON_NEGATIVE_INTS
        if not (_is_int(getattr(faults, name)) and getattr(faults, name) >= 0)
    ]
    problems += [
        f"{name} must be a number between 0 and 1"
        for name in _SHARES
        if not (_is_number(getattr(faults, name)) and 0 <= getattr(faults, name) <= 1)
    ]
    if not (_is_number(faults.rate_limit) and faults.rate_limit >= 0):
        problems.append("rate_limit must be a number >= 0")
    if not (_is_int(faults.body_limit) and faults.body_limit > 0):
        problems.append("body_limit must be an integer > 0")
    for name in ("retry_after_http_date", "older_api"):
        if not isinstance(getattr(faults, name), bool):
            problems.append(f"{name} must be a boolean")
    if faults.conflict_form not in CONFLICT_FORMS:
        problems.append(f"conflict_form must be one of {', '.join(CONFLICT_FORMS)}")
    if faults.deal_stages_listing not in LISTING_FORMS:
        problems.append(f"deal_stages_listing must be one of {', '.join(LISTING_FORMS)}")
    if faults.seed is not None and not _is_int(faults.seed):
        problems.append("seed must be an integer or null")
    if not isinstance(faults.script, list) or not all(
        str(item) in SCRIPT_OUTCOMES for item in faults.script
    ):
        problems.append(f"script must be a list of {', '.join(sorted(SCRIPT_OUTCOMES))}")
    if not isinstance(faults.fail_ids, dict) or not all(
        isinstance(key, str) and isinstance(error, str) for key, error in faults.fail_ids.items()
    ):
        problems.append("fail_ids must map externalDealId strings to error strings")
    if not isinstance(faults.refuse_ids, dict) or not all(
        isinstance(key, str) and isinstance(rule, str) for key, rule in faults.refuse_ids.items()
    ):
        problems.append("refuse_ids must map ID strings to message strings")
    for name in ("fail_values", "refuse_values"):
        values = getattr(faults, name)
        if not isinstance(values, dict) or not all(
            isinstance(value, str) and isinstance(message, str) for value, message in values.items()
        ):
            problems.append(f"{name} must map value strings to message strings")
    if not isinstance(faults.drop_ids, (set, frozenset, list, tuple)) or not all(
        isinstance(key, str) for key in faults.drop_ids
    ):
        problems.append("drop_ids must be a collection of externalDealId strings")
    return problems


#: How the request log names the faults injected into a request (``EmulatorStore.requests``).
THROTTLED = "throttled"
SERVER_ERROR = "server error"
RESPONSE_LOST = "response lost"
RESPONSE_CUT = "response cut"
REFUSED = "refused by a rule"
ITEMS_FAILED = "items failed"
RESULTS_LEFT_OUT = "results left out"


@dataclass(frozen=True)
class FaultDecision:
    """What to do to one API request: fail it with `status` up front, or `lose` its response
    (all of it, or from the middle of the body when `cut`)."""

    status: int | None = None
    lose: bool = False
    cut: bool = False

    @property
    def fault(self) -> str | None:
        """The request log's name for this fault; None when there is none."""
        if self.status is not None:
            return THROTTLED if self.status == 429 else SERVER_ERROR
        if self.lose:
            return RESPONSE_CUT if self.cut else RESPONSE_LOST
        return None


NO_FAULT = FaultDecision()


class TokenBucket:
    """Rate limiter allowing `rate` requests per second, with a burst of max(rate, 1)."""

    def __init__(self) -> None:
        self._rate = 0.0
        self._tokens = 0.0
        self._last = 0.0

    def allow(self, rate: float, now: float) -> bool:
        """Take a token if one is available; a rate of 0 means unlimited."""
        if rate <= 0:
            self._rate = 0.0
            return True
        capacity = max(rate, 1.0)
        if rate != self._rate:  # (re)configured: start with a full bucket
            self._rate, self._tokens, self._last = rate, capacity, now
        self._tokens = min(capacity, self._tokens + (now - self._last) * rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def reset(self) -> None:
        """Forget the bucket state so the next request starts with a full bucket."""
        self._rate = 0.0


class FaultInjector:
    """Decides, per API request, which fault (if any) applies, reading `faults` live."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._lock = threading.Lock()
        self._bucket = TokenBucket()
        self._seed = faults.seed
        self._rng = random.Random(faults.seed)

    def decide(self, *, is_write: bool) -> FaultDecision:
        """Return the fault for the next request; a scripted outcome overrides all others."""
        with self._lock:
            self._follow_seed()
            if self.faults.script:
                return _scripted(self.faults.script.pop(0))
            return self._random(is_write=is_write)

    def latency_seconds(self) -> float:
        """Delay to apply before answering an API request."""
        return self.faults.latency_ms / 1000

    def retry_after(self, now: float | None = None) -> str:
        """Value of the Retry-After header: delta seconds, or an HTTP date if configured."""
        seconds = self.faults.retry_after
        if self.faults.retry_after_http_date:
            return http_date((time.time() if now is None else now) + seconds)
        return str(seconds)

    def reset(self) -> None:
        """Refill the rate limiter (used by the admin reset)."""
        with self._lock:
            self._bucket.reset()

    def _random(self, *, is_write: bool) -> FaultDecision:
        faults = self.faults
        if not self._bucket.allow(faults.rate_limit, time.monotonic()):
            return FaultDecision(status=429)
        if self._chance(faults.rate_429):
            return FaultDecision(status=429)
        if self._chance(faults.error_rate):
            return FaultDecision(status=self._rng.choice(SERVER_ERROR_STATUSES))
        if is_write and self._chance(faults.lose_rate):
            return FaultDecision(lose=True)
        return NO_FAULT

    def _chance(self, share: float) -> bool:
        # Draw only for enabled faults: with a single fault on, the seed alone fixes its victims.
        return share > 0 and self._rng.random() < share

    def _follow_seed(self) -> None:
        if self.faults.seed != self._seed:
            self._seed = self.faults.seed
            self._rng.seed(self._seed)


def _scripted(outcome: str | int) -> FaultDecision:
    outcome = str(outcome)  # tolerate `script.append(503)` made straight on the list
    if outcome not in SCRIPT_OUTCOMES:
        raise ValueError(f"unknown scripted outcome {outcome!r}")
    if outcome == "ok":
        return NO_FAULT
    if outcome == "lose":
        return FaultDecision(lose=True)
    if outcome == "cut":
        return FaultDecision(lose=True, cut=True)
    return FaultDecision(status=int(outcome))
