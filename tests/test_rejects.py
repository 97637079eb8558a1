"""Rejected records: a warning each, the dead letter, replay, and the exit code."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support import (
    config_for,
    deal,
    deals_messages,
    record,
    run_cli,
    run_cli_on_file,
    run_in_process,
    schema,
    state,
    to_lines,
    write_config,
)

from target_recotap.rejects import REJECTION_KEY

README = Path(__file__).parent.parent / "README.md"


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
        "deal-2": "record 'deal-2': Recotap did not upsert it: owner is archived",
        "deal-3": "record 'deal-3': Recotap's answer left this deal out: outcome unknown",
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


def rejected_records(path: Path) -> list[dict]:
    return [m["record"] for m in read_dead_letter(path) if m["type"] == "RECORD"]


def test_the_readme_replay_loop_replays_what_the_file_held_and_ends(emulator, tmp_path):
    # The command exactly as the README prints it, run by a shell in the user's folder.
    command = re.search(
        r"^target-recotap --config config\.json --input rejected\.jsonl$", README.read_text(), re.M
    )
    assert command, "the README no longer shows the replay command"
    config = config_for(emulator, dead_letter_path="rejected.jsonl", max_rejected_records=10)
    (tmp_path / "config.json").write_text(json.dumps(config))
    bad = [deal(1, ownerEmail="jane at example"), deal(2, amount="lots")]
    first = run_cli(["--config", "config.json"], deals_messages([deal(0), *bad]), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    held = (tmp_path / "rejected.jsonl").read_text()
    assert rejected_records(tmp_path / "rejected.jsonl") == bad

    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    for _ in range(2):  # the loop as a user runs it, again and again
        replay = subprocess.run(
            ["bash", "-c", command.group(0)],
            cwd=tmp_path,
            env={**os.environ, "PATH": path},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert replay.returncode == 0, replay.stderr
        assert "Rejected deals record" in replay.stderr
        # What the file held is kept aside, unchanged; the new file holds only this run's.
        moved = re.search(
            r"it was moved to (\S+rejected\.\d{8}T\d{6}Z(?:-\d+)?\.jsonl)", replay.stderr
        )
        assert moved, replay.stderr
        assert Path(moved.group(1)).read_text() == held
        assert rejected_records(tmp_path / "rejected.jsonl") == bad
        held = (tmp_path / "rejected.jsonl").read_text()
    assert set(emulator.store.deals()) == {"deal-0"}


def test_the_dead_letter_is_the_same_file_under_any_spelling(emulator, tmp_path):
    dead_letter = tmp_path / "rejected.jsonl"
    (tmp_path / "link.jsonl").symlink_to("rejected.jsonl")
    config_path = write_config(tmp_path, config_for(emulator, dead_letter_path=str(dead_letter)))
    bad = deal(1, ownerEmail="not an email")
    run_cli(["--config", str(config_path)], deals_messages([bad]))
    spellings = {
        "a symlink, absolute": ["--input", str(tmp_path / "link.jsonl")],
        "relative, with ..": ["--input", "../" + tmp_path.name + "/rejected.jsonl"],
        "standard input": [],
    }
    for spelling, args in spellings.items():
        with dead_letter.open() as held:
            replay = subprocess.run(
                [sys.executable, "-m", "target_recotap", "--config", str(config_path), *args],
                stdin=held if not args else subprocess.DEVNULL,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        assert replay.returncode == 3, (spelling, replay.stderr)
        assert "it was moved to" in replay.stderr, spelling
        assert rejected_records(dead_letter) == [bad], spelling
    # The symlink still leads to the dead letter, and three earlier copies were kept aside.
    assert (tmp_path / "link.jsonl").resolve() == dead_letter
    assert len(list(tmp_path.glob("rejected.*.jsonl"))) == 3


def test_another_input_file_appends_to_the_dead_letter(emulator, tmp_path):
    dead_letter = tmp_path / "rejected.jsonl"
    config_path = write_config(tmp_path, config_for(emulator, dead_letter_path=str(dead_letter)))
    source = tmp_path / "input.jsonl"
    for n in (1, 2):
        source.write_text(to_lines(deals_messages([deal(n, ownerEmail="bad")])))
        run = run_cli(["--config", str(config_path), "--input", str(source)])
        assert run.returncode == 3
        assert "moved" not in run.stderr
    assert [r["externalDealId"] for r in rejected_records(dead_letter)] == ["deal-1", "deal-2"]
    assert list(tmp_path.glob("rejected.*.jsonl")) == []


def test_a_rejection_names_the_record_by_the_id_recotap_knows(emulator, tmp_path):
    # A tap whose deals carry id and pipeline_id, renamed to Recotap's fields by a stream map.
    dead_letter = tmp_path / "rejected.jsonl"
    config = config_for(
        emulator,
        dead_letter_path=str(dead_letter),
        max_rejected_records=10,
        stream_maps={"crm_deals": {"__alias__": "deals", "externalDealId": "record.get('id')"}},
    )
    crm_schema = {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "crm_key": {"type": "integer"},
            "pipeline_id": {"type": "string"},
            "name": {"type": "string"},
            "ownerEmail": {"type": "string"},
        },
    }
    messages = [
        schema("crm_deals", crm_schema, keys=["crm_key"]),
        record(
            "crm_deals",
            {
                "id": "d-77",
                "crm_key": 1,
                "pipeline_id": "partner-emea",
                "name": "Big",
                "ownerEmail": "not an email",
            },
        ),
        # No ID for Recotap at all: named by the source stream's key property.
        record("crm_deals", {"crm_key": 2, "pipeline_id": "partner-emea", "name": "No id"}),
        state({"s": 1}),
    ]
    run = run_cli(["--config", str(write_config(tmp_path, config))], messages)
    assert run.returncode == 0, run.stderr
    assert "Rejected deals record 'd-77': ownerEmail 'not an email'" in run.stderr
    assert "Rejected deals record crm_key='2': externalDealId is missing" in run.stderr
    assert "partner-emea" not in run.stderr
    reasons = [
        m[REJECTION_KEY]["reason"] for m in read_dead_letter(dead_letter) if m["type"] == "RECORD"
    ]
    assert reasons[0].startswith("record 'd-77': ")
    assert reasons[1].startswith("record crm_key='2': ")


def test_a_pipeline_rejected_by_the_api_is_named_by_its_pipeline_id(emulator, tmp_path):
    emulator.faults.refuse_ids = {"p-9": "pipeline is archived"}
    stage = {"stageId": "s1", "stageLabel": "One"}
    messages = [
        schema("deal_stages"),
        record(
            "deal_stages",
            {
                "pipeline_id": "p-9",
                "pipelineLabel": "P",
                "stages": [stage],
                "externalDealId": "looks-like-an-id",
            },
        ),
    ]
    run = run_cli(["--config", str(write_config(tmp_path, config_for(emulator)))], messages)
    assert run.returncode == 3, run.stderr
    assert "Rejected deal_stages record 'p-9': Recotap refused it" in run.stderr


def test_a_long_id_or_key_names_the_record_by_its_first_100_characters(emulator, tmp_path):
    dead_letter = tmp_path / "rejected.jsonl"
    config = config_for(emulator, dead_letter_path=str(dead_letter), max_rejected_records=10)
    keys = {"crm_key": "k" * 150, "region": "emea"}
    messages = [
        schema("deals", keys=list(keys)),
        record("deals", deal(1, externalDealId="d" * 150, **keys, ownerEmail="not an email")),
        record("deals", {**keys, "name": "No id"}),
    ]
    run = run_cli(["--config", str(write_config(tmp_path, config))], messages)
    assert run.returncode == 0, run.stderr
    by_id, by_keys = f"{'d' * 100!r}", f"crm_key={'k' * 100!r}, region='emea'"
    assert f"Rejected deals record {by_id}: ownerEmail 'not an email'" in run.stderr
    assert f"Rejected deals record {by_keys}: externalDealId is missing" in run.stderr
    first, second = rejection_reasons(dead_letter)
    assert first.startswith(f"record {by_id}: ")
    assert second.startswith(f"record {by_keys}: ")


def test_key_properties_that_are_not_a_list_stop_the_run_at_the_schema(emulator, tmp_path):
    # A SCHEMA that breaks the spec with a string: its characters are no key properties, and
    # the run stops there, saying so, rather than rejecting records for missing an 'i'.
    messages = [
        {**schema("deals"), "key_properties": "id"},
        record("deals", {"i": "one", "d": "two", "name": "No id"}),
    ]
    run = run_cli(["--config", str(write_config(tmp_path, config_for(emulator)))], messages)
    assert run.returncode == 1, run.stderr
    assert "Input line 1: the SCHEMA of stream 'deals' gives key_properties as 'id'" in run.stderr
    assert "Traceback" not in run.stderr
    assert emulator.store.deals() == {}


# A full disk, as the target meets it: a write that fails with an OSError. Files of at most
# one byte, set in the child itself (not /dev/full: under mutation testing, a mutant of the
# dead letter's move-aside renamed that device). The limit is lifted as the child exits, for
# what mutation testing writes then (tests/mutation_site/sitecustomize.py).
ONE_BYTE_FILES = (
    "import atexit, resource, runpy, sys; "
    "_, hard = resource.getrlimit(resource.RLIMIT_FSIZE); "
    "resource.setrlimit(resource.RLIMIT_FSIZE, (1, hard)); "
    "atexit.register(resource.setrlimit, resource.RLIMIT_FSIZE, (hard, hard)); "
    "sys.argv[0] = 'target-recotap'; "
    "runpy.run_module('target_recotap', run_name='__main__')"
)


@pytest.mark.skipif(sys.platform == "win32", reason="uses RLIMIT_FSIZE")
def test_a_dead_letter_that_cannot_be_written_stops_the_run_in_one_line(emulator, tmp_path):
    dead_letter = tmp_path / "rejected.jsonl"
    config = config_for(emulator, dead_letter_path=str(dead_letter), max_rejected_records=10)
    messages = [
        *deals_messages([deal(1)]),
        state({"s": 1}),
        record("deals", deal(2, ownerEmail="bad")),
        record("deals", deal(3)),
        state({"s": 2}),
    ]
    run = subprocess.run(
        [sys.executable, "-c", ONE_BYTE_FILES, "--config", str(write_config(tmp_path, config))],
        input=to_lines(messages),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    stopped = [line for line in run.stderr.splitlines() if "ERROR" in line]
    assert len(stopped) == 1, run.stderr
    assert (
        f"the dead letter {str(dead_letter)!r} cannot be written (File too large)" in (stopped[0])
    )
    assert "no rejection may go unrecorded: free space or change dead_letter_path" in stopped[0]
    # Nothing after the unrecorded rejection is checkpointed.
    assert {"s": 2} not in [json.loads(line) for line in run.stdout.splitlines()]


def test_a_stream_map_that_fails_on_a_record_rejects_that_record(emulator, tmp_path):
    dead_letter = tmp_path / "rejected.jsonl"
    config = config_for(
        emulator,
        dead_letter_path=str(dead_letter),
        max_rejected_records=10,
        stream_maps={"crm": {"__alias__": "deals", "externalDealId": "id"}},
    )
    crm_schema = {"type": "object", "properties": {"id": {"type": "string"}}}
    messages = [
        schema("crm", crm_schema),
        record("crm", {"id": "d-1", "name": "ok"}),
        record("crm", {"name": "has no id"}),  # the map's expression `id` cannot be evaluated
        state({"s": 1}),
    ]
    run = run_cli(["--config", str(write_config(tmp_path, config))], messages)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert "Rejected deals record on input line 3: the stream map failed on it: 'id' is not" in (
        run.stderr
    )
    assert rejected_records(dead_letter) == [{"name": "has no id"}]
    assert json.loads(run.stdout) == {"s": 1}


def faithful(line: str) -> list:
    """A JSON line read changing nothing: numbers as text, keys in order, twice if twice."""
    return json.loads(
        line, parse_float=str, parse_int=str, parse_constant=str, object_pairs_hook=list
    )


def member(pairs: list, key: str):
    (value,) = [value for name, value in pairs if name == key]
    return value


# Records as taps write them, each rejected (by its amount, else by its owner email).
ODD_RECORDS = [
    '{"externalDealId":"deal-1","name":"No amount","amount":NaN}',
    '{"externalDealId":"deal-2","name":"Endless","amount":Infinity}',
    '{"externalDealId":"deal-3","name":"Below nothing","amount":-Infinity}',
    '{"externalDealId":"deal-4","name":"Huge","forecast":1E400,"ownerEmail":"not an email"}',
    '{"externalDealId":"deal-5","ownerId":123456789012345678901234567890123,"name":"Big id",'
    '"ownerEmail":"not an email"}',
    '{"externalDealId":"deal-6","name":"Digits","probability":0.1000000000000000055511151231257827,'
    '"ownerEmail":"not an email"}',
    '{"externalDealId":"deal-7","name":"Caf\\u00e9 é \\ud83d\\ude80 \\u2028 \\"}\\"",'
    '"ownerEmail":"not an email"}',
    '{ "ownerEmail" : "not an email" , "name":"first", "externalDealId":"deal-8",'
    ' "nested": {"a": [1, {"b": "],}{"}]}, "name": "given twice" }',
]


def test_the_dead_letter_holds_each_record_as_it_arrived_and_a_replay_rejects_it_again(
    emulator, tmp_path
):
    dead_letter = tmp_path / "rejected.jsonl"
    config = write_config(tmp_path, config_for(emulator, dead_letter_path=str(dead_letter)))
    lines = ['{"type":"RECORD","stream":"deals","record":' + text + "}" for text in ODD_RECORDS]
    lines[1] = lines[1][:-1] + ',"time_extracted":"2026-01-15T09:30:00Z"}   '  # more after it
    first = run_cli(
        ["--config", str(config)], [schema("deals", {"type": "object", "properties": {}}), *lines]
    )
    assert first.returncode == 3, first.stderr
    assert "Traceback" not in first.stderr

    def rejected() -> list[list]:
        messages = [faithful(line) for line in dead_letter.read_text().splitlines()]
        return [m for m in messages if member(m, "type") == "RECORD"]

    held = dead_letter.read_text()
    for text in ODD_RECORDS:
        assert text in held  # the record's own text, character for character
    assert [member(m, "record") for m in rejected()] == [
        member(faithful(line), "record") for line in lines
    ]
    assert member(rejected()[1], "time_extracted") == "2026-01-15T09:30:00Z"
    reasons = [member(member(m, REJECTION_KEY), "reason") for m in rejected()]
    assert reasons[:3] == [
        "record 'deal-1': amount must be a finite number, got nan",
        "record 'deal-2': amount must be a finite number, got inf",
        "record 'deal-3': amount must be a finite number, got -inf",
    ]
    assert all("ownerEmail 'not an email'" in reason for reason in reasons[3:])
    assert len(reasons) == len(ODD_RECORDS)

    # Replayed as it is: each record rejected again for the same reason, and nothing stored.
    replay = run_cli(["--config", str(config), "--input", str(dead_letter)])
    assert replay.returncode == 3, replay.stderr
    assert "it was moved to" in replay.stderr
    assert emulator.store.deals() == {}
    for message in rejected():  # one rejection each, this run's: the old one is not kept
        assert [name for name, _ in message].count(REJECTION_KEY) == 1
    assert [member(member(m, REJECTION_KEY), "reason") for m in rejected()] == reasons
    assert [member(m, "record") for m in rejected()] == [
        member(faithful(line), "record") for line in lines
    ]
    again = dead_letter.read_text()
    assert all(text in again for text in ODD_RECORDS)


# A tap's deals loaded through a stream map that renames and transforms every field and drops
# the rest: applied twice, to a record already mapped, it would fail (no `id`, no `title`).
CRM_MAP = {
    "crm_deals": {
        "__alias__": "deals",
        "externalDealId": "'crm-' + str(id)",
        "name": "title + ' (CRM)'",
        "amount": "float(cents) / 100",
        "ownerEmail": "owner",
        "__else__": None,
        "__key_properties__": ["externalDealId"],
    }
}
CRM_SCHEMA = (
    '{"type":"SCHEMA","stream":"crm_deals","key_properties":["id"],"schema":{"type":"object",'
    '"properties":{"id":{"type":"integer"},"title":{"type":"string"},"cents":{"type":"integer"},'
    '"owner":{"type":"string"}}}}'
)
# The records as the tap writes them, with its own spacing and key order.
CRM_RECORDS = [
    '{"title": "Acme",  "id": 1, "cents": 7500000, "owner": "jane@example.com"}',
    '{"title": "Initech", "id": 2, "cents": 120000, "owner": "jane at example"}',
    '{ "cents" : 4825050 , "id" : 3 , "title" : "Globex" , "owner" : "joe@example.com" }',
]


def rejection_reasons(path: Path) -> list[str]:
    return [m[REJECTION_KEY]["reason"] for m in read_dead_letter(path) if m["type"] == "RECORD"]


def test_the_dead_letter_keeps_the_record_as_the_tap_sent_it_before_the_stream_map(
    emulator, tmp_path
):
    dead_letter = tmp_path / "rejected.jsonl"
    config = config_for(
        emulator, dead_letter_path=str(dead_letter), max_rejected_records=10, stream_maps=CRM_MAP
    )
    config_path = write_config(tmp_path, config)
    source = tmp_path / "crm.jsonl"
    lines = [
        CRM_SCHEMA,
        *('{"type": "RECORD", "stream": "crm_deals", "record": ' + r + "}" for r in CRM_RECORDS),
        '{"type":"STATE","value":{"crm":3}}',
    ]
    source.write_text("\n".join(lines) + "\n")
    emulator.faults.fail_ids = {"crm-3": "owner is archived"}  # mapped ID: 'crm-' + str(3)
    first = run_cli(["--config", str(config_path), "--input", str(source)])
    assert first.returncode == 0, first.stderr
    assert "Rejected deals record 'crm-2': ownerEmail 'jane at example'" in first.stderr
    assert "Rejected deals record 'crm-3': Recotap did not upsert it: owner is archived" in (
        first.stderr
    )
    held = dead_letter.read_text().splitlines()
    assert json.loads(held[0]) == json.loads(CRM_SCHEMA)  # the tap's stream, not the alias
    assert len(held) == 3
    for line, text in zip(held[1:], CRM_RECORDS[1:], strict=True):
        assert '"record": ' + text + "," in line  # byte for byte as on its input line
    email_reason, recotap_reason = rejection_reasons(dead_letter)
    assert recotap_reason == "record 'crm-3': Recotap did not upsert it: owner is archived"

    # Replayed with the same config once Recotap takes crm-3: the map applies as it did.
    emulator.faults.fail_ids = {}
    replay = run_cli(["--config", str(config_path), "--input", str(dead_letter)])
    assert replay.returncode == 0, replay.stderr
    assert rejection_reasons(dead_letter) == [email_reason]
    after_replay = emulator.store.deals()

    # What the first run would have left, had Recotap taken crm-3 then.
    emulator.store.reset()
    reference = {**config, "dead_letter_path": str(tmp_path / "reference.jsonl")}
    clean = run_cli(["--config", str(write_config(tmp_path, reference)), "--input", str(source)])
    assert clean.returncode == 0, clean.stderr
    assert after_replay == emulator.store.deals()
    assert after_replay["crm-3"] == {
        "externalDealId": "crm-3",
        "name": "Globex (CRM)",
        "amount": 48250.5,
        "ownerEmail": "joe@example.com",
    }
    assert set(after_replay) == {"crm-1", "crm-3"}
    assert rejection_reasons(tmp_path / "reference.jsonl") == [email_reason]


def test_a_schema_sent_again_is_written_again_and_each_record_replays_under_its_own(
    emulator, tmp_path
):
    dead_letter = tmp_path / "rejected.jsonl"
    config = config_for(emulator, dead_letter_path=str(dead_letter), max_rejected_records=10)
    config_path = write_config(tmp_path, config)
    strict = schema("deals", {"type": "object", "properties": {"ownerName": {"type": "string"}}})
    widened = schema(
        "deals", {"type": "object", "properties": {"ownerName": {"type": ["string", "integer"]}}}
    )
    messages = [
        strict,
        record("deals", deal(1, ownerName=12345)),
        widened,
        record("deals", deal(2, ownerName=678, ownerEmail="not an email")),
    ]
    first = run_cli(["--config", str(config_path)], messages)
    assert first.returncode == 0, first.stderr
    held = read_dead_letter(dead_letter)
    assert [held[0], held[2]] == [strict, widened]
    assert [m["type"] for m in held] == ["SCHEMA", "RECORD", "SCHEMA", "RECORD"]
    reasons = rejection_reasons(dead_letter)
    assert "ownerName" in reasons[0]
    assert "ownerEmail 'not an email'" in reasons[1]

    replay = run_cli(["--config", str(config_path), "--input", str(dead_letter)])
    assert replay.returncode == 0, replay.stderr
    assert rejection_reasons(dead_letter) == reasons


# However the input comes: standard input as Python opens it here, standard input decoded
# strictly (as under a UTF-8 locale, Meltano's usual case), or a file named by --input.
UNDECODABLE_INPUTS = {
    "stdin": ("stdin", {}),
    "strict stdin": ("stdin", {"PYTHONIOENCODING": "utf-8:strict"}),
    "--input": ("--input", {}),
}


@pytest.mark.parametrize("how", UNDECODABLE_INPUTS)
def test_undecodable_input_bytes_are_kept_as_escapes_that_replay_the_same(emulator, tmp_path, how):
    dead_letter = tmp_path / "rejected.jsonl"
    config = write_config(tmp_path, config_for(emulator, dead_letter_path=str(dead_letter)))
    source = tmp_path / "input.jsonl"
    source.write_bytes(
        to_lines([schema("deals", {"type": "object", "properties": {}})]).encode()
        + b'{"type":"RECORD","stream":"deals","record":{"externalDealId":"deal-1",'
        b'"name":"Caf\xe9 in Latin-1"}}\n'
    )
    reason = "record 'deal-1': name holds a lone surrogate, which is not text"
    via, env = UNDECODABLE_INPUTS[how]
    first = run_cli_on_file(["--config", str(config)], source, via=via, env=env)
    assert first.returncode == 3, first.stderr
    assert b"Traceback" not in first.stderr
    (line,) = [m for m in dead_letter.read_text(encoding="utf-8").splitlines() if "RECORD" in m]
    assert '"name":"Caf\\udce9 in Latin-1"' in line
    assert json.loads(line)[REJECTION_KEY]["reason"] == reason

    replay = run_cli(["--config", str(config), "--input", str(dead_letter)])
    assert replay.returncode == 3, replay.stderr
    assert json.loads(rejected_lines(dead_letter)[0])[REJECTION_KEY]["reason"] == reason
    assert emulator.store.deals() == {}


# A machine whose locale's encoding is not UTF-8 (ASCII here, cp1252 on Windows) by the time
# the target writes, set in the child itself: an environment read as ASCII would garble what
# mutation testing passes in it (a mutant's name holds a non-ASCII character).
ASCII_LOCALE = (
    "import locale, runpy, sys; "
    "locale.setlocale(locale.LC_CTYPE, 'C'); "
    "sys.argv[0] = 'target-recotap'; "
    "runpy.run_module('target_recotap', run_name='__main__')"
)


def test_the_dead_letter_is_utf_8_whatever_the_locale(emulator, tmp_path):
    dead_letter = tmp_path / "rejected.jsonl"
    config = config_for(emulator, dead_letter_path=str(dead_letter))
    text = '{"externalDealId":"deal-1","name":"Café 東京","ownerEmail":"not an email"}'
    run = subprocess.run(
        [sys.executable, "-c", ASCII_LOCALE, "--config", str(write_config(tmp_path, config))],
        input=to_lines(
            [schema("deals"), '{"type":"RECORD","stream":"deals","record":' + text + "}"]
        ),
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={**os.environ, "LC_ALL": "C.UTF-8", "PYTHONUTF8": "0"},
        timeout=60,
        check=False,
    )
    assert run.returncode == 3, run.stderr
    assert text.encode() in dead_letter.read_bytes()


def rejected_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if '"RECORD"' in line]


def test_a_replay_that_stops_early_puts_the_dead_letter_back(emulator, tmp_path):
    dead_letter = tmp_path / "rejected.jsonl"
    config = config_for(emulator, dead_letter_path=str(dead_letter), max_rejected_records=10)
    bad = [deal(1, ownerEmail="not an email"), deal(2, ownerEmail="nor this")]
    run_cli(["--config", str(write_config(tmp_path, config))], deals_messages(bad))
    held = dead_letter.read_text()
    # The user fixed one record, but the key has since been replaced: the replay stops.
    dead_letter.write_text(held.replace("nor this", "jane@example.com"))
    held = dead_letter.read_text()
    emulator.api_key = "a-new-key"
    replay = run_cli(["--config", str(write_config(tmp_path, config)), "--input", str(dead_letter)])
    assert replay.returncode == 1
    assert "Recotap refused the API key" in replay.stderr
    assert f"The replay stopped early: {dead_letter} holds again what it held" in replay.stderr
    # Nothing left behind in a timestamped file: the fixed deal is still to be replayed.
    assert dead_letter.read_text() == held
    assert list(tmp_path.glob("rejected.*.jsonl")) == []


def test_a_dead_letter_that_cannot_be_moved_aside_stops_the_replay_in_one_line(emulator, tmp_path):
    # A name a file system takes (246 bytes), but not with the timestamp added (264).
    dead_letter = tmp_path / ("r" * 240 + ".jsonl")
    config = config_for(emulator, dead_letter_path=str(dead_letter))
    config_path = write_config(tmp_path, config)
    run_cli(["--config", str(config_path)], deals_messages([deal(1, ownerEmail="bad")]))
    held = dead_letter.read_text()
    replay = run_cli(["--config", str(config_path), "--input", str(dead_letter)])
    assert replay.returncode == 1
    assert "Traceback" not in replay.stderr
    (stopped,) = [line for line in replay.stderr.splitlines() if "ERROR" in line]
    assert (
        f"Stopped: dead_letter_path {str(dead_letter)!r} is also this run's input, and it cannot "
        f"be moved aside to '{'r' * 240}." in stopped
    )
    assert "Z.jsonl' (File name too long): replay a copy of it instead." in stopped
    assert dead_letter.read_text() == held
    assert list(tmp_path.glob("r*.jsonl")) == [dead_letter]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def test_the_times_the_dead_letter_gives_are_utc_whatever_the_time_zone(emulator, tmp_path):
    dead_letter = tmp_path / "rejected.jsonl"
    config_path = write_config(tmp_path, config_for(emulator, dead_letter_path=str(dead_letter)))
    india = {"TZ": "IST-5:30"}  # a POSIX time zone: no time-zone files needed
    before = utc_now()
    bad = deals_messages([deal(1, ownerEmail="not an email")])
    assert run_cli(["--config", str(config_path)], bad, env=india).returncode == 3
    (rejected,) = read_dead_letter(dead_letter)[1:]
    rejected_at = dt.datetime.fromisoformat(rejected[REJECTION_KEY]["rejected_at"])
    assert rejected_at.utcoffset() == dt.timedelta(0)

    replay = run_cli(["--config", str(config_path), "--input", str(dead_letter)], env=india)
    after = utc_now()
    assert replay.returncode == 3, replay.stderr
    (moved,) = tmp_path.glob("rejected.*.jsonl")
    stamp = dt.datetime.strptime(moved.name, "rejected.%Y%m%dT%H%M%SZ.jsonl")
    assert before <= rejected_at <= stamp.replace(tzinfo=dt.timezone.utc) <= after


def test_a_replay_in_the_same_second_as_an_earlier_one_keeps_both_copies(emulator, tmp_path):
    dead_letter = tmp_path / "rejected.jsonl"
    config_path = write_config(tmp_path, config_for(emulator, dead_letter_path=str(dead_letter)))
    run_cli(["--config", str(config_path)], deals_messages([deal(1, ownerEmail="not an email")]))
    held = dead_letter.read_text()
    # Copies kept aside by earlier replays, one for each second of the next two minutes.
    now = utc_now()
    earlier = {
        tmp_path / f"rejected.{now + dt.timedelta(seconds=s):%Y%m%dT%H%M%SZ}.jsonl"
        for s in range(-1, 120)
    }
    for path in earlier:
        path.write_text(f"kept aside as {path.name}")
    replay = run_cli(["--config", str(config_path), "--input", str(dead_letter)])
    assert replay.returncode == 3, replay.stderr
    (moved,) = set(tmp_path.glob("rejected.*.jsonl")) - earlier
    assert moved.name.endswith("Z-2.jsonl")
    assert moved.with_name(moved.name.replace("-2", "")) in earlier
    assert f"it was moved to {moved}," in replay.stderr
    assert moved.read_text() == held
    assert all(path.read_text() == f"kept aside as {path.name}" for path in earlier)


def test_a_dry_run_keeps_no_dead_letter_and_leaves_the_file_it_reads(emulator, tmp_path):
    dead_letter = tmp_path / "rejected.jsonl"
    config = config_for(emulator, dead_letter_path=str(dead_letter), max_rejected_records=10)
    run_cli(
        ["--config", str(write_config(tmp_path, config))], deals_messages([deal(1, amount="x")])
    )
    held = dead_letter.read_text()
    dry = {**config, "dry_run": True, "dry_run_path": str(tmp_path / "bodies.jsonl")}
    run = run_cli(["--config", str(write_config(tmp_path, dry)), "--input", str(dead_letter)])
    assert run.returncode == 0, run.stderr
    assert "Rejected deals record 'deal-1': amount 'x' is not a number" in run.stderr
    assert "moved" not in run.stderr
    assert dead_letter.read_text() == held
    assert list(tmp_path.glob("rejected.*.jsonl")) == []
