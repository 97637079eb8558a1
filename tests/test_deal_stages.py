"""Pipelines and their stages through the target into the emulator."""

from __future__ import annotations

import logging

from support import config_for, pipeline, record, run_in_process, schema


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
