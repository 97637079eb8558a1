"""Tests of the local Recotap emulator itself, over a real loopback socket."""

from __future__ import annotations

import email.utils
import http.client
import json
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests
from support import free_port, wait_until

from recotap_emulator import EmulatorServer, EmulatorStore, Faults
from recotap_emulator.cli import main
from recotap_emulator.faults import FaultInjector

TIMEOUT = 5


# Helpers


def deal(external_id: str = "d-1", **fields):
    return {"externalDealId": external_id, "name": f"Deal {external_id}", **fields}


def pipeline(pipeline_id: str, stage_count: int = 2):
    stages = [{"stageId": f"s{i}", "stageLabel": f"Stage {i}"} for i in range(stage_count)]
    return {"pipelineId": pipeline_id, "pipelineLabel": pipeline_id.upper(), "stages": stages}


def api(emulator, method: str, path: str, *, key: str | None = None, **kwargs):
    headers = {"X-Api-Key": emulator.api_key if key is None else key, **kwargs.pop("headers", {})}
    return requests.request(method, emulator.url + path, headers=headers, timeout=TIMEOUT, **kwargs)


def post_deals(emulator, deals, **kwargs):
    return api(emulator, "POST", "/deals", json={"deals": deals}, **kwargs)


def post_pipelines(emulator, pipelines, **kwargs):
    return api(emulator, "POST", "/deal-stages", json={"pipelines": pipelines}, **kwargs)


# Envelope, routing, auth


def test_success_envelope_has_documented_fields(emulator):
    response = post_deals(emulator, [deal("d-1")])

    assert response.status_code == 200
    body = response.json()
    assert body["statusCode"] == 200
    assert body["path"] == "/api/v1/deals"
    stamp = datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
    assert stamp.utcoffset() == timedelta(0)
    assert abs(datetime.now(timezone.utc) - stamp) < timedelta(seconds=30)
    assert body["data"] == {
        "results": [{"externalDealId": "d-1", "status": "upserted"}],
        "summary": {"total": 1, "upserted": 1, "failed": 0},
    }
    assert "message" not in body


def test_error_envelope_has_message_and_null_data(emulator):
    body = api(emulator, "POST", "/deals", key="nope", json={"deals": []}).json()

    assert set(body) == {"statusCode", "timestamp", "path", "message", "customMessage", "data"}
    assert body["data"] is None


@pytest.mark.parametrize(
    ("headers", "custom_message"),
    [({}, "X-Api-Key header is required"), ({"X-Api-Key": "wrong"}, "Invalid API key")],
)
def test_auth_failures_are_401_before_validation(emulator, headers, custom_message):
    # An invalid body too: the key is checked before the DTO.
    response = requests.post(
        f"{emulator.url}/deals", json={"deals": "nope"}, headers=headers, timeout=TIMEOUT
    )

    assert response.status_code == 401
    body = response.json()
    assert body["message"] == "Unauthorized"
    assert body["customMessage"] == custom_message
    assert emulator.store.requests()[-1]["status"] == 401


def test_unknown_route_is_nestjs_404_without_auth(emulator):
    response = requests.post(f"{emulator.url}/whatever?x=1", json={}, timeout=TIMEOUT)

    assert response.status_code == 404
    body = response.json()
    assert body["message"] == "Cannot POST /api/v1/whatever?x=1"
    assert body["path"] == "/api/v1/whatever?x=1"
    assert emulator.store.requests()[-1]["endpoint"] == "POST /whatever"


def test_wrong_method_on_known_path_is_404(emulator):
    response = api(emulator, "DELETE", "/deals")

    assert response.status_code == 404
    assert response.json()["message"] == "Cannot DELETE /api/v1/deals"


def test_trailing_slash_matches_like_express(emulator):
    assert api(emulator, "POST", "/deals/", json={"deals": [deal()]}).status_code == 200


# Body parsing


def test_invalid_json_is_400_and_logged(emulator):
    response = api(
        emulator,
        "POST",
        "/deals",
        data=b'{"deals": [',
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()["message"] == "Bad Request"
    assert "JSON" in response.json()["customMessage"]


def test_non_json_content_type_is_read_as_an_empty_body(emulator):
    response = api(emulator, "POST", "/deals", data=json.dumps({"deals": [deal()]}))

    assert response.status_code == 400
    rows = response.json()["data"]
    assert rows[0]["property"] == "deals"
    assert rows[0]["constraints"]["isArray"] == "deals must be an array"
    assert emulator.store.deals() == {}


def test_body_over_default_limit_is_413_and_nothing_written(emulator):
    deals = [deal(f"d-{i}", name="x" * 1100) for i in range(100)]
    assert len(json.dumps({"deals": deals})) > 102_400

    response = post_deals(emulator, deals)

    assert response.status_code == 413
    assert response.json()["message"] == "Payload Too Large"
    assert emulator.store.deals() == {}
    assert emulator.store.requests()[-1]["items"] == 100


def test_body_limit_is_adjustable_at_runtime(emulator):
    emulator.faults.body_limit = 50

    assert post_deals(emulator, [deal("a-rather-long-external-id")]).status_code == 413


# POST /deals: whole-request validation


@pytest.mark.parametrize(
    ("deals", "property_", "constraint", "message"),
    [
        (
            [deal(f"d-{i}") for i in range(101)],
            "deals",
            "arrayMaxSize",
            "deals must contain no more than 100 elements",
        ),
        ([], "deals", "arrayNotEmpty", "deals should not be empty"),
        (
            [deal("ok"), deal("")],
            "deals.1.externalDealId",
            "isNotEmpty",
            "externalDealId should not be empty",
        ),
        (
            [deal("ok"), deal("ok2"), deal("ok3"), deal("bad", startDate="15/01/2026")],
            "deals.3.startDate",
            "isIso8601",
            "startDate must be a valid ISO 8601 date string",
        ),
        (
            [deal(closedDate="2026-13-01")],
            "deals.0.closedDate",
            "isIso8601",
            "closedDate must be a valid ISO 8601 date string",
        ),
        ([deal(foo=1)], "deals.0.foo", "whitelistValidation", "property foo should not exist"),
        (
            [deal(amount="75000")],
            "deals.0.amount",
            "isNumber",
            "amount must be a number conforming to the specified constraints",
        ),
        ([deal(amount=True)], "deals.0.amount", "isNumber", None),
        ([deal(name=None)], "deals.0.name", "isString", "name must be a string"),
        (
            [deal(associatedAccounts=[{"domain": 5}])],
            "deals.0.associatedAccounts.0.domain",
            "isString",
            "domain must be a string",
        ),
    ],
)
def test_invalid_deal_request_is_400_with_rows_and_nothing_written(
    emulator, deals, property_, constraint, message
):
    response = post_deals(emulator, deals)

    assert response.status_code == 400
    body = response.json()
    assert body["message"] == "Bad Request"
    rows = {row["property"]: row["constraints"] for row in body["data"]}
    assert constraint in rows[property_]
    if message is not None:
        assert rows[property_][constraint] == message
    assert emulator.store.deals() == {}


def test_unknown_top_level_property_is_400(emulator):
    response = api(emulator, "POST", "/deals", json={"deals": [deal()], "dryRun": True})

    assert response.status_code == 400
    assert response.json()["data"] == [
        {
            "property": "dryRun",
            "constraints": {"whitelistValidation": "property dryRun should not exist"},
        }
    ]


def test_request_log_counts_items_even_when_rejected(emulator):
    post_deals(emulator, [deal(f"d-{i}") for i in range(101)])
    post_deals(emulator, [deal("a"), deal("b")])

    log = emulator.store.requests()
    assert [(r["endpoint"], r["status"], r["items"]) for r in log] == [
        ("POST /deals", 400, 101),
        ("POST /deals", 200, 2),
    ]
    assert [r["seq"] for r in log] == [1, 2]


# POST /deals: per item and upsert


def test_bad_owner_email_and_empty_name_fail_only_their_item(emulator):
    response = post_deals(
        emulator,
        [deal("good"), deal("bad-email", ownerEmail="not-an-email"), deal("no-name", name="")],
    )

    assert response.status_code == 200
    data = response.json()["data"]
    assert data["results"] == [
        {"externalDealId": "good", "status": "upserted"},
        {"externalDealId": "bad-email", "status": "failed", "error": "ownerEmail must be an email"},
        {"externalDealId": "no-name", "status": "failed", "error": "name should not be empty"},
    ]
    assert data["summary"] == {"total": 3, "upserted": 1, "failed": 2}
    assert list(emulator.store.deals()) == ["good"]


def test_upsert_merges_present_fields_and_null_overwrites(emulator):
    post_deals(emulator, [deal("d-1", amount=100, stageId="s1", ownerEmail="jane@example.com")])
    post_deals(emulator, [{"externalDealId": "d-1", "name": "Renamed", "amount": 250}])
    post_deals(emulator, [{"externalDealId": "d-1", "name": "Renamed", "stageId": None}])

    stored = emulator.store.deals()["d-1"]
    assert stored == {
        "externalDealId": "d-1",
        "name": "Renamed",
        "amount": 250,
        "stageId": None,
        "ownerEmail": "jane@example.com",
    }
    assert emulator.store.deal_versions() == {"d-1": 3}
    assert emulator.store.deal_records()[0]["lastSeq"] == 3


def test_duplicate_ids_in_one_request_are_processed_in_order(emulator):
    response = post_deals(emulator, [deal("d-1", amount=1), deal("d-1", amount=2)])

    assert [r["externalDealId"] for r in response.json()["data"]["results"]] == ["d-1", "d-1"]
    assert emulator.store.deals()["d-1"]["amount"] == 2
    assert emulator.store.deal_versions()["d-1"] == 2


def test_get_deals_lists_stored_deals_in_envelope(emulator):
    post_deals(emulator, [deal("a"), deal("b")])

    body = api(emulator, "GET", "/deals").json()

    assert [d["externalDealId"] for d in body["data"]] == ["a", "b"]


# POST /deal-stages


def test_deal_stages_are_created_and_listed_as_bare_array(emulator):
    response = post_pipelines(emulator, [pipeline("smb"), pipeline("ent", 3)])

    assert response.status_code == 201
    assert response.json()["data"] == {
        "results": [
            {"pipelineId": "smb", "status": "created"},
            {"pipelineId": "ent", "status": "created"},
        ],
        "summary": {"total": 2, "created": 2},
    }
    listed = api(emulator, "GET", "/deal-stages").json()
    assert listed == [pipeline("smb"), pipeline("ent", 3)]
    assert list(emulator.store.pipelines()) == ["smb", "ent"]


def test_deal_stages_listing_can_be_enveloped_or_absent(emulator):
    post_pipelines(emulator, [pipeline("smb")])

    emulator.faults.deal_stages_listing = "envelope"
    enveloped = api(emulator, "GET", "/deal-stages").json()
    emulator.faults.deal_stages_listing = "absent"
    absent = api(emulator, "GET", "/deal-stages")

    assert enveloped["statusCode"] == 200
    assert enveloped["data"] == [pipeline("smb")]
    assert absent.status_code == 404
    assert absent.json()["customMessage"] == "Cannot GET /api/v1/deal-stages"
    with pytest.raises(ValueError, match="deal_stages_listing must be one of bare, envelope"):
        Faults(deal_stages_listing="paged")


@pytest.mark.parametrize(
    ("form", "suffix"),
    [("short", ""), ("long", ". Use the update endpoint to modify existing pipelines.")],
)
def test_existing_pipelines_reject_whole_request_with_409(emulator, form, suffix):
    emulator.faults.conflict_form = form
    post_pipelines(emulator, [pipeline("a"), pipeline("b"), pipeline("c")])

    response = post_pipelines(emulator, [pipeline("c"), pipeline("new"), pipeline("a")])

    assert response.status_code == 409
    body = response.json()
    assert body["message"] == "Conflict"
    assert body["customMessage"] == "Pipeline(s) already exist: c, a" + suffix
    assert body["data"] is None
    assert list(emulator.store.pipelines()) == ["a", "b", "c"]


def test_unreadable_conflict_form_names_no_ids(emulator):
    emulator.faults.conflict_form = "unreadable"
    post_pipelines(emulator, [pipeline("a")])

    response = post_pipelines(emulator, [pipeline("a")])

    assert response.status_code == 409
    assert response.json()["customMessage"] == "One or more pipelines already exist"


@pytest.mark.parametrize(
    ("pipelines", "property_", "constraint"),
    [
        ([pipeline(f"p{i}") for i in range(21)], "pipelines", "arrayMaxSize"),
        ([pipeline("p"), pipeline("p")], "pipelines", "arrayUnique"),
        ([pipeline("p", 0)], "pipelines.0.stages", "arrayNotEmpty"),
        ([{**pipeline("p"), "pipelineLabel": ""}], "pipelines.0.pipelineLabel", "isNotEmpty"),
        ([{**pipeline("p"), "extra": 1}], "pipelines.0.extra", "whitelistValidation"),
    ],
)
def test_invalid_deal_stages_request_is_400_and_nothing_created(
    emulator, pipelines, property_, constraint
):
    response = post_pipelines(emulator, pipelines)

    assert response.status_code == 400
    rows = {row["property"]: row["constraints"] for row in response.json()["data"]}
    assert constraint in rows[property_]
    assert emulator.store.pipelines() == {}


def test_too_many_pipelines_message(emulator):
    rows = post_pipelines(emulator, [pipeline(f"p{i}") for i in range(21)]).json()["data"]

    assert (
        rows[0]["constraints"]["arrayMaxSize"] == "pipelines must contain no more than 20 elements"
    )


# Faults


def test_random_429_carries_retry_after_seconds(emulator):
    emulator.faults.rate_429 = 1.0
    emulator.faults.retry_after = 0

    response = post_deals(emulator, [deal()], key="wrong")  # faults come before auth

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "0"
    assert response.json()["message"] == "Too Many Requests"
    assert emulator.store.deals() == {}


def test_429_retry_after_as_http_date(emulator):
    emulator.faults.update({"rate_429": 1.0, "retry_after": 5, "retry_after_http_date": True})

    response = post_deals(emulator, [deal()])

    assert response.status_code == 429
    when = email.utils.parsedate_to_datetime(response.headers["Retry-After"])
    delay = (when - datetime.now(timezone.utc)).total_seconds()
    assert 3 <= delay <= 6


def test_scripted_outcomes_are_consumed_one_per_request(emulator):
    emulator.faults.script.extend(["503", "500", "ok"])

    statuses = [post_deals(emulator, [deal(f"d-{i}")]).status_code for i in range(4)]

    assert statuses == [503, 500, 200, 200]
    assert list(emulator.store.deals()) == ["d-2", "d-3"]
    assert emulator.faults.script == []
    assert emulator.store.stats()["serverErrors"] == 2


def test_error_rate_answers_5xx_before_any_write(emulator):
    emulator.faults.error_rate = 1.0

    statuses = {post_deals(emulator, [deal(f"d-{i}")]).status_code for i in range(8)}

    assert statuses <= {500, 502, 503, 504}
    assert emulator.store.deals() == {}


def test_lost_response_after_write(emulator):
    emulator.faults.script.append("lose")

    with pytest.raises(requests.ConnectionError):
        post_deals(emulator, [deal("d-1")])

    assert "d-1" in emulator.store.deals()
    last = emulator.store.requests()[-1]
    assert last["lost"] is True
    assert last["status"] == 200
    assert emulator.store.stats()["lost"] == 1
    # The server keeps answering afterwards.
    assert post_deals(emulator, [deal("d-2")]).status_code == 200


def test_the_request_log_names_each_fault_the_emulator_injected(emulator):
    faults = emulator.faults
    faults.script.extend(["429", "503", "ok", "lose", "cut"])
    for _ in range(3):
        post_deals(emulator, [deal("d-1")])
    for _ in range(2):
        with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
            post_deals(emulator, [deal("d-1")])
    faults.refuse_ids["d-refused"] = "must not be refused"
    post_deals(emulator, [deal("d-refused")])
    faults.fail_ids["d-failed"] = "fails"
    faults.drop_ids.add("d-1")
    post_deals(emulator, [deal("d-1"), deal("d-failed")])
    post_deals(emulator, [deal("d-2", name="")])  # failed by Recotap's own rule: no fault

    log = emulator.store.requests()

    assert [(entry["status"], entry["fault"]) for entry in log] == [
        (429, "throttled"),
        (503, "server error"),
        (200, None),
        (200, "response lost"),
        (200, "response cut"),
        (400, "refused by a rule"),
        (200, "items failed, results left out"),
        (200, None),
    ]
    assert emulator.store.stats()["injected"] == 6


def test_lose_rate_spares_reads(emulator):
    emulator.faults.lose_rate = 1.0

    assert api(emulator, "GET", "/deal-stages").status_code == 200
    with pytest.raises(requests.ConnectionError):
        post_pipelines(emulator, [pipeline("p")])
    assert list(emulator.store.pipelines()) == ["p"]


def send_deals(connection: http.client.HTTPConnection, emulator, deals) -> http.client.HTTPResponse:
    """POST /deals on an open connection; the response, its body not read yet."""
    body = json.dumps({"deals": deals})
    headers = {"X-Api-Key": emulator.api_key, "Content-Type": "application/json"}
    connection.request("POST", "/api/v1/deals", body=body, headers=headers)
    return connection.getresponse()


def keep_alive_post(connection: http.client.HTTPConnection, emulator, deals) -> int:
    """POST /deals on an open connection; the status, with the body read so it can be reused."""
    response = send_deals(connection, emulator, deals)
    response.read()
    return response.status


def test_connections_are_kept_alive(emulator):
    connection = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=TIMEOUT)
    try:
        assert keep_alive_post(connection, emulator, [deal("d-1")]) == 200
        first_socket = connection.sock
        assert first_socket is not None  # http.client drops the socket of a closed connection
        assert keep_alive_post(connection, emulator, [deal("d-2")]) == 200
        # http.client reconnects silently when the server closed: the same socket proves reuse.
        assert connection.sock is first_socket
    finally:
        connection.close()
    assert set(emulator.store.deals()) == {"d-1", "d-2"}


def test_a_lost_response_closes_its_connection_unanswered(emulator):
    connection = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=TIMEOUT)
    try:
        assert keep_alive_post(connection, emulator, [deal("d-1")]) == 200
        emulator.faults.script.append("lose")
        with pytest.raises(http.client.RemoteDisconnected):
            keep_alive_post(connection, emulator, [deal("d-2")])
    finally:
        connection.close()
    assert "d-2" in emulator.store.deals()


@pytest.mark.parametrize(
    ("header", "status"),
    [("Transfer-Encoding: chunked", 411), ("Content-Length: -5", 400)],
)
def test_a_body_without_a_usable_length_is_refused(emulator, header, status):
    request = f"POST /api/v1/deals HTTP/1.1\r\nHost: x\r\n{header}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=TIMEOUT) as sock:
        sock.sendall(request)
        answer = sock.makefile("rb").read()  # the server closes after such an answer

    assert answer.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"Connection: close" in answer


def test_a_request_line_over_64_kib_is_answered_414(emulator, capfd):
    # Exactly one byte over what the server reads of a line: none is left unread, so closing
    # the connection cannot reset it before the answer is read.
    line = b"GET /" + b"a" * (65537 - len(b"GET /"))
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=TIMEOUT) as sock:
        sock.sendall(line)
        answer = sock.makefile("rb").read()  # the server closes after such an answer

    assert answer.startswith(b"HTTP/1.1 414 ")
    assert b"Connection: close" in answer
    assert "Traceback" not in capfd.readouterr().err
    assert api(emulator, "GET", "/deal-stages").status_code == 200  # and serves on


def test_a_cut_response_announces_its_length_and_stops_halfway(emulator):
    emulator.faults.script.append("cut")
    connection = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=TIMEOUT)
    try:
        response = send_deals(connection, emulator, [deal("d-1")])
        assert response.status == 200
        with pytest.raises(http.client.IncompleteRead):
            response.read()
    finally:
        connection.close()
    assert "d-1" in emulator.store.deals()
    assert emulator.store.requests()[-1]["lost"] is True


def test_stop_hangs_up_idle_keep_alive_connections():
    server = EmulatorServer().start()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    try:
        assert keep_alive_post(connection, server, [deal("d-1")]) == 200
        idle = connection.sock
        assert idle is not None
        server.stop()
        # The server's side of the idle connection is gone: reading it gives end of file.
        assert idle.recv(1) == b""
    finally:
        connection.close()
        server.stop()
        server.store.close()


def test_latency_delays_api_answers(emulator):
    emulator.faults.latency_ms = 300

    started = time.monotonic()
    api(emulator, "GET", "/deal-stages")

    assert time.monotonic() - started >= 0.3


def test_rate_limit_answers_429_over_limit_then_recovers(emulator):
    emulator.faults.rate_limit = 0.5  # a request every 2 s: five take far less, however loaded

    started = time.monotonic()
    statuses = [api(emulator, "GET", "/deal-stages").status_code for _ in range(5)]
    assert statuses == [200, 429, 429, 429, 429]

    def passes():
        statuses.append(api(emulator, "GET", "/deal-stages").status_code)
        return statuses[-1] == 200

    wait_until(passes, "a request passes again")  # a 429 takes no token from the bucket
    assert time.monotonic() - started >= 1.9
    assert emulator.store.stats()["rateLimited"] == statuses.count(429)


def test_forced_item_failures_and_dropped_results(emulator):
    emulator.faults.fail_ids = {"d-2": "owner is archived"}
    emulator.faults.drop_ids = {"d-3"}

    data = post_deals(emulator, [deal("d-1"), deal("d-2"), deal("d-3")]).json()["data"]

    assert data["results"] == [
        {"externalDealId": "d-1", "status": "upserted"},
        {"externalDealId": "d-2", "status": "failed", "error": "owner is archived"},
    ]
    assert data["summary"] == {"total": 3, "upserted": 2, "failed": 1}
    assert set(emulator.store.deals()) == {"d-1", "d-3"}


def test_values_can_fail_a_deal_or_refuse_its_request(emulator):
    emulator.faults.fail_values = {"XXX": "currency not enabled"}
    emulator.faults.refuse_values = {"YYY": "dealCurrencyCode is unknown"}

    data = post_deals(emulator, [deal("d-1"), deal("d-2", dealCurrencyCode="XXX")]).json()["data"]
    assert data["results"] == [
        {"externalDealId": "d-1", "status": "upserted"},
        {"externalDealId": "d-2", "status": "failed", "error": "currency not enabled"},
    ]
    refused = post_deals(emulator, [deal("d-3"), deal("d-4", dealCurrencyCode="YYY")])
    assert refused.status_code == 400
    assert refused.json()["data"] == [
        {
            "property": "deals.1.dealCurrencyCode",
            "constraints": {"isRefused": "dealCurrencyCode is unknown"},
        }
    ]
    assert set(emulator.store.deals()) == {"d-1"}


def test_api_key_can_be_rotated_while_running(emulator):
    old_key = emulator.api_key
    emulator.api_key = "new-key"

    assert post_deals(emulator, [deal()], key=old_key).json()["customMessage"] == "Invalid API key"
    assert post_deals(emulator, [deal()], key="new-key").status_code == 200


def test_seeded_faults_are_reproducible():
    def outcomes(seed: int) -> list:
        injector = FaultInjector(Faults(error_rate=0.3, rate_429=0.2, seed=seed))
        return [injector.decide(is_write=True) for _ in range(50)]

    assert outcomes(7) == outcomes(7)
    assert outcomes(7) != outcomes(8)


def test_faults_reject_invalid_values():
    with pytest.raises(ValueError, match="error_rate"):
        Faults(error_rate=2)
    with pytest.raises(ValueError, match="script"):
        Faults(script=["teapot"])


# Admin routes


def test_admin_faults_can_be_read_and_changed(emulator):
    admin = emulator.admin_url

    changed = requests.put(
        f"{admin}/faults",
        json={"error_rate": 0.5, "script": ["429"], "drop_ids": ["x"]},
        timeout=TIMEOUT,
    )
    rejected = requests.put(f"{admin}/faults", json={"error_rate": 7}, timeout=TIMEOUT)

    assert changed.status_code == 200
    assert changed.json()["error_rate"] == 0.5
    assert emulator.faults.script == ["429"]
    assert emulator.faults.drop_ids == {"x"}
    assert changed.json()["drop_ids"] == ["x"]
    assert rejected.status_code == 400
    assert requests.get(f"{admin}/faults", timeout=TIMEOUT).json()["error_rate"] == 0.5


def test_admin_views_stats_and_reset(emulator):
    post_deals(emulator, [deal("a")])
    post_pipelines(emulator, [pipeline("p")])
    api(emulator, "GET", "/deals", key="wrong")
    admin = emulator.admin_url

    deals = requests.get(f"{admin}/deals", timeout=TIMEOUT).json()
    pipelines = requests.get(f"{admin}/pipelines", timeout=TIMEOUT).json()
    stats = requests.get(f"{admin}/stats", timeout=TIMEOUT).json()

    assert deals == [{"externalDealId": "a", "version": 1, "lastSeq": 1, "deal": deal("a")}]
    assert pipelines == [pipeline("p")]
    assert stats["byEndpoint"] == {
        "POST /deals": {"200": 1},
        "POST /deal-stages": {"201": 1},
        "GET /deals": {"401": 1},
    }
    assert stats["requests"] == 3

    assert requests.post(f"{admin}/reset", timeout=TIMEOUT).status_code == 200
    assert emulator.store.deals() == {}
    assert emulator.store.pipelines() == {}
    assert emulator.store.requests() == []


# A page on another site may send a form or a "simple" fetch to the emulator's port: the
# browser names that site in Origin. Each route that changes what the emulator holds or does.
CHANGING_ADMIN_ROUTES = [
    ("POST", "reset", None),
    ("PUT", "faults", {"error_rate": 1}),
    ("POST", "segments", {"segmentId": "seg-x"}),
    ("POST", "custom-fields", {"label": "X", "labelType": "number"}),
]


def held(emulator) -> tuple:
    store = emulator.store
    return store.deals(), store.segments(), store.custom_fields(), emulator.faults.to_dict()


@pytest.mark.parametrize(("method", "route", "body"), CHANGING_ADMIN_ROUTES)
@pytest.mark.parametrize(
    "origin",
    ["https://evil.example", "null", "http://127.0.0.1:1", "http://localhost:{port}"],
)
def test_an_admin_change_sent_from_another_site_is_refused(emulator, method, route, body, origin):
    post_deals(emulator, [deal("a")])
    before = held(emulator)

    answer = requests.request(
        method,
        f"{emulator.admin_url}/{route}",
        json=body,
        headers={"Origin": origin.format(port=emulator.port)},  # the Host is 127.0.0.1:port
        timeout=TIMEOUT,
    )

    assert answer.status_code == 403
    assert "another origin" in answer.json()["error"]
    assert held(emulator) == before


def test_an_admin_change_from_a_rebound_name_is_refused(emulator):
    # DNS rebinding: the attacker's name resolves to 127.0.0.1, so Origin and Host agree.
    post_deals(emulator, [deal("a")])
    site = f"evil.example:{emulator.port}"

    answer = requests.post(
        f"{emulator.admin_url}/reset",
        headers={"Origin": f"http://{site}", "Host": site},
        timeout=TIMEOUT,
    )

    assert answer.status_code == 403
    assert list(emulator.store.deals()) == ["a"]


@pytest.mark.parametrize("same_origin", [False, True])
def test_an_admin_change_without_an_origin_or_from_the_emulator_s_own_is_made(
    emulator, same_origin
):
    post_deals(emulator, [deal("a")])
    headers = {"Origin": emulator.root_url} if same_origin else {}

    answer = requests.post(f"{emulator.admin_url}/reset", headers=headers, timeout=TIMEOUT)

    assert answer.status_code == 200
    assert emulator.store.deals() == {}


# Python API details


def test_server_refuses_non_loopback_host():
    with pytest.raises(ValueError, match="loopback"):
        EmulatorServer(host="0.0.0.0")


def test_file_store_persists_across_instances(tmp_path):
    path = tmp_path / "emulator.sqlite"
    store = EmulatorStore(path)
    store.upsert_deals([deal("d-1")], seq=1)
    store.close()

    reopened = EmulatorStore(path)
    try:
        assert reopened.deals() == {"d-1": deal("d-1")}
    finally:
        reopened.close()


def test_an_older_file_gains_the_fault_column(tmp_path):
    path = tmp_path / "older.sqlite"
    with sqlite3.connect(path) as older:
        older.execute(
            "CREATE TABLE requests (seq INTEGER PRIMARY KEY AUTOINCREMENT, endpoint TEXT NOT NULL,"
            " status INTEGER, items INTEGER NOT NULL, lost INTEGER NOT NULL DEFAULT 0,"
            " timestamp TEXT NOT NULL)"
        )
        older.execute(
            "INSERT INTO requests (endpoint, status, items, timestamp)"
            " VALUES ('POST /deals', 200, 1, '2026-01-01T00:00:00.000Z')"
        )
    older.close()

    store = EmulatorStore(path)
    try:
        seq = store.begin_request("POST /deals", 2)
        store.finish_request(seq, 429, fault="throttled")
        assert [(r["status"], r["fault"]) for r in store.requests()] == [
            (200, None),
            (429, "throttled"),
        ]
    finally:
        store.close()


# CLI


def test_cli_show_lists_a_file_database(tmp_path, capsys):
    path = tmp_path / "emulator.sqlite"
    store = EmulatorStore(path)
    store.write_accounts(
        [{"domain": "acme.com", "name": "Acme"}], upsert=False, segment_id=None, seq=3
    )
    started = {"startDate": "2026-01-15T00:00:00Z", "associatedAccounts": [{"domain": "acme.com"}]}
    elsewhere = {"associatedAccounts": [{"domain": "www.Nowhere.example"}]}
    store.upsert_deals(
        [deal("d-1", amount=75000, **started), deal("d-2"), deal("d-3", **elsewhere)], seq=4
    )
    store.create_pipelines([pipeline("smb")])
    store.close()

    assert main(["show", "deals", "--db", str(path)]) == 0
    table = capsys.readouterr().out.splitlines()
    # The deal's own fields that some deal has, in the API's order; no storage columns.
    assert table[0].split() == [
        "externalDealId",
        "name",
        "amount",
        "startDate",
        "associatedAccounts",
    ]
    assert table[2].split() == ["d-1", "Deal", "d-1", "75000", "2026-01-15T00:00:00Z", "acme.com"]
    assert table[3].split() == ["d-2", "Deal", "d-2"]
    # A domain with no account when the deal was written is marked.
    assert table[4].split() == ["d-3", "Deal", "d-3", "www.Nowhere.example", "(unlinked)"]
    assert table[5:] == ["", "1 of 3 deals name a domain Recotap has no account for"]

    assert main(["show", "pipelines", "--db", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [pipeline("smb")]


def test_cli_show_reports_missing_database(tmp_path, capsys):
    assert main(["show", "deals", "--db", str(tmp_path / "absent.sqlite")]) == 2
    assert "no database file" in capsys.readouterr().err


def test_cli_refuses_non_loopback_host(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--host", "0.0.0.0"])

    assert exit_info.value.code == 2
    assert "loopback" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform == "win32", reason="uses select() on a pipe and SIGTERM")
def test_cli_serve_answers_and_stops_on_sigterm(tmp_path, capsys):
    path = tmp_path / "served.sqlite"
    port = free_port()
    command = [sys.executable, "-m", "recotap_emulator", "--port", str(port)]
    command += ["--db", str(path), "--api-key", "cli-key", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([process.stdout], [], [], 10)
        assert ready, "the emulator printed nothing within 10 s"
        banner = process.stdout.readline()
        base_url = f"http://127.0.0.1:{port}/api/v1"
        assert base_url in banner
        assert "cli-key" in banner

        response = requests.post(
            f"{base_url}/deals",
            json={"deals": [deal("from-cli")]},
            headers={"X-Api-Key": "cli-key"},
            timeout=TIMEOUT,
        )
        assert response.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)

    assert process.returncode == 0, stderr
    assert main(["show", "deals", "--db", str(path)]) == 0
    assert "from-cli" in capsys.readouterr().out
