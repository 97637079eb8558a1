"""target-recotap in a real Meltano 4 project: the repository's meltano.yml, end to end.

The slow test installs Meltano (cached in .meltano-venv/, see demo/meltano_env.py), runs
`meltano install` and `meltano run` of the four streams on a copy of the project, with tap-jsonl
reading the sample files in demo/meltano/ and the loader pointed at a local emulator, and checks
what Recotap received (deals linked to the accounts that came before them) and what Meltano
recorded as state.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from meltano_env import (
    REPO,
    RUN,
    STATE_IDS,
    MeltanoProject,
    meltano_project,
    meltano_venv,
    seed_emulator,
)
from support import about_json

from recotap_emulator import EmulatorServer

# One Meltano installation (.meltano-venv/, with the plugins' virtualenvs) serves these tests:
# under pytest-xdist they run in one worker, one after the other (make test: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("meltano")

# demo/meltano/*.jsonl as Recotap stores them: domains cleaned, the two records of initech.com
# merged (the later wins), its custom field kept (the emulator is seeded with it).
EXPECTED_ACCOUNTS: dict[str, dict[str, Any]] = {
    "acme.com": {
        "domain": "acme.com",
        "name": "Acme Corp",
        "externalId": "crm-001",
        "shortName": "Acme",
        "linkedinUrl": "https://www.linkedin.com/company/acme",
        "tags": ["enterprise", "emea"],
        "customFields": {"CONTRACT_VALUE_C": 75000},
    },
    "globex.example": {
        "domain": "globex.example",
        "name": "Globex",
        "externalId": "crm-002",
        "tags": ["smb"],
    },
    "initech.com": {
        "domain": "initech.com",
        "name": "Initech Inc.",
        "externalId": "crm-003",
        "tags": ["smb", "pilot"],
        "shortName": "Initech",
    },
}
# Dates in UTC, integer IDs as strings, nulls left out, the two versions of deal-003 merged (the
# later wins), deal-004 rejected (invalid email).
EXPECTED_DEALS: dict[str, dict[str, Any]] = {
    "deal-001": {
        "externalDealId": "deal-001",
        "name": "Acme Corp - Enterprise Plan",
        "amount": 75000,
        "stageId": "e2",
        "stageLabel": "Security Review",
        "pipelineId": "enterprise-pipeline",
        "pipelineLabel": "Enterprise",
        "startDate": "2026-01-15T00:00:00Z",
        "closedDate": "2026-06-30T00:00:00Z",
        "ownerName": "Jane Smith",
        "ownerEmail": "jane@yourcompany.com",
        "ownerId": "rep-123",
        "dealCurrencyCode": "USD",
        "associatedAccounts": [
            {"externalId": "crm-001", "domain": "acme.com", "name": "Acme Corp"}
        ],
    },
    "1002": {
        "externalDealId": "1002",
        "name": "Globex renewal",
        "amount": 48250.5,
        "stageId": "s2",
        "stageLabel": "Proposal Sent",
        "pipelineId": "smb-pipeline",
        "pipelineLabel": "SMB Sales",
        "startDate": "2026-01-15T00:00:00Z",
        "closedDate": "2026-04-01T00:00:00Z",
        "ownerName": "Raj Patel",
        "ownerEmail": "raj@yourcompany.com",
        "ownerId": "88",
        "dealCurrencyCode": "EUR",
        "associatedAccounts": [{"domain": "globex.example"}],
    },
    "deal-003": {
        "externalDealId": "deal-003",
        "name": "Initech pilot",
        "amount": 12500,
        "stageId": "s3",
        "stageLabel": "Closed Won",
        "pipelineId": "smb-pipeline",
        "associatedAccounts": [{"externalId": "crm-003", "domain": "initech.com"}],
        "closedDate": "2026-11-20T08:30:00Z",
    },
    "deal-005": {
        "externalDealId": "deal-005",
        "name": "Hooli - Data Platform",
        "amount": 32000,
        "stageId": "e1",
        "stageLabel": "Discovery",
        "pipelineId": "enterprise-pipeline",
        "pipelineLabel": "Enterprise",
        "ownerName": "Jane Smith",
        "ownerEmail": "jane@yourcompany.com",
        "associatedAccounts": [{"domain": "hooli.example", "name": "Hooli"}],
    },
}
# The accounts run before the deals: each deal is linked, but deal-005's, which has no account.
EXPECTED_LINKS = {
    "deal-001": {"acme.com": True},
    "1002": {"globex.example": True},
    "deal-003": {"initech.com": True},
    "deal-005": {"hooli.example": False},
}
EXPECTED_PIPELINES: dict[str, dict[str, Any]] = {
    "smb-pipeline": {
        "pipelineId": "smb-pipeline",
        "pipelineLabel": "SMB Sales",
        "stages": [
            {"stageId": "s1", "stageLabel": "Prospecting"},
            {"stageId": "s2", "stageLabel": "Proposal Sent"},
            {"stageId": "s3", "stageLabel": "Closed Won"},
            {"stageId": "s4", "stageLabel": "Closed Lost"},
        ],
    },
    "enterprise-pipeline": {
        "pipelineId": "enterprise-pipeline",
        "pipelineLabel": "Enterprise",
        "stages": [
            {"stageId": "e1", "stageLabel": "Discovery"},
            {"stageId": "e2", "stageLabel": "Security Review"},
            {"stageId": "e3", "stageLabel": "Closed Won"},
        ],
    },
}

# Calls and emails with the fields of their own type, dates in UTC, domains cleaned; the meeting
# not sent.
EXPECTED_ACTIVITIES: dict[str, dict[str, Any]] = {
    "call-101": {
        "externalActivityId": "call-101",
        "activityType": "call",
        "occurredAt": "2026-11-18T15:30:00Z",
        "domain": "acme.com",
        "ownerEmail": "jane@yourcompany.com",
        "ownerName": "Jane Smith",
        "contacts": [{"email": "john@acme.com", "name": "John Doe", "title": "VP of Engineering"}],
        "accountName": "Acme Corp",
        "subject": "Security review",
        "callTitle": "Security review kickoff",
        "durationMinutes": 45,
        "outcome": "Connected",
        "direction": "outbound",
    },
    "email-102": {
        "externalActivityId": "email-102",
        "activityType": "email",
        "occurredAt": "2026-11-19T08:12:00Z",
        "domain": "globex.example",
        "ownerEmail": "raj@yourcompany.com",
        "contacts": [{"email": "hank@globex.example", "name": "Hank Scorpio"}],
        "from": {"name": "Raj Patel", "email": "raj@yourcompany.com"},
        "subject": "Renewal proposal",
        "openCount": 3,
        "clickCount": 1,
    },
    "call-103": {
        "externalActivityId": "call-103",
        "activityType": "call",
        "occurredAt": "2026-11-20T16:00:00Z",
        "domain": "initech.com",
        "ownerEmail": "raj@yourcompany.com",
        "contacts": [{"email": "bill@initech.com", "name": "Bill Lumbergh"}],
        "callTitle": "Pilot check-in",
        "durationMinutes": 20,
        "outcome": "Left voicemail",
        "direction": "inbound",
    },
}

KINDS = {
    "string": "string",
    "integer": "integer",
    "number": "decimal",
    "boolean": "boolean",
    "object": "object",
    "array": "array",
}


def test_meltano_yml_declares_every_setting_of_the_target() -> None:
    """The loader's settings in meltano.yml are those of `--about`, with kinds and defaults."""
    about = about_json()
    properties = about["settings"]["properties"]
    project = yaml.safe_load((REPO / "meltano.yml").read_text())
    assert "version" not in project
    assert project["requires_meltano"].startswith(">=4")
    assert project["default_environment"] == "demo"
    (loader,) = project["plugins"]["loaders"]
    assert loader["capabilities"] == about["capabilities"]
    settings = {setting["name"]: setting for setting in loader["settings"]}
    assert list(settings) == list(properties)
    for name, prop in properties.items():
        setting = settings[name]
        (json_type,) = {t for t in prop["type"] if t != "null"}
        assert setting["kind"] == KINDS[json_type], name
        assert setting["label"] == prop["title"], name
        assert setting["description"] == prop["description"], name
        assert setting.get("value") == prop.get("default"), name
        assert setting.get("sensitive", False) == prop.get("secret", False), name


def _check(result: subprocess.CompletedProcess[str]) -> str:
    """Meltano's whole output, once it is known to have succeeded."""
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{result.args} exited {result.returncode}:\n{output[-5000:]}"
    return output


def _state(project: MeltanoProject, stream: str) -> Any:
    return json.loads(_check(project.run("state", "get", STATE_IDS[stream])).splitlines()[0])


def _expected_state(project: MeltanoProject, stream: str) -> dict[str, Any]:
    """tap-jsonl's last STATE: the modification time of the file it read, per file and overall."""
    path = project.root.resolve() / "demo" / "meltano" / f"{stream}.jsonl"
    mtime = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc).replace(microsecond=0)
    bookmark = {"replication_key": "_sdc_last_modified", "replication_key_value": mtime.isoformat()}
    context = {"_sdc_filename": str(path), "_sdc_stream": stream}
    return {
        "singer_state": {
            "bookmarks": {stream: {"partitions": [{"context": context, **bookmark}], **bookmark}}
        }
    }


@pytest.mark.slow
def test_meltano_run_loads_the_sample_files_into_recotap(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    """`meltano install` + `meltano run` twice, then `meltano config test`, against the emulator."""
    dead_letter = tmp_path / "rejected.jsonl"
    project = meltano_project(
        tmp_path,
        {
            "TARGET_RECOTAP_API_URL": emulator.url,
            "TARGET_RECOTAP_API_KEY": emulator.api_key,
            "TARGET_RECOTAP_DEAD_LETTER_PATH": str(dead_letter),
        },
    )
    store = emulator.store
    seed_emulator(store)
    _check(project.run("install"))

    # First run: everything arrives, deals linked to the accounts sent before them, the invalid
    # deal is rejected (max_rejected_records: 1 in the demo environment, so the run still
    # succeeds), the meeting is skipped, and each pipeline's last STATE is stored.
    first = _check(project.run(*RUN))
    assert store.accounts() == EXPECTED_ACCOUNTS
    assert store.pipelines() == EXPECTED_PIPELINES
    assert store.deals() == EXPECTED_DEALS
    assert store.deal_versions() == dict.fromkeys(EXPECTED_DEALS, 1)
    assert store.deal_links() == EXPECTED_LINKS
    assert store.activities() == EXPECTED_ACTIVITIES
    rejected = [json.loads(line) for line in dead_letter.read_text().splitlines()]
    assert [(m["type"], m["stream"]) for m in rejected] == [
        ("SCHEMA", "deals"),
        ("RECORD", "deals"),
    ]
    assert rejected[1]["record"]["externalDealId"] == "deal-004"
    assert "ownerEmail" in rejected[1]["recotap_rejection"]["reason"]
    assert "Rejected deals record 'deal-004'" in first
    assert "Skipped activityType 'meeting' in sales_activities (1 record), not sent" in first
    assert (
        "Summary accounts: received 4, sent 3, created or updated 3, skipped as existing 0,"
        " rejected 0, merged duplicates 1," in first
    )
    for stream in STATE_IDS:
        assert _state(project, stream) == _expected_state(project, stream)
    stats = store.stats()["byEndpoint"]
    assert stats == {
        "POST /accounts": {"200": 1},
        "GET /accounts/custom-fields": {"200": 1},  # the custom fields Recotap has, once
        "POST /deal-stages": {"201": 1},
        "POST /deals": {"200": 1},
        "POST /sales-activities": {"200": 1},
    }

    # Second run: Meltano hands the stored state back to the tap, which logs its bookmark. But
    # tap-jsonl 0.3.1 looks up each file's bookmark under "_sdc_last_modified" while the SDK
    # stores it as "replication_key_value", so it reads every file again. The run is still a
    # no-op for the data: each account and deal is upserted once more with the same values
    # (version 2, identical content, the deals linked as before), both pipelines come back 409
    # and the activities fail as duplicates, each skipped as existing.
    second = _check(project.run(*RUN))
    for stream in STATE_IDS:
        bookmark = _expected_state(project, stream)["singer_state"]["bookmarks"][stream]
        value = bookmark["replication_key_value"]
        assert f"Starting incremental sync with bookmark value: {value}" in second
    assert store.accounts() == EXPECTED_ACCOUNTS
    assert {r["domain"]: r["version"] for r in store.account_records()} == dict.fromkeys(
        EXPECTED_ACCOUNTS, 2
    )
    assert store.pipelines() == EXPECTED_PIPELINES
    assert store.deals() == EXPECTED_DEALS
    assert store.deal_versions() == dict.fromkeys(EXPECTED_DEALS, 2)
    assert store.deal_links() == EXPECTED_LINKS
    assert store.activities() == EXPECTED_ACTIVITIES
    assert (
        "Summary accounts: received 4, sent 3, created or updated 3, skipped as existing 0,"
        " rejected 0" in second
    )
    assert "Summary deal_stages: received 4, sent 0, created 0, skipped as existing 2" in second
    assert "Skipped 2 pipelines already in Recotap: no change in the source" in second
    assert (
        "Summary deals: received 6, sent 4, upserted 4, skipped as existing 0, rejected 1" in second
    )
    assert (
        "Summary sales_activities: received 4, sent 3, created 0, skipped as existing 3,"
        " skipped by type 1 ('meeting' 1), rejected 0" in second
    )
    stats = store.stats()["byEndpoint"]
    assert stats == {
        "POST /accounts": {"200": 2},
        "GET /accounts/custom-fields": {"200": 2},
        "POST /deal-stages": {"201": 1, "409": 1},
        "GET /deal-stages": {"200": 1},  # the existing pipelines compared with the source
        "POST /deals": {"200": 2},
        "POST /sales-activities": {"200": 2},
    }
    for stream in STATE_IDS:
        assert _state(project, stream) == _expected_state(project, stream)

    # `meltano config test` feeds the loader a 'meltano_test_stream' record: the target skips
    # it with a warning, sends nothing and exits 0. Meltano logs "Test data was written" only
    # when the loader exited 0 without a line saying "error" or "exception". Meltano 4.4.1 then
    # calls terminate() on the finished process, which, depending on a race, is a no-op
    # ("Plugin configuration is valid", exit 0) or fails with its own ProcessLookupError.
    # (At --log-level=debug it reports the configuration invalid: the SDK's debug dump of the
    # settings schema has the word "error" in two descriptions, and Meltano matches any line.)
    tested = project.run("--environment=demo", "config", "test", "target-recotap")
    output = tested.stdout + tested.stderr
    assert "Test data was written to your target system" in output, output[-5000:]
    if tested.returncode != 0:
        assert "ProcessLookupError" in output, output[-5000:]
    else:
        assert "Plugin configuration is valid" in output
    assert store.stats()["byEndpoint"] == stats


@pytest.mark.slow
def test_meltano_add_from_the_hub_definition(tmp_path: Path) -> None:
    """`meltano add --from-ref hub/target-recotap.yml` gives a project the loader, as the Hub
    would (not installed: the package name is not published from here)."""
    meltano = str(meltano_venv() / "bin" / "meltano")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MELTANO_")}
    env["MELTANO_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    init = subprocess.run(
        [meltano, "init", "--no-usage-stats", "fresh"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    project = tmp_path / "fresh"
    add = subprocess.run(
        [meltano, "add", "loader", "target-recotap", "--no-install", "--from-ref",
         str(REPO / "hub" / "target-recotap.yml")],
        cwd=project, env=env, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert add.returncode == 0, add.stderr
    loader = yaml.safe_load((project / "meltano.yml").read_text())["plugins"]["loaders"][0]
    assert loader["name"] == "target-recotap"
    assert loader["namespace"] == "target_recotap"
    assert loader["variant"] == "recotap"
    assert {s["name"] for s in loader["settings"]} >= {"api_key", "api_url", "dead_letter_path"}
