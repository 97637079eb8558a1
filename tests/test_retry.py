"""The retry policy on its own: which answers are retried, how long each retry waits, the
history one request's retries leave, and the error that ends a request when none is left."""

from __future__ import annotations

import email.utils
import random
import time

import pytest

from target_recotap.errors import ApiUnreachable, RetriesExhausted
from target_recotap.retry import FailedAttempt, RetryPolicy, parse_retry_after

WHAT = "POST /deals"
UNAVAILABLE = FailedAttempt("503 Service Unavailable", 503)
REFUSED = FailedAttempt(
    "cannot connect to 127.0.0.1:9 (connection refused)",
    wrong_address=True,
    check="the api_url setting (now http://127.0.0.1:9/api/v1)",
)


def test_retry_after_in_both_forms():
    assert parse_retry_after("7") == 7
    assert parse_retry_after(" 7 ") == 7
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470) == 10
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412500) == 0  # past
    assert 25 < parse_retry_after(email.utils.formatdate(time.time() + 30, usegmt=True)) <= 30
    for unusable in ("soon", "-1", "", "  ", None):
        assert parse_retry_after(unusable) is None


def test_retry_waits_as_asked_or_back_off_exponentially_with_jitter():
    policy = RetryPolicy(initial_delay=1, max_delay=8, rng=random.Random(7))
    assert policy.delay(1, "3") == 3
    assert policy.delay(1, "900") == 600  # max_retry_after
    # The n-th retry waits between half and all of 2**(n-1) s, up to max_delay.
    for retry, low, high in ((1, 0.5, 1), (3, 2, 4), (6, 4, 8)):
        waits = [policy.delay(retry, None) for _ in range(200)]
        assert all(low <= wait <= high for wait in waits)
        # Jitter: the whole range is used.
        assert min(waits) < low * 1.1
        assert max(waits) > high * 0.9


@pytest.mark.parametrize(
    ("status", "retried"),
    [(429, True), (500, True), (502, True), (503, True), (504, True)]
    + [(s, False) for s in (200, 207, 400, 401, 404, 409, 413, 422, 501, 505)],
)
def test_only_a_rate_limit_and_the_passing_server_errors_are_retried(status, retried):
    assert RetryPolicy.is_retriable(status) is retried


def test_each_request_starts_from_the_policy_as_configured_and_keeps_its_own_history():
    configured = RetryPolicy(max_retries=3, initial_delay=2, rng=random.Random(1))

    once = configured.increment(WHAT, UNAVAILABLE, answered=True)
    twice = once.increment(WHAT, FailedAttempt("429 Too Many Requests", 429, "7"), answered=True)

    assert configured.history == ()
    assert [r.after.status for r in once.history] == [503]
    assert [r.after.status for r in twice.history] == [503, 429]
    assert 1 <= twice.history[0].wait <= 2  # the first backoff: half to all of initial_delay
    assert twice.history[1].wait == 7  # Retry-After, not the backoff
    assert not any(r.first_contact for r in twice.history)
    assert twice.max_retries == configured.max_retries


@pytest.mark.parametrize(
    ("last", "likely"),
    [
        (UNAVAILABLE, "Recotap may be down"),
        (FailedAttempt("429 Too Many Requests", 429), "Recotap is limiting requests"),
        (
            FailedAttempt("cannot connect to the proxy 127.0.0.1:3128 (timed out)", via_proxy=True),
            "the proxy may be down",
        ),
    ],
)
def test_the_retry_after_the_last_allowed_is_refused_naming_the_likely_cause(last, likely):
    policy = RetryPolicy(max_retries=2, initial_delay=0)
    for _ in range(2):
        policy = policy.increment(WHAT, UNAVAILABLE, answered=True)

    with pytest.raises(RetriesExhausted) as refused:
        policy.increment(WHAT, last, answered=True)

    assert str(refused.value) == (
        f"POST /deals failed 3 times, the last: {last.said}; {likely}: run again later "
        "(raise max_retries to wait longer)"
    )


def test_no_retry_at_all_when_max_retries_is_zero():
    with pytest.raises(RetriesExhausted, match=r"^POST /deals failed 1 times"):
        RetryPolicy(max_retries=0).increment(WHAT, UNAVAILABLE, answered=True)


def test_before_any_answer_a_wrong_address_gets_two_quick_checks_then_names_the_setting():
    policy = RetryPolicy(max_retries=8, initial_delay=60)
    for _ in range(2):
        policy = policy.increment(WHAT, REFUSED, answered=False)

    assert [(r.wait, r.first_contact) for r in policy.history] == [(0.5, True), (1.0, True)]
    with pytest.raises(ApiUnreachable) as unreachable:
        policy.increment(WHAT, REFUSED, answered=False)
    assert str(unreachable.value) == (
        "cannot connect to 127.0.0.1:9 (connection refused): check the api_url setting "
        "(now http://127.0.0.1:9/api/v1)"
    )


@pytest.mark.parametrize(("max_retries", "checks"), [(0, 0), (1, 1)])
def test_the_quick_checks_are_no_more_than_max_retries_allows(max_retries, checks):
    policy = RetryPolicy(max_retries=max_retries)
    for _ in range(checks):
        policy = policy.increment(WHAT, REFUSED, answered=False)
    with pytest.raises(ApiUnreachable):
        policy.increment(WHAT, REFUSED, answered=False)


def test_once_the_address_has_answered_a_refusal_is_an_outage_retried_with_backoff():
    policy = RetryPolicy(max_retries=3, initial_delay=4, rng=random.Random(2))
    for _ in range(3):
        policy = policy.increment(WHAT, REFUSED, answered=True)

    assert not any(r.first_contact for r in policy.history)
    assert 2 <= policy.history[0].wait <= 4
    with pytest.raises(RetriesExhausted, match=r"failed 4 times.*Recotap may be down"):
        policy.increment(WHAT, REFUSED, answered=True)


def test_a_quick_check_and_a_backoff_count_against_the_same_retries():
    # A timeout first (an outage's retry), then refusals before any answer: the quick checks
    # left are those max_retries still allows after the first retry.
    timeout = FailedAttempt("a timeout waiting for 127.0.0.1:9 to answer")
    policy = RetryPolicy(max_retries=8, initial_delay=0).increment(WHAT, timeout, answered=False)
    policy = policy.increment(WHAT, REFUSED, answered=False)

    assert [r.first_contact for r in policy.history] == [False, True]
    assert policy.history[1].wait == 1.0
    with pytest.raises(ApiUnreachable):
        policy.increment(WHAT, REFUSED, answered=False)
