"""The Meltano recipes in recipes/ turn each CRM tap's records into Recotap deals, pipelines and
accounts.

Each test feeds records shaped like the tap's published schema (tests/fixtures/crm/<crm>/, see
the README there) through the recipe's stream maps into the emulator and checks, field by field,
what Recotap received.
"""

from __future__ import annotations

import ast
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from support import config_for, run_in_process

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "recipes"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "crm"
CRMS = ["hubspot", "pipedrive", "salesforce"]

# Names a map expression may use that are not record fields.
NOT_FIELDS = {"record", "_", "config", "self", "str", "int", "float", "bool", "len", "None"}
# Fields a recipe reads with record.get() that the fixture's tap version does not have: the
# owner and deleted flag of tap-pipedrive 1.3+ (Pipedrive API v2), whose deals schema the
# fixture does not copy (it copies the 1.x one, which has user_id and deleted instead).
OTHER_TAP_VERSIONS = {"pipedrive": {"deals": {"owner_id", "is_deleted"}}}


def recipe(crm: str) -> dict[str, Any]:
    doc = yaml.safe_load((RECIPES / f"{crm}.yml").read_text())
    return doc


def loader_config(crm: str) -> dict[str, Any]:
    (loader,) = recipe(crm)["plugins"]["loaders"]
    assert loader["name"] == "target-recotap"
    return loader["config"]


def messages(crm: str) -> list[dict[str, Any]]:
    lines = (FIXTURES / crm / "messages.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def run_recipe(crm: str, emulator: Any, capsys: Any, caplog: Any) -> Any:
    with caplog.at_level(logging.INFO):
        outcome = run_in_process(config_for(emulator, **loader_config(crm)), messages(crm), capsys)
    assert outcome.exit_code == 0, caplog.text
    assert "Rejected" not in caplog.text
    return outcome


# --- HubSpot (MeltanoLabs tap-hubspot) -----------------------------------------------------


def test_hubspot_recipe(emulator, capsys, caplog):
    outcome = run_recipe("hubspot", emulator, capsys, caplog)
    assert emulator.store.deals() == {
        "18231947301": {
            "externalDealId": "18231947301",
            "name": "Acme Corp - Enterprise Plan",
            "amount": 75000,
            "stageId": "presentationscheduled",
            "pipelineId": "default",
            "startDate": "2026-01-15T09:30:12.345Z",
            "closedDate": "2026-06-30T00:00:00Z",
            "ownerId": "52617894",
            "dealCurrencyCode": "USD",
        },
        "18231947455": {
            "externalDealId": "18231947455",
            "name": "Globex renewal",
            "amount": 48250.5,
            "stageId": "112233446",
            "pipelineId": "98765432",
            "startDate": "2025-11-03T14:05:00Z",
            "closedDate": "2026-03-31T22:00:00Z",
            "ownerId": "52617895",
            "dealCurrencyCode": "EUR",
        },
        # No amount, close date, owner or currency in HubSpot: left out, not sent as null.
        "18231948002": {
            "externalDealId": "18231948002",
            "name": "Initech - pilot",
            "stageId": "appointmentscheduled",
            "pipelineId": "default",
            "startDate": "2026-02-20T11:00:00Z",
        },
    }
    assert emulator.store.pipelines() == {
        "default": {
            "pipelineId": "default",
            "pipelineLabel": "Sales Pipeline",
            "stages": [
                {"stageId": "appointmentscheduled", "stageLabel": "Appointment Scheduled"},
                {"stageId": "qualifiedtobuy", "stageLabel": "Qualified To Buy"},
                {"stageId": "presentationscheduled", "stageLabel": "Presentation Scheduled"},
                {"stageId": "closedwon", "stageLabel": "Closed Won"},
                {"stageId": "closedlost", "stageLabel": "Closed Lost"},
            ],
        },
        "98765432": {
            "pipelineId": "98765432",
            "pipelineLabel": "Partner Renewals",
            "stages": [
                {"stageId": "112233445", "stageLabel": "Renewal Proposed"},
                {"stageId": "112233446", "stageLabel": "Renewed"},
            ],
        },
    }
    assert emulator.store.accounts() == {
        "acme.com": {
            "domain": "acme.com",
            "name": "Acme Corp",
            "externalId": "8312345601",
            "linkedinUrl": "https://www.linkedin.com/company/acme-corp",
        },
        # No company domain: the website URL, cleaned by the target.
        "globex.com": {"domain": "globex.com", "name": "Globex", "externalId": "8312345602"},
        # 8312345603 is archived, 8312345604 has neither domain nor website: filtered out.
    }
    assert emulator.store.activities() == {
        # Sent from the CRM: the rep is the sender, the contact the recipient.
        "61200000001": {
            "externalActivityId": "61200000001",
            "activityType": "email",
            "occurredAt": "2026-04-22T10:30:00Z",
            "domain": "globex.com",
            "ownerEmail": "jane@yourcompany.com",
            "contacts": [{"email": "hank@globex.com"}],
            "subject": "Enterprise plan pricing",
            "ownerId": "52617894",
        },
        # A reply: the other way round; of two recipients, the first is the owner.
        "61200000002": {
            "externalActivityId": "61200000002",
            "activityType": "email",
            "occurredAt": "2026-04-23T08:05:12Z",
            "domain": "acme.com",
            "ownerEmail": "jane@yourcompany.com",
            "contacts": [{"email": "wile@acme.com"}],
            "subject": "Re: Enterprise plan pricing",
            "ownerId": "52617894",
        },
        # Logged without a send status; of two recipients, the first is the contact.
        "61200000003": {
            "externalActivityId": "61200000003",
            "activityType": "email",
            "occurredAt": "2026-04-24T15:00:00Z",
            "domain": "initech.com",
            "ownerEmail": "jane@yourcompany.com",
            "contacts": [{"email": "lisa@initech.com"}],
            "subject": "Pilot kick-off",
            "ownerId": "52617894",
        },
        # 61200000004 bounced, 61200000005 is forwarded, 61200000006 archived: filtered out.
    }
    assert outcome.states == [messages("hubspot")[-1]["value"]]


# --- Pipedrive (singer-io tap-pipedrive) ----------------------------------------------------


def test_pipedrive_recipe(emulator, capsys, caplog):
    outcome = run_recipe("pipedrive", emulator, capsys, caplog)
    assert emulator.store.deals() == {
        "1042": {
            "externalDealId": "1042",
            "name": "Acme Corp - Enterprise Plan",
            "amount": 75000,
            "stageId": "3",
            "pipelineId": "1",
            "startDate": "2026-01-15T09:30:12Z",
            "closedDate": "2026-06-30T00:00:00Z",  # open: expected_close_date, date only
            "ownerId": "13370",
            "ownerName": "Jane Smith",
            "dealCurrencyCode": "USD",
            "associatedAccounts": [{"externalId": "501", "name": "Acme Corp"}],  # org_id, org_name
        },
        "1043": {
            "externalDealId": "1043",
            "name": "Globex renewal",
            "amount": 48250.5,
            "stageId": "12",
            "pipelineId": "2",
            "startDate": "2025-11-03T14:05:00Z",
            "closedDate": "2026-02-10T16:45:31Z",  # won: close_time
            "ownerId": "13371",
            "ownerName": "Hank Scorpio",
            "dealCurrencyCode": "EUR",
            "associatedAccounts": [{"externalId": "502", "name": "Globex"}],
        },
        # deal 1044 is deleted in Pipedrive: filtered out.
    }
    assert emulator.store.pipelines() == {
        "1": {
            "pipelineId": "1",
            "pipelineLabel": "Sales",
            "stages": [
                {"stageId": "1", "stageLabel": "Qualified"},
                {"stageId": "2", "stageLabel": "Contact Made"},
                {"stageId": "3", "stageLabel": "Proposal Made"},
            ],
        },
        "2": {
            "pipelineId": "2",
            "pipelineLabel": "Renewals",
            "stages": [
                {"stageId": "11", "stageLabel": "Renewal Due"},
                {"stageId": "12", "stageLabel": "Renewed"},
            ],
        },
        # pipeline 3 and stage 4 are deleted in Pipedrive: not created.
    }
    assert emulator.store.accounts() == {
        # The web-site custom field, a URL, cleaned by the target; externalId is the deals' org_id.
        "acme.com": {"domain": "acme.com", "name": "Acme Corp", "externalId": "501"},
        "globex.com": {"domain": "globex.com", "name": "Globex", "externalId": "502"},
        # organization 503 is deleted, 504 has no web site: filtered out.
    }
    assert emulator.store.activities() == {
        "3101": {
            "externalActivityId": "3101",
            "activityType": "call",
            "occurredAt": "2026-04-22T10:30:00Z",
            "domain": "acme.com",
            # From stream_map_config's owner table.
            "ownerEmail": "jane@yourcompany.com",
            # The attendee's email and name; its status, person_id, ... are not Recotap's.
            "contacts": [{"email": "wile@acme.com", "name": "Wile E. Coyote"}],
            "subject": "Discovery call",
            "ownerId": "13370",
            "durationMinutes": 25,
        },
        # No due time (the day's start), no duration, two attendees.
        "3102": {
            "externalActivityId": "3102",
            "activityType": "email",
            "occurredAt": "2026-04-23T00:00:00Z",
            "domain": "globex.com",
            "ownerEmail": "jane@yourcompany.com",
            "contacts": [
                {"email": "frank@globex.com", "name": "Frank Grimes"},
                {"email": "mindy@globex.com", "name": "Mindy"},
            ],
            "subject": "Proposal sent",
            "ownerId": "13370",
        },
        # 3103 is a meeting (skipped by type, with a warning), 3104 is not done yet, 3105 is
        # deleted: not sent.
    }
    assert "Skipped activityType 'meeting' in sales_activities (1 record)" in caplog.text
    assert outcome.states == [messages("pipedrive")[-1]["value"]]


# --- Salesforce (singer-io tap-salesforce) --------------------------------------------------


def test_salesforce_recipe(emulator, capsys, caplog):
    outcome = run_recipe("salesforce", emulator, capsys, caplog)
    assert emulator.store.deals() == {
        "0065g00000XyZ12AAB": {
            "externalDealId": "0065g00000XyZ12AAB",
            "name": "Acme Corp - Enterprise Plan",
            "amount": 75000,
            "stageId": "Proposal/Price Quote",
            "pipelineId": "salesforce",
            "startDate": "2026-01-15T09:30:12Z",
            "closedDate": "2026-06-30T00:00:00Z",
            "ownerId": "0055g00000JaneSAAA",
            "dealCurrencyCode": "USD",
            "associatedAccounts": [{"externalId": "0015g00000AcmeAAA"}],  # AccountId
        },
        "0065g00000XyZ13AAB": {
            "externalDealId": "0065g00000XyZ13AAB",
            "name": "Globex renewal",
            "amount": 48250.5,
            "stageId": "Closed Won",
            "pipelineId": "salesforce",
            "startDate": "2025-11-03T14:05:00Z",
            "closedDate": "2026-02-10T00:00:00Z",
            "ownerId": "0055g00000HankSAAA",
            "dealCurrencyCode": "EUR",
            "associatedAccounts": [{"externalId": "0015g00000GlobxAAA"}],
        },
        # 0065g00000XyZ14AAB has IsDeleted: filtered out.
    }
    assert emulator.store.pipelines() == {
        "salesforce": {
            "pipelineId": "salesforce",
            "pipelineLabel": "Salesforce Opportunities",
            "stages": [
                {"stageId": "Prospecting", "stageLabel": "Prospecting"},
                {"stageId": "Qualification", "stageLabel": "Qualification"},
                {"stageId": "Proposal/Price Quote", "stageLabel": "Proposal/Price Quote"},
                {"stageId": "Perception Analysis", "stageLabel": "Perception Analysis"},
                {"stageId": "Closed Won", "stageLabel": "Won"},
                {"stageId": "Closed Lost", "stageLabel": "Closed Lost"},
            ],
        },
    }
    assert emulator.store.accounts() == {
        # Website, cleaned by the target (https://www.acme.com, www.Globex.com/en-us).
        "acme.com": {"domain": "acme.com", "name": "Acme Corp", "externalId": "0015g00000AcmeAAA"},
        "globex.com": {
            "domain": "globex.com",
            "name": "Globex",
            "externalId": "0015g00000GlobxAAA",
        },
        # 0015g00000InitcAAA has IsDeleted, 0015g00000UmbrlAAA no Website: filtered out.
    }
    assert outcome.states == [messages("salesforce")[-1]["value"]]


# --- The recipes and fixtures themselves ------------------------------------------------------


def schemas(crm: str) -> dict[str, dict[str, Any]]:
    return {m["stream"]: m["schema"] for m in messages(crm) if m["type"] == "SCHEMA"}


def fields_read(expression: str) -> set[tuple[str, ...]]:
    """Record fields an expression reads: ``x``, ``record.get('x')``, ``x.get('y')``, ``x['y']``."""
    found: set[tuple[str, ...]] = set()
    tree = ast.parse(expression, mode="eval")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner, key = node.func.value, node.args[0] if node.args else None
            if node.func.attr == "get" and isinstance(owner, ast.Name):
                assert isinstance(key, ast.Constant), expression
                path = (key.value,) if owner.id in {"record", "_"} else (owner.id, key.value)
                found.add(path)
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            assert isinstance(node.slice, ast.Constant), expression
            owner_name, key = node.value.id, node.slice.value
            if owner_name in {"record", "_"}:
                found.add((key,))
            elif owner_name not in NOT_FIELDS and not isinstance(key, int):  # not a position
                found.add((owner_name, key))
        elif isinstance(node, ast.Name) and node.id not in NOT_FIELDS:
            found.add((node.id,))
    return found


def unknown_fields(
    stream_map: dict[str, Any],
    schema: dict[str, Any],
    allowed: frozenset[str] | set[str] = frozenset(),
) -> list[str]:
    """The fields a stream map reads that the stream's schema does not have."""
    unknown = []
    for target_field, expression in stream_map.items():
        if target_field in {"__alias__", "__else__", "__key_properties__"}:
            continue
        for path in sorted(fields_read(expression)):
            if path[0] in allowed:
                continue
            node = schema
            for part in path:
                if part not in node.get("properties", {}):
                    unknown.append(f"{target_field}: {'.'.join(path)}")
                    break
                node = node["properties"][part]
    return unknown


# The tap's stream with each pipeline's stages (one a record, or a list in each record).
STAGE_STREAMS = {
    "hubspot": "deal_pipelines",
    "pipedrive": "stages",
    "salesforce": "OpportunityStage",
}


@pytest.mark.parametrize("crm", CRMS)
def test_recipes_order_stages_by_the_taps_own_order(crm, emulator, capsys, caplog):
    run_recipe(crm, emulator, capsys, caplog)
    in_order = emulator.store.pipelines()
    emulator.store.reset()
    shuffled = messages(crm)
    positions = [
        i
        for i, message in enumerate(shuffled)
        if message["type"] == "RECORD" and message["stream"] == STAGE_STREAMS[crm]
    ]
    stage_records = [shuffled[i] for i in positions]
    for i, message in zip(positions, reversed(stage_records), strict=True):
        shuffled[i] = message
        if "stages" in message["record"]:
            message["record"]["stages"].reverse()
    config = config_for(emulator, **loader_config(crm))
    assert run_in_process(config, shuffled, capsys).exit_code == 0
    assert emulator.store.pipelines() == in_order


@pytest.mark.parametrize("crm", CRMS)
def test_recipes_read_only_fields_of_the_taps_schema(crm):
    stream_schemas = schemas(crm)
    maps = loader_config(crm)["stream_maps"]
    extractor = recipe(crm)["plugins"]["extractors"][0]
    assert {pattern.split(".")[0] for pattern in extractor["select"]} == set(maps)
    for stream, stream_map in maps.items():
        assert stream_map["__alias__"] in {"deals", "deal_stages", "accounts", "sales_activities"}
        allowed = OTHER_TAP_VERSIONS.get(crm, {}).get(stream, set())
        assert unknown_fields(stream_map, stream_schemas[stream], allowed) == [], (crm, stream)


@pytest.mark.parametrize("crm", CRMS)
def test_what_recipes_read_from_config_is_in_their_stream_map_config(crm):
    config = loader_config(crm)
    read = {
        node.slice.value
        for stream_map in config["stream_maps"].values()
        for expression in stream_map.values()
        if isinstance(expression, str)
        for node in ast.walk(ast.parse(expression, mode="eval"))
        if isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Name)
        and node.value.id == "config"
    }
    assert read <= set(config.get("stream_map_config", {})), crm


def test_recipes_are_valid_meltano_yml():
    # check-jsonschema's bundled copy of Meltano's meltano.yml schema: no network.
    files = [str(RECIPES / f"{crm}.yml") for crm in CRMS]
    check = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.meltano", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_field_check_catches_a_misspelt_field():
    assert fields_read("properties.get('dealname')") == {
        ("properties",),
        ("properties", "dealname"),
    }
    assert fields_read("record.get('close_time') or expected_close_date") == {
        ("close_time",),
        ("expected_close_date",),
    }
    assert fields_read("str(record.get('owner_id') or '')") == {("owner_id",)}
    assert fields_read("'salesforce'") == set()
    assert fields_read("config['owner_emails'].get(str(user_id))") == {("user_id",)}
    assert fields_read("record['type'] or (attendees or [{}])[0]") == {("type",), ("attendees",)}
    hubspot = schemas("hubspot")["deals"]
    misspelt = {"name": "properties.get('deal_name')", "amount": "propertes['amount']"}
    assert unknown_fields(misspelt, hubspot) == [
        "name: properties.deal_name",
        "amount: propertes",
        "amount: propertes.amount",
    ]


@pytest.mark.parametrize("crm", CRMS)
def test_fixture_records_match_the_fixture_schemas(crm):
    stream_schemas: dict[str, dict[str, Any]] = {}
    for message in messages(crm):
        if message["type"] == "SCHEMA":
            stream_schemas[message["stream"]] = message["schema"]
        elif message["type"] == "RECORD":
            jsonschema.validate(
                message["record"],
                stream_schemas[message["stream"]],
                format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER,
            )
