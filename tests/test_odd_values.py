"""Odd values real taps send, through the console script into the emulator: for each, the exact
value Recotap stores or the exact reason it is rejected."""

from __future__ import annotations

import re

from support import config_for, record, run_cli, schema, write_config

# Any field of any type: these tests are about what normalisation makes of the values.
OPEN_SCHEMA = schema("deals", {"type": "object", "properties": {}})
FULL_WIDTH_EXAMPLE = "\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45"
REJECTED = re.compile(r"Rejected deals record '(?P<id>[^']*)': (?P<reason>.*)$")


def deal_line(deal_id: str, fields_json: str) -> str:
    """A RECORD line written by hand, so that a number arrives exactly as a tap writes it."""
    return (
        '{"type": "RECORD", "stream": "deals", "record": '
        f'{{"externalDealId": "{deal_id}", "name": "N", {fields_json}}}}}'
    )


def load(emulator, tmp_path, lines, env=None):
    """Run the target on ``lines`` (with ``env`` added to its environment); the deals Recotap
    stored, the reasons of those rejected (by ID) and the log."""
    config = write_config(tmp_path, config_for(emulator, max_rejected_records=1000))
    run = run_cli(["--config", str(config)], [OPEN_SCHEMA, *lines], env=env)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    reasons = {
        match["id"]: match["reason"]
        for line in run.stderr.splitlines()
        if (match := REJECTED.search(line))
    }
    return emulator.store.deals(), reasons, run.stderr


def fields(stored, deal_id, *names):
    deal = stored[deal_id]
    return {name: deal[name] for name in names if name in deal}


def test_epoch_timestamps(emulator, tmp_path):
    cases = {
        "ms": '"startDate": 1768435200000',
        "ms-text": '"startDate": "1768435200000"',
        "seconds": '"startDate": 1768435200',
        "seconds-text": '"startDate": "1768435200"',
        "seconds-fraction": '"startDate": 1768435200.25',
        "far-future": '"startDate": 9000000000001',
        "far-past": '"startDate": -9000000000999',
        "last-ms": '"startDate": 253402300799999',
        "arabic-indic": '"startDate": "١٧٦٨٤٣٥٢٠٠٠٠٠"',
        "end-of-day": '"startDate": "2026-01-15T24:00:00Z"',
        "no-offset": '"startDate": "2026-01-15T09:30:00"',
    }
    stored, reasons, _ = load(emulator, tmp_path, [deal_line(k, v) for k, v in cases.items()])
    assert {k: stored[k]["startDate"] for k in stored} == {
        "ms": "2026-01-15T00:00:00Z",
        "ms-text": "2026-01-15T00:00:00Z",
        "far-future": "2255-03-14T16:00:00.001Z",
        "far-past": "1684-10-19T07:59:59.001Z",
        "last-ms": "9999-12-31T23:59:59.999Z",
        "end-of-day": "2026-01-16T00:00:00Z",
        "no-offset": "2026-01-15T09:30:00Z",
    }
    tail = "but epoch times are read as milliseconds"
    fix = "multiply it by 1000, e.g. in a stream map"
    assert reasons == {
        "seconds": f"startDate 1768435200 looks like epoch seconds (2026-01-15T00:00:00Z), "
        f"{tail} (1970-01-21T11:13:55.200Z): {fix}",
        "seconds-text": f"startDate '1768435200' looks like epoch seconds "
        f"(2026-01-15T00:00:00Z), {tail} (1970-01-21T11:13:55.200Z): {fix}",
        "seconds-fraction": f"startDate 1768435200.25 looks like epoch seconds "
        f"(2026-01-15T00:00:00.250Z), {tail} (1970-01-21T11:13:55.200Z): {fix}",
        "arabic-indic": "startDate '١٧٦٨٤٣٥٢٠٠٠٠٠' is not an ISO 8601 date",
    }


def test_dates_do_not_depend_on_the_time_zone_of_the_machine(emulator, tmp_path):
    cases = {
        "naive": '"startDate": "2026-01-15T09:30:00"',
        "naive-ms": '"startDate": "2026-01-15T09:30:00.250"',
        "offset": '"startDate": "2026-01-15T15:00:00+05:30"',
        "offset-ms": '"startDate": "2026-01-15T15:00:00.250+05:30"',
        "date": '"startDate": "2026-01-15"',
        "epoch-ms": '"startDate": 1768469400250',
    }
    lines = [deal_line(k, v) for k, v in cases.items()]
    # UTC-11, as POSIX writes it: a zone no C library needs a time zone database for.
    stored, reasons, _ = load(emulator, tmp_path, lines, env={"TZ": "XST+11"})
    assert reasons == {}
    assert {k: stored[k]["startDate"] for k in stored} == {
        "naive": "2026-01-15T09:30:00Z",
        "naive-ms": "2026-01-15T09:30:00.250Z",
        "offset": "2026-01-15T09:30:00Z",
        "offset-ms": "2026-01-15T09:30:00.250Z",
        "date": "2026-01-15T00:00:00Z",
        "epoch-ms": "2026-01-15T09:30:00.250Z",
    }


def test_owner_emails_as_recotap_judges_them(emulator, tmp_path):
    cases = {
        "idn": "jane@例え.jp",
        "utf8-local": "jané@example.com",
        "quoted": '"jane doe"@example.com',
        "padded": " jane@example.com ",
        "final-newline": "jane@example.com\n",
        "inner-newline": "jane@exam\nple.com",
        "full-width": f"jane@{FULL_WIDTH_EXAMPLE}.com",
        "underscore-domain": "jane@my_company.com",
    }
    lines = [
        record("deals", {"externalDealId": k, "name": "N", "ownerEmail": v})
        for k, v in cases.items()
    ]
    stored, reasons, _ = load(emulator, tmp_path, lines)
    assert {k: stored[k]["ownerEmail"] for k in stored} == {
        "idn": "jane@例え.jp",
        "utf8-local": "jané@example.com",
        "quoted": '"jane doe"@example.com',
        "padded": "jane@example.com",
        "final-newline": "jane@example.com",
    }
    assert reasons == {
        "inner-newline": "ownerEmail 'jane@exam\\nple.com' is not a valid email",
        "full-width": f"ownerEmail 'jane@{FULL_WIDTH_EXAMPLE}.com' is not a valid email",
        "underscore-domain": "ownerEmail 'jane@my_company.com' is not a valid email",
    }


def test_null_and_empty_associated_accounts_are_dropped(emulator, tmp_path):
    cases = {
        "null-first": '"associatedAccounts": [null, {"domain": "a.com"}]',
        "empty-first": '"associatedAccounts": [{}, {"domain": "a.com"}]',
        "only-null": '"associatedAccounts": [null]',
        "not-an-object": '"associatedAccounts": [null, "a.com"]',
    }
    stored, reasons, _ = load(emulator, tmp_path, [deal_line(k, v) for k, v in cases.items()])
    assert {k: fields(stored, k, "associatedAccounts") for k in stored} == {
        "null-first": {"associatedAccounts": [{"domain": "a.com"}]},
        "empty-first": {"associatedAccounts": [{"domain": "a.com"}]},
        "only-null": {},
    }
    assert reasons == {"not-an-object": "associatedAccounts[1] must be an object, got str"}


def test_the_twin_that_loses_is_not_read(emulator, tmp_path):
    cases = {
        "twin-first": '"start_date": "bad", "startDate": "2026-02-02"',
        "twin-last": '"startDate": "2026-02-02", "start_date": "bad"',
        "accounts-twin-first": '"associated_accounts": [5], '
        '"associatedAccounts": [{"domain": "a.com"}]',
        "only-twin": '"start_date": "bad"',
        "own-name-null": '"startDate": null, "start_date": "2026-13-01"',
    }
    stored, reasons, _ = load(emulator, tmp_path, [deal_line(k, v) for k, v in cases.items()])
    assert {k: fields(stored, k, "startDate", "associatedAccounts") for k in stored} == {
        "twin-first": {"startDate": "2026-02-02T00:00:00Z"},
        "twin-last": {"startDate": "2026-02-02T00:00:00Z"},
        "accounts-twin-first": {"associatedAccounts": [{"domain": "a.com"}]},
    }
    assert reasons == {
        "only-twin": "start_date 'bad' is not an ISO 8601 date",
        "own-name-null": "start_date '2026-13-01' is not an ISO 8601 date",
    }


def test_amounts_a_double_cannot_hold_and_odd_digits(emulator, tmp_path):
    cases = {
        "huge": '"amount": 1E400',
        "huge-integer": f'"amount": 1{"0" * 400}',
        "tiny": '"amount": -1e-400',
        "long-decimal": '"amount": 123456789012345.678901234567890',
        "largest": '"amount": 1.7976931348623157e308',
        "long-integer": '"amount": 12345678901234567890123',
        "spaces-and-sign": '"amount": " +7 "',
        "exponent-text": '"amount": "1e3"',
        "underscores": '"amount": "1_000"',
        "arabic-indic": '"amount": "١٢٣"',
        "full-width": '"amount": "\uff11\uff12\uff13"',
        "thousands": '"amount": "75,000"',
    }
    stored, reasons, log = load(emulator, tmp_path, [deal_line(k, v) for k, v in cases.items()])
    # Recotap keeps a double of each (the emulator keeps integers whole: float() shows the double).
    assert {k: float(stored[k]["amount"]) for k in stored} == {
        "largest": 1.7976931348623157e308,
        "long-decimal": 123456789012345.67,
        "long-integer": 1.2345678901234568e22,
        "spaces-and-sign": 7,
        "exponent-text": 1000,
    }
    syntax = (
        "is not a number: write it with ASCII digits, an optional sign, decimal point and exponent"
    )
    assert reasons == {
        "huge": "amount 1.000E+400 is beyond the largest number Recotap can hold (1.798E+308)",
        "huge-integer": "amount 1.000E+400 is beyond the largest number Recotap can hold "
        "(1.798E+308)",
        "tiny": "amount -1.000E-400 is nearer 0 than any number Recotap can hold (it would "
        "store 0)",
        "underscores": f"amount '1_000' {syntax}",
        "arabic-indic": f"amount '١٢٣' {syntax}",
        "full-width": f"amount '\uff11\uff12\uff13' {syntax}",
        "thousands": f"amount '75,000' {syntax}",
    }
    warnings = [line for line in log.splitlines() if "significant digits" in line]
    assert len(warnings) == 1  # once a run, though two amounts have too many digits
    assert warnings[0].endswith(
        "Deal 'long-decimal': amount 123456789012345.678901234567890 has more than 15 "
        "significant digits; Recotap stores amounts as doubles, so it will hold "
        "123456789012345.67. It is sent as read; other amounts like it in this run get no "
        "further warning"
    )


# Accents (composed, and an e with a combining acute), CJK, an emoji past the BMP (U+1F600),
# Hebrew and Arabic, an RTL override: text with no lone surrogate, which Recotap must get as is.
WORLD_TEXTS = {
    "accents": "Crème brûlée São Paulo Zürich e\u0301",
    "cjk": "東京の商談 거래 交易",
    "emoji": "Deal \U0001f600 \U0001f680",
    "hebrew": "עסקה חדשה",
    "arabic": "صفقة جديدة \u202eright to left",
}


def test_text_in_any_script_arrives_as_it_was_written(emulator, tmp_path):
    deals = [
        record(
            "deals",
            {
                "externalDealId": f"{kind}-{text}",
                "name": text,
                "ownerName": text,
                "stageLabel": text,
                "pipelineLabel": text,
                "associatedAccounts": [{"externalId": text, "name": text}],
                "accountName": text,
            },
        )
        for kind, text in WORLD_TEXTS.items()
    ]
    pipelines = [
        record(
            "deal_stages",
            {"pipelineId": text, "label": text, "stages": [{"stageId": text, "label": text}]},
        )
        for text in WORLD_TEXTS.values()
    ]
    stored, reasons, _ = load(emulator, tmp_path, [*deals, schema("deal_stages"), *pipelines])
    assert reasons == {}
    assert stored == {
        f"{kind}-{text}": {
            "externalDealId": f"{kind}-{text}",
            "name": text,
            "ownerName": text,
            "stageLabel": text,
            "pipelineLabel": text,
            "associatedAccounts": [{"externalId": text, "name": text}, {"name": text}],
        }
        for kind, text in WORLD_TEXTS.items()
    }
    assert emulator.store.pipelines() == {
        text: {
            "pipelineId": text,
            "pipelineLabel": text,
            "stages": [{"stageId": text, "stageLabel": text}],
        }
        for text in WORLD_TEXTS.values()
    }


# Integers no double holds exactly (JavaScript's numbers, Python's floats): through one,
# each would lose its last digits.
BIG_INTEGERS = (2**53 + 1, -(2**53 + 1), 10**40 + 1)


def odd_from(big: int, count: int) -> list[int]:
    """``count`` odd integers from ``big`` on, away from 0: none of them a double holds, and
    each field its own, so that neither a rounding nor a mix-up goes unseen."""
    return [big + step if big > 0 else big - step for step in range(0, 2 * count, 2)]


def test_integer_ids_past_a_double_arrive_digit_for_digit(emulator, tmp_path):
    deals = [odd_from(big, 6) for big in BIG_INTEGERS]
    pipelines = [odd_from(big, 2) for big in BIG_INTEGERS]
    lines = [
        *(
            record(
                "deals",
                {
                    "externalDealId": deal_id,
                    "name": "N",
                    "ownerId": owner,
                    "stageId": stage,
                    "pipelineId": pipeline,
                    "associatedAccounts": [{"externalId": account}],
                    "accountExternalId": flat_account,
                },
            )
            for deal_id, owner, stage, pipeline, account, flat_account in deals
        ),
        # Integral numbers written with a fraction or an exponent (read as decimals), under
        # the snake_case twins.
        '{"type": "RECORD", "stream": "deals", "record": {"external_deal_id": '
        '9007199254741093.0, "name": "N", "owner_id": -9007199254741095.000, "stage_id": '
        '1.0000000000000000000000000000000000000001E40, "pipeline_id": 9007199254741097E0, '
        '"associated_accounts": [{"external_id": 90071992547410990e-1}], '
        '"account_external_id": -1.0000000000000000000000000000000000000003e+40}}',
        schema("deal_stages"),
        *(
            record(
                "deal_stages",
                {
                    "pipelineId": pipeline,
                    "label": "P",
                    "stages": [{"stageId": stage, "label": "S"}],
                },
            )
            for pipeline, stage in pipelines
        ),
        '{"type": "RECORD", "stream": "deal_stages", "record": {"pipeline_id": '
        '9007199254741101.0, "pipeline_label": "P", "stage_id": -9007199254741103e0, '
        '"label": "S"}}',
    ]
    stored, reasons, _ = load(emulator, tmp_path, lines)
    assert reasons == {}
    assert list(stored.values()) == [
        *(
            {
                "externalDealId": str(deal_id),
                "name": "N",
                "ownerId": str(owner),
                "stageId": str(stage),
                "pipelineId": str(pipeline),
                "associatedAccounts": [{"externalId": str(account)}, {"externalId": str(flat)}],
            }
            for deal_id, owner, stage, pipeline, account, flat in deals
        ),
        {
            "externalDealId": "9007199254741093",
            "name": "N",
            "ownerId": "-9007199254741095",
            "stageId": str(10**40 + 1),
            "pipelineId": "9007199254741097",
            "associatedAccounts": [
                {"externalId": "9007199254741099"},
                {"externalId": str(-(10**40 + 3))},
            ],
        },
    ]
    assert {
        pipeline_id: [stage["stageId"] for stage in pipeline["stages"]]
        for pipeline_id, pipeline in emulator.store.pipelines().items()
    } == {
        **{str(pipeline): [str(stage)] for pipeline, stage in pipelines},
        "9007199254741101": ["-9007199254741103"],
    }
