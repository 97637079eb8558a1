"""Unit tests of an account's normalisation: its fields and twins, its domain, custom fields,
and the label from which Recotap derives a custom field's key."""

from __future__ import annotations

from decimal import Decimal

import pytest

from target_recotap.normalize import (
    InvalidRecord,
    account_body,
    custom_field_key,
    custom_field_label,
)


def test_every_account_field_is_sent_under_recotap_s_name_and_nothing_else():
    record = {
        "domain": "https://www.Acme.com/pricing",
        "name": "Acme Corp",
        "externalId": "crm-001",
        "shortName": "Acme",
        "linkedinUrl": "https://www.linkedin.com/company/acme",
        "tags": ["enterprise", "emea"],
        "customFields": {"CONTRACT_VALUE_C": 75000, "REGION_C": "EMEA"},
        "industry": "Software",
        "_sdc_extracted_at": "2026-01-01T00:00:00Z",
    }
    assert account_body(record) == {
        "domain": "acme.com",
        "name": "Acme Corp",
        "externalId": "crm-001",
        "shortName": "Acme",
        "linkedinUrl": "https://www.linkedin.com/company/acme",
        "tags": ["enterprise", "emea"],
        "customFields": {"CONTRACT_VALUE_C": 75000, "REGION_C": "EMEA"},
    }


def test_snake_case_twins_map_to_recotap_names():
    record = {
        "domain": "globex.example",
        "name": "Globex",
        "external_id": 7,
        "short_name": "GBX",
        "linkedin_url": "https://www.linkedin.com/company/globex",
        "custom_fields": {"TIER_C": "gold"},
    }
    assert account_body(record) == {
        "domain": "globex.example",
        "name": "Globex",
        "externalId": "7",
        "shortName": "GBX",
        "linkedinUrl": "https://www.linkedin.com/company/globex",
        "customFields": {"TIER_C": "gold"},
    }


def test_recotap_s_name_wins_over_its_twin_unless_empty():
    record = {"domain": "a.com", "name": "A", "shortName": "", "short_name": "Twin"}
    assert account_body(record)["shortName"] == "Twin"
    record = {"domain": "a.com", "name": "A", "externalId": "own", "external_id": "twin"}
    assert account_body(record)["externalId"] == "own"


def test_nulls_and_empties_are_left_out_at_every_level():
    record = {
        "domain": "a.com",
        "name": "A",
        "externalId": None,
        "shortName": "  ",
        "linkedinUrl": "",
        "tags": [None, "", " ", "kept", 3],
        "customFields": {"X_C": None, "Y_C": "", "Z_C": 0, "F_C": False},
    }
    assert account_body(record) == {
        "domain": "a.com",
        "name": "A",
        "tags": ["kept", "3"],
        "customFields": {"Z_C": 0, "F_C": False},
    }


@pytest.mark.parametrize(("tags", "fields"), [([], {}), ([None, ""], {"X_C": None}), (None, None)])
def test_tags_and_custom_fields_with_nothing_left_are_not_sent(tags, fields):
    body = account_body({"domain": "a.com", "name": "A", "tags": tags, "customFields": fields})
    assert body == {"domain": "a.com", "name": "A"}


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"name": "A"}, "domain is missing or empty"),
        ({"domain": " ", "name": "A"}, "domain is missing or empty"),
        ({"domain": "a.com"}, "name is missing or empty"),
        ({"domain": "a.com", "name": ""}, "name is missing or empty"),
        ({"domain": "https://", "name": "A"}, "domain 'https://' names no domain once cleaned"),
        ({"domain": "www./about", "name": "A"}, "domain 'www./about' names no domain once cleaned"),
        ({"domain": "a.com", "name": "A", "tags": "x"}, "tags must be a list, got str"),
        ({"domain": "a.com", "name": "A", "tags": [{}]}, "tags[0] must be a string, got an object"),
        (
            {"domain": "a.com", "name": "A", "customFields": []},
            "customFields must be an object, got a list",
        ),
        (
            {"domain": "a.com", "name": "A", "custom_fields": {"X_C": {"a": 1}}},
            "custom_fields.X_C must be a string, number, boolean or list, got an object",
        ),
        (
            {"domain": "a.com", "name": "A", "customFields": {"X_C": float("inf")}},
            "customFields.X_C must be a finite number, got inf",
        ),
        (
            {"domain": "a.com", "name": "A", "customFields": {"X_C": "\ud800"}},
            "customFields.X_C holds a lone surrogate, which is not text",
        ),
        (
            {"domain": "a.com", "name": "A", "customFields": {"X_C": ["a", {"b": 1}]}},
            "customFields.X_C[1] must be a string, got an object",
        ),
    ],
)
def test_an_account_recotap_would_refuse_is_invalid_saying_why(record, reason):
    with pytest.raises(InvalidRecord) as refused:
        account_body(record)
    assert str(refused.value) == reason


def test_custom_field_values_keep_their_kind():
    fields = {
        "N_C": Decimal("12.50"),
        "I_C": 3.0,
        "S_C": "text",
        "B_C": True,
        "M_C": ["a", None, "b"],
    }
    body = account_body({"domain": "a.com", "name": "A", "customFields": fields})
    assert body["customFields"] == {
        "N_C": Decimal("12.50"),
        "I_C": 3,
        "S_C": "text",
        "B_C": True,
        "M_C": ["a", "b"],
    }


@pytest.mark.parametrize(
    ("key", "label"),
    [
        ("CONTRACT_VALUE_C", "Contract Value"),
        ("NET-REVENUE_C", "Net-Revenue"),
        ("REVENUE_(USD)_C", "Revenue (Usd)"),
        ("TIER_C", "Tier"),
        ("A__B_C", "A  B"),
    ],
)
def test_a_key_gets_a_label_from_which_recotap_derives_that_key(key, label):
    assert custom_field_label(key) == label
    assert custom_field_key(label) == key


@pytest.mark.parametrize("key", ["contract_value_c", "TIER", "_C", "TWO WORDS_C", "Tier_C", "C"])
def test_a_key_no_label_yields_has_none(key):
    assert custom_field_label(key) is None
