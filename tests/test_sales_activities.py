"""Sales activities (calls and emails) through the target into the emulator, over a socket."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from support import (
    LiveTarget,
    config_for,
    record,
    run_cli,
    run_in_process,
    schema,
    state,
    states_from,
    write_config,
)

# Activities arrive in many shapes; an open schema lets each test send its own.
OPEN_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


def activity(n: int | str, **fields: Any) -> dict[str, Any]:
    """A call Recotap takes, with only its required fields."""
    return {
        "externalActivityId": f"act-{n}",
        "activityType": "call",
        "occurredAt": "2026-04-22T10:30:00Z",
        "domain": "acme.com",
        "ownerEmail": "jane@yourcompany.com",
        "contacts": [{"email": "john@acme.com"}],
        **fields,
    }


def activities_messages(activities: list[dict[str, Any]]) -> list[dict]:
    return [
        schema("sales_activities", OPEN_SCHEMA),
        *(record("sales_activities", a) for a in activities),
    ]


def activity_requests(emulator) -> list[dict[str, Any]]:
    return [r for r in emulator.store.requests() if r["endpoint"] == "POST /sales-activities"]


def summary_line(log: str) -> str:
    (line,) = [line for line in log.splitlines() if "Summary sales_activities" in line]
    return line.split(" | ")[-1]


def test_every_documented_field_and_its_twin_is_sent_as_recotap_names_it(emulator, capsys):
    call = {
        "external_activity_id": 41,
        "activity_type": "call",
        "occurred_at": "2026-04-22T12:30:00+02:00",
        "domain": "https://www.Acme.com/team",
        "owner_email": "  jane@yourcompany.com ",
        "contacts": [
            None,
            {
                "email": "john@acme.com",
                "external_contact_id": 456,
                "name": "John Doe",
                "title": "VP of Engineering",
                "department": "Engineering",
                "seniority": "VP",
                "phone": "+1 415 555 0101",
                "linkedin_url": "https://linkedin.com/in/johndoe",
                "favouriteColour": "green",
            },
        ],
        "account_name": "Acme Corp",
        "subject": "Discovery",
        "owner_name": "Jane Smith",
        "owner_id": 123,
        "from": {"name": "Jane Smith", "email": "jane@yourcompany.com", "title": "AE"},
        "call_title": "Discovery call",
        "duration_minutes": "12.5",
        "outcome": "Connected",
        "direction": "outbound",
        "_sdc_extracted_at": "2026-04-23T00:00:00Z",
    }
    email = {
        "externalActivityId": "e-1",
        "activityType": "email",
        "occurredAt": 1776853800000,
        "domain": "globex.com",
        "ownerEmail": "jane@yourcompany.com",
        "contacts": [{"email": "hank@globex.com"}],
        "openCount": 3,
        "click_count": 1.0,
    }
    outcome = run_in_process(config_for(emulator), activities_messages([call, email]), capsys)
    assert outcome.exit_code == 0
    assert emulator.store.activities() == {
        "41": {
            "externalActivityId": "41",
            "activityType": "call",
            "occurredAt": "2026-04-22T10:30:00Z",
            "domain": "acme.com",
            "ownerEmail": "jane@yourcompany.com",
            "contacts": [
                {
                    "email": "john@acme.com",
                    "externalContactId": "456",
                    "name": "John Doe",
                    "title": "VP of Engineering",
                    "department": "Engineering",
                    "seniority": "VP",
                    "phone": "+1 415 555 0101",
                    "linkedinUrl": "https://linkedin.com/in/johndoe",
                }
            ],
            "accountName": "Acme Corp",
            "subject": "Discovery",
            "ownerName": "Jane Smith",
            "ownerId": "123",
            "from": {"name": "Jane Smith", "email": "jane@yourcompany.com"},
            "callTitle": "Discovery call",
            "durationMinutes": 12.5,
            "outcome": "Connected",
            "direction": "outbound",
        },
        "e-1": {
            "externalActivityId": "e-1",
            "activityType": "email",
            "occurredAt": "2026-04-22T10:30:00Z",
            "domain": "globex.com",
            "ownerEmail": "jane@yourcompany.com",
            "contacts": [{"email": "hank@globex.com"}],
            "openCount": 3,
            "clickCount": 1,
        },
    }


def test_recotap_s_own_name_wins_over_its_twin(emulator, capsys):
    both = activity(1, externalActivityId="own", external_activity_id="twin", subject="Own")
    both["owner_email"] = "not an email"  # not read: ownerEmail is present
    outcome = run_in_process(config_for(emulator), activities_messages([both]), capsys)
    assert outcome.exit_code == 0
    assert list(emulator.store.activities()) == ["own"]
    assert emulator.store.activities()["own"]["ownerEmail"] == "jane@yourcompany.com"


def test_an_activity_is_sent_only_the_fields_of_its_own_type(emulator, capsys):
    # A call's fields on an email, and an email's on a call: whether Recotap ignores or refuses
    # them is not documented, so they are not sent, and not judged (this direction would
    # otherwise reject the email).
    call_fields = {
        "callTitle": "Intro",
        "durationMinutes": 5,
        "outcome": "Connected",
        "direction": "sideways",
    }
    email = activity("email", activityType="email", **call_fields)
    call = activity("call", openCount=2, click_count=1)
    outcome = run_in_process(config_for(emulator), activities_messages([email, call]), capsys)
    assert outcome.exit_code == 0
    assert emulator.store.activities() == {
        "act-email": activity("email", activityType="email"),
        "act-call": activity("call"),
    }


def test_flat_contact_fields_become_one_more_contact(emulator, capsys):
    # What a stream map can build (it cannot make a list of objects): the contact's fields
    # side by side with the activity's, Recotap's names or their twins.
    flat = activity(1, contactEmail=" hank@globex.com", contactName="Hank Scorpio")
    flat["contactExternalId"] = 77
    del flat["contacts"]
    twins = activity(2, contact_email="lisa@acme.com", contact_external_id="c-9")
    twins["contacts"] = [None]  # a list with no contact in it, and a flat one: the flat one
    both = activity(3, contactEmail="marge@acme.com")
    outcome = run_in_process(config_for(emulator), activities_messages([flat, twins, both]), capsys)
    assert outcome.exit_code == 0
    assert {key: a["contacts"] for key, a in emulator.store.activities().items()} == {
        "act-1": [{"email": "hank@globex.com", "name": "Hank Scorpio", "externalContactId": "77"}],
        "act-2": [{"email": "lisa@acme.com", "externalContactId": "c-9"}],
        "act-3": [{"email": "john@acme.com"}, {"email": "marge@acme.com"}],
    }


FLAT_CONTACT_INVALID = [
    ({"contactName": "Hank"}, "record 'act-1': contactEmail is missing or empty"),
    (
        {"contact_email": "hank at globex"},
        "record 'act-1': contact_email 'hank at globex' is not a valid email",
    ),
    (
        {"contactEmail": " ", "contactExternalId": "c-1"},
        "record 'act-1': contactEmail is missing or empty",
    ),
]


@pytest.mark.parametrize(
    ("fields", "reason"), FLAT_CONTACT_INVALID, ids=[reason for _, reason in FLAT_CONTACT_INVALID]
)
def test_a_flat_contact_needs_a_valid_email_as_any_contact_does(
    emulator, capsys, caplog, fields, reason
):
    # Even beside a valid contacts list: a flat contact without an email is the record's error.
    outcome = run_in_process(
        config_for(emulator), activities_messages([activity(1, **fields)]), capsys
    )
    assert outcome.exit_code == 3
    assert f"Rejected sales_activities {reason}" in caplog.text
    assert emulator.store.activities() == {}


def test_nulls_and_empties_are_left_out(emulator, capsys):
    optional = {
        name: value
        for names, value in [
            (("accountName", "subject", "ownerName", "ownerId", "callTitle"), None),
            (("durationMinutes", "outcome", "direction"), None),
            (("account_name", "owner_name", "owner_id", "call_title", "duration_minutes"), ""),
        ]
        for name in names
    }
    sparse = activity(1, **optional, **{"from": {"name": None, "email": " "}})
    sparse["contacts"] = [{"email": "john@acme.com", "name": None, "phone": ""}]
    outcome = run_in_process(config_for(emulator), activities_messages([sparse]), capsys)
    assert outcome.exit_code == 0
    assert emulator.store.activities() == {"act-1": activity(1)}


# What would make Recotap refuse the whole request: the record is rejected alone, naming the field
# as the record spells it.
INVALID = [
    (
        {"externalActivityId": None},
        "record on input line 2: externalActivityId is missing or empty",
    ),
    ({"activityType": ""}, "record 'act-1': activityType is missing or empty"),
    (
        {"activityType": None, "activity_type": ["call"]},
        "record 'act-1': activity_type must be a string, got a list",
    ),
    ({"occurredAt": None}, "record 'act-1': occurredAt is missing or empty"),
    (
        {"occurredAt": "22/04/2026"},
        "record 'act-1': occurredAt '22/04/2026' is not an ISO 8601 date",
    ),
    ({"domain": None}, "record 'act-1': domain is missing or empty"),
    (
        {"domain": "https://www./"},
        "record 'act-1': domain 'https://www./' names no domain once cleaned",
    ),
    ({"ownerEmail": None}, "record 'act-1': ownerEmail is missing or empty"),
    (
        {"ownerEmail": None, "owner_email": "jane at acme"},
        "record 'act-1': owner_email 'jane at acme' is not a valid email",
    ),
    ({"contacts": None}, "record 'act-1': contacts is missing or empty"),
    ({"contacts": []}, "record 'act-1': contacts must hold at least one contact"),
    ({"contacts": [None]}, "record 'act-1': contacts must hold at least one contact"),
    ({"contacts": "john@acme.com"}, "record 'act-1': contacts must be a list, got str"),
    ({"contacts": ["john@acme.com"]}, "record 'act-1': contacts[0] must be an object, got str"),
    (
        {"contacts": [{"email": "john@acme.com"}, {"name": "Jane"}]},
        "record 'act-1': contacts[1].email is missing or empty",
    ),
    (
        {"contacts": [{"email": "john@"}]},
        "record 'act-1': contacts[0].email 'john@' is not a valid email",
    ),
    (
        {"direction": "Outbound"},
        "record 'act-1': direction 'Outbound' must be 'inbound' or 'outbound'",
    ),
    ({"direction": True}, "record 'act-1': direction must be a string, got a boolean"),
    ({"from": "jane@yourcompany.com"}, "record 'act-1': from must be an object, got str"),
    ({"from": {"email": "jane@"}}, "record 'act-1': from.email 'jane@' is not a valid email"),
    ({"durationMinutes": "12 min"}, "record 'act-1': durationMinutes '12 min' is not a number"),
]


@pytest.mark.parametrize(("fields", "reason"), INVALID, ids=[reason for _, reason in INVALID])
def test_what_recotap_would_refuse_the_request_for_rejects_that_record_alone(
    emulator, tmp_path, fields, reason
):
    config = write_config(tmp_path, config_for(emulator))
    records = [activity(1, **fields), activity(2)]
    run = run_cli(["--config", str(config)], activities_messages(records))
    assert run.returncode == 3, run.stderr  # one rejected, more than max_rejected_records (0)
    assert f"Rejected sales_activities {reason}" in run.stderr
    assert list(emulator.store.activities()) == ["act-2"]
    assert [r["status"] for r in activity_requests(emulator)] == [200]


@pytest.mark.parametrize("batch_size_rows", [None, 1])
def test_of_two_records_with_one_id_the_first_is_created_and_the_later_skipped_as_existing(
    emulator, capsys, caplog, batch_size_rows
):
    # Recotap keeps the first it is sent and fails later ones as duplicates: so whether the two
    # share a request or not, the first is stored and the later is skipped as existing.
    records = [activity(1, subject="First"), activity(2), activity(1, subject="Later")]
    config = config_for(emulator, batch_size_rows=batch_size_rows)
    with caplog.at_level(logging.INFO):
        outcome = run_in_process(config, [*activities_messages(records), state({"s": 1})], capsys)
    assert outcome.exit_code == 0
    assert outcome.states == [{"s": 1}]
    assert emulator.store.activities()["act-1"]["subject"] == "First"
    # Sent 2 or 3: the later record is sent too if the first had landed when it was read.
    assert "created 2, skipped as existing 1, skipped by type 0, rejected 0," in summary_line(
        caplog.text
    )


def test_a_rerun_of_the_same_input_skips_every_activity_as_existing_and_rejects_none(
    emulator, tmp_path
):
    config = write_config(tmp_path, config_for(emulator))
    emails = [activity(n, activityType="email", openCount=n) for n in range(60)]
    messages = [*activities_messages(emails), state({"s": "end"})]
    first = run_cli(["--config", str(config)], messages)
    assert first.returncode == 0, first.stderr
    stored = emulator.store.activity_records()
    again = run_cli(["--config", str(config)], messages)
    assert again.returncode == 0, again.stderr
    assert states_from(again.stdout) == [{"s": "end"}]
    assert summary_line(again.stderr).startswith(
        "Summary sales_activities: received 60, sent 60, created 0, skipped as existing 60, "
        "skipped by type 0, rejected 0,"
    )
    assert "Rejected" not in again.stderr
    assert emulator.store.activity_records() == stored  # nothing changed


@pytest.mark.parametrize("fault", ["lose", "cut"])
def test_a_lost_answer_and_its_retry_count_as_delivered(emulator, capsys, caplog, fault):
    # Recotap stored the batch, but its answer never arrived: the retry is told "already
    # exists" for each activity, which is what delivered means for a create-only endpoint.
    emulator.faults.script.append(fault)
    records = [activity(n) for n in range(5)]
    with caplog.at_level(logging.INFO):
        outcome = run_in_process(
            config_for(emulator), [*activities_messages(records), state({"s": 1})], capsys
        )
    assert outcome.exit_code == 0
    assert outcome.states == [{"s": 1}]
    assert [(r["status"], r["lost"]) for r in activity_requests(emulator)] == [
        (200, True),
        (200, False),
    ]
    assert len(emulator.store.activities()) == 5
    assert "created 0, skipped as existing 5, skipped by type 0, rejected 0," in summary_line(
        caplog.text
    )


def test_the_duplicate_failure_s_words_are_in_the_debug_log(emulator, capsys, caplog):
    run_in_process(config_for(emulator), activities_messages([activity(1)]), capsys)
    with caplog.at_level(logging.DEBUG):
        run_in_process(config_for(emulator), activities_messages([activity(1)]), capsys)
    assert (
        "Sales activity 'act-1' is in Recotap already: "
        "Activity with externalActivityId 'act-1' already exists"
    ) in caplog.messages


def test_another_failure_is_a_rejection_with_recotap_s_words(emulator, tmp_path):
    emulator.faults.fail_ids = {"act-1": "ownerEmail is not a Recotap user"}
    dead_letter = tmp_path / "rejected.jsonl"
    config = write_config(tmp_path, config_for(emulator, dead_letter_path=str(dead_letter)))
    run = run_cli(["--config", str(config)], activities_messages([activity(1), activity(2)]))
    assert run.returncode == 3
    assert (
        "Rejected sales_activities record 'act-1': Recotap did not create it: "
        "ownerEmail is not a Recotap user"
    ) in run.stderr
    assert list(emulator.store.activities()) == ["act-2"]
    assert '"externalActivityId":"act-1"' in dead_letter.read_text().replace(" ", "")


def test_other_types_are_skipped_with_one_warning_per_type_and_never_sent(emulator, tmp_path):
    records = [
        activity(1, activityType="meeting"),
        activity(2),
        activity(3, activityType="note", occurredAt=None),  # not judged: not sent at all
        activity(4, activityType="meeting"),
        activity(5, activityType="CALL"),
    ]
    config = write_config(tmp_path, config_for(emulator))
    run = run_cli(["--config", str(config)], [*activities_messages(records), state({"s": 1})])
    assert run.returncode == 0, run.stderr
    assert states_from(run.stdout) == [{"s": 1}]
    assert list(emulator.store.activities()) == ["act-2"]
    assert [r["items"] for r in activity_requests(emulator)] == [1]
    assert summary_line(run.stderr).startswith(
        "Summary sales_activities: received 5, sent 1, created 1, skipped as existing 0, "
        "skipped by type 4 ('CALL' 1, 'meeting' 2, 'note' 1), rejected 0,"
    )
    warnings = [line.split(" | ")[-1] for line in run.stderr.splitlines() if "activityType" in line]
    assert warnings == [
        "Skipped activityType 'CALL' in sales_activities (1 record), not sent: Recotap loads "
        "only 'call' and 'email' activities; write it 'call', e.g. with a stream map",
        "Skipped activityType 'meeting' in sales_activities (2 records), not sent: Recotap "
        "loads only 'call' and 'email' activities",
        "Skipped activityType 'note' in sales_activities (1 record), not sent: Recotap loads "
        "only 'call' and 'email' activities",
    ]


def test_activities_arrive_at_most_50_a_request_and_batch_size_rows_lowers_it(emulator, capsys):
    records = [activity(n) for n in range(120)]
    outcome = run_in_process(config_for(emulator), activities_messages(records), capsys)
    assert outcome.exit_code == 0
    assert sorted(r["items"] for r in activity_requests(emulator)) == [20, 50, 50]
    emulator.store.reset()
    run_in_process(config_for(emulator, batch_size_rows=30), activities_messages(records), capsys)
    assert [r["items"] for r in activity_requests(emulator)] == [30, 30, 30, 30]
    assert len(emulator.store.activities()) == 120


def test_a_state_is_written_only_once_the_activities_before_it_are_in_recotap(emulator, tmp_path):
    # Each answer takes 300 ms: a STATE written before its activities landed would be seen
    # while Recotap still holds none of them.
    emulator.faults.latency_ms = 300
    target = LiveTarget(write_config(tmp_path, config_for(emulator)))
    target.send(
        [
            schema("sales_activities", OPEN_SCHEMA),
            *(record("sales_activities", activity(n)) for n in range(50)),
            state({"s": "first 50"}),
            *(record("sales_activities", activity(n)) for n in range(50, 60)),
        ]
    )
    assert target.next_state() == {"s": "first 50"}
    assert len(emulator.store.activities()) >= 50
    target.send([state({"s": "all 60"})])
    code, states, log = target.finish()
    assert code == 0, log
    assert states == [{"s": "all 60"}]
    assert len(emulator.store.activities()) == 60
