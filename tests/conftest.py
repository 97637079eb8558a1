"""Shared pytest fixtures."""

from __future__ import annotations

import os
import signal
import ssl
from typing import TYPE_CHECKING

import pytest
import trustme
from hypothesis import HealthCheck, settings

from recotap_emulator import EmulatorServer, EmulatorStore, Faults

if TYPE_CHECKING:
    from collections.abc import Iterator

# mutmut sets MUTANT_UNDER_TEST when it runs the tests (`make mutate`, docs/mutation.md).
UNDER_MUTATION = "MUTANT_UNDER_TEST" in os.environ

# Shared machines are noisy: judge hypothesis tests on what they find, not on their speed.
settings.register_profile(
    "shared-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
# Under mutation, a mutant is judged by the same examples on every run, not by those a fresh
# seed happens to draw.
settings.register_profile(
    "mutation", settings.get_profile("shared-machine"), derandomize=True, database=None
)
settings.load_profile("mutation" if UNDER_MUTATION else "shared-machine")

if UNDER_MUTATION:
    from mutation import pytest_runtest_call  # noqa: F401  (a hook: pytest finds it here)


def pytest_terminal_summary(terminalreporter) -> None:
    """Name the files tests kept for a person to look at (``record_property("artifact", path)``;
    under pytest-xdist the properties come back from the workers with each report)."""
    kept = [
        value
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for name, value in getattr(report, "user_properties", ())
        if name == "artifact"
    ]
    if kept:
        terminalreporter.write_sep("-", "test artifacts")
        for path in kept:
            terminalreporter.write_line(str(path))


@pytest.fixture(autouse=True)
def _signal_handlers_restored():
    """A target run in this process installs its SIGINT and SIGTERM handlers (the SDK does, in
    its constructor); put back the previous ones, so that Ctrl-C still stops pytest."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in previous.items():
        signal.signal(sig, handler)


# --- Recotap emulator -------------------------------------------------------------------------

EMULATOR_API_KEY = "test-key"


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    """A started emulator: api_key "test-key", fresh in-memory store, no faults; stopped after."""
    store = EmulatorStore(":memory:")
    try:
        with EmulatorServer(store=store, api_key=EMULATOR_API_KEY, faults=Faults()) as server:
            yield server
    finally:
        store.close()


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()  # a private CA, as a TLS-inspecting proxy would use


@pytest.fixture
def https_emulator(authority: trustme.CA) -> Iterator[EmulatorServer]:
    """An emulator answering over https, with a certificate for 127.0.0.1 from ``authority``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    server = EmulatorServer(api_key="tls-key", tls=context).start()
    yield server
    server.stop()
    server.store.close()
