"""Concurrency: the adaptive window, per-deal order with requests in flight, backpressure."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest
from support import config_for, deal, deals_messages, run_in_process, wait_until

from target_recotap.client import RecotapClient
from target_recotap.endpoints import DEALS
from target_recotap.flow import LOOKAHEAD, Dispatcher, Throttle


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_window_halves_on_429_and_grows_back_one_per_window_of_successes():
    clock = FakeClock()
    throttle = Throttle(16, clock=clock)
    throttle.on_throttled(1.0)
    assert throttle.window == 8
    throttle.on_throttled(1.0)  # the same congestion event: no second cut
    assert throttle.window == 8
    clock.now += 2
    for _ in range(9):  # 1/8 + 1/8.125 + ... passes 1 at the ninth success
        throttle.on_success()
    assert throttle.window == 9
    throttle.on_failure()
    assert throttle.window == 4


def test_429_pauses_everyone_and_sets_a_pace_from_what_went_through():
    clock = FakeClock()
    throttle = Throttle(8, clock=clock)
    for _ in range(20):
        throttle.on_success()
    throttle.on_throttled(1.0)
    assert throttle.rate == pytest.approx(19.0)
    stopping = threading.Event()
    waits = []
    stopping.wait = lambda seconds: (
        waits.append(seconds)
        or clock.__setattr__(  # type: ignore[method-assign]
            "now", clock.now + seconds
        )
    )
    assert throttle.wait_turn(stopping)
    assert waits == [pytest.approx(1.0)]  # the pause
    assert throttle.wait_turn(stopping)
    assert waits[1] == pytest.approx(1 / 19)  # then the pace


def test_dispatcher_never_runs_two_jobs_with_a_shared_key_at_once():
    throttle = Throttle(4)
    dispatcher = Dispatcher(throttle)
    running: set[str] = set()
    overlaps = []
    order = []
    lock = threading.Lock()

    def job(keys, tag):
        with lock:
            if running & keys:
                overlaps.append(tag)
            running.update(keys)
        time.sleep(0.02)
        with lock:
            running.difference_update(keys)
            order.append(tag)

    batches = [({"a", "b"}, 1), ({"c"}, 2), ({"b", "d"}, 3), ({"a"}, 4), ({"e"}, 5)]
    for keys, tag in batches:
        dispatcher.submit(frozenset(keys), lambda k=keys, t=tag: job(k, t), lambda: None)
    dispatcher.wait_all()
    dispatcher.close()
    assert overlaps == []
    assert order.index(1) < order.index(3)
    assert order.index(1) < order.index(4)


def test_dispatcher_sends_at_most_a_window_and_blocks_the_reader_past_its_lookahead():
    throttle = Throttle(2)
    dispatcher = Dispatcher(throttle)
    release = threading.Event()
    running = []
    peak = []
    lock = threading.Lock()

    def job():
        with lock:
            running.append(1)
            peak.append(len(running))
        release.wait(5)
        with lock:
            running.pop()

    try:
        for key in "ab" + "cd"[:LOOKAHEAD]:
            dispatcher.submit(frozenset(key), job, lambda: None)
        blocked = threading.Thread(
            target=dispatcher.submit, args=(frozenset("z"), lambda: None, lambda: None)
        )
        blocked.start()
        wait_until(lambda: len(running) == 2, "a window of jobs running")
        blocked.join(timeout=0.1)
        assert blocked.is_alive()  # backpressure: the reader waits for a place
    finally:
        release.set()
    blocked.join(timeout=5)
    assert not blocked.is_alive()
    dispatcher.wait_all()
    assert max(peak) == 2  # the others waited their turn to send

    def fail():
        raise RuntimeError("boom")

    dispatcher.submit(frozenset("d"), fail, lambda: None)
    with pytest.raises(RuntimeError, match="boom"):
        dispatcher.wait_all()
    dispatcher.close()


def test_latest_version_wins_with_the_same_deal_in_batches_in_flight(emulator, capsys):
    emulator.faults.latency_ms = 30
    deals = []
    for version in range(8):
        deals.append(deal("hot", amount=version))
        deals.extend(deal(f"{version}-{i}") for i in range(99))
    outcome = run_in_process(
        config_for(emulator, max_concurrent_requests=8), deals_messages(deals), capsys
    )
    assert outcome.exit_code == 0
    assert emulator.store.deals()["deal-hot"]["amount"] == 7
    assert len(emulator.store.deals()) == 8 * 99 + 1
    # Held-back deals join later batches without ever making one too large.
    assert {r["status"] for r in emulator.store.requests()} == {200}
    assert max(r["items"] for r in emulator.store.requests()) <= 100


def test_under_a_rate_limit_nothing_is_lost_and_429s_stay_few(emulator, capsys):
    emulator.faults.rate_limit = 20
    emulator.faults.retry_after = 1
    deals = [deal(n) for n in range(4000)]
    outcome = run_in_process(
        config_for(emulator, max_concurrent_requests=16), deals_messages(deals), capsys
    )
    assert outcome.exit_code == 0
    assert len(emulator.store.deals()) == 4000
    statuses = [r["status"] for r in emulator.store.requests()]
    assert statuses.count(200) == 40
    # A 429 costs at most the requests in flight when it came: 16, then 8 (the window halved);
    # after that the pace holds. Busy or not, the machine changes only how many were in flight.
    # Retrying without waiting and without slowing down cost 28 to 76.
    assert statuses.count(429) <= 16 + 8


def test_one_connection_per_request_in_flight_is_kept_alive(emulator, caplog):
    # requests pools 10 connections. Past that, each of 16 answers arriving together closed
    # its connection (with a "Connection pool is full" warning), and the next round opened new
    # ones: a TLS handshake each against Recotap.
    emulator.faults.latency_ms = 100
    client = RecotapClient(emulator.url, emulator.api_key, throttle=Throttle(16))
    for round_ in range(2):
        with ThreadPoolExecutor(16) as pool:
            batches = [[deal(f"{round_}-{n}")] for n in range(16)]
            replies = list(pool.map(partial(client.push, DEALS), batches))
        assert len(replies) == 16
    client.close()

    assert len(emulator.store.deals()) == 32
    # 16 when the 16 requests of the first round overlap, fewer on a machine too busy for that;
    # never a new connection for the second round.
    assert emulator.connections_accepted <= 16
    assert "Connection pool is full" not in caplog.text


def test_a_job_that_comes_after_keys_goes_only_once_the_jobs_holding_them_have_landed():
    # A window of one: the job holding ("accounts", "a") is in flight; the job that comes
    # after it goes once it has landed, never before, and a job with nothing to wait for
    # still goes.
    dispatcher = Dispatcher(Throttle(1))
    release = threading.Event()
    order = []

    def holder():
        assert release.wait(5)
        order.append("holder")

    dispatcher.submit(frozenset({("accounts", "a")}), holder, lambda: None)
    dispatcher.submit(
        frozenset({("deals", "1")}),
        lambda: order.append("after"),
        lambda: None,
        after=frozenset({("accounts", "a")}),
    )
    dispatcher.submit(frozenset({("deals", "2")}), lambda: order.append("other"), lambda: None)
    time.sleep(0.1)
    assert order == []  # the holder fills the window of one
    release.set()
    dispatcher.wait_all()
    dispatcher.close()
    assert order.index("holder") < order.index("after")
    assert sorted(order) == ["after", "holder", "other"]


def test_jobs_waiting_for_the_jobs_they_come_after_leave_the_reader_its_places():
    # Window 2, lookahead 2: one job in flight holds ("accounts", "a"), two jobs wait for it.
    # Waiting, they take no place: the reader can still hand over 3 more jobs at once (with
    # the waiting two counted, it could hand over one).
    throttle = Throttle(2)
    dispatcher = Dispatcher(throttle)
    release = threading.Event()
    done = []
    held = frozenset({("accounts", "a")})
    dispatcher.submit(held, lambda: release.wait(20), lambda: None)
    for n in (1, 2):
        dispatcher.submit(
            frozenset({("deals", str(n))}), lambda n=n: done.append(n), lambda: None, after=held
        )
    handed = []

    def reader():
        for n in range(3):
            dispatcher.submit(
                frozenset({("other", str(n))}), lambda: release.wait(20), lambda: None
            )
            handed.append(n)

    reading = threading.Thread(target=reader)
    reading.start()
    wait_until(lambda: handed == [0, 1, 2], "three jobs handed over while two wait", timeout=5)
    assert done == []  # the waiting two still wait
    release.set()
    reading.join(timeout=5)
    dispatcher.wait_all()
    dispatcher.close()
    assert sorted(done) == [1, 2]


def test_a_429_after_fewer_successes_than_a_window_pauses_but_sets_no_pace():
    # The run's first request (the custom-field listing, say) went through, the next got a
    # 429: one success in the second before says nothing of the rate Recotap allows.
    clock = FakeClock()
    throttle = Throttle(8, clock=clock)
    throttle.on_success()
    throttle.on_throttled(1.0)
    assert throttle.rate is None
    assert throttle.window == 4
    clock.now += 2
    for _ in range(8):
        throttle.on_success()
    throttle.on_throttled(1.0)  # a later 429, after a window of successes: a pace
    assert throttle.rate == pytest.approx(0.95 * 8)
