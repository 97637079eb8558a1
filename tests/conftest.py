"""Shared pytest fixtures."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

from target_recotap.emulator import EmulatorServer, EmulatorStore, Faults

if TYPE_CHECKING:
    from collections.abc import Iterator

# Shared machines are noisy: judge hypothesis tests on what they find, not on their speed.
settings.register_profile(
    "shared-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("shared-machine")

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
