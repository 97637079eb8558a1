"""Loaded only under ``make mutate`` (tests/conftest.py puts this folder on PYTHONPATH).

mutmut learns which tests reach which function in its stats run, from calls made in the test
process. A target started as a subprocess (``run_cli``, ``LiveTarget``) records its calls in
its own process, and mutmut would never run that test against their mutants. Here such a
process writes the functions it ran to a file, which the test process adds to the test's own.
"""

from __future__ import annotations

import atexit
import os

HITS = os.environ.get("MUTATION_SUBPROCESS_HITS")

if HITS and os.environ.get("MUTANT_UNDER_TEST") == "stats":
    import mutmut.mutation.trampoline

    ran: set[str] = set()

    def _note(name: str, caller: str | None = None) -> None:
        ran.add(name)

    def _report() -> None:
        with open(HITS, "a", encoding="utf-8") as hits:
            hits.write("".join(f"{name}\n" for name in ran))

    mutmut.mutation.trampoline.record_trampoline_hit = _note
    atexit.register(_report)
