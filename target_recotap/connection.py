"""Where requests go: the proxy and CA bundle the environment names, the connection pool built
from them, and what a request that got no HTTP answer says about the address that failed.

The environment is read as requests reads it (``HTTPS_PROXY``, ``NO_PROXY``,
``REQUESTS_CA_BUNDLE`` ...), once, when the run starts: a setting that cannot work stops the run
there with one line, before any record is read, and a dry run checks it the same way without
connecting anywhere.
"""

from __future__ import annotations

import importlib.util
import os
import ssl
from dataclasses import dataclass
from http.client import RemoteDisconnected
from typing import Any

import certifi
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

# Where the CA bundle to trust is named, as requests reads it: the first one set.
CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
# OpenSSL's words when the server answers the TLS handshake with something that is not TLS,
# as a plain-http server does (the phrases urllib3 looks for on an https:// proxy that is not).
NOT_TLS_PHRASES = ("wrong version number", "unknown protocol", "record layer failure")


class EnvironmentUnusable(ValueError):
    """The proxy or the CA bundle the environment names cannot be used; the message says how
    to fix it."""


@dataclass(frozen=True)
class Route:
    """How requests to one base URL travel: the CA bundle to trust and the proxy, if any."""

    ca_bundle: str
    proxy: str | None


def route_for(base_url: str) -> Route:
    """The route the environment gives ``base_url``; raises ``EnvironmentUnusable`` for a
    proxy or CA bundle that cannot work (else every request would fail as if Recotap could not
    be reached)."""
    named = next(
        ((name, os.environ[name]) for name in CA_BUNDLE_VARIABLES if os.environ.get(name)), None
    )
    if named and not os.path.exists(named[1]):
        raise EnvironmentUnusable(
            f"{named[0]} names {named[1]!r}, which does not exist: set it to a CA bundle file "
            "or a directory of CA certificates, or unset it"
        )
    proxy = select_proxy(base_url, get_environ_proxies(base_url)) or None
    scheme = proxy.partition("://")[0].lower() if proxy else None
    if scheme and scheme not in ("http", "https") and not scheme.startswith("socks"):
        raise EnvironmentUnusable(
            f"the proxy from the environment is a {scheme}:// URL, not http(s)"
        )
    if scheme and scheme.startswith("socks") and importlib.util.find_spec("socks") is None:
        raise EnvironmentUnusable(
            f"the {scheme} proxy from the environment needs PySocks: pip install pysocks"
        )
    return Route(named[1] if named else certifi.where(), proxy)


def connections_for(route: Route, connections: int) -> urllib3.PoolManager:
    """Connections along ``route``; one is kept alive per request in flight, so answers
    arriving together never cost a new TLS handshake each.

    urllib3 directly, not a requests Session: requests' own layers cost twice urllib3's CPU
    for each request, and a first sync sends thousands.
    """
    options: dict[str, Any] = {
        "num_pools": 1,
        "maxsize": connections,
        "cert_reqs": "CERT_REQUIRED",
        ("ca_cert_dir" if os.path.isdir(route.ca_bundle) else "ca_certs"): route.ca_bundle,
    }
    if route.proxy is None:
        return urllib3.PoolManager(**options)
    if route.proxy.lower().startswith("socks"):
        from urllib3.contrib.socks import SOCKSProxyManager

        return SOCKSProxyManager(route.proxy, **options)
    user, password = get_auth_from_url(route.proxy)
    if user:
        options["proxy_headers"] = urllib3.make_headers(proxy_basic_auth=f"{user}:{password}")
    return urllib3.ProxyManager(route.proxy, **options)


@dataclass(frozen=True)
class TransportFailure:
    """A request that got no HTTP answer, in words that name the address that failed."""

    said: str
    # Nothing at the address speaks HTTP(S): refused, no such host, no TLS. Before any answer
    # in a run that is a wrong setting; after one, an outage.
    wrong_address: bool = False
    via_proxy: bool = False  # the failure was reaching the proxy, not Recotap behind it


def certificate_refusal(exc: TransportError) -> str | None:
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
