"""The Recotap HTTP client: auth, the response envelope, errors a caller can act on, retries.

The API key is only ever placed in a request header; no message built here contains it.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.client import RemoteDisconnected
from typing import Any, Protocol

import certifi
import msgspec
import urllib3
from requests.utils import get_auth_from_url, get_environ_proxies, select_proxy
from urllib3.exceptions import (
    ConnectTimeoutError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.exceptions import HTTPError as TransportError

from target_recotap import __version__
from target_recotap.endpoints import PIPELINES, Endpoint, WriteMode
from target_recotap.flow import Throttle
from target_recotap.settings import MAX_RETRY_AFTER, MAX_RETRY_DELAY

logger = logging.getLogger("target-recotap.client")

RETRIABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# Where the CA bundle to trust is named, as requests reads it: the first one set.
CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
# Express's (and so NestJS's) default JSON body limit, 100 KiB: Recotap documents none.
DEFAULT_MAX_BODY_BYTES = 100 * 1024
USER_AGENT = f"target-recotap/{__version__} urllib3/{urllib3.__version__}"
# Before any answer in a run, a refused connection, a host name that does not resolve or a
# server without TLS almost always means a wrong address: two quick retries (1.5 s in all) and
# the run stops. They are there for a server that is restarting, or a local one (the emulator)
# started just before the run, which refuses for a moment; a wrong URL costs only those 1.5 s.
FIRST_CONTACT_RETRY_DELAYS = (0.5, 1.0)
# OpenSSL's words when the server answers the TLS handshake with something that is not TLS,
# as a plain-http server does (the phrases urllib3 looks for on an https:// proxy that is not).
NOT_TLS_PHRASES = ("wrong version number", "unknown protocol", "record layer failure")


class RecotapError(Exception):
    """Base of every error the API or the connection to it can cause."""


class AuthenticationFailed(RecotapError):
    """401/403: the key is missing, wrong or revoked. Never retried."""


class EndpointNotFound(RecotapError):
    """404: almost always a wrong ``api_url``."""


@dataclass(frozen=True)
class Violation:
    """One row of a 400 answer: which property broke which rule."""

    property: str
    constraints: dict[str, str]

    def __str__(self) -> str:
        rules = "; ".join(self.constraints.values()) or "invalid"
        return f"{self.property}: {rules}"


class RequestRejected(RecotapError):
    """400 (or another 4xx): the API refused the whole request; nothing was written."""

    def __init__(self, message: str, status: int, violations: list[Violation]) -> None:
        super().__init__(message)
        self.status = status
        self.violations = violations


class PayloadTooLarge(RecotapError):
    """413: the body was over the API's size limit; a smaller request may pass."""


class PipelineConflict(RecotapError):
    """409 on POST /deal-stages: some pipelines exist already, so nothing was created."""

    def __init__(self, message: str, pipeline_ids: set[str]) -> None:
        super().__init__(message)
        self.pipeline_ids = pipeline_ids


class RetriesExhausted(RecotapError):
    """A retriable failure outlasted ``max_retries``."""


class UnexpectedResponse(RecotapError):
    """A status or body the contract does not describe."""


class ApiUnreachable(RecotapError):
    """No connection at all before any answer in this run: almost always a wrong ``api_url``
    (or proxy). Stopped after ``FIRST_CONTACT_RETRY_DELAYS``, not the whole retry policy."""


class CertificateRefused(RecotapError):
    """Recotap's TLS certificate failed verification: retrying cannot help."""


class EnvironmentUnusable(ValueError):
    """The proxy or the CA bundle the environment names cannot be used; the message says how
    to fix it."""


class Stopped(RecotapError):
    """The run is stopping (a signal arrived) and this request was not sent."""


@dataclass
class EndpointStats:
    """What one endpoint cost: attempts sent, retries among them, seconds spent in requests."""

    requests: int = 0
    retries: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class TransportFailure:
    """A request that got no HTTP answer, in words that name the address that failed."""

    said: str
    # Nothing at the address speaks HTTP(S): refused, no such host, no TLS. Before any answer
    # in a run that is a wrong setting; after one, an outage.
    wrong_address: bool = False
    via_proxy: bool = False  # the failure was reaching the proxy, not Recotap behind it


@dataclass(frozen=True)
class Reply:
    """A successful answer: the payload, envelope removed (requests and retries are counted
    per endpoint in ``RecotapClient.stats``)."""

    data: dict[str, Any]


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter, honouring ``Retry-After``."""

    max_retries: int = 8
    initial_delay: float = 1.0
    max_delay: float = MAX_RETRY_DELAY
    max_retry_after: float = MAX_RETRY_AFTER
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, retry: int, retry_after: str | None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        hinted = parse_retry_after(retry_after)
        if hinted is not None:
            return min(hinted, self.max_retry_after)
        ceiling = min(self.max_delay, self.initial_delay * 2 ** (retry - 1))
        return self.rng.uniform(ceiling / 2, ceiling)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds, from either form (delta-seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class Transport(Protocol):
    """What carries a request: urllib3's connection pools, or a dry run's file."""

    def urlopen(
        self, method: str, url: str, redirect: bool = True, **kw: Any
    ) -> urllib3.BaseHTTPResponse: ...

    def clear(self) -> None: ...


class RecotapClient:
    """Talks to one Recotap account: ``push`` to an endpoint, ``stored_pipelines``."""

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
        self._connections = transport or connections_for(self.base_url, self.throttle.max_in_flight)
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

    def stop(self) -> None:
        """Make waiting retries give up at once and refuse new requests."""
        self._stopping.set()

    def close(self) -> None:
        self._connections.clear()

    def post(self, path: str, body: dict[str, Any]) -> Reply:
        """POST a JSON body, retrying what may pass later; return the unwrapped payload."""
        data = encode_json(body)
        what = f"POST {path}"
        if len(data) > self.max_body_bytes:
            raise PayloadTooLarge(
                f"{what} not sent: {len(data)} bytes, over the {self.max_body_bytes} a request "
                "may carry"
            )
        retries = 0
        while True:
            if not self.throttle.wait_turn(self._stopping):
                raise Stopped(f"{what} not sent: the run is stopping")
            started = time.monotonic()
            transport: TransportFailure | None = None
            quick_retry: float | None = None  # the wait before a retry at first contact
            try:
                response = self._send("POST", path, data)
            except TransportError as exc:
                refusal = _certificate_refusal(exc)
                if refusal:
                    raise CertificateRefused(
                        f"{what} not sent: the TLS certificate of {self.base_url} was refused "
                        f"({refusal}); behind a TLS-inspecting proxy, set REQUESTS_CA_BUNDLE "
                        "to its CA bundle"
                    ) from None
                transport = describe_transport_error(exc, self._api_address, self._proxy_address)
                # Only before any answer: mid-run, even a server that stopped speaking TLS is
                # retried like any lost connection. After answers over TLS from this address
                # that is a fault of the moment (a middlebox, a failover), not a setting.
                if transport.wrong_address and not self._answered:
                    if retries >= min(self.retry.max_retries, len(FIRST_CONTACT_RETRY_DELAYS)):
                        check = (
                            "the proxy set in the environment (HTTPS_PROXY, HTTP_PROXY or "
                            "ALL_PROXY)"
                            if transport.via_proxy
                            else f"the api_url setting (now {self.base_url})"
                        )
                        raise ApiUnreachable(f"{transport.said}: check {check}") from None
                    quick_retry = FIRST_CONTACT_RETRY_DELAYS[retries]
                failure, status, retry_after = transport.said, None, None
            else:
                self._answered = True
                status = response.status
                if status not in RETRIABLE_STATUSES:
                    if status < 400:
                        self.throttle.on_success()
                    return Reply(self._payload(what, response, len(data)))
                failure = f"{status} {_summary(response)}"
                retry_after = response.headers.get("Retry-After")
            finally:
                self._count(path, time.monotonic() - started, is_retry=retries > 0)
            if retries >= self.retry.max_retries:
                if status == 429:
                    likely = "Recotap is limiting requests"
                elif transport is not None and transport.via_proxy:
                    likely = "the proxy may be down"
                else:
                    likely = "Recotap may be down"
                raise RetriesExhausted(
                    f"{what} failed {retries + 1} times, the last: {failure}; {likely}: "
                    "run again later (raise max_retries to wait longer)"
                )
            retries += 1
            wait = self.retry.delay(retries, retry_after) if quick_retry is None else quick_retry
            if status == 429:
                self.throttle.on_throttled(wait)
            else:
                self.throttle.on_failure()
            if quick_retry is None:  # a quick check is not yet an outage: its error says it all
                logger.warning(
                    "%s: %s; retry %d of %d in %.1f s",
                    what,
                    failure,
                    retries,
                    self.retry.max_retries,
                    wait,
                )
            if self._stopping.wait(wait):
                raise Stopped(f"{what} abandoned after {failure}: the run is stopping")

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
            raise RequestRejected(f"{what} answered {status}: {listed}", status, violations)
        raise UnexpectedResponse(f"{what} answered {status}: {detail}")


def connections_for(base_url: str, connections: int) -> urllib3.PoolManager:
    """Connections to ``base_url``, through the proxy and with the CA bundle that requests
    would take from the environment, read once; one connection is kept alive per request in
    flight, so answers arriving together never cost a new TLS handshake each.

    urllib3 directly, not a requests Session: requests' own layers cost twice urllib3's CPU
    for each request, and a first sync sends thousands.
    """
    named = next(
        ((name, os.environ[name]) for name in CA_BUNDLE_VARIABLES if os.environ.get(name)), None
    )
    if named and not os.path.exists(named[1]):
        # Else every request would fail as if Recotap could not be reached.
        raise EnvironmentUnusable(
            f"{named[0]} names {named[1]!r}, which does not exist: set it to a CA bundle file "
            "or a directory of CA certificates, or unset it"
        )
    ca_bundle = named[1] if named else certifi.where()
    options: dict[str, Any] = {
        "num_pools": 1,
        "maxsize": connections,
        "cert_reqs": "CERT_REQUIRED",
        ("ca_cert_dir" if os.path.isdir(ca_bundle) else "ca_certs"): ca_bundle,
    }
    proxy = select_proxy(base_url, get_environ_proxies(base_url))
    if not proxy:
        return urllib3.PoolManager(**options)
    scheme = proxy.partition("://")[0].lower()
    if scheme.startswith("socks"):
        try:
            from urllib3.contrib.socks import SOCKSProxyManager
        except ImportError:
            raise EnvironmentUnusable(
                f"the {scheme} proxy from the environment needs PySocks: pip install pysocks"
            ) from None
        return SOCKSProxyManager(proxy, **options)
    if scheme not in ("http", "https"):
        raise EnvironmentUnusable(
            f"the proxy from the environment is a {scheme}:// URL, not http(s)"
        )
    user, password = get_auth_from_url(proxy)
    if user:
        options["proxy_headers"] = urllib3.make_headers(proxy_basic_auth=f"{user}:{password}")
    return urllib3.ProxyManager(proxy, **options)


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


def _certificate_refusal(exc: TransportError) -> str | None:
    """Why verification refused the server's certificate, if that is what failed."""
    cause = exc.args[0] if isinstance(exc, SSLError) and exc.args else None
    return cause.verify_message if isinstance(cause, ssl.SSLCertVerificationError) else None


def describe_transport_error(
    exc: TransportError, api_address: str, proxy_address: str | None
) -> TransportFailure:
    """What failed and where: at ``api_address``, or at the proxy when reaching it failed."""
    via_proxy = isinstance(exc, ProxyError) and proxy_address is not None
    cause: BaseException = exc.original_error if isinstance(exc, ProxyError) else exc
    where = f"the proxy {proxy_address}" if via_proxy else api_address
    cannot = f"cannot connect to {where}"
    # NameResolutionError is a NewConnectionError, and that a ConnectTimeoutError (for
    # urllib3's compatibility): the most specific first.
    if isinstance(cause, NameResolutionError):
        return TransportFailure(
            f"{cannot} (the host name does not resolve)", wrong_address=True, via_proxy=via_proxy
        )
    if isinstance(cause, NewConnectionError):
        reason = cause.__cause__
        if isinstance(reason, ConnectionRefusedError):
            return TransportFailure(
                f"{cannot} (connection refused)", wrong_address=True, via_proxy=via_proxy
            )
        detail = reason.strerror if isinstance(reason, OSError) and reason.strerror else None
        said = f"{cannot} ({(detail or 'no connection').lower()})"
        return TransportFailure(said, via_proxy=via_proxy)
    if isinstance(cause, ConnectTimeoutError):
        return TransportFailure(f"{cannot} (timed out)", via_proxy=via_proxy)
    if isinstance(cause, ReadTimeoutError):
        return TransportFailure(f"a timeout waiting for {where} to answer", via_proxy=via_proxy)
    tls = cause.args[0] if isinstance(cause, SSLError) and cause.args else None
    if isinstance(tls, ssl.SSLError):
        if any(phrase in str(tls).lower() for phrase in NOT_TLS_PHRASES):
            said = f"{cannot} (TLS handshake failed: the server does not speak TLS)"
            return TransportFailure(said, wrong_address=True, via_proxy=via_proxy)
        return TransportFailure(f"a TLS error with {where} ({tls})", via_proxy=via_proxy)
    if isinstance(cause, ProtocolError) and cause.args:
        # urllib3's words for a failure while reading the body (before it: "Connection aborted").
        if str(cause.args[0]).startswith("Connection broken"):
            return TransportFailure(f"a response from {where} cut short", via_proxy=via_proxy)
        reason = cause.args[-1]
        # RemoteDisconnected is a ConnectionResetError: the more specific first.
        if isinstance(reason, RemoteDisconnected):
            said = f"{where} closed the connection without answering"
            return TransportFailure(said, via_proxy=via_proxy)
        if isinstance(reason, ConnectionResetError):
            return TransportFailure(f"{where} reset the connection", via_proxy=via_proxy)
    return TransportFailure(f"a connection error with {where} (no response)", via_proxy=via_proxy)
