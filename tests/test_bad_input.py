"""Input that breaks the Singer spec ends the run with one sentence; odd data never crashes it."""

from __future__ import annotations

import io
import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import config_for, deal, deals_messages, record, run_in_process, schema, state

from target_recotap.target import TargetRecotap


@pytest.mark.parametrize(
    ("bad_line", "expected"),
    [
        ("this is not json", "not a JSON message"),
        ('{"stream": "deals", "record": {}}', "the message has no 'type' key"),
        ('{"type": "RECORD", "record": {}}', "RECORD message has no 'stream' key"),
        ('{"type": "STATE"}', "STATE message has no 'value' key"),
        ('{"type": "RECORD", "stream": "deals", "record": [1, 2]}', "'record' is not a JSON"),
        ('{"type": "RECORD", "stream": "nope", "record": {}}', "before a corresponding schema"),
        ('{"type": "SPAM"}', "unknown message type 'SPAM'"),
        ("[1, 2, 3]", "not a JSON object"),
        ("[" * 100_000, "nested too deeply"),
        (
            json.dumps(schema("deals", {"type": "object", "properties": {"a": {"type": 5}}})),
            "the SCHEMA is not valid JSON Schema",
        ),
    ],
)
def test_bad_line_settles_what_came_before_and_names_the_line(
    emulator, capsys, caplog, bad_line, expected
):
    messages = [
        *deals_messages([deal(1), deal(2)]),
        state({"s": 1}),
        bad_line,
        record("deals", deal(3)),
    ]
    outcome = run_in_process(config_for(emulator), messages, capsys)
    assert outcome.exit_code == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1
    assert errors[0].startswith("Input line 5: ")
    assert expected in errors[0]
    assert set(emulator.store.deals()) == {"deal-1", "deal-2"}
    assert outcome.states == [{"s": 1}]
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize(
    "odd",
    [
        {"name": "x" * 1_000_000},
        {"name": "emoji 🚀 and RTL \u202e and NUL \u0000 and a lone surrogate \ud800"},
        {"amount": [[[[[[[[[[1]]]]]]]]]]},
        {
            "stageId": {
                "a": [
                    [
                        [
                            [
                                [
                                    [
                                        [
                                            [
                                                [
                                                    [
                                                        [
                                                            [
                                                                [
                                                                    [
                                                                        [
                                                                            [
                                                                                [
                                                                                    [
                                                                                        [
                                                                                            [
                                                                                                [
                                                                                                    [
                                                                                                        [
                                                                                                            [
                                                                                                                [
                                                                                                                    [
                                                                                                                        [
                                                                                                                            [
                                                                                                                                [
                                                                                                                                    [
                                                                                                                                        [
                                                                                                                                            [
                                                                                                                                                [
                                                                                                                                                    [
                                                                                                                                                        [
                                                                                                                                                            [
                                                                                                                                                                [
                                                                                                                                                                    [
                                                                                                                                                                        [
                                                                                                                                                                            [
                                                                                                                                                                                [
                                                                                                                                                                                    []
                                                                                                                                                                                ]
                                                                                                                                                                            ]
                                                                                                                                                                        ]
                                                                                                                                                                    ]
                                                                                                                                                                ]
                                                                                                                                                            ]
                                                                                                                                                        ]
                                                                                                                                                    ]
                                                                                                                                                ]
                                                                                                                                            ]
                                                                                                                                        ]
                                                                                                                                    ]
                                                                                                                                ]
                                                                                                                            ]
                                                                                                                        ]
                                                                                                                    ]
                                                                                                                ]
                                                                                                            ]
                                                                                                        ]
                                                                                                    ]
                                                                                                ]
                                                                                            ]
                                                                                        ]
                                                                                    ]
                                                                                ]
                                                                            ]
                                                                        ]
                                                                    ]
                                                                ]
                                                            ]
                                                        ]
                                                    ]
                                                ]
                                            ]
                                        ]
                                    ]
                                ]
                            ]
                        ]
                    ]
                ]
            }
        },
        {"associatedAccounts": [{"domain": {"deep": [{"deeper": {}}]}}]},
        {"ownerId": 10**40},
        {"amount": "1e400"},
        {"startDate": -(10**20)},
        {"closedDate": "9999-12-31T23:59:59-23:59"},
        {"name": None},
    ],
)
def test_odd_values_are_rejected_with_a_reason_or_sent(emulator, capsys, caplog, odd):
    loose = {"type": "object", "properties": {}}
    messages = [schema("deals", loose), record("deals", {**deal(1), **odd})]
    with caplog.at_level(logging.WARNING):
        outcome = run_in_process(config_for(emulator), messages, capsys)
    assert outcome.exit_code in (0, 3)
    if outcome.exit_code == 0:
        stored = emulator.store.deals()["deal-1"]
        assert all(stored[k] is not None for k in stored)
    else:
        assert "Rejected deals record 'deal-1'" in caplog.text


message_types = st.sampled_from(["SCHEMA", "RECORD", "STATE", "ACTIVATE_VERSION", "BATCH", "X"])
fuzz_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
fuzz_messages = st.fixed_dictionaries(
    {"type": message_types},
    optional={
        "stream": st.sampled_from(["deals", "deal_stages", "other"]),
        "record": st.dictionaries(
            st.sampled_from(["externalDealId", "name", "amount", "pipelineId", "stages", "label"]),
            fuzz_values,
        ),
        "schema": st.just({"type": "object", "properties": {}}) | fuzz_values,
        "value": fuzz_values,
    },
)
fuzz_lines = st.lists(fuzz_messages.map(json.dumps) | st.text(max_size=40), min_size=1, max_size=12)


@settings(max_examples=60)
@given(fuzz_lines)
def test_any_input_ends_with_an_exit_code_not_a_crash(tmp_path_factory, lines):
    out = tmp_path_factory.mktemp("fuzz") / "bodies.jsonl"
    config = {"api_key": "fuzz", "dry_run": True, "dry_run_path": str(out)}
    target = TargetRecotap(config=config)
    text = "".join(line.replace("\n", " ") + "\n" for line in lines)
    assert target.run(io.StringIO(text)) in (0, 1, 3)
