"""What the client makes of answers the emulator never gives: bodies that are not JSON, 400 rows
of odd shapes, a 3xx, a listing that is not a list; and of a pause or a stop before a request."""

from __future__ import annotations

import importlib.machinery
import json
import select
import socket
import sys
import threading
import time
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import urllib3
from support import free_port, wait_until

from target_recotap.client import USER_AGENT, RecotapClient, conflicting_pipeline_ids, encode_json
from target_recotap.connection import EnvironmentUnusable, connections_for, route_for
from target_recotap.endpoints import DEALS, PIPELINES
from target_recotap.errors import (
    ApiUnreachable,
    AuthenticationFailed,
    PayloadTooLarge,
    PipelineConflict,
    RequestRejected,
    Stopped,
    UnexpectedResponse,
    Violation,
)
from target_recotap.flow import Throttle
from target_recotap.retry import RetryPolicy


class CannedApi(ThreadingHTTPServer):
    """A stand-in for Recotap on 127.0.0.1: each request gets the next canned answer (status,
    body, headers; once they run out, a 200 with no results) and is kept as (method, path,
    headers, body)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Answer)
        self.url = f"http://127.0.0.1:{self.server_port}/api/v1"
        self.answers: list[tuple[int, bytes, dict[str, str]]] = []
        self.received: list[tuple[str, str, dict[str, str], bytes]] = []


class _Answer(BaseHTTPRequestHandler):
    server: CannedApi

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append((self.command, self.path, dict(self.headers), body))
        answers = self.server.answers
        status, payload, headers = answers.pop(0) if answers else answer(200, UPSERTED)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def api():
    server = CannedApi()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def client_of(api: CannedApi, **options: Any) -> RecotapClient:
    """A client of ``api`` that never retries, so that a mistaken retry fails at once."""
    return RecotapClient(api.url, "a-key", retry=RetryPolicy(max_retries=0), **options)


def answer(status: int, body: object, **headers: str) -> tuple[int, bytes, dict[str, str]]:
    return status, body if isinstance(body, bytes) else json.dumps(body).encode(), headers


UPSERTED = {"statusCode": 200, "data": {"results": [], "summary": {"total": 0}}}
DEAL = {"externalDealId": "d1", "name": "D"}


def test_each_request_says_who_sends_it_and_in_what_format(api):
    api.answers.append(answer(200, UPSERTED))

    reply = RecotapClient(api.url + "/", "a-key", retry=RetryPolicy(max_retries=0)).push(
        DEALS, [DEAL]
    )

    assert reply.data == UPSERTED["data"]
    ((method, path, headers, body),) = api.received
    assert (method, path, json.loads(body)) == ("POST", "/api/v1/deals", {"deals": [DEAL]})
    assert headers["X-Api-Key"] == "a-key"
    assert headers["Content-Type"] == headers["Accept"] == "application/json"
    assert headers["User-Agent"] == USER_AGENT


@pytest.mark.parametrize(
    ("status", "error", "said"),
    [
        (300, UnexpectedResponse, "POST /deals answered 300: Multiple Choices"),
        (302, UnexpectedResponse, "POST /deals answered 302: Found"),
        (599, UnexpectedResponse, "POST /deals answered 599: no reason given"),
        (200, UnexpectedResponse, "POST /deals answered 200 without a JSON object"),
        (
            403,
            AuthenticationFailed,
            "Recotap refused the API key (403 Forbidden): check the api_key setting",
        ),
    ],
)
def test_an_answer_that_is_not_a_success_is_not_taken_for_one(api, status, error, said):
    # A redirect is not followed either: the key goes to no other address.
    api.answers.append(answer(status, b"", Location=f"{api.url}/elsewhere"))

    with pytest.raises(error) as raised:
        client_of(api).push(DEALS, [DEAL])

    assert str(raised.value) == said
    assert len(api.received) == 1


def test_a_body_at_the_limit_is_sent_and_one_byte_more_is_not(api):
    api.answers.append(answer(200, UPSERTED))
    client = client_of(api)
    fits = [{"externalDealId": "d1", "name": "x" * 50}]
    client.max_body_bytes = len(encode_json({"deals": fits}))

    client.push(DEALS, fits)
    with pytest.raises(PayloadTooLarge) as too_large:
        client.push(DEALS, [{"externalDealId": "d1", "name": "x" * 51}])

    assert str(too_large.value) == (
        f"POST /deals not sent: {client.max_body_bytes + 1} bytes, over the "
        f"{client.max_body_bytes} a request may carry"
    )
    assert len(api.received) == 1


def test_after_a_413_a_body_one_byte_smaller_is_still_sent(api):
    api.answers += [answer(413, {"statusCode": 413}), answer(200, UPSERTED)]
    client = client_of(api)

    with pytest.raises(PayloadTooLarge, match=r"^POST /deals answered 413: the request body is"):
        client.push(DEALS, [{"externalDealId": "d1", "name": "x" * 51}])
    client.push(DEALS, [{"externalDealId": "d1", "name": "x" * 50}])  # one byte smaller
    with pytest.raises(PayloadTooLarge, match=r"^POST /deals not sent"):
        client.push(DEALS, [{"externalDealId": "d1", "name": "x" * 51}])

    assert len(api.received) == 2


def test_a_refused_request_is_no_sign_that_the_api_has_room(api):
    api.answers += [answer(400, {"statusCode": 400, "data": []}), answer(200, UPSERTED)]
    throttle = Throttle(4)
    for _ in range(20):
        throttle.on_success()
    throttle.on_throttled(0.0)  # a 429: the pace is now what went through
    paced = throttle.rate
    client = client_of(api, throttle=throttle)

    with pytest.raises(RequestRejected):
        client.push(DEALS, [DEAL])
    assert throttle.rate == paced
    client.push(DEALS, [DEAL])
    assert throttle.rate > paced  # a success probes upwards


def test_a_400_lists_each_rule_broken_and_reads_odd_rows_as_far_as_they_go(api):
    rules = {"isString": "name must be a string", "isNotEmpty": "name should not be empty"}
    rows = [{"property": "deals.0.name", "constraints": rules}, {"constraints": "?"}, "junk"]
    api.answers.append(answer(400, {"statusCode": 400, "message": "Bad Request", "data": rows}))

    with pytest.raises(RequestRejected) as refused:
        client_of(api).push(DEALS, [{"externalDealId": "d1", "name": 1}])

    assert refused.value.violations == [Violation("deals.0.name", rules), Violation("?", {})]
    assert str(refused.value) == (
        "POST /deals answered 400: deals.0.name: name must be a string; name should not be "
        "empty; ?: invalid"
    )


def test_a_400_whose_body_is_not_json_is_told_by_its_status_line(api):
    api.answers.append(answer(400, b"<html>gateway says no</html>"))

    with pytest.raises(RequestRejected) as refused:
        client_of(api).push(DEALS, [{"externalDealId": "d1", "name": "D"}])

    assert refused.value.violations == []
    assert str(refused.value) == "POST /deals answered 400: Bad Request"


def test_a_409_names_the_pipelines_that_exist_among_those_sent(api):
    message = "Pipeline(s) already exist: p1"
    api.answers.append(answer(409, {"statusCode": 409, "customMessage": message, "data": None}))
    pipelines = [{"pipelineId": p, "pipelineLabel": p, "stages": []} for p in ("p1", "p2")]

    with pytest.raises(PipelineConflict) as conflict:
        client_of(api).push(PIPELINES, pipelines)

    assert conflict.value.pipeline_ids == {"p1"}
    assert str(conflict.value) == f"POST /deal-stages answered 409: {message}"


LONG = ". Use the update endpoint to modify existing pipelines."


@pytest.mark.parametrize(
    ("message", "sent", "existing"),
    [
        ("Pipeline(s) already exist: a, b", ["a", "x", "b"], {"a", "b"}),
        (f"Pipeline(s) already exist: a, b{LONG}", ["a", "x", "b"], {"a", "b"}),
        ("PIPELINE(S) ALREADY EXIST: a", ["a"], {"a"}),
        # IDs with spaces or dots stay whole; the longest ID the sentence follows is the one.
        ("Pipeline(s) already exist: New Business, Renewals", ["Renewals", "New Business"], None),
        (f"Pipeline(s) already exist: v1, v1.2{LONG}", ["v1", "v1.2", "v"], {"v1", "v1.2"}),
        ("Pipeline(s) already exist: gone", ["a"], set()),  # not among those sent
        ("One or more pipelines already exist", ["a"], set()),
        (None, ["a"], set()),
    ],
)
def test_a_409_message_is_read_for_the_ids_it_names_among_those_sent(message, sent, existing):
    assert conflicting_pipeline_ids(message, sent) == (set(sent) if existing is None else existing)


def test_a_409_whose_body_is_not_json_names_no_pipeline(api):
    api.answers.append(answer(409, b"Conflict"))
    pipelines = [{"pipelineId": "p1", "pipelineLabel": "p1", "stages": []}]

    with pytest.raises(PipelineConflict) as conflict:
        client_of(api).push(PIPELINES, pipelines)

    assert conflict.value.pipeline_ids == set()


def test_the_listing_is_a_get_with_the_key_and_returns_pipelines_by_id(api):
    listed = [{"pipelineId": "p1", "pipelineLabel": "P1", "stages": []}]
    api.answers.append(answer(200, listed))

    assert client_of(api).stored_pipelines() == {"p1": listed[0]}
    ((method, path, headers, _),) = api.received
    assert (method, path, headers["X-Api-Key"]) == ("GET", "/api/v1/deal-stages", "a-key")


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [
        (300, [], "GET /deal-stages answered 300: Multiple Choices"),
        (200, {"statusCode": 200, "data": 5}, "GET /deal-stages answered 200, not a list"),
        (200, ["p1"], "GET /deal-stages answered 200, not a list of pipelines"),
        (200, [{"pipelineLabel": "P1"}], "GET /deal-stages answered 200, not a list"),
    ],
)
def test_a_listing_that_is_not_one_is_refused_saying_why(api, status, body, said):
    api.answers.append(answer(status, body))

    with pytest.raises(UnexpectedResponse, match=f"^{said}"):
        client_of(api).stored_pipelines()


def test_a_listing_that_cannot_connect_names_the_address():
    port = free_port()
    client = RecotapClient(f"http://127.0.0.1:{port}/api/v1", "a-key")

    with pytest.raises(UnexpectedResponse) as failed:
        client.stored_pipelines()

    assert str(failed.value) == (
        f"GET /deal-stages: cannot connect to 127.0.0.1:{port} (connection refused)"
    )


def test_a_listing_through_a_proxy_that_refuses_names_the_proxy(monkeypatch):
    port = free_port()
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    client = RecotapClient(f"http://127.0.0.1:{free_port()}/api/v1", "a-key")

    with pytest.raises(UnexpectedResponse) as failed:
        client.stored_pipelines()

    assert str(failed.value) == (
        f"GET /deal-stages: cannot connect to the proxy 127.0.0.1:{port} (connection refused)"
    )


def test_the_listing_waits_out_a_pause_like_any_request(api):
    api.answers.append(answer(200, []))
    throttle = Throttle(1)
    throttle.on_throttled(0.3)  # a 429 elsewhere: everyone pauses
    client = client_of(api, throttle=throttle)

    started = time.monotonic()
    assert client.stored_pipelines() == {}
    assert time.monotonic() - started >= 0.3


def test_nothing_is_sent_once_the_run_is_stopping(api):
    client = client_of(api)
    client.stop()

    with pytest.raises(Stopped, match=r"^GET /deal-stages not sent: the run is stopping$"):
        client.stored_pipelines()
    with pytest.raises(Stopped, match=r"^POST /deals not sent: the run is stopping$"):
        client.push(DEALS, [{"externalDealId": "d1", "name": "D"}])
    assert api.received == []


def test_a_connection_not_made_within_the_timeout_is_given_up_naming_the_cause():
    # A listening socket whose queue of connections waiting to be accepted is full: a new
    # connection is never completed, as with a host that drops packets.
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        waiting = [socket.socket() for _ in range(2)]
        for connection in waiting:
            connection.setblocking(False)
            connection.connect_ex(("127.0.0.1", port))
        select.select([], waiting[:1], [], 5)  # the first is in the queue: the queue is full
        client = RecotapClient(f"http://127.0.0.1:{port}/api/v1", "a-key", timeout=0.5)

        started = time.monotonic()
        with pytest.raises(UnexpectedResponse) as failed:
            client.stored_pipelines()

        assert time.monotonic() - started < 10
        assert (
            str(failed.value) == f"GET /deal-stages: cannot connect to 127.0.0.1:{port} (timed out)"
        )
        for connection in waiting:
            connection.close()


def test_a_flat_payload_is_taken_as_it_is_even_with_a_data_field(api):
    flat = {"results": [{"externalDealId": "d1", "status": "upserted"}], "data": {"note": "x"}}
    api.answers.append(answer(200, flat))

    assert client_of(api).push(DEALS, [DEAL]).data == flat


@pytest.mark.parametrize(("status", "paced"), [("429", True), ("503", False)])
def test_a_429_sets_a_pace_and_a_5xx_does_not(api, status, paced):
    api.answers += [answer(int(status), {"statusCode": int(status)}, **{"Retry-After": "0"})]
    throttle = Throttle(4)
    for _ in range(20):
        throttle.on_success()
    recotap = RecotapClient(api.url, "a-key", retry=RetryPolicy(initial_delay=0), throttle=throttle)

    recotap.push(DEALS, [DEAL])  # then the default 200

    assert [request[0] for request in api.received] == ["POST", "POST"]
    assert (throttle.rate is not None) is paced


def test_at_first_contact_nothing_listening_stops_after_two_quick_checks_whatever_the_backoff():
    port = free_port()
    # A back-off of a minute: only the quick checks (0.5 s and 1 s) let it stop so soon.
    client = RecotapClient(
        f"http://127.0.0.1:{port}/api/v1", "a-key", retry=RetryPolicy(initial_delay=60)
    )

    started = time.monotonic()
    with pytest.raises(ApiUnreachable) as unreachable:
        client.push(DEALS, [DEAL])

    assert 1.5 <= time.monotonic() - started < 20
    assert str(unreachable.value) == (
        f"cannot connect to 127.0.0.1:{port} (connection refused): check the api_url setting "
        f"(now http://127.0.0.1:{port}/api/v1)"
    )


@pytest.mark.parametrize(("scheme", "port"), [("http", 80), ("https", 443)])
def test_without_a_port_in_api_url_the_port_of_its_scheme_is_named(scheme, port):
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            pytest.skip(f"a server listens on 127.0.0.1:{port}")
    client = RecotapClient(f"{scheme}://127.0.0.1/api/v1", "a-key")

    with pytest.raises(UnexpectedResponse) as failed:
        client.stored_pipelines()

    assert (
        str(failed.value)
        == f"GET /deal-stages: cannot connect to 127.0.0.1:{port} (connection refused)"
    )


def test_a_retry_waiting_gives_up_at_once_when_the_run_stops(api):
    api.answers.append(answer(503, b""))
    client = RecotapClient(api.url, "a-key", retry=RetryPolicy(initial_delay=60))
    outcome: list[BaseException] = []

    def push() -> None:
        try:
            client.push(DEALS, [DEAL])
        except Stopped as stopped:
            outcome.append(stopped)

    sender = threading.Thread(target=push, daemon=True)
    sender.start()
    wait_until(lambda: api.received, "the first attempt")
    client.stop()
    sender.join(timeout=10)  # not the minute of back-off

    assert not sender.is_alive()
    assert [str(e) for e in outcome] == [
        "POST /deals abandoned after 503 Service Unavailable: the run is stopping"
    ]


@pytest.mark.parametrize("scheme", ["http", "https", "HTTPS"])
def test_a_proxy_reached_over_http_or_https_is_used(monkeypatch, scheme):
    monkeypatch.setenv("HTTP_PROXY", f"{scheme}://127.0.0.1:3128")
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)

    connections = connections_for(route_for("http://127.0.0.1:9/api/v1"), 1)

    assert isinstance(connections, urllib3.ProxyManager)
    assert connections.proxy.host == "127.0.0.1"


def test_a_proxy_of_another_kind_is_refused_saying_so(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "ftp://127.0.0.1:21")
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)

    with pytest.raises(
        EnvironmentUnusable, match=r"^the proxy from the environment is a ftp:// URL"
    ):
        route_for("http://127.0.0.1:9/api/v1")


def test_a_socks_proxy_is_taken_once_pysocks_is_there(monkeypatch):
    # Without PySocks (none is importable while sys.modules holds None for it; the test
    # extra's selenium brings the real one), then with a stand-in module of its name: the
    # refusal asks for that module, and only for a socks:// proxy.
    monkeypatch.setenv("HTTP_PROXY", "socks5://127.0.0.1:1080")
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(sys.modules, "socks", None)
    with pytest.raises(EnvironmentUnusable, match=r"^the socks5 proxy .* needs PySocks"):
        route_for("http://127.0.0.1:9/api/v1")

    stand_in = types.ModuleType("socks")
    stand_in.__spec__ = importlib.machinery.ModuleSpec("socks", None)
    monkeypatch.setitem(sys.modules, "socks", stand_in)
    assert route_for("http://127.0.0.1:9/api/v1").proxy == "socks5://127.0.0.1:1080"
