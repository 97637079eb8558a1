"""HTTPS: the certificate is verified against certifi's CAs or REQUESTS_CA_BUNDLE."""

from __future__ import annotations

import logging
import ssl

import pytest
import trustme
from support import config_for, deal, deals_messages, run_in_process

from target_recotap.emulator import EmulatorServer


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()  # a private CA, as a TLS-inspecting proxy would use


@pytest.fixture
def https_emulator(authority):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    server = EmulatorServer(api_key="tls-key", tls=context).start()
    yield server
    server.stop()
    server.store.close()


@pytest.fixture
def no_ca_settings(monkeypatch):
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_deals_arrive_over_https_with_the_ca_from_requests_ca_bundle(
    https_emulator, authority, no_ca_settings, tmp_path, capsys
):
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    no_ca_settings.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    assert https_emulator.url.startswith("https://127.0.0.1:")

    outcome = run_in_process(config_for(https_emulator), deals_messages([deal(1)]), capsys)

    assert outcome.exit_code == 0
    assert "deal-1" in https_emulator.store.deals()


def test_an_untrusted_certificate_stops_the_run_at_once_saying_what_to_set(
    https_emulator, no_ca_settings, capsys, caplog
):
    with caplog.at_level(logging.WARNING):
        outcome = run_in_process(config_for(https_emulator), deals_messages([deal(1)]), capsys)

    assert outcome.exit_code == 1
    assert "TLS certificate of https://127.0.0.1:" in caplog.text
    assert "set REQUESTS_CA_BUNDLE" in caplog.text
    assert "retry" not in caplog.text  # a refused certificate is not worth a retry
    assert https_emulator.store.requests() == []
