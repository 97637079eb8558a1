"""Local emulator of the Recotap external API, for tests and for users without an API key.

Start one with `EmulatorServer(...).start()` (or the `recotap-emulator` command), point the
target at `server.url`, and inspect what it stored through `EmulatorStore`.
"""

from recotap_emulator.app import EmulatorApp
from recotap_emulator.faults import Faults
from recotap_emulator.server import EmulatorServer
from recotap_emulator.store import EmulatorStore

# target-recotap's version: both are released under one tag (scripts/check_release_tag.py).
__version__ = "0.1.0"

__all__ = ["EmulatorApp", "EmulatorServer", "EmulatorStore", "Faults"]
