"""The Meltano Singer SDK's standard target tests.

They feed streams this target does not load (``test_*``), so they exercise the Singer
protocol handling: reading, schemas, state, odd data. The config is a dry run, so nothing is
sent anywhere; the dry-run file lands in a temporary folder.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from singer_sdk.testing import get_target_test_class

from target_recotap.target import TargetRecotap

_DRY_RUN_FILE = Path(tempfile.mkdtemp(prefix="target-recotap-sdk-tests-")) / "bodies.jsonl"

TestTargetRecotap = get_target_test_class(
    TargetRecotap,
    config={"api_key": "sdk-standard-tests", "dry_run": True, "dry_run_path": str(_DRY_RUN_FILE)},
)
