"""A sink on its own: handed a context with a fake client, no emulator and no input to read.

What a sink decides (what goes in one request, what settles when, what is rejected and why) is
judged here through its ledger and its fake client's requests; the same paths through the
real client and the emulator are in test_deals.py and test_deal_stages.py.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from singer_sdk import Target

from target_recotap.client import EndpointStats, Reply
from target_recotap.endpoints import DEALS, PIPELINES, Endpoint
from target_recotap.errors import PipelineConflict
from target_recotap.flow import Dispatcher, Throttle
from target_recotap.rejects import RejectLog
from target_recotap.settlement import SettlementLedger
from target_recotap.sinks import DealsSink, DealStagesSink, InputProgress, SinkContext

DEAL_SCHEMA = {
    "type": "object",
    "properties": {
        "externalDealId": {"type": "string"},
        "name": {"type": "string"},
        "amount": {"type": "number"},
    },
}
PIPELINE_SCHEMA = {
    "type": "object",
    "properties": {
        "pipelineId": {"type": "string"},
        "pipelineLabel": {"type": "string"},
        "stageId": {"type": "string"},
        "stageLabel": {"type": "string"},
    },
}


class FakeClient:
    """Answers every item written, but a deal whose name is in ``refuse``; keeps each request."""

    def __init__(
        self, refuse: frozenset[str] = frozenset(), existing: frozenset[str] = frozenset()
    ) -> None:
        self.refuse = refuse
        self.existing = existing  # pipelines Recotap holds: a request with one is refused 409
        self.deal_requests: list[list[dict[str, Any]]] = []
        self.pipeline_requests: list[list[dict[str, Any]]] = []
        self.stats = {DEALS.path: EndpointStats(requests=3, retries=1, seconds=0.5)}

    def stored_pipelines(self) -> dict[str, dict[str, Any]]:
        return {pipeline_id: {"pipelineId": pipeline_id} for pipeline_id in self.existing}

    def push(self, endpoint: Endpoint, items: list[dict[str, Any]]) -> Reply:
        if endpoint is PIPELINES:
            self.pipeline_requests.append(items)
            conflicting = {p["pipelineId"] for p in items} & self.existing
            if conflicting:
                raise PipelineConflict("409", conflicting)
            return Reply(
                {"results": [{"pipelineId": p["pipelineId"], "status": "created"} for p in items]}
            )
        self.deal_requests.append(items)
        return Reply(
            {
                "results": [
                    {"externalDealId": d["externalDealId"], "status": "failed", "error": "no"}
                    if d.get("name") in self.refuse
                    else {"externalDealId": d["externalDealId"], "status": "upserted"}
                    for d in items
                ]
            }
        )


class Host(Target):
    """The least an SDK sink is built from (a config, a logger), handing a context."""

    name = "target-host"
    config_jsonschema = {"type": "object", "properties": {}}  # noqa: RUF012

    def __init__(self, context: SinkContext) -> None:
        self.sink_context = context
        super().__init__(config={})


class Run:
    """What a target hands its sinks, built by hand around a fake client."""

    def __init__(self, client: FakeClient) -> None:
        self.client = client
        self.states: list[dict] = []
        self.ledger = SettlementLedger(self.states.append)
        self.rejects = RejectLog(logging.getLogger("test-sinks"))
        self.dispatcher = Dispatcher(Throttle(2))
        self.input = InputProgress()
        self.target = Host(
            SinkContext(client, self.dispatcher, self.ledger, self.rejects, self.input)
        )

    def sink(self, kind: type, stream: str, schema: dict, keys: list[str]) -> Any:
        sink = kind(self.target, stream, schema, keys)
        sink.use_schema(stream, schema, keys)
        return sink

    def read(self, sink: Any, record: dict) -> None:
        """As the target routes a record: numbered, accepted, then let go by the reader."""
        received = self.ledger.receive({"stream": sink.stream_name, "record": record}, "", 0)
        sink.accept(record, received)
        self.ledger.settle([received])

    def finish(self, sink: Any) -> None:
        self.input.finished = self.input.complete = True
        sink.process_batch({})
        self.dispatcher.wait_all()
        self.dispatcher.close()


def test_a_deals_sink_merges_versions_and_its_state_waits_for_the_request():
    run = Run(FakeClient())
    sink = run.sink(DealsSink, "deals", DEAL_SCHEMA, ["externalDealId"])
    run.read(sink, {"externalDealId": "d1", "name": "First", "amount": 5})
    run.read(sink, {"externalDealId": "d1", "name": "Second"})  # amount left out: kept
    run.ledger.state({"after": 2})
    assert run.states == []  # both records are buffered: unsettled
    run.finish(sink)
    assert run.client.deal_requests == [[{"externalDealId": "d1", "name": "Second", "amount": 5}]]
    assert run.states == [{"after": 2}]
    assert (sink.stats.received, sink.stats.sent, sink.stats.merged) == (2, 1, 1)


def test_a_refused_merged_deal_is_sent_again_version_by_version():
    run = Run(FakeClient(refuse=frozenset({"Bad"})))
    sink = run.sink(DealsSink, "deals", DEAL_SCHEMA, ["externalDealId"])
    run.read(sink, {"externalDealId": "d1", "name": "Good", "amount": 1})
    run.read(sink, {"externalDealId": "d1", "name": "Bad"})
    run.ledger.state({"after": 2})
    run.finish(sink)
    assert [[d["name"] for d in request] for request in run.client.deal_requests] == [
        ["Bad"],  # the merge: the later name
        ["Good"],
        ["Bad"],
    ]
    assert run.rejects.total == 1
    assert run.states == [{"after": 2}]  # the rejected version settles too


def test_an_invalid_record_is_rejected_on_arrival_and_holds_nothing():
    run = Run(FakeClient())
    sink = run.sink(DealsSink, "deals", DEAL_SCHEMA, ["externalDealId"])
    run.read(sink, {"externalDealId": "d1", "name": "A", "amount": "lots"})
    run.ledger.state({"after": 1})
    assert run.states == [{"after": 1}]
    assert run.client.deal_requests == []
    assert run.rejects.total == 1


@pytest.mark.parametrize("complete", [True, False])
def test_a_pipeline_waits_for_the_end_of_a_complete_input(complete):
    run = Run(FakeClient())
    sink = run.sink(DealStagesSink, "deal_stages", PIPELINE_SCHEMA, ["pipelineId", "stageId"])
    stage = {"pipelineId": "p1", "pipelineLabel": "Sales", "stageId": "s1", "stageLabel": "New"}
    run.read(sink, stage)
    run.ledger.state({"after": 1})
    sink.process_batch({})  # a periodic drain: the input goes on
    assert run.client.pipeline_requests == []
    run.input.finished = True
    run.input.complete = complete  # False: the input stopped at a bad line
    sink.process_batch({})
    run.dispatcher.wait_all()
    run.dispatcher.close()
    if complete:
        assert [p["pipelineId"] for p in run.client.pipeline_requests[0]] == ["p1"]
        assert run.states == [{"after": 1}]
    else:  # never sent, so never settled: no STATE passes it
        assert run.client.pipeline_requests == []
        assert run.states == []


def test_each_sink_writes_its_own_summary_line(caplog):
    run = Run(FakeClient(refuse=frozenset({"Bad"})))
    deals = run.sink(DealsSink, "deals", DEAL_SCHEMA, ["externalDealId"])
    pipelines = run.sink(DealStagesSink, "deal_stages", PIPELINE_SCHEMA, ["pipelineId"])
    run.read(deals, {"externalDealId": "d1", "name": "Good"})
    run.read(deals, {"externalDealId": "d2", "name": "Bad"})
    run.input.finished = run.input.complete = True
    deals.process_batch({})
    pipelines.process_batch({})
    run.finish(deals)
    with caplog.at_level(logging.INFO):
        deals.log_summary()
        pipelines.log_summary()
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("Summary")] == [
        "Summary deals: received 2, sent 2, upserted 1, skipped as existing 0, rejected 1, "
        "merged duplicates 0, requests 3, retries 1, request-seconds 0.5",
        "Summary deal_stages: received 0, sent 0, created 0, skipped as existing 0, rejected 0, "
        "merged duplicates 0, requests 0, retries 0, request-seconds 0.0",
    ]


def stage(pipeline_id: str, stage_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "pipelineId": pipeline_id,
        "pipelineLabel": "Sales",
        "stageId": stage_id,
        "stageLabel": "New",
        **fields,
    }


def test_a_409_skips_the_pipelines_that_exist_and_sends_the_rest():
    run = Run(FakeClient(existing=frozenset({"p1"})))
    sink = run.sink(DealStagesSink, "deal_stages", PIPELINE_SCHEMA, ["pipelineId", "stageId"])
    run.read(sink, stage("p1", "s1"))
    run.read(sink, stage("p2", "s1"))
    run.ledger.state({"after": 2})
    run.finish(sink)
    assert [[p["pipelineId"] for p in r] for r in run.client.pipeline_requests] == [
        ["p1", "p2"],
        ["p2"],
    ]
    assert (sink.stats.skipped_existing, sink.stats.accepted) == (1, 1)
    assert run.states == [{"after": 2}]


def test_a_pipeline_held_back_by_a_rejected_record_is_rejected_whole_and_settles():
    run = Run(FakeClient())
    sink = run.sink(DealStagesSink, "deal_stages", PIPELINE_SCHEMA, ["pipelineId", "stageId"])
    run.read(sink, stage("p1", "s1"))
    run.read(sink, stage("p1", "s2", stageLabel=""))  # no label: rejected on arrival
    run.ledger.state({"after": 2})
    assert run.states == []  # the first record is held with its pipeline
    run.finish(sink)
    assert run.client.pipeline_requests == []
    assert run.rejects.total == 2
    assert run.states == [{"after": 2}]


def test_a_deal_and_a_pipeline_that_share_an_id_do_not_wait_for_each_other():
    deal_sent = threading.Event()

    class Client(FakeClient):
        pipeline_saw_the_deal = False

        def push(self, endpoint: Endpoint, items: list[dict[str, Any]]) -> Reply:
            if endpoint is PIPELINES:  # in flight until the deal has gone, or 10 s
                self.pipeline_saw_the_deal = deal_sent.wait(timeout=10)
            else:
                deal_sent.set()
            return super().push(endpoint, items)

    client = Client()
    run = Run(client)
    stages = run.sink(DealStagesSink, "deal_stages", PIPELINE_SCHEMA, ["pipelineId", "stageId"])
    deals = run.sink(DealsSink, "deals", DEAL_SCHEMA, ["externalDealId"])
    run.read(stages, {"pipelineId": "7", "pipelineLabel": "S", "stageId": "s", "stageLabel": "N"})
    run.input.finished = run.input.complete = True
    stages.process_batch({})
    run.read(deals, {"externalDealId": "7", "name": "Seven"})
    deals.process_batch({})
    run.dispatcher.wait_all()
    run.dispatcher.close()
    assert client.pipeline_saw_the_deal
    assert client.deal_requests == [[{"externalDealId": "7", "name": "Seven"}]]
