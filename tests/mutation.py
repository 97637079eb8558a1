"""What mutation testing (``make mutate``, docs/mutation.md) needs of the test process.

conftest.py imports this only when mutmut runs the tests (it sets MUTANT_UNDER_TEST). mutmut
runs them in a copy of the repository, mutants/, whose package holds every mutant, switched
on by that variable. A target started as a subprocess inherits the variable, and here its
import path: whatever its working directory, it imports that copy, not the installed package.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import target_recotap

SITE = Path(__file__).parent / "mutation_site"
# Where a subprocess lists the functions it ran (see mutation_site/sitecustomize.py).
SUBPROCESS_HITS = Path(target_recotap.__file__).parent.parent / "subprocess-hits"

os.environ["PYTHONPATH"] = os.pathsep.join([str(SUBPROCESS_HITS.parent), str(SITE)])
os.environ["MUTATION_SUBPROCESS_HITS"] = str(SUBPROCESS_HITS)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """In mutmut's stats run (which learns the tests of each function), count what the test's
    subprocesses ran as run by the test itself."""
    try:
        return (yield)
    finally:
        if os.environ.get("MUTANT_UNDER_TEST") == "stats" and SUBPROCESS_HITS.is_file():
            from mutmut.state import state

            state()._stats.update(SUBPROCESS_HITS.read_text(encoding="utf-8").split())
            SUBPROCESS_HITS.unlink()
