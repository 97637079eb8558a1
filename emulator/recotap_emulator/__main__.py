"""`python -m recotap_emulator`: same as the `recotap-emulator` command."""

import sys

from recotap_emulator.cli import main

if __name__ == "__main__":
    sys.exit(main())
