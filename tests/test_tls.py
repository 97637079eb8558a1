"""HTTPS: the certificate is verified against certifi's CAs, or REQUESTS_CA_BUNDLE's (or
CURL_CA_BUNDLE's), as requests does."""

from __future__ import annotations

import logging
import subprocess
import time

import pytest
from support import config_for, deal, deals_messages, run_cli, run_in_process, write_config


@pytest.fixture
def no_ca_settings(monkeypatch):
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_deals_arrive_over_https_with_the_ca_from_the_environment(
    https_emulator, authority, no_ca_settings, tmp_path, capsys, variable
):
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    no_ca_settings.setenv(variable, str(bundle))
    assert https_emulator.url.startswith("https://127.0.0.1:")

    outcome = run_in_process(config_for(https_emulator), deals_messages([deal(1)]), capsys)

    assert outcome.exit_code == 0
    assert "deal-1" in https_emulator.store.deals()


def test_deals_arrive_over_https_with_a_ca_directory_from_the_environment(
    https_emulator, authority, tmp_path
):
    # README: "a private CA goes in REQUESTS_CA_BUNDLE (a file or a directory)". A directory of
    # CAs is OpenSSL's: each certificate under the hash of its subject, as c_rehash names it.
    pem = authority.cert_pem.bytes()
    subject_hash = subprocess.run(
        ["openssl", "x509", "-hash", "-noout"], input=pem, capture_output=True, check=True
    ).stdout.decode()
    authorities = tmp_path / "certs"
    authorities.mkdir()
    (authorities / f"{subject_hash.strip()}.0").write_bytes(pem)
    config = write_config(tmp_path, config_for(https_emulator))

    run = run_cli(
        ["--config", str(config)],
        deals_messages([deal(1)]),
        env={"REQUESTS_CA_BUNDLE": str(authorities), "CURL_CA_BUNDLE": ""},
    )

    assert run.returncode == 0, run.stderr
    assert "deal-1" in https_emulator.store.deals()


@pytest.mark.parametrize("dry_run", [False, True], ids=["real run", "dry run"])
@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_a_ca_bundle_that_does_not_exist_is_a_settings_error_in_one_line(
    https_emulator, tmp_path, variable, dry_run
):
    # Else every request fails as if Recotap were down, and the run retries for minutes. A
    # dry run, the check before a real run, says it too.
    missing = tmp_path / "missing.pem"
    config = write_config(tmp_path, config_for(https_emulator, dry_run=dry_run))
    env = {"REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": "", variable: str(missing)}

    run = run_cli(["--config", str(config)], deals_messages([deal(1)]), env=env)

    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1
    assert errors[0].endswith(
        f"Settings: {variable} names {str(missing)!r}, which does not exist: set it to a CA "
        "bundle file or a directory of CA certificates, or unset it"
    )
    assert https_emulator.store.requests() == []


def test_an_untrusted_certificate_stops_the_run_at_once_saying_what_to_set(
    https_emulator, no_ca_settings, capsys, caplog
):
    with caplog.at_level(logging.WARNING):
        outcome = run_in_process(config_for(https_emulator), deals_messages([deal(1)]), capsys)

    assert outcome.exit_code == 1
    assert "POST /deals not sent: the TLS certificate of https://127.0.0.1:" in caplog.text
    assert "; behind a TLS-inspecting proxy, set REQUESTS_CA_BUNDLE to its CA bundle" in (
        caplog.text
    )
    assert "retry" not in caplog.text  # a refused certificate is not worth a retry
    assert https_emulator.store.requests() == []


def test_https_to_a_server_that_speaks_only_http_stops_at_once_naming_the_cause(emulator, tmp_path):
    api_url = emulator.url.replace("http://", "https://")
    config = write_config(tmp_path, {"api_key": emulator.api_key, "api_url": api_url})

    started = time.monotonic()
    run = run_cli(["--config", str(config)], deals_messages([deal(1)]))

    assert run.returncode == 1
    assert time.monotonic() - started < 20
    assert (
        f"Stopped: cannot connect to 127.0.0.1:{emulator.port} (TLS handshake failed: the "
        f"server does not speak TLS): check the api_url setting (now {api_url})."
    ) in run.stderr
    assert "; retry " not in run.stderr  # the quick checks before stopping are not warned of
    assert "Traceback" not in run.stderr
    assert emulator.store.requests() == []
