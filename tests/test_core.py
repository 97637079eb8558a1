"""The Meltano Singer SDK's target tests: the stock ones that still check something here, and a
suite of our own that feeds ``deals`` and ``deal_stages`` through the SDK's harness into the
emulator and checks what arrived.

The harness runs a target as Meltano's own tooling would: ``process_lines`` on a singer file,
then ``process_endofpipe``, not through ``run`` and its exit codes.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from singer_sdk.testing import get_target_test_class
from singer_sdk.testing.runners import TargetTestRunner
from singer_sdk.testing.suites import SingerTestSuite
from singer_sdk.testing.target_tests import (
    TargetCliPrintsTest,
    TargetInvalidSchemaTest,
    TargetRecordBeforeSchemaTest,
    TargetRecordMissingKeyProperty,
)
from singer_sdk.testing.templates import TargetFileTestTemplate
from support import config_for

from recotap_emulator import EmulatorServer
from target_recotap.rejects import REJECTION_KEY
from target_recotap.target import TargetRecotap

SINGER_FILES = Path(__file__).parent / "fixtures" / "sdk"

# The stock suite feeds streams named test_*, which this target skips. Kept are the tests that
# still check something here: --about and --version print, and the input errors that stop a run
# (an invalid SCHEMA, a RECORD before its SCHEMA, a record without its key property) are raised
# for a stream that is skipped too. The others feed a skipped stream and check nothing after.
_DRY_RUN_FILE = Path(tempfile.mkdtemp(prefix="target-recotap-sdk-tests-")) / "bodies.jsonl"

TestStockTargetTests = get_target_test_class(
    TargetRecotap,
    config={"api_key": "sdk-standard-tests", "dry_run": True, "dry_run_path": str(_DRY_RUN_FILE)},
    custom_suites=[
        SingerTestSuite(
            kind="target",
            tests=[
                TargetCliPrintsTest,
                TargetInvalidSchemaTest,
                TargetRecordBeforeSchemaTest,
                TargetRecordMissingKeyProperty,
            ],
        )
    ],
    include_target_tests=False,
)


@dataclass(frozen=True)
class Recotap:
    """What a run through the harness leaves: the emulator it loaded, and its dead letter."""

    emulator: EmulatorServer
    dead_letter: Path

    def rejected(self) -> list[tuple[dict, str]]:
        """(record, reason) of each RECORD in the dead letter."""
        messages = [json.loads(line) for line in self.dead_letter.read_text().splitlines()]
        return [
            (m["record"], m[REJECTION_KEY]["reason"]) for m in messages if m["type"] == "RECORD"
        ]


class _SingerFileIntoRecotap(TargetFileTestTemplate):
    """``tests/fixtures/sdk/<name>.singer`` through the harness; ``validate`` checks Recotap."""

    resource: Recotap

    @property
    def singer_filepath(self) -> Path:
        return SINGER_FILES / f"{self.name}.singer"


class DealsArriveAsTheSourceSaysThem(_SingerFileIntoRecotap):
    name = "deals"

    def validate(self) -> None:
        assert self.resource.emulator.store.deals() == {
            # README's first example, then a later version: amount null keeps the amount held.
            "deal-001": {
                "externalDealId": "deal-001",
                "name": "Acme Corp - Enterprise Plan",
                "amount": 75000,
                "stageId": "stage-4",
                "stageLabel": "Negotiation",
                "pipelineId": "smb-pipeline",
                "pipelineLabel": "SMB Sales",
                "startDate": "2026-01-15T00:00:00Z",
                "closedDate": "2026-07-15T07:30:00Z",
                "ownerName": "Jane Smith",
                "ownerEmail": "jane@yourcompany.com",
                "ownerId": "rep-123",
                "dealCurrencyCode": "USD",
                "associatedAccounts": [
                    {"externalId": "crm-001", "domain": "acme.com", "name": "Acme Corp"}
                ],
            },
            # The second, in snake_case: integer IDs as strings, epoch milliseconds as UTC.
            "1002": {
                "externalDealId": "1002",
                "name": "Globex renewal",
                "amount": 48250.5,
                "startDate": "2026-01-15T00:00:00Z",
                "associatedAccounts": [{"externalId": "7", "domain": "globex.example"}],
            },
        }
        assert self.resource.rejected() == [
            (
                {"externalDealId": "deal-003", "name": "Initech", "ownerEmail": "not an email"},
                "record 'deal-003': ownerEmail 'not an email' is not a valid email",
            )
        ]
        assert self.runner.state_messages == [
            {"bookmarks": {"deals": {"replication_key_value": "2026-02-02"}}}
        ]


class PipelinesArriveWholeInTheirOrder(_SingerFileIntoRecotap):
    name = "deal_stages"

    def validate(self) -> None:
        assert self.resource.emulator.store.pipelines() == {
            # HubSpot's shape: labels under "label", stages placed by displayOrder.
            "default": {
                "pipelineId": "default",
                "pipelineLabel": "Sales Pipeline",
                "stages": [
                    {"stageId": "appointmentscheduled", "stageLabel": "Appointment Scheduled"},
                    {"stageId": "qualifiedtobuy", "stageLabel": "Qualified To Buy"},
                    {"stageId": "closedwon", "stageLabel": "Closed Won"},
                ],
            },
            # One stage a record, gathered into one pipeline.
            "enterprise": {
                "pipelineId": "enterprise",
                "pipelineLabel": "Enterprise",
                "stages": [
                    {"stageId": "e1", "stageLabel": "Discovery"},
                    {"stageId": "e2", "stageLabel": "Proposal"},
                ],
            },
        }
        assert not self.resource.dead_letter.exists()
        assert self.runner.state_messages == [{"bookmarks": {"deal_stages": 2}}]


class TestThroughTheSdkHarness(
    get_target_test_class(
        TargetRecotap,
        custom_suites=[
            SingerTestSuite(
                kind="target",
                tests=[DealsArriveAsTheSourceSaysThem, PipelinesArriveWholeInTheirOrder],
            )
        ],
        include_target_tests=False,
    )
):
    """The harness's fixtures, pointed at a fresh emulator for each test."""

    @pytest.fixture
    def resource(self, emulator: EmulatorServer, tmp_path: Path) -> Recotap:
        return Recotap(emulator, tmp_path / "rejected.jsonl")

    @pytest.fixture
    def runner(self, resource: Recotap) -> TargetTestRunner:
        config = config_for(resource.emulator, dead_letter_path=str(resource.dead_letter))
        return TargetTestRunner(TargetRecotap, config=config)
