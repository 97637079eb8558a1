"""Failures in the middle of a run: a signal, a revoked key, Recotap going away, a second run at
the same time."""

from __future__ import annotations

import concurrent.futures
import signal

import pytest
from support import (
    LiveTarget,
    config_for,
    deal,
    pipeline,
    record,
    run_cli,
    schema,
    state,
    states_from,
    wait_until,
    write_config,
)


def batch(start, count=100):
    return [record("deals", deal(n)) for n in range(start, start + count)]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_signal_stops_sending_and_writes_no_state_beyond_what_is_settled(
    emulator, tmp_path, stop
):
    # README, exit codes: "1 | stopped early: ... or SIGINT/SIGTERM. The last STATE written
    # still holds (the stop line says whether one was)".
    emulator.faults.latency_ms = 1500
    target = LiveTarget(write_config(tmp_path, config_for(emulator)))
    target.send([schema("deals"), *batch(0), state({"s": "A"})])
    assert target.next_state() == {"s": "A"}
    target.send([*batch(100), state({"s": "B"}), *batch(200, 10), state({"s": "C"})])
    wait_until(lambda: len(emulator.store.requests()) >= 2, "the second batch in flight")
    target.process.send_signal(stop)
    code, states, log = target.finish()
    assert code == 1
    # The batch in flight may still complete, and then its STATE is true; the last ten deals
    # were never sent, so C is never written.
    assert states in ([], [{"s": "B"}])
    if states:
        assert {f"deal-{n}" for n in range(200)} <= set(emulator.store.deals())
    assert not {f"deal-{n}" for n in range(200, 210)} & set(emulator.store.deals())
    [stopped] = [line for line in log.splitlines() if "| ERROR" in line]
    assert stopped.endswith(
        f"Stopped by {stop.name}: records not yet confirmed were not checkpointed. "
        "Run again to continue from the last STATE written"
    )
    assert "Traceback" not in log


def test_key_revoked_mid_run_stops_with_a_clear_message(emulator, tmp_path):
    target = LiveTarget(write_config(tmp_path, config_for(emulator)))
    target.send([schema("deals"), *batch(0), state({"s": "A"})])
    assert target.next_state() == {"s": "A"}
    emulator.api_key = "a-new-key-was-issued"
    target.send([*batch(100), state({"s": "B"})])
    code, states, log = target.finish()
    assert code == 1
    assert states == []
    assert "Recotap refused the API key (401 Invalid API key): check the api_key setting" in log
    assert "Run again to continue from the last STATE written" in log
    assert len(emulator.store.deals()) == 100


def test_recotap_gone_mid_run_is_retried_naming_the_address_that_refuses(emulator, tmp_path):
    port = emulator.port
    target = LiveTarget(write_config(tmp_path, config_for(emulator, max_retries=3)))
    target.send([schema("deals"), *batch(0), state({"s": "A"})])
    assert target.next_state() == {"s": "A"}
    emulator.stop()  # the port now refuses connections, as a host whose service is down does
    target.send([*batch(100), state({"s": "B"})])
    code, states, log = target.finish()
    assert code == 1
    assert states == []
    refused = f"cannot connect to 127.0.0.1:{port} (connection refused)"
    # Requests succeeded before, so the address is right: an outage, retried.
    assert f"POST /deals: {refused}; retry 1 of 3 in " in log
    assert (
        f"POST /deals failed 4 times, the last: {refused}; Recotap may be down: run again later"
    ) in log
    assert "check the api_url setting" not in log
    assert "Traceback" not in log


def test_two_runs_at_once_against_one_account_both_succeed(emulator, tmp_path):
    messages = [
        schema("deal_stages"),
        *[record("deal_stages", pipeline(f"p{i}")) for i in range(30)],
        schema("deals"),
        *batch(0, 300),
        state({"s": "end"}),
    ]
    config = write_config(tmp_path, config_for(emulator))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: run_cli(["--config", str(config)], messages), range(2)))
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert states_from(run.stdout) == [{"s": "end"}]
    assert len(emulator.store.pipelines()) == 30
    assert len(emulator.store.deals()) == 300
    # Each pipeline was created by one run and found existing by the other.
    created = [int(r.stderr.split("created ")[1].split(",")[0]) for r in runs]
    skipped = [int(r.stderr.split("skipped as existing ")[1].split(",")[0]) for r in runs]
    assert sum(created) == 30
    assert sum(skipped) == 30
