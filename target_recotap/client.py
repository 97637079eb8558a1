"""The Recotap HTTP client: auth, the response envelope, errors a caller can act on.

``post`` reads top-down: the size gate, then a loop of one attempt each, which the retry policy
(``retry.py``) judges, until an answer ends it. Where requests go, and what it means when one
gets no answer, is ``connection.py``'s. The API key is only ever placed in a request header.
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
import urllib3
from urllib3.exceptions import HTTPError as TransportError

from target_recotap import __version__
from target_recotap.connection import (
    certificate_refusal,
    connections_for,
    describe_transport_error,
    route_for,
)
from target_recotap.endpoints import (
    ACCOUNT_CUSTOM_FIELD_PATH,
    ACCOUNT_CUSTOM_FIELDS_PATH,
    PIPELINES,
    Endpoint,
    WriteMode,
)
from target_recotap.errors import (
    AuthenticationFailed,
    CertificateRefused,
    EndpointNotFound,
    PayloadTooLarge,
    PipelineConflict,
    RecotapError,
    RequestRejected,
    Stopped,
    UnexpectedResponse,
    Violation,
)
from target_recotap.flow import Throttle
from target_recotap.retry import FailedAttempt, RetryPolicy

logger = logging.getLogger("target-recotap.client")

# Express's (and so NestJS's) default JSON body limit, 100 KiB: Recotap documents none.
DEFAULT_MAX_BODY_BYTES = 100 * 1024
USER_AGENT = f"target-recotap/{__version__} urllib3/{importlib.metadata.version('urllib3')}"


@dataclass
class EndpointStats:
    """What one endpoint cost: attempts sent, retries among them, seconds spent in requests."""

    requests: int = 0
    retries: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class Reply:
    """A successful answer: the payload, envelope removed (requests and retries are counted
    per endpoint in ``RecotapClient.stats``)."""

    data: dict[str, Any]


class Transport(Protocol):
    """What carries a request: urllib3's connection pools, or a dry run's file."""

    # A protocol's bodies never run: nothing to mutate (docs/mutation.md).
    def urlopen(
        self, method: str, url: str, redirect: bool = True, **kw: Any
    ) -> urllib3.BaseHTTPResponse: ...  # pragma: no mutate

    def clear(self) -> None: ...  # pragma: no mutate


class RecotapClient:
    """Talks to one Recotap account: ``push`` to an endpoint, ``stored_pipelines``, the
    account custom fields."""

    def __init__(
        self,
        api_url: str,
        api_key: str,
        *,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        throttle: Throttle | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.base_url = api_url.rstrip("/")
        self.timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self.retry = retry or RetryPolicy()
        self.throttle = throttle or Throttle(1)
        # Lowered when a 413 shows the real limit is lower; larger bodies are split beforehand.
        self.max_body_bytes = DEFAULT_MAX_BODY_BYTES
        self._connections = transport or connections_for(
            route_for(self.base_url), self.throttle.max_in_flight
        )
        # host:port of Recotap and of the proxy, to name in errors (a proxy URL's credentials
        # stay out).
        api = urllib3.util.parse_url(self.base_url)
        self._api_address = f"{api.host}:{api.port or (443 if api.scheme == 'https' else 80)}"
        proxy = (
            self._connections.proxy if isinstance(self._connections, urllib3.ProxyManager) else None
        )
        self._proxy_address = f"{proxy.host}:{proxy.port}" if proxy else None
        # Whether any request of this run got an HTTP answer, whatever its status: then the
        # address is right. Set by any sending thread; a bool is written atomically.
        self._answered = False
        self._headers = {
            "X-Api-Key": api_key,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        self._stopping = threading.Event()
        self._stats_lock = threading.Lock()
        self.stats: dict[str, EndpointStats] = {}

    def push(self, endpoint: Endpoint, items: list[dict[str, Any]]) -> Reply:
        """Send ``items`` to ``endpoint`` (at most its ``per_request``); per-item outcomes are
        read by ``endpoint.outcomes``. A create-only endpoint's 409 raises ``PipelineConflict``,
        naming the items that exist."""
        try:
            return self.post(endpoint.path, endpoint.body(items))
        except _Conflict as conflict:
            if endpoint.mode is not WriteMode.CREATE_OR_CONFLICT:
                raise
            sent = [item[endpoint.key] for item in items]
            ids = conflicting_pipeline_ids(conflict.custom_message, sent)
            raise PipelineConflict(str(conflict), ids) from None

    def stored_pipelines(self) -> dict[str, dict[str, Any]]:
        """pipelineId -> the pipeline as Recotap holds it, from GET /deal-stages.

        The route is undocumented (one client saw a bare array; the envelope is accepted too),
        and only a warning's detail depends on it: one attempt, never retried, so that a route
        that does not exist or a failing one cannot hold up the end of a run. Raises
        ``RecotapError`` when the answer is not a list of pipelines.
        """
        what = f"GET {PIPELINES.path}"
        if not self.throttle.wait_turn(self._stopping):
            raise Stopped(f"{what} not sent: the run is stopping")
        try:
            response = self._send("GET", PIPELINES.path, None)
        except TransportError as exc:
            failure = describe_transport_error(exc, self._api_address, self._proxy_address)
            raise UnexpectedResponse(f"{what}: {failure.said}") from None
        if not 200 <= response.status < 300:
            raise UnexpectedResponse(f"{what} answered {response.status}: {_summary(response)}")
        body = _json_or_none(response)
        listed = body.get("data") if isinstance(body, dict) else body
        if not isinstance(listed, list) or not all(
            isinstance(p, dict) and isinstance(p.get("pipelineId"), str) for p in listed
        ):
            raise UnexpectedResponse(f"{what} answered {response.status}, not a list of pipelines")
        return {p["pipelineId"]: p for p in listed}

    def account_custom_fields(self) -> dict[str, dict[str, Any]]:
        """key -> field, for each account custom field Recotap holds active, from GET
        /accounts/custom-fields (a bare array under ``data``). Raises ``UnexpectedResponse``
        when the answer is not a list of fields."""
        listed = self.get(ACCOUNT_CUSTOM_FIELDS_PATH).data.get("data")
        if not isinstance(listed, list) or not all(
            isinstance(f, dict) and isinstance(f.get("key"), str) for f in listed
        ):
            raise UnexpectedResponse(
                f"GET {ACCOUNT_CUSTOM_FIELDS_PATH} answered, but not with a list of custom fields"
            )
        return {f["key"]: f for f in listed}

    def create_account_custom_field(self, field: dict[str, Any]) -> bool:
        """Create an account custom field (POST /accounts/custom-field); False when Recotap
        answers 409: an active field with that key exists."""
        try:
            self.post(ACCOUNT_CUSTOM_FIELD_PATH, field)
        except _Conflict:
            return False
        return True

    def stop(self) -> None:
        """Make waiting retries give up at once and refuse new requests."""
        self._stopping.set()

    def close(self) -> None:
        self._connections.clear()

    def post(self, path: str, body: dict[str, Any]) -> Reply:
        """POST a JSON body, retrying what may pass later; return the unwrapped payload."""
        data = encode_json(body)
        if len(data) > self.max_body_bytes:
            raise PayloadTooLarge(
                f"POST {path} not sent: {len(data)} bytes, over the {self.max_body_bytes} a "
                "request may carry"
            )
        return self._request("POST", path, data)

    def get(self, path: str) -> Reply:
        """GET a documented route, retried as a POST is; return the unwrapped payload."""
        return self._request("GET", path, None)

    def _request(self, method: str, path: str, data: bytes | None) -> Reply:
        what = f"{method} {path}"
        retry = self.retry
        while True:
            if not self.throttle.wait_turn(self._stopping):
                raise Stopped(f"{what} not sent: the run is stopping")
            answer = self._attempt(what, method, path, data, is_retry=bool(retry.history))
            if isinstance(answer, Reply):
                return answer
            retry = retry.increment(what, answer, answered=self._answered)
            self._back_off(what, retry)

    def _attempt(
        self, what: str, method: str, path: str, data: bytes | None, *, is_retry: bool
    ) -> Reply | FailedAttempt:
        """One attempt: the reply, or the failure worth another; raises what ends the request."""
        started = time.monotonic()
        try:
            response = self._send(method, path, data)
        except TransportError as exc:
            return self._no_answer(what, exc)
        finally:
            self._count(path, time.monotonic() - started, is_retry=is_retry)
        self._answered = True
        status = response.status
        if self.retry.is_retriable(status):
            said = f"{status} {_summary(response)}"
            return FailedAttempt(said, status, response.headers.get("Retry-After"))
        if status < 400:
            self.throttle.on_success()
        return Reply(self._payload(what, response, len(data or b"")))

    def _no_answer(self, what: str, exc: TransportError) -> FailedAttempt:
        refusal = certificate_refusal(exc)
        if refusal:
            raise CertificateRefused(
                f"{what} not sent: the TLS certificate of {self.base_url} was refused "
                f"({refusal}); behind a TLS-inspecting proxy, set REQUESTS_CA_BUNDLE to its CA "
                "bundle"
            ) from None
        failure = describe_transport_error(exc, self._api_address, self._proxy_address)
        check = (
            "the proxy set in the environment (HTTPS_PROXY, HTTP_PROXY or ALL_PROXY)"
            if failure.via_proxy
            else f"the api_url setting (now {self.base_url})"
        )
        return FailedAttempt(
            failure.said,
            wrong_address=failure.wrong_address,
            via_proxy=failure.via_proxy,
            check=check,
        )

    def _back_off(self, what: str, retry: RetryPolicy) -> None:
        """Wait before the retry ``retry`` grants last, slowing every request down with it."""
        granted = retry.history[-1]
        if granted.after.status == 429:
            self.throttle.on_throttled(granted.wait)
        else:
            self.throttle.on_failure()
        if not granted.first_contact:  # a quick check is not yet an outage
            logger.warning(
                "%s: %s; retry %d of %d in %.1f s",
                what,
                granted.after.said,
                len(retry.history),
                retry.max_retries,
                granted.wait,
            )
        if self._stopping.wait(granted.wait):
            raise Stopped(f"{what} abandoned after {granted.after.said}: the run is stopping")

    def _send(self, method: str, path: str, data: bytes | None) -> urllib3.BaseHTTPResponse:
        # Retries and redirects are this client's own business (see post), never urllib3's.
        return self._connections.urlopen(
            method,
            self.base_url + path,
            body=data,
            headers=self._headers,
            timeout=self.timeout,
            retries=False,
            redirect=False,
        )

    def _count(self, path: str, seconds: float, *, is_retry: bool) -> None:
        with self._stats_lock:
            stats = self.stats.setdefault(path, EndpointStats())
            stats.requests += 1
            stats.retries += is_retry
            stats.seconds += seconds

    def _payload(
        self, what: str, response: urllib3.BaseHTTPResponse, sent_bytes: int
    ) -> dict[str, Any]:
        status = response.status
        body = _json_or_none(response)
        if 200 <= status < 300:
            if not isinstance(body, dict):
                raise UnexpectedResponse(f"{what} answered {status} without a JSON object")
            return unwrap_envelope(body)
        detail = _summary(response)
        if status in (401, 403):
            raise AuthenticationFailed(
                f"Recotap refused the API key ({status} {detail}): check the api_key setting"
            )
        if status == 404:
            raise EndpointNotFound(
                f"{what} answered 404 ({detail}): check the api_url setting "
                f"(now {self.base_url}; Recotap's is https://eapi.recotap.com/api/v1)"
            )
        if status == 409:
            raise _Conflict(f"{what} answered 409: {detail}", _custom_message(body))
        if status == 413:
            self.max_body_bytes = min(self.max_body_bytes, sent_bytes - 1)
            raise PayloadTooLarge(f"{what} answered 413: the request body is too large")
        if 400 <= status < 500:
            violations = _violations(body)
            listed = "; ".join(str(v) for v in violations) or detail
            raise RequestRejected(
                f"{what} answered {status}: {listed}", status, violations, _custom_message(body)
            )
        raise UnexpectedResponse(f"{what} answered {status}: {detail}")


class _Conflict(RecotapError):
    def __init__(self, message: str, custom_message: str | None) -> None:
        super().__init__(message)
        self.custom_message = custom_message


def unwrap_envelope(body: dict[str, Any]) -> dict[str, Any]:
    """The payload under ``data``; a flat payload (seen once) is returned as it is."""
    data = body.get("data")
    if "statusCode" in body and isinstance(data, dict):
        return data
    return body


_CONFLICT_PREFIX = "pipeline(s) already exist:"


def conflicting_pipeline_ids(message: str | None, sent_ids: list[str]) -> set[str]:
    """The IDs a 409 ``customMessage`` names, among those sent; empty if it cannot be read.

    Both known forms are read: ``Pipeline(s) already exist: a, b`` and the same followed by a
    sentence (``. Use the update endpoint ...``). Matching against the IDs that were sent
    keeps IDs that contain dots or spaces whole.
    """
    if not message or not message.lower().startswith(_CONFLICT_PREFIX):
        return set()
    tokens = [token.strip() for token in message[len(_CONFLICT_PREFIX) :].split(",")]
    found = {token for token in tokens if token in sent_ids}
    last = tokens[-1]
    if last not in found:
        # The last ID carries the trailing sentence: take the longest sent ID it begins with.
        heads = [i for i in sent_ids if last.startswith(i) and last[len(i) : len(i) + 1] == "."]
        if heads:
            found.add(max(heads, key=len))
    return found


_encoder = msgspec.json.Encoder(decimal_format="number")


def encode_json(body: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON; Decimals are written as numbers, digit for digit."""
    return _encoder.encode(body)


def _json_or_none(response: urllib3.BaseHTTPResponse) -> Any:
    try:
        return _decode(response.data)
    except (msgspec.DecodeError, RecursionError):
        return None


_decode = msgspec.json.Decoder().decode


def _custom_message(body: Any) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("customMessage"), str):
        return str(body["customMessage"])
    return None


def _summary(response: urllib3.BaseHTTPResponse) -> str:
    body = _json_or_none(response)
    if isinstance(body, dict):
        for key in ("customMessage", "message"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])
    return response.reason or "no reason given"


def _violations(body: Any) -> list[Violation]:
    rows = body.get("data") if isinstance(body, dict) else None
    if not isinstance(rows, list):
        return []
    violations = []
    for row in rows:
        if isinstance(row, dict):
            constraints = row.get("constraints")
            violations.append(
                Violation(
                    str(row.get("property", "?")),
                    {str(k): str(v) for k, v in constraints.items()}
                    if isinstance(constraints, dict)
                    else {},
                )
            )
    return violations
