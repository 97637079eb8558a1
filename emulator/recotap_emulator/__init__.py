"""Local emulator of the Recotap external API, for tests and for users without an API key.

Start one with `EmulatorServer(...).start()` (or the `recotap-emulator` command), point the
target at `server.url`, and inspect what it stored through `EmulatorStore`.
"""

from target_recotap.emulator.app import EmulatorApp
from target_recotap.emulator.faults import Faults
from target_recotap.emulator.server import EmulatorServer
from target_recotap.emulator.store import EmulatorStore

__all__ = ["EmulatorApp", "EmulatorServer", "EmulatorStore", "Faults"]
