"""How the target meets the API's errors: auth, wrong URL, rate limits, outages."""

from __future__ import annotations

import errno
import logging
import signal
import socket
import ssl
import time
from datetime import datetime
from http.client import RemoteDisconnected

import pytest
from support import (
    LiveTarget,
    config_for,
    deal,
    deals_messages,
    free_port,
    record,
    run_cli,
    run_in_process,
    schema,
    state,
    write_config,
)
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import (
    ConnectTimeoutError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)

from target_recotap.connection import TransportFailure, describe_transport_error

NO_RESPONSE = "a connection error with {where} (no response)"


def test_wrong_key_fails_at_once_and_says_to_check_api_key(emulator, capsys, caplog):
    config = config_for(emulator, api_key="not-the-key")
    outcome = run_in_process(config, [*deals_messages([deal(1)]), state({"s": 1})], capsys)
    assert outcome.exit_code == 1
    assert outcome.states == []
    assert "check the api_key setting" in caplog.text
    assert "Invalid API key" in caplog.text
    assert len(emulator.store.requests()) == 1  # never retried


def test_wrong_base_url_says_to_check_api_url(emulator, capsys, caplog):
    config = config_for(emulator, api_url=emulator.url.replace("/api/v1", "/api/v1/crm"))
    outcome = run_in_process(config, deals_messages([deal(1)]), capsys)
    assert outcome.exit_code == 1
    assert "check the api_url setting" in caplog.text


def test_nothing_listening_at_api_url_stops_within_seconds_saying_to_check_it(tmp_path):
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api/v1"
    # The default retry settings: with them this waited 151 s through 16 warnings.
    config = write_config(tmp_path, {"api_key": "a-secret-key", "api_url": api_url})

    started = time.monotonic()
    run = run_cli(["--config", str(config)], [*deals_messages([deal(1)]), state({"s": 1})])

    assert run.returncode == 1
    assert time.monotonic() - started < 20
    errors = [line for line in run.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1
    assert (
        f"Stopped: cannot connect to 127.0.0.1:{port} (connection refused): "
        f"check the api_url setting (now {api_url})."
    ) in errors[0]
    assert "; retry " not in run.stderr  # the quick checks before stopping are not warned of
    assert "a-secret-key" not in run.stderr
    assert "Traceback" not in run.stderr
    assert run.stdout == ""


def test_a_host_name_that_does_not_resolve_is_named_and_counts_as_a_wrong_address():
    # Resolving a name would ask a DNS server, which tests must not: the error urllib3 raises.
    host = "eapi.recotap.invalid"
    reason = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    error = NameResolutionError(host, HTTPSConnection(host, 443), reason)

    failure = describe_transport_error(error, f"{host}:443", proxy_address=None)

    assert failure.said == f"cannot connect to {host}:443 (the host name does not resolve)"
    assert failure.wrong_address


def _refused():
    error = NewConnectionError(HTTPConnection("127.0.0.1", 9), "Failed to establish a connection")
    error.__cause__ = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    return error


def _unreachable():
    error = NewConnectionError(HTTPConnection("127.0.0.1", 9), "Failed to establish a connection")
    error.__cause__ = OSError(errno.ENETUNREACH, "Network is unreachable")
    return error


NOT_TLS = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)")
EXPIRED = ssl.SSLError(1, "[SSL: TLSV1_ALERT_INTERNAL_ERROR] tlsv1 alert internal error")


@pytest.mark.parametrize(
    ("error", "said", "wrong_address"),
    [
        (
            NameResolutionError("eapi.recotap.invalid", HTTPConnection("x", 9), socket.gaierror()),
            "cannot connect to {where} (the host name does not resolve)",
            True,
        ),
        (_refused(), "cannot connect to {where} (connection refused)", True),
        (_unreachable(), "cannot connect to {where} (network is unreachable)", False),
        (
            NewConnectionError(HTTPConnection("127.0.0.1", 9), "no cause"),
            "cannot connect to {where} (no connection)",
            False,
        ),
        (ConnectTimeoutError("connect timed out"), "cannot connect to {where} (timed out)", False),
        (
            ReadTimeoutError(None, "/deals", "read timed out"),
            "a timeout waiting for {where} to answer",
            False,
        ),
        (
            SSLError(NOT_TLS),
            "cannot connect to {where} (TLS handshake failed: the server does not speak TLS)",
            True,
        ),
        (SSLError(EXPIRED), f"a TLS error with {{where}} ({EXPIRED})", False),
        (
            ProtocolError("Connection broken: IncompleteRead(10 bytes read)", None),
            "a response from {where} cut short",
            False,
        ),
        (
            ProtocolError("Connection aborted.", RemoteDisconnected("closed")),
            "{where} closed the connection without answering",
            False,
        ),
        (
            ProtocolError("Connection aborted.", ConnectionResetError(errno.ECONNRESET, "reset")),
            "{where} reset the connection",
            False,
        ),
        (ProtocolError("Connection aborted.", OSError("other")), NO_RESPONSE, False),
        (ProtocolError("Connection aborted."), NO_RESPONSE, False),
        (ProtocolError(), NO_RESPONSE, False),
        (SSLError("not an ssl.SSLError"), NO_RESPONSE, False),
    ],
)
def test_each_transport_failure_is_named_with_the_address_that_failed(error, said, wrong_address):
    api, proxy = "eapi.recotap.invalid:443", "proxy.invalid:3128"
    # Straight to Recotap, with or without a proxy set: the failure is Recotap's.
    for proxy_address in (None, proxy):
        failure = describe_transport_error(error, api, proxy_address)
        assert failure == TransportFailure(said.format(where=api), wrong_address, via_proxy=False)
    # The same failure reaching the proxy names the proxy; without one set, Recotap.
    through = ProxyError("Unable to connect to proxy", error)
    assert describe_transport_error(through, api, proxy) == TransportFailure(
        said.format(where=f"the proxy {proxy}"), wrong_address, via_proxy=True
    )
    assert describe_transport_error(through, api, None) == TransportFailure(
        said.format(where=api), wrong_address, via_proxy=False
    )


def arrival(request) -> datetime:
    """When the emulator received a logged request (its timestamp is UTC with milliseconds)."""
    return datetime.fromisoformat(request["timestamp"].replace("Z", "+00:00"))


def test_429_with_retry_after_is_waited_out(emulator, capsys, caplog):
    # retry_initial_delay is 0.01 s: a retry a second later can only be Retry-After's doing.
    emulator.faults.retry_after = 1
    emulator.faults.script.append("429")
    with caplog.at_level(logging.WARNING):
        outcome = run_in_process(config_for(emulator), deals_messages([deal(1)]), capsys)
    assert outcome.exit_code == 0
    assert "deal-1" in emulator.store.deals()
    refused, retried = emulator.store.requests()
    assert (refused["status"], retried["status"]) == (429, 200)
    waited = (arrival(retried) - arrival(refused)).total_seconds()
    assert 0.99 <= waited < 10  # the timestamps are cut to the millisecond
    assert "POST /deals: 429 ThrottlerException: Too Many Requests; retry 1 of 8 in 1.0 s" in [
        r.getMessage() for r in caplog.records
    ]


@pytest.mark.parametrize("http_date", [False, True], ids=["seconds", "http-date"])
def test_a_retry_after_of_a_day_is_waited_600_s_at_most_and_a_signal_ends_the_wait(
    emulator, tmp_path, http_date
):
    # RetryPolicy.max_retry_after: a Retry-After far off (a day, here) is waited for 600 s,
    # announced as such, and SIGTERM still ends the wait at once.
    emulator.faults.retry_after = 86400
    emulator.faults.retry_after_http_date = http_date
    emulator.faults.script.append("429")
    target = LiveTarget(write_config(tmp_path, config_for(emulator, batch_size_rows=1)))
    target.send([*deals_messages([deal(1)]), state({"s": 1})])
    waiting = target.log_line("POST /deals: 429")
    target.process.send_signal(signal.SIGTERM)
    code, states, log = target.finish(timeout=30)  # not the 600 s

    assert waiting.endswith(
        "POST /deals: 429 ThrottlerException: Too Many Requests; retry 1 of 8 in 600.0 s"
    )
    assert code == 1
    assert states == []
    assert [r["status"] for r in emulator.store.requests()] == [429]
    assert "Stopped by SIGTERM: records not yet confirmed were not checkpointed. No STATE" in log
    assert "Traceback" not in log


def test_5xx_then_success(emulator, capsys):
    emulator.faults.script.extend(["500", "502", "503", "504"])
    outcome = run_in_process(config_for(emulator), deals_messages([deal(1)]), capsys)
    assert outcome.exit_code == 0
    assert [r["status"] for r in emulator.store.requests()] == [500, 502, 503, 504, 200]


@pytest.mark.parametrize(
    ("outcome", "said"),
    [
        ("lose", "{address} closed the connection without answering"),
        ("cut", "a response from {address} cut short"),
    ],
)
def test_a_response_lost_or_cut_short_is_retried_and_the_upsert_lands_once(
    emulator, capsys, caplog, outcome, said
):
    emulator.faults.script.append(outcome)
    with caplog.at_level(logging.WARNING):
        result = run_in_process(config_for(emulator), deals_messages([deal(1, amount=3)]), capsys)
    assert result.exit_code == 0
    assert emulator.store.deals()["deal-1"]["amount"] == 3
    said = said.format(address=f"127.0.0.1:{emulator.port}")
    assert f"POST /deals: {said}; retry 1 of 8" in caplog.text
    assert [(r["status"], r["lost"]) for r in emulator.store.requests()] == [
        (200, True),
        (200, False),
    ]


@pytest.mark.parametrize(
    ("status", "likely"),
    [("503", "Recotap may be down"), ("429", "Recotap is limiting requests")],
)
def test_retries_exhausted_exits_non_zero_without_a_state_ahead_of_the_data(
    emulator, capsys, caplog, status, likely
):
    messages = [
        schema("deals"),
        *[record("deals", deal(n)) for n in range(100)],
        state({"s": "first batch"}),
        *[record("deals", deal(n)) for n in range(100, 150)],
        state({"s": "second batch"}),
    ]
    # The first batch goes through; every attempt at the second fails.
    emulator.faults.retry_after = 0
    emulator.faults.script.extend(["ok"] + [status] * 4)
    outcome = run_in_process(config_for(emulator, max_retries=3), messages, capsys)
    assert outcome.exit_code == 1
    assert outcome.states == [{"s": "first batch"}]
    assert f"POST /deals failed 4 times, the last: {status} " in caplog.text
    assert f"; {likely}: run again later (raise max_retries to wait longer)" in caplog.text
    assert "Traceback" not in caplog.text
