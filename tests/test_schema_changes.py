"""A stream's SCHEMA may change mid-run, and several tap streams may map onto one of ours:
nothing gathered so far may be lost, and each record is judged by its own stream's schema."""

from __future__ import annotations

import io

from support import config_for, deal, record, schema, state, to_lines

from target_recotap.target import TargetRecotap


class AlwaysDrainingTarget(TargetRecotap):
    """Runs the SDK's periodic full drain after every record, as after 5 quiet minutes."""

    _MAX_RECORD_AGE_IN_MINUTES = -1.0


def test_a_schema_change_and_periodic_drains_lose_no_pipeline_and_no_deal(emulator, capsys):
    wider = {"type": "object", "properties": {"pipelineId": {"type": "string"}, "x": {}}}
    messages = [
        schema("deal_stages"),
        record(
            "deal_stages", {"pipelineId": "p", "pipelineLabel": "P", "stageId": "1", "label": "One"}
        ),
        schema("deals"),
        *[record("deals", deal(n)) for n in range(150)],
        state({"s": 1}),
        schema("deal_stages", wider),
        record(
            "deal_stages", {"pipelineId": "p", "pipelineLabel": "P", "stageId": "2", "label": "Two"}
        ),
        schema("deals", {"type": "object", "properties": {}}),
        *[record("deals", deal(n, amount=n)) for n in range(150)],
        state({"s": 2}),
    ]
    target = AlwaysDrainingTarget(config=config_for(emulator))
    assert target.run(io.StringIO(to_lines(messages))) == 0
    states = capsys.readouterr().out.splitlines()
    assert emulator.store.pipelines()["p"]["stages"] == [
        {"stageId": "1", "stageLabel": "One"},
        {"stageId": "2", "stageLabel": "Two"},
    ]
    assert len(emulator.store.deals()) == 150
    assert all(d["amount"] == int(d["externalDealId"][5:]) for d in emulator.store.deals().values())
    assert states == ['{"s": 2}']  # the pipeline (record 1) held every STATE to the end


def test_two_tap_streams_mapped_onto_deal_stages_join_by_pipeline_id(emulator, capsys):
    # Pipedrive's shape: pipelines and stages come as separate streams; stream maps rename
    # their fields and send both to deal_stages, where they meet by pipelineId.
    config = config_for(
        emulator,
        stream_maps={
            "pipelines": {
                "__alias__": "deal_stages",
                "pipelineId": "str(id)",
                "pipelineLabel": "name",
                "__else__": None,
                "__key_properties__": ["pipelineId"],
            },
            "stages": {
                "__alias__": "deal_stages",
                "pipelineId": "str(pipeline_id)",
                "stageId": "str(id)",
                "stageLabel": "name",
                "__else__": None,
                "__key_properties__": ["pipelineId", "stageId"],
            },
        },
    )
    pipelines_schema = {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
    }
    stages_schema = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "pipeline_id": {"type": "integer"},
        },
    }
    messages = [
        schema("pipelines", pipelines_schema, ["id"]),
        schema("stages", stages_schema, ["id"]),
        record("stages", {"id": 11, "name": "Qualified", "pipeline_id": 1}),
        record("pipelines", {"id": 1, "name": "Sales"}),
        record("stages", {"id": 12, "name": "Won", "pipeline_id": 1}),
        record("pipelines", {"id": 2, "name": "Partners"}),
        record("stages", {"id": 21, "name": "Signed", "pipeline_id": 2}),
    ]
    target = TargetRecotap(config=config)
    assert target.run(io.StringIO(to_lines(messages))) == 0
    capsys.readouterr()
    assert emulator.store.pipelines() == {
        "1": {
            "pipelineId": "1",
            "pipelineLabel": "Sales",
            "stages": [
                {"stageId": "11", "stageLabel": "Qualified"},
                {"stageId": "12", "stageLabel": "Won"},
            ],
        },
        "2": {
            "pipelineId": "2",
            "pipelineLabel": "Partners",
            "stages": [{"stageId": "21", "stageLabel": "Signed"}],
        },
    }


def test_strict_streams_judge_the_mapped_name_not_the_taps(emulator, capsys):
    config = config_for(
        emulator,
        fail_on_unknown_streams=True,
        stream_maps={"deal_pipelines": {"__alias__": "deal_stages"}},
    )
    hubspot_shape = {
        "pipelineId": "default",
        "label": "Sales",
        "stages": [{"stageId": "a", "label": "A"}],
    }
    messages = [schema("deal_pipelines"), record("deal_pipelines", hubspot_shape)]
    target = TargetRecotap(config=config)
    assert target.run(io.StringIO(to_lines(messages))) == 0
    capsys.readouterr()
    assert emulator.store.pipelines()["default"]["pipelineLabel"] == "Sales"
