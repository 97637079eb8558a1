"""Accounts through the target into the emulator, over a socket: fields, cleaned domains merged
in a run, re-runs that update, the fallback on an API without upsert, custom fields, the
segment setting, and STATE."""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import pytest
from support import (
    LiveTarget,
    Outcome,
    config_for,
    record,
    run_cli,
    run_in_process,
    state,
    write_config,
)

ACCOUNT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "domain": {"type": ["string", "null"]},
        "name": {"type": ["string", "null"]},
        "externalId": {"type": ["string", "integer", "null"]},
        "external_id": {"type": ["string", "integer", "null"]},
        "shortName": {"type": ["string", "null"]},
        "linkedinUrl": {"type": ["string", "null"]},
        "tags": {"type": ["array", "null"], "items": {"type": ["string", "integer", "null"]}},
        "customFields": {
            "type": ["object", "null"],
            "properties": {
                "CONTRACT_VALUE_C": {"type": ["number", "null"]},
                "SEATS_C": {"type": "integer"},
                "RENEWS_ON_C": {"type": "string", "format": "date"},
                "SIGNED_AT_C": {"type": ["string", "null"], "format": "date-time"},
                "REGION_C": {"type": "string"},
            },
        },
    },
}
UPSERT_REFUSED = (
    "Recotap refused upsert on POST /accounts (upsert: property upsert should not exist): this "
    "API creates accounts but cannot update them. The run goes on create-only: accounts Recotap "
    "holds already are skipped as existing, not updated; updating them needs an API that takes "
    "upsert (accounts_upsert: false goes create-only from the start)"
)


def load(config: dict[str, Any], messages: list[dict], capsys: Any, caplog: Any) -> Outcome:
    """Run the target in this process; its ``log`` is the messages logged, one a line."""
    caplog.set_level(logging.INFO)
    caplog.clear()
    outcome = run_in_process(config, messages, capsys)
    return dataclasses.replace(outcome, log="\n".join(caplog.messages))


def accounts_messages(accounts: list[dict[str, Any]], *extra: dict) -> list[dict]:
    return [
        {"type": "SCHEMA", "stream": "accounts", "schema": ACCOUNT_SCHEMA, "key_properties": []},
        *(record("accounts", account) for account in accounts),
        *extra,
    ]


def account(n: int | str, **fields: Any) -> dict[str, Any]:
    return {"domain": f"https://www.company-{n}.example/about", "name": f"Company {n}", **fields}


def seed_field(emulator, key: str, label_type: str = "singleLineText") -> None:
    label = key.removesuffix("_C").replace("_", " ").title()
    field = {"key": key, "label": label, "labelType": label_type, "status": "active"}
    emulator.store.add_custom_field(field)


def account_requests(emulator) -> list[dict[str, Any]]:
    return [r for r in emulator.store.requests() if r["endpoint"] == "POST /accounts"]


def summary(log: str) -> str:
    (line,) = [line for line in log.splitlines() if "Summary accounts:" in line]
    return line.split("Summary accounts: ")[1]


def test_every_field_and_its_twin_arrive_as_recotap_names_them(emulator, capsys, caplog):
    seed_field(emulator, "CONTRACT_VALUE_C", "number")
    seed_field(emulator, "REGION_C")
    records = [
        {
            "domain": "https://www.Acme.com/pricing",
            "name": "Acme Corp",
            "externalId": "crm-001",
            "shortName": "Acme",
            "linkedinUrl": "https://www.linkedin.com/company/acme",
            "tags": ["enterprise", 7, None],
            "customFields": {"CONTRACT_VALUE_C": 75000.0, "REGION_C": "EMEA"},
            "industry": "Software",
        },
        {
            "domain": "globex.example",
            "name": "Globex",
            "external_id": 42,
            "short_name": "GBX",
            "linkedin_url": "https://www.linkedin.com/company/globex",
            "custom_fields": {"REGION_C": "APAC"},
            "shortName": None,
        },
    ]
    outcome = load(config_for(emulator), accounts_messages(records), capsys, caplog)

    assert outcome.exit_code == 0, outcome.log
    assert emulator.store.accounts() == {
        "acme.com": {
            "domain": "acme.com",
            "name": "Acme Corp",
            "externalId": "crm-001",
            "shortName": "Acme",
            "linkedinUrl": "https://www.linkedin.com/company/acme",
            "tags": ["enterprise", "7"],
            "customFields": {"CONTRACT_VALUE_C": 75000, "REGION_C": "EMEA"},
        },
        "globex.example": {
            "domain": "globex.example",
            "name": "Globex",
            "externalId": "42",
            "shortName": "GBX",
            "linkedinUrl": "https://www.linkedin.com/company/globex",
            "customFields": {"REGION_C": "APAC"},
        },
    }
    assert summary(outcome.log).startswith("received 2, sent 2, created or updated 2, ")


def test_records_of_one_cleaned_domain_become_one_account_the_latest_field_winning(
    emulator, capsys, caplog
):
    records = [
        {"domain": "https://www.Acme.com/a", "name": "Acme", "shortName": "A", "tags": ["x"]},
        {"domain": "acme.com", "name": "Acme Corp", "tags": ["y", "z"]},
        {"domain": "WWW.ACME.COM", "name": "Acme Inc", "shortName": None},
        {"domain": "globex.example", "name": "Globex"},
    ]
    outcome = load(config_for(emulator), accounts_messages(records), capsys, caplog)

    assert outcome.exit_code == 0, outcome.log
    assert [r["items"] for r in account_requests(emulator)] == [2]
    assert emulator.store.accounts()["acme.com"] == {
        "domain": "acme.com",
        "name": "Acme Inc",
        "shortName": "A",  # sent null later: never sent, so kept
        "tags": ["y", "z"],  # a list replaced whole
    }
    assert "merged duplicates 2" in summary(outcome.log)


def test_what_recotap_holds_does_not_depend_on_batch_size_rows(emulator, capsys, caplog):
    records = []
    for version in range(4):
        for n in range(30):
            fields: dict[str, Any] = {"name": f"Company {n} v{version}"}
            if (n + version) % 3 == 0:
                fields["shortName"] = f"C{n}.{version}"
            if (n * version) % 4 == 1:
                fields["tags"] = [f"t{version}"]
            records.append(account(n, **fields))
    held = []
    for rows in (1, 100):
        emulator.store.reset()
        outcome = load(
            config_for(emulator, batch_size_rows=rows), accounts_messages(records), capsys, caplog
        )
        assert outcome.exit_code == 0, outcome.log
        held.append(emulator.store.accounts())
    assert held[0] == held[1]
    assert len(held[0]) == 30
    assert len(account_requests(emulator)) == 1  # with 100 a request, one request at the end


def test_a_rerun_updates_the_accounts_recotap_holds(emulator, capsys, caplog):
    load(config_for(emulator), accounts_messages([account(1, shortName="C1")]), capsys, caplog)

    outcome = load(
        config_for(emulator), accounts_messages([account(1, name="Renamed")]), capsys, caplog
    )

    assert outcome.exit_code == 0, outcome.log
    (held,) = emulator.store.account_records()
    assert held["version"] == 2
    assert held["account"] == {
        "domain": "company-1.example",
        "name": "Renamed",
        "shortName": "C1",
    }
    assert summary(outcome.log).startswith("received 1, sent 1, created or updated 1, ")


def test_an_api_without_upsert_turns_the_run_create_only_with_one_warning(emulator, capsys, caplog):
    emulator.faults.older_api = True
    records = [account(n) for n in range(250)]
    config = config_for(emulator, max_concurrent_requests=4, batch_size_rows=20)

    first = load(config, accounts_messages(records), capsys, caplog)

    assert first.exit_code == 0, first.log
    assert len(emulator.store.accounts()) == 250
    assert first.log.splitlines().count(UPSERT_REFUSED) == 1
    assert "Rejected" not in first.log

    again = load(config, accounts_messages([*records[:5], account("new")]), capsys, caplog)

    assert again.exit_code == 0, again.log
    assert again.log.splitlines().count(UPSERT_REFUSED) == 1
    assert summary(again.log).startswith(
        "received 6, sent 6, created or updated 1, skipped as existing 5, rejected 0, "
    )
    assert all(held["version"] == 1 for held in emulator.store.account_records())


def test_accounts_upsert_false_sends_no_upsert_and_skips_what_exists(emulator, capsys, caplog):
    emulator.faults.older_api = True  # would refuse a body with upsert
    config = config_for(emulator, accounts_upsert=False)
    load(config, accounts_messages([account(1)]), capsys, caplog)

    outcome = load(config, accounts_messages([account(1, name="Renamed")]), capsys, caplog)

    assert outcome.exit_code == 0, outcome.log
    assert [r["status"] for r in account_requests(emulator)] == [200, 200]
    assert "upsert" not in outcome.log
    assert emulator.store.accounts()["company-1.example"]["name"] == "Company 1"
    assert "skipped as existing 1, rejected 0" in summary(outcome.log)


def test_an_account_recotap_holds_already_is_in_the_debug_log_with_recotap_s_words(
    emulator, capsys, caplog
):
    config = config_for(emulator, accounts_upsert=False)
    run_in_process(config, accounts_messages([account(1)]), capsys)
    with caplog.at_level(logging.DEBUG):
        run_in_process(config, accounts_messages([account(1)]), capsys)

    assert (
        "Account 'company-1.example' is in Recotap already, skipped: Account with domain "
        "'company-1.example' already exists. Use PUT /accounts/{rtp_aid} to update it."
    ) in caplog.messages


def test_a_lost_answer_of_a_create_only_request_is_skipped_as_existing_when_retried(
    emulator, capsys, caplog
):
    emulator.faults.script = ["lose"]
    config = config_for(emulator, accounts_upsert=False)

    outcome = load(config, accounts_messages([account(1)], state({"s": 1})), capsys, caplog)

    assert outcome.exit_code == 0, outcome.log
    assert outcome.states == [{"s": 1}]
    assert list(emulator.store.accounts()) == ["company-1.example"]
    assert "skipped as existing 1, rejected 0" in summary(outcome.log)


def test_unknown_custom_field_keys_are_left_out_with_one_warning_each_and_a_count(
    emulator, capsys, caplog
):
    seed_field(emulator, "REGION_C")
    records = [
        account(1, customFields={"REGION_C": "EMEA", "TIER_C": "gold", "OWNER_C": "x"}),
        account(2, customFields={"TIER_C": "silver"}),
        account(3, customFields={"TIER_C": "bronze"}),
    ]
    outcome = load(config_for(emulator), accounts_messages(records), capsys, caplog)

    assert outcome.exit_code == 0, outcome.log
    held = emulator.store.accounts()
    assert held["company-1.example"]["customFields"] == {"REGION_C": "EMEA"}
    assert "customFields" not in held["company-2.example"]
    warnings = [line for line in outcome.log.splitlines() if "TIER_C" in line]
    assert warnings == [
        "Account custom field 'TIER_C' is not among Recotap's active ones (set "
        "create_custom_fields to create it): 3 accounts sent without it"
    ]
    assert outcome.log.count("Account custom field 'OWNER_C'") == 1
    assert "1 account sent without it" in outcome.log
    listings = [r for r in emulator.store.requests() if r["endpoint"].startswith("GET")]
    assert [r["endpoint"] for r in listings] == ["GET /accounts/custom-fields"]
    assert emulator.store.requests()[0]["endpoint"] == "GET /accounts/custom-fields"


def test_create_custom_fields_creates_the_missing_ones_typed_from_the_schema(
    emulator, capsys, caplog
):
    seed_field(emulator, "REGION_C")
    fields = {
        "CONTRACT_VALUE_C": 75000,
        "SEATS_C": 12,
        "RENEWS_ON_C": "2027-01-31",
        "SIGNED_AT_C": "2026-01-15T09:30:00Z",
        "NOTES_C": "not in the schema",
        "REGION_C": "EMEA",
        "lower_c": "no label yields it",
    }
    config = config_for(emulator, create_custom_fields=True)

    outcome = load(config, accounts_messages([account(1, customFields=fields)]), capsys, caplog)

    assert outcome.exit_code == 0, outcome.log
    types = {key: field["labelType"] for key, field in emulator.store.custom_fields().items()}
    assert types == {
        "REGION_C": "singleLineText",
        "CONTRACT_VALUE_C": "number",
        "SEATS_C": "number",
        "RENEWS_ON_C": "date",
        "SIGNED_AT_C": "date",
        "NOTES_C": "singleLineText",
    }
    assert emulator.store.custom_fields()["CONTRACT_VALUE_C"]["label"] == "Contract Value"
    del fields["lower_c"]
    assert emulator.store.accounts()["company-1.example"]["customFields"] == fields
    lines = outcome.log.splitlines()
    assert (
        "Created account custom field 'CONTRACT_VALUE_C' in Recotap (label 'Contract Value', "
        "type number)"
    ) in lines
    assert (
        "Account custom field 'lower_c' is not among Recotap's active ones, and cannot be "
        "created: Recotap derives a key from a label (spaces to _, upper-cased, _C appended), "
        "and no label gives this one: 1 account sent without it"
    ) in lines

    again = load(config, accounts_messages([account(2, customFields=fields)]), capsys, caplog)

    assert again.exit_code == 0, again.log
    assert "Created account custom field" not in again.log
    assert emulator.store.accounts()["company-2.example"]["customFields"] == fields


@pytest.mark.parametrize(
    ("seeded", "said"),
    [
        (None, "Segment 'seg-9' not found"),
        (
            {"status": "archived"},
            "Segment 'seg-9' is not active or draft and cannot accept new members",
        ),
    ],
)
def test_a_segment_recotap_refuses_stops_the_run_in_one_line_naming_the_setting(
    emulator, tmp_path, seeded, said
):
    if seeded is not None:
        emulator.store.add_segment({"segmentId": "seg-9", "type": "static", **seeded})
    config = write_config(tmp_path, config_for(emulator, accounts_segment_id="seg-9"))
    messages = accounts_messages([account(n) for n in range(150)], state({"s": 1}))

    run = run_cli(["--config", str(config)], messages)

    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if "| ERROR" in line]
    assert [line.split(" | ")[-1] for line in errors] == [
        f"Stopped: Recotap refused the accounts_segment_id setting ('seg-9'): {said}. Set it to "
        "a static segment that is active or draft (GET /segments lists them), or leave it out. "
        "No STATE was written: a rerun starts where this run started"
    ]
    assert "Traceback" not in run.stderr
    assert "Rejected" not in run.stderr
    assert run.stdout == ""
    assert emulator.store.accounts() == {}


def test_accounts_join_the_segment_set(emulator, capsys, caplog):
    emulator.store.add_segment({"segmentId": "seg-1", "type": "static", "status": "draft"})
    config = config_for(emulator, accounts_segment_id="seg-1")

    outcome = load(config, accounts_messages([account(1), account(2)]), capsys, caplog)

    assert outcome.exit_code == 0, outcome.log
    assert [r["segments"] for r in emulator.store.account_records()] == [["seg-1"], ["seg-1"]]


def test_a_state_is_written_only_once_the_accounts_before_it_landed(emulator, tmp_path):
    emulator.faults.latency_ms = 200
    emulator.faults.script = ["503", "lose"]
    target = LiveTarget(write_config(tmp_path, config_for(emulator, batch_size_rows=2)))
    target.send(accounts_messages([account(n) for n in range(4)], state({"s": 1})))

    assert target.next_state() == {"s": 1}
    assert len(emulator.store.accounts()) == 4  # both requests had landed
    target.send([record("accounts", account(4)), state({"s": 2})])
    code, states, log = target.finish()

    assert code == 0, log
    assert states == [{"s": 2}]
    assert len(emulator.store.accounts()) == 5


def test_a_dry_run_writes_custom_fields_as_named_and_lists_nothing(
    emulator, capsys, caplog, tmp_path
):
    out = tmp_path / "bodies.jsonl"
    config = config_for(emulator, dry_run=True, dry_run_path=str(out), accounts_segment_id="s")

    records = [account(n, customFields={"TIER_C": n}) for n in (1, 2)]

    outcome = load(config, accounts_messages(records), capsys, caplog)

    assert outcome.exit_code == 0, outcome.log
    (body,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert body == {
        "accounts": [
            {
                "domain": f"company-{n}.example",
                "name": f"Company {n}",
                "customFields": {"TIER_C": n},
            }
            for n in (1, 2)
        ],
        "upsert": True,
        "segmentId": "s",
    }
    assert emulator.store.requests() == []
    told = [line for line in outcome.log.splitlines() if "custom fields" in line]
    assert told == [
        "Dry run: account custom fields are written as the records name them; a real run first "
        "leaves out those Recotap lacks (GET /accounts/custom-fields)"
    ]
