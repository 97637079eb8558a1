"""Input that breaks the Singer spec ends the run with one sentence; odd data never crashes it."""

from __future__ import annotations

import io
import json
import re
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import (
    DEALS_SCHEMA,
    config_for,
    deal,
    deals_messages,
    record,
    run_cli,
    run_in_process,
    schema,
    state,
    states_from,
    write_config,
)

from target_recotap.target import TargetRecotap
from target_recotap.validation import is_multiple


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
            '{"type": "RECORD", "stream": "deals", "record": {"n": ' + "7" * 5000 + "}}",
            "an integer too long",
        ),
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


# JSON can carry a lone surrogate (escaped: "\ud800"), which is no text; the rest of it is.
UNPAIRED = "emoji 🚀 and RTL \u202e and NUL \u0000 and a lone surrogate \ud800"


@pytest.mark.parametrize(
    ("odd", "outcome"),
    [
        # A dict: the run exits 0 and Recotap stores that deal, exactly. A string: the run
        # exits 3 (one rejection, more than max_rejected_records 0), with that reason.
        (
            {"name": "x" * 1_000_000},
            "Recotap refused it: POST /deals not sent: 1000049 bytes is over the 102400 that pass",
        ),
        ({"name": UNPAIRED}, "name holds a lone surrogate, which is not text"),
        ({"name": UNPAIRED[:-1]}, {"name": UNPAIRED[:-1]}),
        ({"amount": [[[[[[[[[[1]]]]]]]]]]}, "amount must be a number, got a list"),
        (
            {"stageId": {"a": json.loads("[" * 42 + "]" * 42)}},
            "stageId must be a string, got an object",
        ),
        (
            {"associatedAccounts": [{"domain": {"deep": [{"deeper": {}}]}}]},
            "associatedAccounts[0].domain must be a string, got an object",
        ),
        ({"ownerId": 10**40}, {"ownerId": str(10**40)}),
        (
            {"amount": "1e400"},
            "amount 1.000E+400 is beyond the largest number Recotap can hold (1.798E+308)",
        ),
        ({"startDate": -(10**20)}, "startDate -100000000000000000000 is not epoch milliseconds"),
        (
            {"closedDate": "9999-12-31T23:59:59-23:59"},
            "closedDate 9999-12-31T23:59:59-23:59 is out of range in UTC",
        ),
        ({"name": None}, "name is missing or empty"),
    ],
)
def test_each_odd_value_is_sent_as_it_was_or_rejected_with_its_reason(
    emulator, tmp_path, odd, outcome
):
    loose = {"type": "object", "properties": {}}
    config = write_config(tmp_path, config_for(emulator))
    run = run_cli(
        ["--config", str(config)], [schema("deals", loose), record("deals", {**deal(1), **odd})]
    )
    assert "Traceback" not in run.stderr
    if isinstance(outcome, dict):
        assert (run.returncode, rejections(run.stderr)) == (0, {}), run.stderr
        assert emulator.store.deals() == {"deal-1": {**deal(1), **outcome}}
    else:
        assert (run.returncode, rejections(run.stderr)) == (3, {"deal-1": outcome})
        assert emulator.store.deals() == {}


def run_deals(emulator, tmp_path, lines: list[dict | str]):
    """The console script on ``lines``, rejections allowed: exit 0 unless the run broke."""
    config = write_config(tmp_path, config_for(emulator, max_rejected_records=100))
    run = run_cli(["--config", str(config)], lines)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    return run


def rejections(log: str) -> dict[str, str]:
    """Deal ID -> reason, from the log's rejection warnings."""
    return dict(re.findall(r"Rejected deals record '([^']+)': (.*)", log))


def deal_line(fields: str) -> str:
    """A RECORD line whose record is ``{"externalDealId": ..., "name": ...,`` + ``fields``."""
    return '{"type":"RECORD","stream":"deals","record":' + fields + "}"


def test_multiple_of_judges_exact_decimals_and_rejects_only_the_records_that_miss(
    emulator, tmp_path
):
    money = {
        "type": "object",
        "properties": {
            **DEALS_SCHEMA["properties"],
            "amount": {"type": ["number", "null"], "multipleOf": 0.01},
            "probability": {"type": "number", "multipleOf": 0.5},
            "seats": {"type": "integer", "multipleOf": 5},
            "listPrice": {"type": "number", "multipleOf": 0.01},
        },
    }
    deals = [
        deal(1, amount=Decimal("19.99"), probability=Decimal("7.5"), seats=10),
        deal(2, amount=Decimal("19.995")),
        deal(3, amount=1999, probability=3),
        deal(4, probability=Decimal("7.25")),
        deal(5, seats=11),
        # Past 28 digits, where a Decimal division rounds: one is a multiple, one is not.
        deal(6, listPrice=Decimal("1234567890123456789012345678.91")),
        deal(7, listPrice=Decimal("1234567890123456789012345678.915")),
        deal(8, amount=Decimal("0.10"), seats=Decimal("1E+3")),
    ]
    run = run_deals(
        emulator,
        tmp_path,
        [schema("deals", money), *(record("deals", d) for d in deals), state({"s": 1})],
    )
    mismatch = "does not match the stream's SCHEMA: "
    assert rejections(run.stderr) == {
        "deal-2": mismatch + "amount: 19.995 is not a multiple of 0.01",
        "deal-4": mismatch + "probability: 7.25 is not a multiple of 0.5",
        "deal-5": mismatch + "seats: 11 is not a multiple of 5",
        "deal-7": mismatch
        + "listPrice: 1234567890123456789012345678.915 is not a multiple of 0.01",
    }
    stored = emulator.store.deals()
    assert {key: deal.get("amount") for key, deal in stored.items()} == {
        "deal-1": 19.99,
        "deal-3": 1999,
        "deal-6": None,
        "deal-8": 0.1,
    }
    assert states_from(run.stdout) == [{"s": 1}]


@settings(max_examples=500)
@given(
    st.integers(1, 10**6),
    st.integers(-300, 300),
    st.integers(-(10**40), 10**40),
    st.integers(-300, 300),
    st.booleans(),
)
def test_multiple_of_is_exact_at_any_size(step_digits, step_exponent, digits, exponent, multiple):
    # Quotients of hundreds of digits, where a Decimal remainder gives up and a float is lost.
    step = Decimal(f"{step_digits}E{step_exponent}")
    value = Decimal(f"{step_digits * digits}E{step_exponent if multiple else exponent}")
    exact = (Fraction(value) / Fraction(step)).denominator == 1
    assert is_multiple(value, step) is exact


def test_a_number_with_no_fractional_part_is_an_integer_as_json_schema_says(emulator, tmp_path):
    ids = {"type": "object", "properties": {"ownerId": {"type": ["integer", "null"]}}}
    lines = [
        schema("deals", ids),
        deal_line('{"externalDealId":"deal-1","name":"a","ownerId":75000.0}'),
        deal_line('{"externalDealId":"deal-2","name":"b","ownerId":1e5}'),
        deal_line('{"externalDealId":"deal-3","name":"c","ownerId":75000.5}'),
        deal_line('{"externalDealId":"deal-4","name":"d","ownerId":"75000"}'),
    ]
    run = run_deals(emulator, tmp_path, lines)
    assert rejections(run.stderr) == {
        "deal-3": "does not match the stream's SCHEMA: ownerId: 75000.5 is not of type "
        "'integer', 'null'",
        "deal-4": "does not match the stream's SCHEMA: ownerId: '75000' is not of type "
        "'integer', 'null'",
    }
    stored = emulator.store.deals()
    assert {key: deal["ownerId"] for key, deal in stored.items()} == {
        "deal-1": "75000",
        "deal-2": "100000",
    }


def test_a_record_the_schema_cannot_be_checked_against_is_rejected_alone(emulator, tmp_path):
    bounded = {
        "type": "object",
        "properties": {
            "amount": {"type": ["number", "null"], "minimum": 0.5},
            "ownerName": {"type": ["string", "null"]},
        },
    }
    # A $ref to nothing: the SCHEMA is valid JSON Schema, but a record that reaches it cannot
    # be checked.
    dangling = {"type": "object", "properties": {"ownerName": {"$ref": "#/$defs/owner"}}}
    lines = [
        schema("deals", bounded),
        # The name's type is wrong, so the stock validator judges it, and meets NaN.
        deal_line('{"externalDealId":"deal-1","name":"a","amount":NaN,"ownerName":12345}'),
        deal_line('{"externalDealId":"deal-2","name":"b","amount":1.5}'),
        state({"s": 1}),
        schema("deals", dangling),
        deal_line('{"externalDealId":"deal-3","name":"c","ownerName":"Jane"}'),
        deal_line('{"externalDealId":"deal-4","name":"d"}'),
        state({"s": 2}),
    ]
    run = run_deals(emulator, tmp_path, lines)
    reasons = rejections(run.stderr)
    unchecked = "the stream's SCHEMA could not be checked against it: "
    assert reasons.pop("deal-1") == (
        unchecked + "it holds NaN, which cannot be compared with the SCHEMA's numbers"
    )
    assert reasons.pop("deal-3").startswith(
        unchecked + "PointerToNowhere: '/$defs/owner' does not exist within"
    )
    assert reasons == {}
    assert set(emulator.store.deals()) == {"deal-2", "deal-4"}
    assert states_from(run.stdout)[-1] == {"s": 2}


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
