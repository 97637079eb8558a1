"""Proxies from the environment: HTTPS_PROXY/HTTP_PROXY and NO_PROXY, as requests reads them."""

from __future__ import annotations

import base64
import http.client
import os
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

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


class ForwardProxy(ThreadingHTTPServer):
    """A forward proxy on loopback that records what passed through it: plain-HTTP requests
    it forwards, and CONNECT tunnels (for https) it relays."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        # (absolute URL, or host:port of a tunnel; Proxy-Authorization)
        self.seen: list[tuple[str, str | None]] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ForwardProxy

    def do_POST(self) -> None:
        self.server.seen.append((self.path, self.headers.get("Proxy-Authorization")))
        target = urlsplit(self.path)  # a proxy is sent the absolute URL
        assert target.hostname == "127.0.0.1"  # this proxy only ever forwards to loopback
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = {k: v for k, v in self.headers.items() if k.lower() != "proxy-authorization"}
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
        try:
            upstream.request("POST", target.path, body=body, headers=headers)
            answer = upstream.getresponse()
            payload = answer.read()
        finally:
            upstream.close()
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.getheader("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_CONNECT(self) -> None:
        self.server.seen.append((self.path, self.headers.get("Proxy-Authorization")))
        host, _, port = self.path.rpartition(":")
        assert host == "127.0.0.1"  # this proxy only ever tunnels to loopback
        with socket.create_connection((host, int(port)), timeout=10) as upstream:
            self.send_response(200, "Connection established")
            self.end_headers()
            ends = {self.connection: upstream, upstream: self.connection}
            # Relay bytes both ways (TLS, which this proxy cannot read) until a side closes.
            while True:
                ready, _, _ = select.select(list(ends), [], [], 10)
                if not ready:
                    break
                for end in ready:
                    data = end.recv(65536)
                    if not data:
                        self.close_connection = True
                        return
                    ends[end].sendall(data)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def proxy():
    server = ForwardProxy()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def no_proxy_settings(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def test_requests_go_through_the_proxy_with_its_credentials(
    emulator, proxy, no_proxy_settings, capsys
):
    no_proxy_settings.setenv("HTTP_PROXY", proxy.url.replace("http://", "http://me:s%40cret@"))

    outcome = run_in_process(config_for(emulator), deals_messages([deal(1), deal(2)]), capsys)

    assert outcome.exit_code == 0
    assert set(emulator.store.deals()) == {"deal-1", "deal-2"}
    assert [url for url, _ in proxy.seen] == [emulator.url + "/deals"]
    expected = "Basic " + base64.b64encode(b"me:s@cret").decode()
    assert proxy.seen[0][1] == expected


def test_no_proxy_sends_directly(emulator, proxy, no_proxy_settings, capsys):
    no_proxy_settings.setenv("HTTP_PROXY", proxy.url)
    no_proxy_settings.setenv("NO_PROXY", "127.0.0.1")

    outcome = run_in_process(config_for(emulator), deals_messages([deal(1)]), capsys)

    assert outcome.exit_code == 0
    assert "deal-1" in emulator.store.deals()
    assert proxy.seen == []


@pytest.mark.parametrize(
    ("no_proxy", "through_proxy"), [("", True), ("127.0.0.1", False)], ids=["proxied", "NO_PROXY"]
)
def test_https_goes_through_the_https_proxy_with_its_credentials_unless_no_proxy_says(
    https_emulator, authority, proxy, tmp_path, no_proxy, through_proxy
):
    # README: "Behind a proxy, set HTTPS_PROXY (credentials may be in its URL) and, if needed,
    # NO_PROXY". Recotap is https: the proxy is asked for a tunnel (CONNECT), with the
    # credentials, and TLS runs through it to Recotap's own certificate.
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    proxy_url = proxy.url.replace("http://", "http://me:s%40cret@")
    env = {
        **{name: "" for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")},
        "HTTPS_PROXY": proxy_url,
        "https_proxy": proxy_url,
        "NO_PROXY": no_proxy,
        "no_proxy": no_proxy,
        "REQUESTS_CA_BUNDLE": str(bundle),
    }
    config = write_config(tmp_path, config_for(https_emulator))

    run = run_cli(["--config", str(config)], deals_messages([deal(1), deal(2)]), env=env)

    assert run.returncode == 0, run.stderr
    assert set(https_emulator.store.deals()) == {"deal-1", "deal-2"}
    credentials = "Basic " + base64.b64encode(b"me:s@cret").decode()
    tunnels = [(f"127.0.0.1:{https_emulator.port}", credentials)] if through_proxy else []
    assert proxy.seen == tunnels
    assert "cret" not in run.stderr


def test_a_proxy_where_nothing_listens_stops_within_seconds_naming_the_proxy(emulator, tmp_path):
    port = free_port()
    proxy_url = f"http://me:s3cret@127.0.0.1:{port}"
    env = {"HTTP_PROXY": proxy_url, "http_proxy": proxy_url, "NO_PROXY": "", "no_proxy": ""}
    config = write_config(tmp_path, {"api_key": emulator.api_key, "api_url": emulator.url})

    started = time.monotonic()
    run = run_cli(["--config", str(config)], deals_messages([deal(1)]), env=env)

    assert run.returncode == 1
    assert time.monotonic() - started < 20
    assert (
        f"Stopped: cannot connect to the proxy 127.0.0.1:{port} (connection refused): check "
        "the proxy set in the environment (HTTPS_PROXY, HTTP_PROXY or ALL_PROXY)."
    ) in run.stderr
    assert "s3cret" not in run.stderr
    assert "Traceback" not in run.stderr
    assert emulator.store.requests() == []


class _OneRequestPerConnection(_ProxyHandler):
    protocol_version = "HTTP/1.0"  # so that a stopped proxy keeps no connection open


def test_the_proxy_gone_mid_run_is_retried_and_named(emulator, proxy, tmp_path):
    proxy.RequestHandlerClass = _OneRequestPerConnection
    port = proxy.server_address[1]
    env = {"HTTP_PROXY": proxy.url, "http_proxy": proxy.url, "NO_PROXY": "", "no_proxy": ""}
    target = LiveTarget(write_config(tmp_path, config_for(emulator, max_retries=2)), env=env)
    target.send([schema("deals"), *[record("deals", deal(n)) for n in range(100)], state(1)])
    assert target.next_state() == 1
    proxy.shutdown()
    proxy.server_close()
    target.send([record("deals", deal(100)), state(2)])
    code, states, log = target.finish()
    assert code == 1
    assert states == []
    refused = f"cannot connect to the proxy 127.0.0.1:{port} (connection refused)"
    assert f"POST /deals: {refused}; retry 1 of 2 in " in log
    assert f"failed 3 times, the last: {refused}; the proxy may be down: run again later" in log
    assert "check the proxy set in the environment" not in log


@pytest.mark.parametrize(
    ("proxy_url", "expected"),
    [
        ("socks5://127.0.0.1:9", "needs PySocks: pip install pysocks"),
        ("ftp://127.0.0.1:9", "is a ftp:// URL, not http(s)"),
    ],
)
def test_an_unusable_proxy_stops_the_run_with_one_line(tmp_path, proxy_url, expected):
    config = {"api_key": "k", "api_url": "http://127.0.0.1:9/api/v1"}
    env = {"HTTP_PROXY": proxy_url, "http_proxy": proxy_url, "NO_PROXY": "", "no_proxy": ""}
    # The test extra brings PySocks (selenium needs it): the target is run as if it were not
    # installed, which none can be imported while sys.modules holds None for it.
    hide = tmp_path / "without-pysocks"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['socks'] = None\n")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hide), os.environ.get("PYTHONPATH")]))

    run = run_cli(["--config", str(write_config(tmp_path, config))], ["never read"], env=env)

    assert run.returncode == 1
    assert expected in run.stderr
    assert "Traceback" not in run.stderr
