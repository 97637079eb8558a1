"""Proof of the delivery guarantees: thousands of records through a faulty API, a kill in the
middle, a rerun from the last STATE, and nothing lost, nothing duplicated, no STATE ahead."""

from __future__ import annotations

import contextlib
import io
import json
import signal
import threading
from dataclasses import dataclass

from support import LiveTarget, config_for, record, schema, state, to_lines, write_config

from target_recotap.rejects import REJECTION_KEY
from target_recotap.target import TargetRecotap

DEAL_COUNT = 3000
DISTINCT_DEALS = 1200
PIPELINES = 12
STATE_EVERY = 50


@dataclass(frozen=True)
class TapRecord:
    offset: int
    body: dict
    valid: bool


def tap_deals() -> list[TapRecord]:
    """Deals as a CRM tap would emit them: each ID updated a few times, amounts rising."""
    records = []
    for offset in range(DEAL_COUNT):
        deal_id = f"deal-{(offset * 7) % DISTINCT_DEALS}"
        valid = offset % 53 != 0  # about 2% carry an email Recotap refuses
        body = {
            "externalDealId": deal_id,
            "name": f"Deal {deal_id}",
            "amount": offset,
            "stageId": f"p{offset % PIPELINES}-s{offset % 3}",
            "pipelineId": f"p{offset % PIPELINES}",
            "closedDate": f"2026-{1 + offset % 12:02d}-15T12:00:00+02:00",
            "ownerEmail": "owner@example.com" if valid else f"owner-{offset}(at)example",
        }
        records.append(TapRecord(offset, body, valid))
    return records


def tap_messages(from_offset: int = 0) -> list[dict]:
    """The tap's output when resumed from a STATE ``{"offset": n}``: deals from ``n``, then
    every pipeline (a full-table stream). Pipelines come last: a STATE after a pipeline record
    is held to the end of input, when all its stages are known."""
    stages = [
        record(
            "deal_stages",
            {
                "pipelineId": f"p{p}",
                "pipelineLabel": f"P{p}",
                "stageId": f"p{p}-s{s}",
                "label": f"S{s}",
            },
        )
        for s in range(3)
        for p in range(PIPELINES)
    ]
    messages = [schema("deals")]
    for item in tap_deals()[from_offset:]:
        messages.append(record("deals", item.body))
        if (item.offset + 1) % STATE_EVERY == 0:
            messages.append(state({"offset": item.offset + 1}))
    return [*messages, schema("deal_stages"), *stages, state({"offset": DEAL_COUNT})]


def expected_store() -> dict[str, int]:
    """externalDealId -> the amount of its latest valid version."""
    latest: dict[str, int] = {}
    for item in tap_deals():
        if item.valid:
            latest[item.body["externalDealId"]] = item.body["amount"]
    return latest


def harsh_faults(emulator, latency_ms):
    faults = emulator.faults
    faults.seed = 7
    faults.rate_429 = 0.05
    faults.error_rate = 0.05
    faults.lose_rate = 0.03
    faults.retry_after = 0
    faults.latency_ms = latency_ms


def test_killed_run_then_rerun_from_its_last_state_loses_and_duplicates_nothing(emulator, tmp_path):
    harsh_faults(emulator, latency_ms=25)
    dead_letter = tmp_path / "rejected.jsonl"
    config = write_config(
        tmp_path,
        config_for(emulator, dead_letter_path=str(dead_letter), max_rejected_records=DEAL_COUNT),
    )

    first = LiveTarget(config)
    feeder = threading.Thread(target=_feed, args=(first, tap_messages()), daemon=True)
    feeder.start()
    states = [first.next_state() for _ in range(6)]
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(timeout=30)
    last = states[-1]["offset"]
    assert last < DEAL_COUNT, "the first run ended before it could be killed"

    # No STATE ahead of the data: everything before the last STATE is in the store (at that
    # version or a later one, since later batches may have landed before the kill).
    stored = {k: v["amount"] for k, v in emulator.store.deals().items()}
    for item in tap_deals()[:last]:
        if item.valid:
            assert stored[item.body["externalDealId"]] >= item.body["amount"]

    second = LiveTarget(config)
    second.send(tap_messages(from_offset=last))
    code, rest, log = second.finish(timeout=120)
    assert code == 0, log
    assert rest[-1] == {"offset": DEAL_COUNT}

    stored = {k: v["amount"] for k, v in emulator.store.deals().items()}
    assert stored == expected_store()
    pipelines = emulator.store.pipelines()
    assert sorted(pipelines) == sorted(f"p{p}" for p in range(PIPELINES))
    assert all(len(p["stages"]) == 3 for p in pipelines.values())

    # Rejected records are exactly the invalid ones (some twice: rejected again on the rerun).
    rejected = {
        (m["record"]["externalDealId"], m["record"]["amount"])
        for m in map(json.loads, dead_letter.read_text().splitlines())
        if m["type"] == "RECORD" and REJECTION_KEY in m
    }
    invalid = {(i.body["externalDealId"], i.body["amount"]) for i in tap_deals() if not i.valid}
    assert rejected == invalid
    faults_seen = {r["status"] for r in emulator.store.requests()}
    assert {429, 200} <= faults_seen
    assert faults_seen & {500, 502, 503, 504}
    assert any(r["lost"] for r in emulator.store.requests())


class SnapshotTarget(TargetRecotap):
    """Keeps, for each STATE written, the emulator's deals at that moment."""

    emulator = None

    def write_state(self, state_value):
        stored = {k: v["amount"] for k, v in self.emulator.store.deals().items()}
        self.snapshots.append((state_value, stored))
        super().write_state(state_value)


def test_under_faults_every_state_written_was_backed_by_the_data(emulator, capsys):
    harsh_faults(emulator, latency_ms=0)
    SnapshotTarget.emulator = emulator
    target = SnapshotTarget(config=config_for(emulator, max_rejected_records=DEAL_COUNT))
    target.snapshots = []
    assert target.run(io.StringIO(to_lines(tap_messages()))) == 0
    capsys.readouterr()
    deals = tap_deals()
    assert target.snapshots[-1][0] == {"offset": DEAL_COUNT}
    # STATEs came as batches settled, not only at the end.
    assert len(target.snapshots) >= 3
    for state_value, stored in target.snapshots:
        for item in deals[: state_value["offset"]]:
            if item.valid:
                assert stored[item.body["externalDealId"]] >= item.body["amount"]


def _feed(target: LiveTarget, messages: list[dict]) -> None:
    with contextlib.suppress(BrokenPipeError, ValueError):  # killed while feeding: expected
        target.send(messages)
