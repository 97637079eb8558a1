"""Unit tests of the record normalisation: field names, values, dates, pipelines."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from target_recotap.addresses import clean_domain
from target_recotap.client import conflicting_pipeline_ids
from target_recotap.normalize import (
    InvalidRecord,
    deal_body,
    imprecise_amount,
    pipeline_part,
    to_amount,
    to_utc_timestamp,
)


def test_full_deal_keeps_recotap_names_and_drops_other_fields():
    record = {
        "externalDealId": "deal-001",
        "name": "Acme Corp - Enterprise Plan",
        "amount": 75000,
        "stageId": "stage-3",
        "stageLabel": "Proposal Sent",
        "pipelineId": "smb-pipeline",
        "pipelineLabel": "SMB Sales",
        "startDate": "2026-01-15T00:00:00Z",
        "closedDate": "2026-06-30T00:00:00Z",
        "ownerName": "Jane Smith",
        "ownerEmail": "jane@yourcompany.com",
        "ownerId": "rep-123",
        "dealCurrencyCode": "USD",
        "associatedAccounts": [{"externalId": "crm-001", "domain": "acme.com", "name": "Acme"}],
        "_sdc_extracted_at": "2026-01-01T00:00:00Z",
        "hs_custom": "not sent",
    }
    body = deal_body(record)
    expected = {k: v for k, v in record.items() if not k.startswith(("_sdc", "hs_"))}
    assert body == expected


def test_snake_case_twins_map_to_recotap_names():
    body = deal_body(
        {
            "external_deal_id": "d1",
            "name": "N",
            "stage_id": "s",
            "stage_label": "S",
            "pipeline_id": "p",
            "pipeline_label": "P",
            "start_date": "2026-01-15",
            "closed_date": "2026-02-01",
            "owner_name": "O",
            "owner_email": "o@example.com",
            "owner_id": 7,
            "deal_currency_code": "EUR",
            "associated_accounts": [{"external_id": 12, "domain": "a.io"}],
        }
    )
    assert body == {
        "externalDealId": "d1",
        "name": "N",
        "stageId": "s",
        "stageLabel": "S",
        "pipelineId": "p",
        "pipelineLabel": "P",
        "startDate": "2026-01-15T00:00:00Z",
        "closedDate": "2026-02-01T00:00:00Z",
        "ownerName": "O",
        "ownerEmail": "o@example.com",
        "ownerId": "7",
        "dealCurrencyCode": "EUR",
        "associatedAccounts": [{"externalId": "12", "domain": "a.io"}],
    }


def test_flat_account_fields_become_an_associated_account():
    body = deal_body(
        {
            "externalDealId": "d1",
            "name": "N",
            "account_external_id": 42,
            "accountName": "Acme",
            "accountDomain": "",
            "associatedAccounts": [{"domain": "other.example"}],
        }
    )
    assert body["associatedAccounts"] == [
        {"domain": "other.example"},
        {"externalId": "42", "name": "Acme"},
    ]
    assert "accountName" not in body
    assert deal_body({"externalDealId": "d", "name": "N", "accountName": None}) == {
        "externalDealId": "d",
        "name": "N",
    }


def test_null_absent_and_empty_optionals_are_left_out():
    body = deal_body(
        {
            "externalDealId": "d1",
            "name": "N",
            "amount": None,
            "stageId": "",
            "ownerEmail": "   ",
            "closedDate": None,
            "associatedAccounts": [{"externalId": None, "domain": ""}],
        }
    )
    assert body == {"externalDealId": "d1", "name": "N"}


def test_integer_ids_become_strings():
    # A float: a stream map's expression can make one (JSON input is read as int or Decimal).
    body = deal_body(
        {"externalDealId": 123, "name": "N", "ownerId": Decimal("456"), "stageId": 2.0**60}
    )
    assert body["externalDealId"] == "123"
    assert body["ownerId"] == "456"
    assert body["stageId"] == "1152921504606846976"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (75000, 75000),
        (Decimal("1234.56"), Decimal("1234.56")),
        (Decimal("100.00"), 100),
        ("42.5", Decimal("42.5")),
        (" 7 ", 7),
        (12.25, 12.25),
        (3.0, 3),
    ],
)
def test_amount_becomes_an_exact_number(value, expected):
    result = to_amount(value)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize("value", ["abc", "1,000", True, float("nan"), Decimal("Infinity"), [1]])
def test_amount_that_is_not_a_number_is_refused(value):
    with pytest.raises(InvalidRecord, match="amount"):
        to_amount(value)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("1_000", "amount '1_000' is not a number: write it with ASCII digits"),
        ("75,000", "amount '75,000' is not a number: write it with ASCII digits"),
        ("\u0661\u0662\u0663", "amount '\u0661\u0662\u0663' is not a number"),  # Arabic-Indic
        ("\uff11\uff12\uff13", "amount '\uff11\uff12\uff13' is not a number"),  # full-width
        ("$5", "amount '$5' is not a number"),
        (Decimal("1E400"), "amount 1.000E+400 is beyond the largest number Recotap can hold"),
        ("-1e400", "amount -1.000E+400 is beyond the largest number Recotap can hold"),
        (10**400, "amount 1.000E+400 is beyond the largest number Recotap can hold (1.798E+308)"),
        # Below 2**1024, but the least integer that a double rounds up to it, past the largest.
        (2**1024 - 2**970, "amount 1.798E+308 is beyond the largest number Recotap can hold"),
        (Decimal("1E-400"), "amount 1.000E-400 is nearer 0 than any number Recotap can hold"),
    ],
)
def test_amount_only_in_json_number_syntax_and_a_double_range(value, reason):
    with pytest.raises(InvalidRecord) as refused:
        to_amount(value)
    assert str(refused.value).startswith(reason)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+5", 5),
        ("1e3", 1000),
        (".5", Decimal("0.5")),
        ("-0", 0),
        (Decimal("0E-500"), 0),
        (Decimal("1.7976931348623157E308"), int(Decimal("1.7976931348623157E308"))),
        (2**1024 - 2**970 - 1, 2**1024 - 2**970 - 1),  # a double reads it as the largest one
    ],
)
def test_amount_within_a_double_and_in_number_syntax_is_kept(value, expected):
    assert to_amount(value) == expected


@pytest.mark.parametrize(
    ("amount", "imprecise"),
    [
        (75000, False),
        (10**15 - 1, False),
        (10**15 + 1, True),  # 16 significant digits
        (10**20, False),  # one significant digit
        (Decimal("146258.9"), False),
        (Decimal("0.1000000000000000"), False),  # trailing zeros are not significant
        (Decimal("12345678901.2345"), False),
        (Decimal("1234567890.123456"), True),
        (Decimal("-0.0000001234567890123456"), True),
        (0.1, False),  # a float is a double already
    ],
)
def test_imprecise_amounts_have_more_than_15_significant_digits(amount, imprecise):
    assert imprecise_amount(amount) is imprecise


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-15T00:00:00Z", "2026-01-15T00:00:00Z"),
        ("2026-01-15T05:30:00+05:30", "2026-01-15T00:00:00Z"),
        ("2026-01-14T19:00:00-05:00", "2026-01-15T00:00:00Z"),
        ("2026-01-15T00:00:00", "2026-01-15T00:00:00Z"),
        ("2026-01-15T00:00:00.250Z", "2026-01-15T00:00:00.250Z"),
        ("2026-01-15", "2026-01-15T00:00:00Z"),
        (
            dt.datetime(2026, 1, 15, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))),
            "2026-01-15T00:00:00Z",
        ),
        (dt.date(2026, 1, 15), "2026-01-15T00:00:00Z"),
        (1768435200000, "2026-01-15T00:00:00Z"),
        ("1768435200000", "2026-01-15T00:00:00Z"),
        (Decimal("1768435200000.5"), "2026-01-15T00:00:00.000Z"),
        (0, "1970-01-01T00:00:00Z"),  # the same instant in any unit
        (-86400000, "1969-12-31T00:00:00Z"),
        # Far from today, exact to the millisecond (a float of seconds was 1 ms off).
        (9000000000001, "2255-03-14T16:00:00.001Z"),
        (-9000000000999, "1684-10-19T07:59:59.001Z"),
        (253402300799999, "9999-12-31T23:59:59.999Z"),
        ("2026-01-15T24:00:00Z", "2026-01-16T00:00:00Z"),
        ("2026-12-31 24:00", "2027-01-01T00:00:00Z"),
        ("2026-01-15T24:00:00.000+05:30", "2026-01-15T18:30:00Z"),
        ("2026-01-15 09:30:00", "2026-01-15T09:30:00Z"),  # no offset: UTC
        ("2026-01-15T09:30:00z", "2026-01-15T09:30:00Z"),
        ("2026-01-15T24:00:00z", "2026-01-16T00:00:00Z"),
        ("20260115T09", "2026-01-15T09:00:00Z"),  # ISO 8601's basic format
        # Negative epoch milliseconds as text, at the fewest digits read as such and more.
        ("-1000000000", "1969-12-20T10:13:20Z"),
        ("-9000000000999", "1684-10-19T07:59:59.001Z"),
    ],
)
def test_dates_become_iso_utc(value, expected):
    assert to_utc_timestamp(value, "startDate") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-15+05:30", "2026-01-14T18:30:00Z"),
        ("2026-01-15-05:00", "2026-01-15T05:00:00Z"),
        ("2026-01-15+0530", "2026-01-14T18:30:00Z"),
        ("2026-01-15Z", "2026-01-15T00:00:00Z"),
        ("2026-01-15z", "2026-01-15T00:00:00Z"),
    ],
)
def test_a_date_with_an_offset_is_its_midnight_at_that_offset(value, expected):
    # As XML Schema's dates carry one; not the offset read as a time of day (Python reads
    # "2026-01-15+05:30" as 05:30, any character between a date and a time being taken).
    assert to_utc_timestamp(value, "startDate") == expected


@pytest.mark.parametrize(
    ("value", "shown", "as_seconds", "as_milliseconds"),
    [
        (1768435200, "1768435200", "2026-01-15T00:00:00Z", "1970-01-21T11:13:55.200Z"),
        ("1768435200", "'1768435200'", "2026-01-15T00:00:00Z", "1970-01-21T11:13:55.200Z"),
        (
            Decimal("1768435200.25"),
            "1768435200.25",
            "2026-01-15T00:00:00.250Z",
            "1970-01-21T11:13:55.200Z",
        ),
        (94694399999, "94694399999", "4970-09-29T23:59:59Z", "1972-12-31T23:59:59.999Z"),
        (1, "1", "1970-01-01T00:00:01Z", "1970-01-01T00:00:00.001Z"),
    ],
)
def test_epoch_seconds_are_refused_saying_so(value, shown, as_seconds, as_milliseconds):
    with pytest.raises(InvalidRecord) as refused:
        to_utc_timestamp(value, "startDate")
    assert str(refused.value) == (
        f"startDate {shown} looks like epoch seconds ({as_seconds}), but epoch times are read "
        f"as milliseconds ({as_milliseconds}): multiply it by 1000, e.g. in a stream map"
    )
    assert to_utc_timestamp(94694400000, "startDate") == "1973-01-01T00:00:00Z"


@pytest.mark.parametrize(
    "value",
    [
        "next tuesday",
        "2026-13-01",
        "",
        "15/01/2026",
        True,
        {},
        "2026-01-15T24:00:01Z",  # only 24:00 itself is the end of the day
        "١٧٦٨٤٣٥٢٠٠٠٠٠",  # 1768435200000 in Arabic-Indic digits: only ASCII digits are read
        # A colon before the fraction: Python 3.11+ reads it as 45.99 seconds (3.10 refuses
        # it), ISO 8601 and Recotap's validator do not.
        "2026-04-22T10:30:45:99Z",
        "2026-04-22 10:30:45:1",
        "20260422T103045:99Z",
    ],
)
def test_unparseable_dates_are_refused(value):
    with pytest.raises(InvalidRecord, match="startDate"):
        to_utc_timestamp(value, "startDate")


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"name": "N"}, "externalDealId is missing"),
        ({"externalDealId": "", "name": "N"}, "externalDealId is missing"),
        ({"externalDealId": "d"}, "name is missing"),
        ({"externalDealId": "d", "name": "N", "ownerEmail": "not-an-email"}, "ownerEmail"),
        ({"externalDealId": "d", "name": "N", "closedDate": "soon"}, "closedDate"),
        ({"externalDealId": {"a": 1}, "name": "N"}, "externalDealId must be a string"),
        ({"externalDealId": "d", "name": "N", "associatedAccounts": "acme"}, "associatedAccounts"),
    ],
)
def test_records_the_api_would_refuse_are_invalid(record, reason):
    with pytest.raises(InvalidRecord, match=reason):
        deal_body(record)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("startDate", {}, "startDate must be a date, got an object"),
        ("closedDate", [], "closedDate must be a date, got a list"),
        ("startDate", True, "startDate must be a date, got a boolean"),
        ("associatedAccounts", "acme", "associatedAccounts must be a list, got str"),
        ("associated_accounts", {}, "associated_accounts must be a list, got an object"),
        ("amount", {}, "amount must be a number, got an object"),
        ("amount", False, "amount must be a number, got a boolean"),
        ("stageId", [1], "stageId must be a string, got a list"),
        ("ownerId", True, "ownerId must be a string, got a boolean"),
        ("ownerId", Decimal("1.5"), "ownerId must be a string, got Decimal"),
        ("ownerEmail", ["jane@example.com"], "ownerEmail must be a string, got a list"),
    ],
)
def test_a_value_of_the_wrong_kind_is_refused_naming_the_kind(field, value, reason):
    with pytest.raises(InvalidRecord) as refused:
        deal_body({"externalDealId": "d", "name": "N", field: value})
    assert str(refused.value) == reason


@pytest.mark.parametrize(
    "record",
    [
        {"start_date": "bad", "startDate": "2026-02-02"},
        {"startDate": "2026-02-02", "start_date": "bad"},
        {"startDate": "2026-02-02", "start_date": {"not": "read"}},
        {"associated_accounts": "bad", "associatedAccounts": [], "startDate": "2026-02-02"},
    ],
)
def test_recotap_name_wins_and_its_twin_is_not_read(record):
    body = deal_body({"externalDealId": "d", "name": "N", **record})
    assert body == {"externalDealId": "d", "name": "N", "startDate": "2026-02-02T00:00:00Z"}


def test_a_twin_is_read_when_recotap_name_is_empty():
    body = deal_body({"externalDealId": "d", "name": "N", "startDate": " ", "start_date": 0})
    assert body["startDate"] == "1970-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"start_date": "bad"}, "start_date 'bad' is not an ISO 8601 date"),
        ({"startDate": None, "start_date": "bad"}, "start_date 'bad' is not an ISO 8601 date"),
        ({"owner_email": "nope"}, "owner_email 'nope' is not a valid email"),
        ({"associated_accounts": [{"external_id": True}]}, "associated_accounts[0].external_id"),
    ],
)
def test_a_reason_names_the_field_as_the_record_spells_it(record, reason):
    with pytest.raises(InvalidRecord) as refused:
        deal_body({"externalDealId": "d", "name": "N", **record})
    assert str(refused.value).startswith(reason)


@pytest.mark.parametrize(
    ("written", "sent"),
    [
        (" jane@example.com ", "jane@example.com"),
        ("jane@example.com\n", "jane@example.com"),
        ("jane@例え.jp", "jane@例え.jp"),
        ("jané@example.com", "jané@example.com"),
        ('"jane doe"@example.com', '"jane doe"@example.com'),
    ],
)
def test_owner_email_is_stripped_and_judged_as_recotap_does(written, sent):
    body = deal_body({"externalDealId": "d", "name": "N", "ownerEmail": written})
    assert body["ownerEmail"] == sent


def test_null_and_empty_accounts_are_dropped_alike():
    body = deal_body(
        {
            "externalDealId": "d",
            "name": "N",
            "associatedAccounts": [None, {"domain": "a.com"}, {}, {"name": None}],
        }
    )
    assert body["associatedAccounts"] == [{"domain": "a.com"}]
    only_nulls = {"externalDealId": "d", "name": "N", "associatedAccounts": [None, None]}
    assert "associatedAccounts" not in deal_body(only_nulls)
    with pytest.raises(InvalidRecord, match=r"associatedAccounts\[1\] must be an object, got str"):
        deal_body({"externalDealId": "d", "name": "N", "associatedAccounts": [None, "a.com"]})


def test_pipeline_record_with_labels_at_both_levels():
    part = pipeline_part(
        {
            "pipelineId": "default",
            "label": "Sales Pipeline",
            "stages": [
                {"stageId": "appointmentscheduled", "label": "Appointment Scheduled"},
                {"stage_id": "closedwon", "stage_label": "Closed Won"},
            ],
        }
    )
    assert part.pipeline_id == "default"
    assert part.label == "Sales Pipeline"
    assert part.stages == [
        ("appointmentscheduled", "Appointment Scheduled", None),
        ("closedwon", "Closed Won", None),
    ]


def test_stage_record_label_names_the_stage():
    part = pipeline_part(
        {"pipeline_id": 5, "pipeline_label": "SMB", "stageId": 9, "label": "Proposal"}
    )
    assert (part.pipeline_id, part.label, part.stages) == ("5", "SMB", [("9", "Proposal", None)])


def test_stage_without_label_is_invalid():
    with pytest.raises(InvalidRecord, match="stageLabel"):
        pipeline_part({"pipelineId": "p", "pipelineLabel": "P", "stageId": "s"})


@pytest.mark.parametrize(
    ("written", "shown"),
    [("x" * 80, "x" * 80), ("x" * 81, "x" * 80 + "..."), ("y" * 500, "y" * 80 + "...")],
)
def test_a_reason_shows_at_most_80_characters_of_the_value(written, shown):
    with pytest.raises(InvalidRecord) as refused:
        deal_body({"externalDealId": "d", "name": "N", "closedDate": written})
    assert str(refused.value) == f"closedDate {shown!r} is not an ISO 8601 date"


def test_a_stage_order_that_is_not_a_finite_number_is_none():
    orders = [
        Decimal("NaN"), Decimal("Infinity"), float("nan"), float("-inf"), "1", True, None,
        Decimal("2.5"), 3.5, 4,
    ]  # fmt: skip
    part = pipeline_part(
        {
            "pipelineId": "p",
            "pipelineLabel": "P",
            "stages": [
                {"stageId": f"s{n}", "stageLabel": "S", "displayOrder": order}
                for n, order in enumerate(orders)
            ],
        }
    )
    assert [order for *_, order in part.stages] == [*[None] * 7, Decimal("2.5"), 3.5, 4]


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"pipelineId": ["p"], "label": "P"}, "pipelineId must be a string, got a list"),
        ({"pipeline_id": True, "label": "P"}, "pipelineId must be a string, got a boolean"),
        ({"pipelineId": "p", "label": {}}, "label must be a string, got an object"),
        (
            {"pipelineId": "p", "pipelineLabel": [], "stages": []},
            "label must be a string, got a list",
        ),
        ({"pipelineId": "p", "label": "P", "stages": "s1"}, "stages must be a list, got str"),
        ({"pipelineId": "p", "label": "P", "stages": ["s1"]}, "stages[0] must be an object"),
        ({"label": "P", "stages": []}, "pipelineId is missing or empty"),
        (
            {"pipelineId": "p", "pipelineLabel": "P", "stageId": "s"},
            "stage: stageLabel is missing or empty",
        ),
        (
            {"pipelineId": "p", "stages": [{"stageLabel": "S"}]},
            "stages[0]: stageId is missing or empty",
        ),
        (
            {"pipelineId": "p", "stages": [{"stageId": "s"}]},
            "stages[0]: stageLabel is missing or empty",
        ),
        (
            {"pipelineId": "p", "stageId": [], "stageLabel": "S"},
            "stageId must be a string, got a list",
        ),
        (
            {"pipelineId": "p", "stageId": "s", "label": True},
            "stageLabel must be a string, got a boolean",
        ),
    ],
)
def test_a_pipeline_record_that_cannot_be_read_is_refused_saying_why(record, reason):
    with pytest.raises(InvalidRecord) as refused:
        pipeline_part(record)
    assert str(refused.value) == reason


@pytest.mark.parametrize(
    "message",
    [
        "Pipeline(s) already exist: smb-pipeline, ent.pipeline",
        "Pipeline(s) already exist: smb-pipeline, ent.pipeline. Use the update endpoint to "
        "modify existing pipelines.",
    ],
)
def test_conflict_message_in_both_forms(message):
    sent = ["new-one", "smb-pipeline", "ent.pipeline", "ent"]
    assert conflicting_pipeline_ids(message, sent) == {"smb-pipeline", "ent.pipeline"}


def test_unreadable_conflict_message_names_nothing():
    assert conflicting_pipeline_ids("Conflict", ["a"]) == set()
    assert conflicting_pipeline_ids(None, ["a"]) == set()


# Properties ------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
deal_keys = st.sampled_from(
    [
        "externalDealId",
        "external_deal_id",
        "name",
        "amount",
        "startDate",
        "closed_date",
        "ownerEmail",
        "associatedAccounts",
        "stageId",
        "other",
    ]
)


@given(st.dictionaries(deal_keys, json_values, max_size=10))
def test_any_record_becomes_a_body_or_a_reason(record):
    """Whatever a tap sends, normalisation either refuses it with a reason or yields a body
    with the required fields, no nulls and only Recotap's own field names."""
    try:
        body = deal_body(record)
    except InvalidRecord as exc:
        reason = str(exc)
        body = None
    if body is None:
        assert reason
        return
    assert body["externalDealId"].strip()
    assert body["name"].strip()
    assert None not in body.values()
    allowed = {
        "externalDealId", "name", "amount", "stageId", "startDate", "closedDate",
        "ownerEmail", "associatedAccounts",
    }  # fmt: skip
    assert set(body) <= allowed


@given(st.datetimes(timezones=st.timezones()))
def test_any_aware_datetime_keeps_its_instant(moment):
    text = to_utc_timestamp(moment.isoformat(), "startDate")
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert text.endswith("Z")
    assert abs(parsed - moment) < dt.timedelta(milliseconds=1)


@given(st.decimals(allow_nan=False, allow_infinity=False, places=4))
def test_any_decimal_amount_is_kept_exactly(amount):
    assert to_amount(str(amount)) == amount


@pytest.mark.parametrize(
    ("written", "cleaned"),
    [
        ("https://www.acme.com/foo", "acme.com"),  # the reference's own example
        ("acme.com", "acme.com"),
        ("www.acme.com", "acme.com"),
        ("WWW.Acme.COM", "acme.com"),
        ("HTTP://acme.com?utm=1", "acme.com"),
        ("acme.com#team", "acme.com"),
        ("  acme.com/  ", "acme.com"),
        ("ftp://www.www.acme.com", "www.acme.com"),  # one www. only
        # Undocumented: kept as written, lower-cased.
        ("app.Acme.com", "app.acme.com"),
        ("acme.com:8443/x", "acme.com:8443"),
        ("acme.com.", "acme.com."),
        ("wwwacme.com", "wwwacme.com"),
        ("https://", ""),
        ("www.", ""),
        ("/path/only", ""),
    ],
)
def test_a_domain_is_cleaned_as_recotap_cleans_it(written, cleaned):
    assert clean_domain(written) == cleaned
