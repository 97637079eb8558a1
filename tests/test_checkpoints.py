"""A STATE is written only once every record before it is settled, and as soon as it is."""

from __future__ import annotations

import time

from support import config_for, deal, pipeline, record, schema, state, to_lines

from target_recotap.checkpoints import Checkpoints
from target_recotap.target import TargetRecotap


def test_waiting_state_is_written_once_its_records_settle():
    written = []
    checkpoints = Checkpoints(written.append)
    checkpoints.received({"s": 1}, after_record=3)
    checkpoints.advance(first_unsettled=2)
    assert written == []
    checkpoints.advance(first_unsettled=3)  # record 3 itself is not settled yet
    assert written == []
    checkpoints.advance(first_unsettled=4)
    assert written == [{"s": 1}]


def test_only_the_newest_safe_state_is_written_and_never_twice():
    written = []
    checkpoints = Checkpoints(written.append)
    checkpoints.received({"s": 1}, after_record=1)
    checkpoints.received({"s": 2}, after_record=2)
    checkpoints.received({"s": 3}, after_record=9)
    checkpoints.advance(first_unsettled=5)
    assert written == [{"s": 2}]
    # s3 is overtaken by a repeat of s2 before it is safe: s2 stands, nothing to write.
    checkpoints.received({"s": 2}, after_record=9)
    checkpoints.advance(first_unsettled=None)
    assert written == [{"s": 2}]
    checkpoints.received({"s": 4}, after_record=9)
    checkpoints.advance(first_unsettled=None)
    assert written == [{"s": 2}, {"s": 4}]


class SnapshotTarget(TargetRecotap):
    """Records, for each STATE it writes, what the emulator held at that moment."""

    emulator = None
    snapshots: list

    def _write_state_message(self, state_value):
        stored = set(self.emulator.store.deals()) | set(self.emulator.store.pipelines())
        self.snapshots.append((state_value, stored))
        super()._write_state_message(state_value)


def gated_lines(messages, target, gates):
    """Yield the input lines; before line ``i`` in ``gates``, wait until the target has written
    ``gates[i]`` STATEs, so that a test can tell "after each batch" from "at the end"."""
    for index, line in enumerate(to_lines(messages).splitlines(keepends=True)):
        if index in gates:
            deadline = time.monotonic() + 10
            while len(target.snapshots) < gates[index] and time.monotonic() < deadline:
                time.sleep(0.005)
        yield line


def run_gated(emulator, messages, gates, **config):
    SnapshotTarget.emulator = emulator
    target = SnapshotTarget(config=config_for(emulator, **config))
    target.snapshots = []
    assert target.run(gated_lines(messages, target, gates)) == 0
    return target.snapshots


def test_each_state_follows_its_batch_and_is_never_ahead_of_the_data(emulator):
    messages = [
        schema("deals"),
        *[record("deals", deal(n)) for n in range(100)],
        state({"after": 99}),
        *[record("deals", deal(n)) for n in range(100, 200)],
        state({"after": 199}),
        *[record("deals", deal(n)) for n in range(200, 250)],
        state({"after": 249}),
    ]
    # Line 102 is the first record after the first STATE; line 203 the first after the second.
    snapshots = run_gated(emulator, messages, gates={102: 1, 203: 2})
    assert [s["after"] for s, _ in snapshots] == [99, 199, 249]
    for state_value, stored in snapshots:
        assert {f"deal-{n}" for n in range(state_value["after"] + 1)} <= stored
    # Written after each batch, not held to the end.
    assert [len(stored) for _, stored in snapshots] == [100, 200, 250]


def test_state_after_a_pipeline_waits_for_the_end_of_the_stream(emulator):
    messages = [
        schema("deals"),
        record("deals", deal(1)),
        state({"s": "after deal 1"}),
        schema("deal_stages"),
        record("deal_stages", pipeline("p1")),
        state({"s": "after pipeline"}),
        *[record("deals", deal(n)) for n in range(2, 150)],
        state({"s": "end"}),
    ]
    # The deals batch at record 101 settles deal 1, but the pipeline (record 2) holds every
    # later STATE until the end of input, when it is sent.
    snapshots = run_gated(emulator, messages, gates={106: 1})
    written = {s["s"]: stored for s, stored in snapshots}
    # "after pipeline" may be written at the end before "end" (if the pipeline settles before
    # the last deals batch), never earlier.
    assert [s["s"] for s, _ in snapshots] in (
        ["after deal 1", "end"],
        ["after deal 1", "after pipeline", "end"],
    )
    assert "p1" not in written["after deal 1"]
    assert len(written["after deal 1"]) == 100
    assert "p1" in written.get("after pipeline", written["end"])


def test_a_stopped_run_writes_no_state_after_its_stop_line():
    # The stop line says which STATE was written last; a request landing after it must not
    # make that untrue.
    written = []
    checkpoints = Checkpoints(written.append)
    checkpoints.received({"s": 1}, after_record=1)
    checkpoints.stop()
    checkpoints.advance(first_unsettled=None)
    assert written == []
    assert checkpoints.last_written is None


def test_a_state_waits_for_the_record_just_before_it_while_that_is_in_flight(emulator):
    # One deal a request, each answered after 200 ms: when a STATE is read, the deal just
    # before it is in flight and every earlier one has landed, the exact boundary.
    emulator.faults.latency_ms = 200
    messages = [schema("deals")]
    for n in range(1, 4):
        messages += [record("deals", deal(n)), state({"after": n})]
    # Before each deal after the first: the STATE before it is written.
    snapshots = run_gated(emulator, messages, gates={3: 1, 5: 2}, batch_size_rows=1)
    assert [(s["after"], stored) for s, stored in snapshots] == [
        (n, {f"deal-{i}" for i in range(1, n + 1)}) for n in range(1, 4)
    ]
