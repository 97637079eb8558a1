"""A STATE is written only once every record before it is settled, and as soon as it is."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st
from support import config_for, deal, pipeline, record, schema, state, to_lines

from target_recotap.settlement import Received, SettlementLedger
from target_recotap.target import TargetRecotap


def buffered(ledger: SettlementLedger, count: int) -> list[Received]:
    """Read ``count`` records, each routed to one sink that holds it."""
    records = []
    for _ in range(count):
        received = ledger.receive({}, "", 0)
        ledger.hold(received)
        ledger.settle([received])  # the reader lets go once it is routed
        records.append(received)
    return records


def test_waiting_state_is_written_once_its_records_settle():
    written = []
    ledger = SettlementLedger(written.append)
    first, second, third = buffered(ledger, 3)
    ledger.state({"s": 1})
    ledger.settle([first])
    assert written == []
    ledger.settle([second])  # record 3 itself is not settled yet
    assert written == []
    ledger.settle([third])
    assert written == [{"s": 1}]


def test_only_the_newest_safe_state_is_written_and_never_twice():
    written = []
    ledger = SettlementLedger(written.append)
    (first,) = buffered(ledger, 1)
    ledger.state({"s": 1})
    (second,) = buffered(ledger, 1)
    ledger.state({"s": 2})
    rest = buffered(ledger, 7)
    ledger.state({"s": 3})
    ledger.settle([first, second, *rest[:2]])
    assert written == [{"s": 2}]
    # s3 is overtaken by a repeat of s2 before it is safe: s2 stands, nothing to write.
    ledger.state({"s": 2})
    ledger.settle(rest[2:])
    assert written == [{"s": 2}]
    ledger.state({"s": 4})
    assert written == [{"s": 2}, {"s": 4}]


def test_a_record_held_by_two_sinks_settles_when_both_let_go():
    written = []
    ledger = SettlementLedger(written.append)
    received = ledger.receive({}, "", 0)
    ledger.hold(received)  # a stream map sends it to two streams
    ledger.hold(received)
    ledger.settle([received])  # routed
    ledger.state({"s": 1})
    ledger.settle([received])
    assert written == []
    ledger.settle([received])
    assert written == [{"s": 1}]


# A run as the ledger sees it: records read (each held by 0 to 2 sinks), STATEs read, and
# holds let go in any order (batches landing out of order, records rejected).
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("record"), st.integers(0, 2)),
        st.tuples(st.just("state"), st.just(0)),
        st.tuples(st.just("settle"), st.integers(0, 10**6)),
    ),
    max_size=60,
)


@given(STEPS)
def test_no_state_is_ahead_of_an_unsettled_record_and_the_newest_safe_one_is_written(steps):
    holders: dict[int, int] = {}  # the model: position -> holds not yet let go
    held: list[Received] = []  # one entry per hold not yet let go
    states: list[tuple[int, dict]] = []  # (records read before it, STATE)
    written: list[dict] = []

    def write(value):
        after = next(read for read, state_value in states if state_value is value)
        unsettled = [p for p, count in holders.items() if count and p <= after]
        assert unsettled == [], f"STATE {value} written with records {unsettled} unsettled"
        written.append(value)

    ledger = SettlementLedger(write)
    read = 0
    for kind, number in steps:
        if kind == "record":
            read += 1
            holders[read] = 1
            received = ledger.receive({}, "", read)
            for _ in range(number):
                holders[read] += 1
                ledger.hold(received)
                held.append(received)
            holders[read] -= 1  # routed
            ledger.settle([received])
        elif kind == "state":
            states.append((read, {"after": read, "n": len(states)}))
            ledger.state(states[-1][1])
        elif held:
            received = held.pop(number % len(held))
            holders[received.position] -= 1
            ledger.settle([received])
        oldest_unsettled = min((p for p, count in holders.items() if count), default=read + 1)
        safe = [value for after, value in states if after < oldest_unsettled]
        assert ledger.last_written == (safe[-1] if safe else None)
    assert [value["n"] for value in written] == sorted({value["n"] for value in written})


class SnapshotTarget(TargetRecotap):
    """Records, for each STATE it writes, what the emulator held at that moment."""

    emulator = None
    snapshots: list

    def write_state(self, state_value):
        stored = set(self.emulator.store.deals()) | set(self.emulator.store.pipelines())
        self.snapshots.append((state_value, stored))
        super().write_state(state_value)


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
    ledger = SettlementLedger(written.append)
    (received,) = buffered(ledger, 1)
    ledger.state({"s": 1})
    ledger.stop()
    ledger.settle([received])
    assert written == []
    assert ledger.last_written is None


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


def test_records_are_numbered_as_read_and_keep_their_line_and_its_number():
    ledger = SettlementLedger(lambda state: None)
    first = ledger.receive({"type": "RECORD"}, '{"type": "RECORD"}', 3)
    second = ledger.receive({"type": "RECORD", "n": 2}, "line 7", 7)
    assert (first.position, first.line, first.line_number) == (1, '{"type": "RECORD"}', 3)
    assert (second.position, second.message, second.line, second.line_number) == (
        2,
        {"type": "RECORD", "n": 2},
        "line 7",
        7,
    )
