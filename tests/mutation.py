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

# The test files run against each module's mutants: those written about what it decides.
# Other tests pass through its code too (every run builds a client and a dead letter) but
# would only make each surviving mutant slower to judge. Leaving a file out can only lower a
# module's figure, never raise it. A module not listed is judged by every test that reaches it.
JUDGES = {
    # Judged by every test that reaches it, settlement took minutes a mutant: the fastest of
    # those tests are about other things, and pass.
    "target_recotap.settlement": {
        "test_api_errors.py",
        "test_checkpoints.py",
        "test_cli.py",
        "test_failures_midrun.py",
        "test_proof.py",
        "test_sinks.py",
    },
    "target_recotap.client": {
        "test_api_errors.py",
        "test_cli.py",
        "test_client.py",
        "test_deal_stages.py",
        "test_failures_midrun.py",
        "test_flow.py",
        "test_proof.py",
        "test_proxy.py",
        "test_refused_requests.py",
        "test_tls.py",
    },
    "target_recotap.retry": {
        "test_api_errors.py",
        "test_client.py",
        "test_failures_midrun.py",
        "test_flow.py",
        "test_retry.py",
    },
    "target_recotap.connection": {
        "test_api_errors.py",
        "test_cli.py",
        "test_client.py",
        "test_proxy.py",
        "test_tls.py",
    },
    "target_recotap.normalize": {
        "test_account_fields.py",
        "test_accounts.py",
        "test_bad_input.py",
        "test_deal_stages.py",
        "test_deal_versions.py",
        "test_deals.py",
        "test_normalize.py",
        "test_odd_values.py",
        "test_recipes.py",
        "test_rejects.py",
        "test_sales_activities.py",
        "test_schema_changes.py",
    },
    "target_recotap.sinks.merging": {
        "test_account_sinks.py",
        "test_accounts.py",
        "test_deal_links.py",
        "test_deal_versions.py",
        "test_deals.py",
        "test_sinks.py",
    },
    "target_recotap.sinks.accounts": {
        "test_account_sinks.py",
        "test_accounts.py",
        "test_deal_links.py",
    },
    "target_recotap.sinks.sales_activities": {
        "test_sales_activities.py",
        "test_sales_activities_sink.py",
    },
    "target_recotap.rejects": {
        "test_bad_input.py",
        "test_cli.py",
        "test_deal_stages.py",
        "test_deal_versions.py",
        "test_proof.py",
        "test_refused_requests.py",
        "test_rejects.py",
    },
}

os.environ["PYTHONPATH"] = os.pathsep.join([str(SUBPROCESS_HITS.parent), str(SITE)])
os.environ["MUTATION_SUBPROCESS_HITS"] = str(SUBPROCESS_HITS)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """In mutmut's stats run, which learns the tests of each function: count what the test's
    subprocesses ran as run by the test itself, and only the modules this test file judges."""
    try:
        return (yield)
    finally:
        if os.environ.get("MUTANT_UNDER_TEST") == "stats":
            _count_hits(item.path.name)


def _count_hits(test_file: str) -> None:
    from mutmut.state import state

    ran = state()._stats  # the functions mutmut saw this test run
    if SUBPROCESS_HITS.is_file():
        ran.update(SUBPROCESS_HITS.read_text(encoding="utf-8").split())
        SUBPROCESS_HITS.unlink()
    ran.difference_update(
        {name for name in ran if test_file not in JUDGES.get(name.rpartition(".")[0], {test_file})}
    )
