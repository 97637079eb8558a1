"""The accounts sink on its own, handed a fake client: what waits for what, what goes in a
request, when the run turns create-only, how custom fields are learnt, and what stops a run."""

from __future__ import annotations

import copy
import logging
import threading
from typing import Any

import pytest
from singer_sdk import Target
from singer_sdk.exceptions import MissingKeyPropertiesError
from test_sinks import Run

from target_recotap.client import Reply
from target_recotap.endpoints import ACCOUNTS, Endpoint, WriteMode
from target_recotap.errors import RequestRejected, SettingRefused, Violation
from target_recotap.settings import CONFIG_SCHEMA
from target_recotap.sinks import AccountsSink, SinkContext
from target_recotap.sinks.accounts import field_type

SCHEMA = {
    "type": "object",
    "properties": {
        "domain": {"type": "string"},
        "name": {"type": "string"},
        "customFields": {
            "type": "object",
            "properties": {"SEATS_C": {"type": "integer"}, "ON_C": {"type": "string"}},
        },
    },
}
UPSERT_REFUSED = Violation("upsert", {"whitelistValidation": "property upsert should not exist"})


class FakeAccountsApi:
    """Writes every account; refuses a body with ``upsert`` when ``older``; keeps each request
    body. Custom fields: ``fields`` are listed, ``created`` lists those created."""

    def __init__(self, *, older: bool = False, fields: tuple[str, ...] = ()) -> None:
        self.older = older
        self.fields = set(fields)
        self.bodies: list[dict[str, Any]] = []
        self.listings = 0
        self.created: list[dict[str, Any]] = []
        self.on_create: Any = None  # what a creation answers instead: False (409), or raises
        self.stats: dict = {}
        self.lock = threading.Lock()

    def push(self, endpoint: Endpoint, items: list[dict[str, Any]]) -> Reply:
        body = endpoint.body(items)
        with self.lock:
            self.bodies.append(body)
        if self.older and "upsert" in body:
            raise RequestRejected("400", 400, [UPSERT_REFUSED])
        return Reply({"results": [{"domain": a["domain"], "status": "created"} for a in items]})

    def stored_pipelines(self) -> dict[str, dict[str, Any]]:
        return {}

    def account_custom_fields(self) -> dict[str, dict[str, Any]]:
        self.listings += 1
        return {key: {"key": key} for key in self.fields}

    def create_account_custom_field(self, field: dict[str, Any]) -> bool:
        self.created.append(field)
        if callable(self.on_create):
            return bool(self.on_create(field))
        key = field["label"].replace(" ", "_").upper() + "_C"
        self.fields.add(key)
        return True


class Host(Target):
    """The least an SDK sink is built from, with this target's settings."""

    name = "target-host"
    config_jsonschema = copy.deepcopy(CONFIG_SCHEMA)  # the SDK adds to it in place

    def __init__(self, context: SinkContext, config: dict[str, Any]) -> None:
        self.sink_context = context
        super().__init__(config=config)


def accounts_run(
    client: FakeAccountsApi, schema: dict[str, Any] = SCHEMA, **config: Any
) -> tuple[Run, AccountsSink]:
    run = Run(client)  # type: ignore[arg-type]
    run.target = Host(
        SinkContext(client, run.dispatcher, run.ledger, run.rejects, run.input), config
    )
    return run, run.sink(AccountsSink, "accounts", schema, ["domain"])


def test_a_later_version_waits_for_the_one_in_flight_and_the_state_for_both():
    in_flight = threading.Event()
    release = threading.Event()

    class Slow(FakeAccountsApi):
        def push(self, endpoint: Endpoint, items: list[dict[str, Any]]) -> Reply:
            if not in_flight.is_set():
                in_flight.set()
                assert release.wait(timeout=10)
            return super().push(endpoint, items)

    client = Slow()
    run, sink = accounts_run(client)
    run.read(sink, {"domain": "https://www.Acme.com", "name": "First"})
    sink.process_batch({})
    assert in_flight.wait(timeout=10)
    run.read(sink, {"domain": "acme.com", "name": "Second"})
    run.read(sink, {"domain": "globex.example", "name": "Globex"})
    run.ledger.state({"after": 3})

    def buffered() -> set[str]:
        return {d for d in ("acme.com", "globex.example") if sink.buffered_before(d, 10**9)}

    assert buffered() == {"acme.com", "globex.example"}
    assert not sink.is_full
    sink.process_batch({})  # a periodic drain: acme.com waits, globex.example goes
    assert buffered() == {"acme.com"}
    assert run.states == []
    release.set()
    run.finish(sink)

    # In the order each request was answered: Second went once First had landed.
    names = [[a["name"] for a in body["accounts"]] for body in client.bodies]
    assert sorted(names) == [["First"], ["Globex"], ["Second"]]
    assert names.index(["Second"]) > names.index(["First"])
    assert run.states == [{"after": 3}]
    assert buffered() == set()


class HeldUp(FakeAccountsApi):
    """Holds its first request until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = threading.Event()
        self.release = threading.Event()

    def push(self, endpoint: Endpoint, items: list[dict[str, Any]]) -> Reply:
        if not self.in_flight.is_set():
            self.in_flight.set()
            assert self.release.wait(timeout=10)
        return super().push(endpoint, items)


def test_items_held_behind_one_in_flight_take_no_place_in_the_next_batch():
    client = HeldUp()
    run, sink = accounts_run(client, batch_size_rows=2)
    run.read(sink, {"domain": "a.com", "name": "A1"})
    run.read(sink, {"domain": "b.com", "name": "B1"})
    sink.process_batch({})
    assert client.in_flight.wait(timeout=10)
    run.read(sink, {"domain": "a.com", "name": "A2"})
    run.read(sink, {"domain": "b.com", "name": "B2"})
    run.read(sink, {"domain": "c.com", "name": "C"})
    assert not sink.is_full  # A2 and B2 wait for their first versions: one ready of two
    run.read(sink, {"domain": "d.com", "name": "D"})
    assert sink.is_full
    client.release.set()
    run.finish(sink)

    # In the order each request was answered: C and D may go before A2 and B2 are free.
    names = [[a["name"] for a in body["accounts"]] for body in client.bodies]
    assert sorted(names) == [["A1", "B1"], ["A2", "B2"], ["C", "D"]]
    assert names.index(["A2", "B2"]) > names.index(["A1", "B1"])


def test_at_the_end_a_version_behind_one_in_flight_is_waited_for_not_spun_on():
    client = HeldUp()
    run, sink = accounts_run(client)
    run.read(sink, {"domain": "a.com", "name": "First"})
    sink.process_batch({})
    assert client.in_flight.wait(timeout=10)
    run.read(sink, {"domain": "a.com", "name": "Second"})
    looks = []
    busy_among = run.dispatcher.busy_among
    run.dispatcher.busy_among = lambda keys: (looks.append(keys), busy_among(keys))[1]  # type: ignore[method-assign]
    run.input.finished = run.input.complete = True
    draining = threading.Thread(target=sink.process_batch, args=({},))
    draining.start()
    draining.join(timeout=0.5)
    assert draining.is_alive()  # waiting for First to land
    assert len(looks) <= 2  # a wait, not a loop asking again and again
    client.release.set()
    draining.join(timeout=10)
    run.dispatcher.wait_all()
    run.dispatcher.close()

    assert [body["accounts"][0]["name"] for body in client.bodies] == ["First", "Second"]


def test_requests_refused_for_upsert_at_once_turn_the_run_create_only_with_one_warning(
    caplog,
):
    both_sent = threading.Barrier(2, timeout=10)

    class Older(FakeAccountsApi):
        def push(self, endpoint: Endpoint, items: list[dict[str, Any]]) -> Reply:
            if "upsert" in endpoint.beside:
                both_sent.wait()  # the two requests are in flight together
            return super().push(endpoint, items)

    client = Older(older=True)
    run, sink = accounts_run(client, batch_size_rows=1)
    with caplog.at_level(logging.WARNING):
        for name in ("a", "b"):
            run.read(sink, {"domain": f"{name}.com", "name": name})
            sink.process_batch({})
        run.finish(sink)

    upserts = [body for body in client.bodies if "upsert" in body]
    create_only = [body for body in client.bodies if "upsert" not in body]
    assert len(upserts) == len(create_only) == 2
    assert sink.endpoint.mode is WriteMode.CREATE_OR_FAIL
    assert sum("Recotap refused upsert" in m for m in caplog.messages) == 1
    assert (sink.stats.sent, sink.stats.accepted, sink.stats.rejected) == (2, 2, 0)


def test_accounts_upsert_false_never_sends_upsert():
    client = FakeAccountsApi(older=True)
    run, sink = accounts_run(client, accounts_upsert=False, accounts_segment_id="seg-1")
    run.read(sink, {"domain": "a.com", "name": "A"})
    run.finish(sink)

    assert client.bodies == [{"accounts": [{"domain": "a.com", "name": "A"}], "segmentId": "seg-1"}]


@pytest.mark.parametrize(
    ("refusal", "stops"),
    [
        ("Segment 'seg-1' is not active or draft and cannot accept new members", True),
        ("Segment 'seg-1' not found", True),
        ("Something else went wrong", False),
    ],
)
def test_a_business_400_about_the_segment_stops_the_run_and_rejects_nothing(refusal, stops):
    class Refusing(FakeAccountsApi):
        def push(self, endpoint: Endpoint, items: list[dict[str, Any]]) -> Reply:
            super().push(endpoint, items)
            raise RequestRejected("400", 400, [], refusal)

    client = Refusing()
    run, sink = accounts_run(client, accounts_segment_id="seg-1")
    run.read(sink, {"domain": "a.com", "name": "A"})
    run.read(sink, {"domain": "b.com", "name": "B"})
    if stops:
        with pytest.raises(SettingRefused, match=r"accounts_segment_id setting \('seg-1'\)"):
            run.finish(sink)
        assert run.rejects.total == 0
    else:  # not the segment's fault: the request is halved to find the accounts to blame
        run.finish(sink)
        assert run.rejects.total == 2
    # A refusal that does not name upsert leaves the run upserting.
    assert sink.endpoint.mode is WriteMode.UPSERT
    assert all(body["upsert"] is True for body in client.bodies)


def test_custom_fields_are_listed_once_a_run_as_the_first_account_carrying_one_arrives():
    client = FakeAccountsApi(fields=("SEATS_C",))
    run, sink = accounts_run(client)
    run.read(sink, {"domain": "a.com", "name": "A"})
    assert client.listings == 0
    for n in range(3):
        run.read(sink, {"domain": f"{n}.com", "name": "N", "customFields": {"SEATS_C": n}})
    run.finish(sink)

    assert client.listings == 1
    assert client.created == []


def test_a_field_answered_409_is_listed_again_and_used_if_it_is_there():
    client = FakeAccountsApi()

    def made_elsewhere_meanwhile(field: dict[str, Any]) -> bool:
        client.fields.add("SEATS_C")
        return False  # 409

    client.on_create = made_elsewhere_meanwhile
    run, sink = accounts_run(client, create_custom_fields=True)
    run.read(sink, {"domain": "a.com", "name": "A", "customFields": {"SEATS_C": 3}})
    run.finish(sink)

    assert client.listings == 2
    assert client.created == [{"label": "Seats", "labelType": "number"}]
    assert client.bodies[0]["accounts"][0]["customFields"] == {"SEATS_C": 3}


def test_a_field_recotap_refuses_to_create_is_left_out_saying_why(caplog):
    client = FakeAccountsApi()

    def refused(field: dict[str, Any]) -> bool:
        raise RequestRejected("POST /accounts/custom-field answered 400: label too long", 400, [])

    client.on_create = refused
    run, sink = accounts_run(client, create_custom_fields=True)
    run.read(sink, {"domain": "a.com", "name": "A", "customFields": {"ON_C": "x"}})
    run.read(sink, {"domain": "b.com", "name": "B", "customFields": {"ON_C": "y"}})
    run.finish(sink)
    with caplog.at_level(logging.WARNING):
        sink.log_summary()

    assert len(client.created) == 1  # tried once a run
    assert "customFields" not in client.bodies[0]["accounts"][0]
    assert (
        "Account custom field 'ON_C' is not among Recotap's active ones, and creating it "
        "failed: POST /accounts/custom-field answered 400: label too long: 2 accounts sent "
        "without it"
    ) in caplog.messages


def test_a_field_answered_409_but_not_listed_is_left_out_saying_so_and_tried_once(caplog):
    client = FakeAccountsApi()
    client.on_create = lambda field: False  # 409, yet the listing read again lacks it
    run, sink = accounts_run(client, create_custom_fields=True)
    run.read(sink, {"domain": "a.com", "name": "A", "customFields": {"ON_C": "x"}})
    run.read(sink, {"domain": "b.com", "name": "B", "customFields": {"ON_C": "y"}})
    run.finish(sink)
    with caplog.at_level(logging.WARNING):
        sink.log_summary()

    assert len(client.created) == 1
    assert client.listings == 2
    assert [a.get("customFields") for a in client.bodies[0]["accounts"]] == [None, None]
    assert (
        "Account custom field 'ON_C' is not among Recotap's active ones, and creating it "
        "answered 409 (it exists) though Recotap does not list it as active: 2 accounts sent "
        "without it"
    ) in caplog.messages


def test_a_field_is_typed_from_the_schema_s_snake_case_twin():
    twin = {
        "type": "object",
        "properties": {
            "domain": {"type": "string"},
            "name": {"type": "string"},
            "custom_fields": {"type": "object", "properties": {"SEATS_C": {"type": "integer"}}},
        },
    }
    client = FakeAccountsApi()
    run, sink = accounts_run(client, twin, create_custom_fields=True)
    run.read(sink, {"domain": "a.com", "name": "A", "custom_fields": {"SEATS_C": 3}})
    run.finish(sink)

    assert client.created == [{"label": "Seats", "labelType": "number"}]
    assert client.bodies[0]["accounts"][0]["customFields"] == {"SEATS_C": 3}


@pytest.mark.parametrize("custom", [{"type": "object"}, True], ids=["no properties", "true"])
def test_a_schema_that_types_no_custom_field_makes_each_created_one_text(custom):
    schema = {"type": "object", "properties": {**SCHEMA["properties"], "customFields": custom}}
    client = FakeAccountsApi()
    run, sink = accounts_run(client, schema, create_custom_fields=True)
    run.read(sink, {"domain": "a.com", "name": "A", "customFields": {"SEATS_C": 3}})
    run.finish(sink)

    assert client.created == [{"label": "Seats", "labelType": "singleLineText"}]
    assert client.bodies[0]["accounts"][0]["customFields"] == {"SEATS_C": 3}


def test_a_record_without_the_stream_s_key_property_stops_the_run():
    run, sink = accounts_run(FakeAccountsApi())
    with pytest.raises(MissingKeyPropertiesError, match="key property 'domain'"):
        run.read(sink, {"name": "A"})


def test_a_rejected_account_is_named_by_its_cleaned_domain():
    run, sink = accounts_run(FakeAccountsApi())
    run.read(sink, {"domain": "https://www.Acme.com/x", "name": "A", "tags": "not a list"})

    assert run.rejects.total == 1
    assert sink.record_id({"domain": "https://www.Acme.com/x"}) == "acme.com"
    assert sink.record_id({"domain": "https://"}) is None


@pytest.mark.parametrize(
    ("schema", "label_type"),
    [
        ({"type": "number"}, "number"),
        ({"type": ["integer", "null"]}, "number"),
        ({"type": "string", "format": "date"}, "date"),
        ({"type": ["string", "null"], "format": "date-time"}, "date"),
        ({"type": "string", "format": "email"}, "singleLineText"),
        ({"type": "boolean"}, "singleLineText"),
        ({}, "singleLineText"),
        (None, "singleLineText"),
    ],
)
def test_a_created_field_is_typed_from_the_schema(schema, label_type):
    assert field_type(schema) == label_type


def test_the_endpoint_sends_upsert_and_reads_created_and_updated_as_written():
    assert ACCOUNTS.body([{"domain": "a.com"}]) == {
        "accounts": [{"domain": "a.com"}],
        "upsert": True,
    }
    data = {
        "results": [
            {"domain": "a.com", "status": "created"},
            {"domain": "b.com", "status": "updated"},
            {"domain": "c.com", "status": "failed", "error": "no"},
        ]
    }
    outcomes = ACCOUNTS.outcomes(data, ["a.com", "b.com", "c.com"])
    assert [type(o).__name__ for o in outcomes.values()] == ["Accepted", "Accepted", "Rejected"]
    assert ACCOUNTS.written_as == "created or updated"
