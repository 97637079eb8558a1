"""POST /sales-activities' results as outcomes, and the sales_activities sink on its own, handed
a context with a fake client (as in test_sinks.py): what goes in a request, what settles when,
how each record is counted."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from test_sinks import Run

from target_recotap.client import EndpointStats, Reply
from target_recotap.endpoints import ACTIVITIES, Accepted, Endpoint, Existing, Rejected, Skipped
from target_recotap.errors import RequestRejected, Violation
from target_recotap.sinks import SalesActivitiesSink

SCHEMA = {"type": "object", "properties": {}}


def activity(key: str, **fields: Any) -> dict[str, Any]:
    return {
        "externalActivityId": key,
        "activityType": "call",
        "occurredAt": "2026-04-22T10:30:00Z",
        "domain": "acme.com",
        "ownerEmail": "jane@yourcompany.com",
        "contacts": [{"email": "john@acme.com"}],
        **fields,
    }


def test_each_result_reads_as_created_held_already_skipped_or_rejected():
    data = {
        "results": [
            {"externalActivityId": "a", "status": "created"},
            {"externalActivityId": "b", "status": "skipped"},
            {"externalActivityId": "c", "status": "failed", "error": "Duplicate activity c"},
            {"externalActivityId": "d", "status": "failed", "error": "ID d already exists"},
            {"externalActivityId": "e", "status": "failed", "error": "has already been stored"},
            {"externalActivityId": "f", "status": "failed", "error": "domain is not an account"},
            {"externalActivityId": "g", "status": "upserted"},
        ]
    }
    assert ACTIVITIES.outcomes(data, "abcdefgh") == {
        "a": Accepted(),
        "b": Skipped("status 'skipped'"),
        "c": Existing("Duplicate activity c"),
        "d": Existing("ID d already exists"),
        "e": Existing("has already been stored"),
        "f": Rejected("Recotap did not create it: domain is not an account"),
        "g": Rejected("Recotap did not create it: status 'upserted'"),
        "h": Rejected(
            "Recotap's answer left this sales activity out: outcome unknown", answered=False
        ),
    }


class FakeRecotap:
    """Creates each activity whose ID it does not hold yet and fails the rest as duplicates, as
    Recotap does; fails an activity whose subject is "Fail", skips one whose subject is "Skip",
    and refuses (400) a request holding one whose subject is "Refuse". Keeps every request;
    ``release``, once cleared, holds every request until it is set."""

    def __init__(self) -> None:
        self.stored: dict[str, dict[str, Any]] = {}
        self.requests: list[list[dict[str, Any]]] = []
        self.release = threading.Event()
        self.release.set()
        self.stats = {ACTIVITIES.path: EndpointStats(requests=2, retries=0, seconds=0.25)}

    def stored_pipelines(self) -> dict[str, dict[str, Any]]:
        return {}

    def push(self, endpoint: Endpoint, items: list[dict[str, Any]]) -> Reply:
        assert endpoint is ACTIVITIES
        self.requests.append(items)
        assert self.release.wait(timeout=10)
        if any(item.get("subject") == "Refuse" for item in items):
            rule = Violation("activities.0.subject", {"isRefused": "subject is refused"})
            raise RequestRejected("400", 400, [rule])
        return Reply({"results": [self._result(item) for item in items]})

    def _result(self, item: dict[str, Any]) -> dict[str, Any]:
        key = item["externalActivityId"]
        if item.get("subject") == "Skip":
            return {"externalActivityId": key, "status": "skipped"}
        if item.get("subject") == "Fail":
            return {"externalActivityId": key, "status": "failed", "error": "owner unknown"}
        if key in self.stored:
            error = f"Activity with externalActivityId '{key}' already exists"
            return {"externalActivityId": key, "status": "failed", "error": error}
        self.stored[key] = item
        return {"externalActivityId": key, "status": "created"}


def sink_of(run: Run) -> SalesActivitiesSink:
    sink: SalesActivitiesSink = run.sink(
        SalesActivitiesSink, "sales_activities", SCHEMA, ["externalActivityId"]
    )
    return sink


def sent_subjects(client: FakeRecotap) -> list[list[str | None]]:
    return [[item.get("subject") for item in request] for request in client.requests]


def test_a_later_record_with_the_id_of_one_in_flight_waits_for_it_and_its_state_with_it():
    client = FakeRecotap()
    run = Run(client)  # type: ignore[arg-type]
    sink = sink_of(run)
    client.release.clear()
    run.read(sink, activity("a", subject="First"))
    sink.process_batch({})  # in flight, held up
    run.read(sink, activity("a", subject="Later"))
    run.ledger.state({"after": 2})
    sink.process_batch({})  # nothing to send: the later record waits for the first
    assert run.states == []
    client.release.set()
    run.finish(sink)
    assert sent_subjects(client) == [["First"]]
    assert client.stored["a"]["subject"] == "First"
    assert run.states == [{"after": 2}]
    stats = sink.stats
    assert (stats.received, stats.sent, stats.accepted, stats.skipped_existing) == (2, 1, 1, 1)
    assert run.rejects.total == 0


def test_later_records_that_waited_for_the_first_are_named_in_the_debug_log(caplog):
    client = FakeRecotap()
    run = Run(client)  # type: ignore[arg-type]
    sink = sink_of(run)
    client.release.clear()
    run.read(sink, activity("a", subject="First"))
    sink.process_batch({})
    run.read(sink, activity("a", subject="Later"))
    run.read(sink, activity("a", subject="Last"))
    client.release.set()
    with caplog.at_level(logging.DEBUG):
        run.finish(sink)
    assert sent_subjects(client) == [["First"]]
    assert (
        "Sales activity 'a': 2 later records with its ID skipped, as Recotap holds it"
    ) in caplog.messages


def test_a_later_record_whose_first_has_landed_is_sent_and_skipped_as_existing():
    client = FakeRecotap()
    run = Run(client)  # type: ignore[arg-type]
    sink = sink_of(run)
    run.read(sink, activity("a", subject="First"))
    sink.process_batch({})
    run.dispatcher.wait_all()  # landed
    run.read(sink, activity("a", subject="Later"))
    run.ledger.state({"after": 2})
    run.finish(sink)
    assert sent_subjects(client) == [["First"], ["Later"]]
    assert client.stored["a"]["subject"] == "First"
    assert run.states == [{"after": 2}]
    assert (sink.stats.sent, sink.stats.accepted, sink.stats.skipped_existing) == (2, 1, 1)
    assert run.rejects.total == 0


@pytest.mark.parametrize("first", ["Fail", "Refuse", "Skip"])
def test_when_recotap_does_not_store_the_first_the_later_record_goes_in_its_place(first):
    client = FakeRecotap()
    run = Run(client)  # type: ignore[arg-type]
    sink = sink_of(run)
    run.read(sink, activity("a", subject=first))
    run.read(sink, activity("b"))
    run.read(sink, activity("a", subject="Later"))
    run.read(sink, activity("a", subject="Last"))
    run.ledger.state({"after": 4})
    run.finish(sink)
    expected = [[first, None], ["Later"]]
    if first == "Refuse":  # halved to find the one to blame, which the later one follows
        expected = [[first, None], [first], ["Later"], [None]]
    assert sent_subjects(client) == expected
    assert client.stored["a"]["subject"] == "Later"
    assert run.states == [{"after": 4}]
    assert (sink.stats.accepted, sink.stats.skipped_existing) == (2, 1)
    assert run.rejects.total == (0 if first == "Skip" else 1)


def test_each_sink_line_counts_what_it_skipped_and_why(caplog):
    client = FakeRecotap()
    client.stored["held"] = activity("held")
    run = Run(client)  # type: ignore[arg-type]
    sink = sink_of(run)
    for record in [
        activity("new"),
        activity("held"),
        activity("skip", subject="Skip"),
        activity("skip-2", subject="Skip"),
        activity("m1", activityType="meeting"),
        activity("m2", activityType="meeting"),
        activity("bad", ownerEmail="jane"),
    ]:
        run.read(sink, record)
    run.ledger.state({"after": 7})
    assert run.states == []
    run.finish(sink)
    assert run.states == [{"after": 7}]
    caplog.clear()  # the rejection's warning
    with caplog.at_level(logging.INFO):
        sink.log_summary()
    assert [r.getMessage() for r in caplog.records] == [
        "Summary sales_activities: received 7, sent 4, created 1, skipped as existing 1, "
        "skipped by type 4 ('call' 2, 'meeting' 2), rejected 1, merged duplicates 0, "
        "requests 2, retries 0, request-seconds 0.2",
        "Skipped activityType 'meeting' in sales_activities (2 records), not sent: Recotap "
        "loads only 'call' and 'email' activities",
        "Recotap skipped activityType 'call' in sales_activities (2 records sent), as a type it "
        "does not load; the debug log has its words",
    ]


def test_recotap_s_words_for_an_activity_it_skipped_are_in_the_debug_log(caplog):
    client = FakeRecotap()
    run = Run(client)  # type: ignore[arg-type]
    sink = sink_of(run)
    run.read(sink, activity("skip", subject="Skip"))
    with caplog.at_level(logging.DEBUG):
        run.finish(sink)
    assert "Recotap skipped sales activity 'skip': status 'skipped'" in caplog.messages
