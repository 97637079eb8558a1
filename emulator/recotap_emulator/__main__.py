"""`python -m target_recotap.emulator`: same as the `recotap-emulator` command."""

import sys

from target_recotap.emulator.cli import main

if __name__ == "__main__":
    sys.exit(main())
