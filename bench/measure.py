"""Run one command and write its own CPU time, peak RSS and wall time to a JSON file.

    python bench/measure.py REPORT.json -- COMMAND [ARG...]

Why a separate, small process: on Linux a child's `ru_maxrss` starts from the RSS of the
process that forked it (the high-water mark of the address space it replaced at exec). Forked
from the benchmark harness, which holds the generated inputs' expectations and the emulator's
answers (hundreds of MB), every target would seem to peak at the harness's size. Forked from
this ~10 MB process, the figure is the target's own. stdin, stdout and stderr are passed
through; the exit code is the command's (128 + N if a signal N ended it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    """Run the command, wait for it with wait4, write the report."""
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    report, command = Path(sys.argv[1]), sys.argv[3:]
    start = time.perf_counter()
    proc = subprocess.Popen(command)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    exit_code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
    report.write_text(
        json.dumps(
            {
                "exit_code": exit_code,
                "wall": wall,
                "user": usage.ru_utime,
                "sys": usage.ru_stime,
                "maxrss_kb": usage.ru_maxrss,
            }
        )
    )
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
