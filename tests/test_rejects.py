"""Rejected records: a warning each, the dead letter, replay, and the exit code."""

from __future__ import annotations

import json

from support import config_for, deal, deals_messages, record, run_in_process, schema

from target_recotap.rejects import REJECTION_KEY


def read_dead_letter(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_bad_records_are_rejected_and_the_rest_go_through(emulator, capsys, caplog, tmp_path):
    dead_letter = tmp_path / "rejected.jsonl"
    deals = [
        deal(1),
        deal(2, ownerEmail="not an email"),
        {"name": "no id"},
        deal(3, amount="lots"),
        deal(4, startDate="the day after"),
        deal(5, amount={"nested": True}),  # breaks the stream's SCHEMA
        deal(6),
    ]
    outcome = run_in_process(
        config_for(emulator, dead_letter_path=str(dead_letter)), deals_messages(deals), capsys
    )
    assert outcome.exit_code == 3
    assert set(emulator.store.deals()) == {"deal-1", "deal-6"}
    messages = read_dead_letter(dead_letter)
    assert messages[0]["type"] == "SCHEMA"
    rejected = [m for m in messages if m["type"] == "RECORD"]
    assert [m["record"] for m in rejected] == deals[1:6]
    reasons = [m[REJECTION_KEY]["reason"] for m in rejected]
    assert "ownerEmail" in reasons[0]
    assert "externalDealId is missing" in reasons[1]
    assert "amount 'lots' is not a number" in reasons[2]
    assert "startDate" in reasons[3]
    assert "SCHEMA" in reasons[4]
    assert caplog.text.count("Rejected deals record") == 5
    assert "Rejected records: 5, more than max_rejected_records (0)" in caplog.text


def test_failed_and_missing_results_from_the_api_are_rejected(emulator, capsys, tmp_path):
    dead_letter = tmp_path / "rejected.jsonl"
    emulator.faults.fail_ids = {"deal-2": "owner is archived"}
    emulator.faults.drop_ids = {"deal-3"}
    outcome = run_in_process(
        config_for(emulator, dead_letter_path=str(dead_letter), max_rejected_records=2),
        deals_messages([deal(1), deal(2), deal(3)]),
        capsys,
    )
    assert outcome.exit_code == 0
    rejected = {
        m["record"]["externalDealId"]: m[REJECTION_KEY]["reason"]
        for m in read_dead_letter(dead_letter)
        if m["type"] == "RECORD"
    }
    assert rejected == {
        "deal-2": "Recotap did not upsert it: owner is archived",
        "deal-3": "Recotap's answer left this deal out: outcome unknown",
    }


def test_dead_letter_replays_as_is_and_after_editing(emulator, capsys, tmp_path):
    dead_letter = tmp_path / "rejected.jsonl"
    config = config_for(emulator, dead_letter_path=str(dead_letter))
    run_in_process(config, deals_messages([deal(1, ownerEmail="jane at example")]), capsys)
    assert emulator.store.deals() == {}

    # As is: rejected again, for the same reason, and appended again.
    replay = [json.loads(line) for line in dead_letter.read_text().splitlines()]
    outcome = run_in_process(config_for(emulator), replay, capsys)
    assert outcome.exit_code == 3

    # Edited: the user fixes the email in the file and replays it.
    fixed = dead_letter.read_text().replace("jane at example", "jane@example.com")
    outcome = run_in_process(config_for(emulator), fixed.splitlines(), capsys)
    assert outcome.exit_code == 0
    assert emulator.store.deals()["deal-1"]["ownerEmail"] == "jane@example.com"


def test_max_rejected_records_allows_that_many(emulator, capsys):
    config = config_for(emulator, max_rejected_records=1)
    outcome = run_in_process(config, deals_messages([deal(1), {"name": "x"}]), capsys)
    assert outcome.exit_code == 0
    outcome = run_in_process(config, deals_messages([{"name": "x"}, {"name": "y"}]), capsys)
    assert outcome.exit_code == 3


def test_schema_validation_can_be_turned_off(emulator, capsys):
    messages = [schema("deals"), record("deals", deal(1, ownerName=12345))]
    outcome = run_in_process(config_for(emulator), messages, capsys)
    assert outcome.exit_code == 3
    outcome = run_in_process(config_for(emulator, validate_records=False), messages, capsys)
    assert outcome.exit_code == 0
    assert emulator.store.deals()["deal-1"]["ownerName"] == "12345"
