"""Pipelines and their stages through the target into the emulator."""

from __future__ import annotations

import json
import logging
import subprocess

import pytest
import requests
from support import (
    config_for,
    pipeline,
    record,
    run_cli,
    run_in_process,
    schema,
    state,
    write_config,
)

from target_recotap.rejects import REJECTION_KEY
from target_recotap.sinks.deal_stages import pipeline_changes


def stage_requests(emulator):
    return [r for r in emulator.store.requests() if r["endpoint"] == "POST /deal-stages"]


def pipelines_messages(records):
    return [schema("deal_stages"), *(record("deal_stages", r) for r in records)]


def test_pipelines_arrive_at_most_20_a_request(emulator, capsys):
    outcome = run_in_process(
        config_for(emulator), pipelines_messages([pipeline(f"p{i}") for i in range(45)]), capsys
    )
    assert outcome.exit_code == 0
    assert len(emulator.store.pipelines()) == 45
    assert sorted(r["items"] for r in stage_requests(emulator)) == [5, 20, 20]


def test_both_shapes_mixed_in_any_order_group_into_pipelines(emulator, capsys):
    records = [
        {"pipelineId": "ent", "pipelineLabel": "Enterprise", "stageId": "e2", "stageLabel": "Two"},
        {"pipelineId": "hub", "label": "HubSpot", "stages": [{"stageId": "h1", "label": "One"}]},
        {"pipeline_id": "ent", "pipeline_label": "Enterprise", "stage_id": "e1", "label": "One"},
        {"pipelineId": "ent", "pipelineLabel": "Enterprise", "stageId": "e2", "stageLabel": "Two"},
        {"pipelineId": "hub", "pipelineLabel": "HubSpot", "stageId": "h2", "stageLabel": "Two"},
    ]
    outcome = run_in_process(config_for(emulator), pipelines_messages(records), capsys)
    assert outcome.exit_code == 0
    assert emulator.store.pipelines() == {
        "ent": {
            "pipelineId": "ent",
            "pipelineLabel": "Enterprise",
            "stages": [
                {"stageId": "e2", "stageLabel": "Two"},
                {"stageId": "e1", "stageLabel": "One"},
            ],
        },
        "hub": {
            "pipelineId": "hub",
            "pipelineLabel": "HubSpot",
            "stages": [
                {"stageId": "h1", "stageLabel": "One"},
                {"stageId": "h2", "stageLabel": "Two"},
            ],
        },
    }
    assert len(stage_requests(emulator)) == 1


def test_existing_pipelines_are_skipped_and_the_rest_created(emulator, capsys, caplog):
    for form in ("short", "long"):
        emulator.store.reset()
        emulator.faults.conflict_form = form
        run_in_process(
            config_for(emulator), pipelines_messages([pipeline("a"), pipeline("b")]), capsys
        )
        caplog.clear()
        records = [pipeline(p) for p in ("a", "new1", "b", "new2")]
        with caplog.at_level(logging.INFO):
            outcome = run_in_process(config_for(emulator), pipelines_messages(records), capsys)
        assert outcome.exit_code == 0, form
        assert set(emulator.store.pipelines()) == {"a", "b", "new1", "new2"}
        assert [r["status"] for r in stage_requests(emulator)][-2:] == [409, 201]
        assert "skipped as existing 2" in caplog.text
        assert "rejected 0" in caplog.text


def test_unreadable_conflict_message_falls_back_to_one_pipeline_a_request(emulator, capsys):
    run_in_process(config_for(emulator), pipelines_messages([pipeline("a")]), capsys)
    emulator.faults.conflict_form = "unreadable"
    records = [pipeline(p) for p in ("x", "a", "y")]
    outcome = run_in_process(config_for(emulator), pipelines_messages(records), capsys)
    assert outcome.exit_code == 0
    assert set(emulator.store.pipelines()) == {"a", "x", "y"}
    statuses = [r["status"] for r in stage_requests(emulator)][1:]
    assert statuses == [409, 201, 409, 201]


def test_response_lost_after_the_write_then_409_counts_as_created_once(emulator, capsys, caplog):
    emulator.faults.script.extend(["lose"])
    with caplog.at_level(logging.INFO):
        outcome = run_in_process(
            config_for(emulator), pipelines_messages([pipeline("p1"), pipeline("p2")]), capsys
        )
    assert outcome.exit_code == 0
    assert set(emulator.store.pipelines()) == {"p1", "p2"}
    assert "skipped as existing 2" in caplog.text
    assert "rejected 0" in caplog.text


def test_pipeline_without_label_or_stages_is_rejected(emulator, capsys, tmp_path):
    records = [
        {"pipelineId": "nolabel", "stages": [{"stageId": "s", "stageLabel": "S"}]},
        {"pipelineId": "nostages", "pipelineLabel": "Empty", "stages": []},
        pipeline("fine"),
    ]
    dead_letter = tmp_path / "rejected.jsonl"
    outcome = run_in_process(
        config_for(emulator, dead_letter_path=str(dead_letter), max_rejected_records=5),
        pipelines_messages(records),
        capsys,
    )
    assert outcome.exit_code == 0
    assert set(emulator.store.pipelines()) == {"fine"}
    text = dead_letter.read_text()
    assert "pipeline 'nolabel' has no label" in text
    assert "pipeline 'nostages' has no stages" in text


def test_a_rejected_record_holds_its_whole_pipeline_back(emulator, capsys, tmp_path):
    records = [
        {
            "pipelineId": "p13",
            "pipelineLabel": "P13",
            "stages": [{"stageId": "a"}, {"stageId": "b", "stageLabel": "B"}],
        },
        {"pipelineId": "p14", "pipelineLabel": "P14", "stageId": "x", "stageLabel": "X"},
        {"pipelineId": "p13", "pipelineLabel": "P13", "stageId": "c", "stageLabel": "C"},
        {"pipelineId": "p14", "stages": "x, y"},
        {"stageId": "z", "stageLabel": "Z"},  # no pipeline to hold back
        pipeline("p15"),
    ]
    dead_letter = tmp_path / "rejected.jsonl"
    config = config_for(emulator, dead_letter_path=str(dead_letter), max_rejected_records=10)

    outcome = run_in_process(config, pipelines_messages(records), capsys)

    assert outcome.exit_code == 0
    assert set(emulator.store.pipelines()) == {"p15"}
    rejected = [json.loads(line) for line in dead_letter.read_text().splitlines()][1:]
    assert {records.index(m["record"]) + 1: m[REJECTION_KEY]["reason"] for m in rejected} == {
        1: "record 'p13': stages[0]: stageLabel is missing or empty",
        3: "record 'p13': held back with its pipeline, since the record on input line 2 was "
        "rejected: stages[0]: stageLabel is missing or empty",
        2: "record 'p14': held back with its pipeline, since the record on input line 5 was "
        "rejected: stages must be a list, got str",
        4: "record 'p14': stages must be a list, got str",
        5: "record on input line 6: pipelineId is missing or empty",
    }

    # The dead letter replays the whole pipeline at once: with its bad record fixed, all of it.
    rejected[0]["record"]["stages"][0]["stageLabel"] = "A"
    replay = run_in_process(config, [schema("deal_stages"), *rejected], capsys)
    assert replay.exit_code == 0
    assert set(emulator.store.pipelines()) == {"p13", "p15"}  # p14 is still held back
    assert emulator.store.pipelines()["p13"] == {
        "pipelineId": "p13",
        "pipelineLabel": "P13",
        "stages": [
            {"stageId": "a", "stageLabel": "A"},
            {"stageId": "b", "stageLabel": "B"},
            {"stageId": "c", "stageLabel": "C"},
        ],
    }


def stage_ids(emulator, pipeline_id):
    return [stage["stageId"] for stage in emulator.store.pipelines()[pipeline_id]["stages"]]


def test_stages_are_ordered_by_their_display_order(emulator, capsys):
    records = [
        {  # HubSpot's shape: the pipeline's own displayOrder orders pipelines, not stages
            "pipelineId": "hs",
            "label": "HubSpot",
            "displayOrder": 7,
            "stages": [
                {"stageId": "won", "label": "Won", "displayOrder": 2},
                {"stageId": "new", "label": "New", "displayOrder": 0},
                {"stageId": "mid", "label": "Mid", "displayOrder": 1},
            ],
        },
        # One stage a record, as the Pipedrive recipe maps order_nr to displayOrder.
        {
            "pipelineId": "pd",
            "pipelineLabel": "PD",
            "stageId": "c",
            "stageLabel": "C",
            "displayOrder": 3,
        },
        {"pipelineId": "pd", "stageId": "a", "stageLabel": "A", "displayOrder": 1},
        {"pipelineId": "pd", "stageId": "x", "stageLabel": "X"},
        {"pipelineId": "pd", "stageId": "t", "stageLabel": "T", "displayOrder": 1},
        {"pipelineId": "pd", "stageId": "b", "stageLabel": "B", "display_order": 2.5},
        {"pipelineId": "pd", "stageId": "y", "stageLabel": "Y", "displayOrder": "first"},
    ]

    outcome = run_in_process(config_for(emulator), pipelines_messages(records), capsys)

    assert outcome.exit_code == 0
    assert stage_ids(emulator, "hs") == ["new", "mid", "won"]
    # Ties keep the order first seen; stages without a numeric order come last, as first seen.
    assert stage_ids(emulator, "pd") == ["a", "t", "b", "c", "x", "y"]


# Pipelines that exist already: Recotap keeps what it has, and the log says how it differs.

FIRST_STAGES = [
    {"stageId": "s1", "stageLabel": "Prospecting"},
    {"stageId": "s2", "stageLabel": "Proposal"},
]


def sales(stages: list[dict[str, str]]) -> dict:
    return {"pipelineId": "p1", "pipelineLabel": "Sales", "stages": stages}


def warnings(log: str) -> list[str]:
    return [line for line in log.splitlines() if "| WARNING " in line]


def run_again(emulator, tmp_path, records: list[dict]) -> subprocess.CompletedProcess[str]:
    """Create p1 with s1, s2 in one run, then run the CLI again with ``records``."""
    config = write_config(tmp_path, config_for(emulator))
    first = run_cli(["--config", str(config)], pipelines_messages([sales(FIRST_STAGES)]))
    assert first.returncode == 0, first.stderr
    return run_cli(["--config", str(config)], pipelines_messages(records))


def stage_lists(emulator) -> list[str]:
    return [r["endpoint"] for r in emulator.store.requests() if r["endpoint"] == "GET /deal-stages"]


@pytest.mark.parametrize("listing", ["bare", "envelope"])
def test_a_changed_existing_pipeline_is_named_in_one_warning(emulator, tmp_path, listing):
    emulator.faults.deal_stages_listing = listing
    changed = [
        {"stageId": "s1", "stageLabel": "Qualifying"},
        FIRST_STAGES[1],
        {"stageId": "s3", "stageLabel": "Closed Won"},
    ]

    second = run_again(emulator, tmp_path, [sales(changed)])

    assert second.returncode == 0, second.stderr
    assert [line.split(" | ")[-1] for line in warnings(second.stderr)] == [
        "Pipeline 'p1' in Recotap differs from the source, and the API cannot update it: "
        "Recotap lacks stage s3 'Closed Won'; stage s1 is 'Prospecting' in Recotap, "
        "'Qualifying' in the source. Change it in Recotap by hand, or give the source's "
        "pipeline a new pipelineId"
    ]
    assert emulator.store.pipelines() == {"p1": sales(FIRST_STAGES)}
    assert "skipped as existing 1" in second.stderr
    assert len(stage_lists(emulator)) == 1


def test_an_unchanged_existing_pipeline_is_checked_and_not_warned_about(emulator, tmp_path):
    second = run_again(emulator, tmp_path, [sales(FIRST_STAGES), pipeline("new")])

    assert second.returncode == 0, second.stderr
    assert warnings(second.stderr) == []
    assert "Skipped 1 pipeline already in Recotap: no change in the source" in second.stderr
    assert "skipped as existing 1" in second.stderr
    assert set(emulator.store.pipelines()) == {"p1", "new"}
    assert len(stage_lists(emulator)) == 1


def test_when_the_listing_does_not_answer_one_warning_counts_the_existing(emulator, tmp_path):
    config = write_config(tmp_path, config_for(emulator))
    pipelines = [sales(FIRST_STAGES), pipeline("p2")]
    assert run_cli(["--config", str(config)], pipelines_messages(pipelines)).returncode == 0
    absent = {"deal_stages_listing": "absent"}
    assert requests.put(emulator.admin_url + "/faults", json=absent, timeout=5).ok
    changed = [sales([FIRST_STAGES[0]]), pipeline("p2", stages=3)]

    second = run_cli(["--config", str(config)], pipelines_messages(changed))

    assert second.returncode == 0, second.stderr
    assert [line.split(" | ")[-1] for line in warnings(second.stderr)] == [
        "2 pipelines already existed in Recotap; changes to their stages cannot be applied "
        "through the API, and they were not compared with the source: GET /deal-stages "
        "answered 404: Cannot GET /api/v1/deal-stages"
    ]
    assert emulator.store.pipelines() == {"p1": sales(FIRST_STAGES), "p2": pipeline("p2")}
    assert "skipped as existing 2" in second.stderr


def test_a_failing_listing_is_asked_once_and_not_retried(emulator, tmp_path):
    # The second run's POST goes through (409); the GET after it answers 500.
    emulator.faults.script.extend(["ok", "ok", "500"])

    second = run_again(emulator, tmp_path, [sales(FIRST_STAGES)])

    assert second.returncode == 0, second.stderr
    assert [line.split(" | ")[-1] for line in warnings(second.stderr)] == [
        "1 pipeline already existed in Recotap; changes to their stages cannot be applied "
        "through the API, and they were not compared with the source: GET /deal-stages "
        "answered 500: Internal Server Error"
    ]
    assert len(stage_lists(emulator)) == 1


def test_pipeline_changes_name_what_recotap_has_otherwise():
    source = {
        "pipelineId": "p1",
        "pipelineLabel": "SMB Sales",
        "stages": [
            {"stageId": "s1", "stageLabel": "Prospecting"},
            {"stageId": "s2", "stageLabel": "Proposal Sent"},
            {"stageId": "s3", "stageLabel": "Closed Won"},
        ],
    }
    stored = {
        "pipelineId": "p1",
        "pipelineLabel": "Sales",
        "stages": [
            {"stageId": "s9", "stageLabel": "Lost"},
            {"stageId": "s2", "stageLabel": "Proposal"},
            {"stageId": "s1", "stageLabel": "Prospecting"},
        ],
    }

    assert pipeline_changes(source, stored) == [
        "its label is 'Sales' in Recotap, 'SMB Sales' in the source",
        "Recotap lacks stage s3 'Closed Won'",
        "stage s2 is 'Proposal' in Recotap, 'Proposal Sent' in the source",
        "only Recotap has stage s9 'Lost'",
    ]
    reordered = {**source, "stages": source["stages"][::-1]}
    assert pipeline_changes(source, reordered) == []
    assert pipeline_changes(source, {"pipelineId": "p1", "stages": "?"}) == [
        "its label is None in Recotap, 'SMB Sales' in the source",
        "Recotap lacks stages s1 'Prospecting', s2 'Proposal Sent', s3 'Closed Won'",
    ]


def test_a_pipeline_is_not_sent_when_the_input_stops_at_a_bad_line(emulator, tmp_path):
    stage = {"pipelineId": "p88", "pipelineLabel": "P88"}
    messages = [
        schema("deal_stages"),
        record("deal_stages", {**stage, "stageId": "a", "stageLabel": "A"}),
        schema("deals", {"type": "object", "properties": {}}),
        record("deals", {"externalDealId": "d-1", "name": "Deal"}),
        state({"s": 1}),
        '{"type": "RECORD", "stream": "deal_stages", "record": {"stageId": "b"',  # cut short
        record("deal_stages", {**stage, "stageId": "c", "stageLabel": "C"}),
    ]
    run = run_cli(["--config", str(write_config(tmp_path, config_for(emulator)))], messages)
    assert run.returncode == 1
    assert "Input line 6: not a JSON message" in run.stderr
    # Created now, p88 could never get the stages on and after the bad line.
    assert emulator.store.pipelines() == {}
    assert "1 pipeline not sent: the input stopped before its end" in run.stderr
    # The deal went; the STATE after it waits for the pipeline record before it.
    assert set(emulator.store.deals()) == {"d-1"}
    assert run.stdout.strip() == ""


def test_a_rejected_record_holds_back_its_pipeline_however_its_id_is_written(
    emulator, capsys, caplog
):
    records = [
        {"pipelineId": 77.0, "pipelineLabel": "P77", "stageId": "a"},  # no label: rejected
        {"pipelineId": 77, "pipelineLabel": "P77", "stageId": "b", "stageLabel": "B"},
    ]
    config = config_for(emulator, max_rejected_records=10)
    outcome = run_in_process(config, pipelines_messages(records), capsys)
    assert outcome.exit_code == 0
    assert emulator.store.pipelines() == {}
    assert "Rejected deal_stages record '77': held back with its pipeline" in caplog.text
