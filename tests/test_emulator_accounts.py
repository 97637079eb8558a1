"""The emulator's accounts, over a real loopback socket: POST /accounts with the documented rules
(cleaned domains, upsert, duplicates, unknown custom-field keys, segments checked before any
write), the custom-field routes, the older API, what it notes of deals and their accounts, and
the command line."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys

import pytest
import requests
from support import free_port

from recotap_emulator import EmulatorStore
from recotap_emulator.cli import main

TIMEOUT = 5
EXISTS = "Account with domain 'acme.com' already exists. Use PUT /accounts/{rtp_aid} to update it."


def api(emulator, method: str, path: str, **kwargs):
    headers = {"X-Api-Key": emulator.api_key}
    return requests.request(method, emulator.url + path, headers=headers, timeout=TIMEOUT, **kwargs)


def post_accounts(emulator, accounts, **beside):
    return api(emulator, "POST", "/accounts", json={"accounts": accounts, **beside})


def admin(emulator, method: str, route: str, **kwargs):
    base = emulator.url.removesuffix("/api/v1")
    return requests.request(method, f"{base}/_emulator/{route}", timeout=TIMEOUT, **kwargs)


def results(response):
    assert response.status_code == 200, response.text
    return response.json()["data"]["results"]


def test_a_domain_is_cleaned_and_names_the_account(emulator):
    answered = results(
        post_accounts(emulator, [{"domain": "https://www.Acme.com/pricing", "name": "Acme"}])
    )

    assert answered == [{"domain": "acme.com", "rtp_aid": "rtp-1", "status": "created"}]
    assert emulator.store.accounts() == {"acme.com": {"domain": "acme.com", "name": "Acme"}}


def test_without_upsert_a_duplicate_fails_in_the_words_a_client_saw(emulator):
    first = {"domain": "acme.com", "name": "Acme", "shortName": "A"}
    results(post_accounts(emulator, [first]))

    answered = results(post_accounts(emulator, [{"domain": "www.acme.com", "name": "Other"}]))

    assert answered == [{"domain": "acme.com", "status": "failed", "error": EXISTS}]
    assert emulator.store.accounts()["acme.com"] == first


def test_with_upsert_the_fields_sent_replace_and_the_others_stay(emulator):
    results(post_accounts(emulator, [{"domain": "acme.com", "name": "Acme", "tags": ["a", "b"]}]))

    answered = results(
        post_accounts(
            emulator, [{"domain": "ACME.com", "name": "Acme Corp", "tags": ["c"]}], upsert=True
        )
    )

    assert answered == [{"domain": "acme.com", "rtp_aid": "rtp-1", "status": "updated"}]
    assert emulator.store.accounts()["acme.com"] == {
        "domain": "acme.com",
        "name": "Acme Corp",
        "tags": ["c"],
    }
    assert emulator.store.account_records()[0]["version"] == 2


def test_two_accounts_of_one_domain_in_a_request_are_taken_in_order(emulator):
    accounts = [{"domain": "acme.com", "name": "First"}, {"domain": "www.acme.com", "name": "Next"}]

    assert [r["status"] for r in results(post_accounts(emulator, accounts))] == [
        "created",
        "failed",
    ]
    emulator.store.reset()
    assert [r["status"] for r in results(post_accounts(emulator, accounts, upsert=True))] == [
        "created",
        "updated",
    ]
    assert emulator.store.accounts()["acme.com"]["name"] == "Next"


def test_an_unknown_custom_field_key_fails_its_account_alone(emulator):
    emulator.store.add_custom_field(
        {"key": "TIER_C", "label": "Tier", "labelType": "singleLineText", "status": "active"}
    )
    accounts = [
        {"domain": "a.com", "name": "A", "customFields": {"TIER_C": "gold", "X_C": 1, "Y_C": 2}},
        {"domain": "b.com", "name": "B", "customFields": {"TIER_C": "silver"}},
    ]

    answered = results(post_accounts(emulator, accounts))

    assert answered[0] == {
        "domain": "a.com",
        "status": "failed",
        "error": "Custom field key(s) not found: X_C, Y_C. Unable to add this account.",
    }
    assert answered[1]["status"] == "created"
    assert list(emulator.store.accounts()) == ["b.com"]


def test_a_summary_counts_each_status(emulator):
    results(post_accounts(emulator, [{"domain": "a.com", "name": "A"}]))
    accounts = [{"domain": "a.com", "name": "A"}, {"domain": "b.com", "name": "B"}]

    response = post_accounts(emulator, accounts)

    assert response.json()["data"]["summary"] == {
        "total": 2,
        "created": 1,
        "updated": 0,
        "failed": 1,
    }


@pytest.mark.parametrize(
    ("account", "row"),
    [
        ({"domain": "", "name": "A"}, {"domain": {"isNotEmpty": "domain should not be empty"}}),
        ({"domain": "a.com", "name": ""}, {"name": {"isNotEmpty": "name should not be empty"}}),
        (
            {"domain": "a.com", "name": "A", "tags": ["a", 1]},
            {"tags": {"isString": "each value in tags must be a string"}},
        ),
        (
            {"domain": "a.com", "name": "A", "industry": "x"},
            {"industry": {"whitelistValidation": "property industry should not exist"}},
        ),
    ],
)
def test_an_invalid_account_refuses_the_whole_request_and_nothing_is_written(
    emulator, account, row
):
    response = post_accounts(emulator, [{"domain": "ok.com", "name": "OK"}, account])

    assert response.status_code == 400
    ((name, constraints),) = row.items()
    assert response.json()["data"] == [
        {"property": f"accounts.1.{name}", "constraints": constraints}
    ]
    assert emulator.store.accounts() == {}


def test_more_than_100_accounts_are_refused(emulator):
    accounts = [{"domain": f"a{i}.com", "name": "A"} for i in range(101)]

    response = post_accounts(emulator, accounts)

    assert response.status_code == 400
    assert response.json()["data"][0]["constraints"] == {
        "arrayMaxSize": "accounts must contain no more than 100 elements"
    }


@pytest.mark.parametrize(
    ("seeded", "said"),
    [
        (None, "Segment 'seg-1' not found"),
        (
            {"type": "dynamic"},
            "Segment 'seg-1' is not a static segment and cannot accept new members",
        ),
        (
            {"status": "archived"},
            "Segment 'seg-1' is not active or draft and cannot accept new members",
        ),
    ],
)
def test_a_segment_that_cannot_take_members_refuses_the_request_before_any_write(
    emulator, seeded, said
):
    if seeded is not None:
        assert admin(emulator, "POST", "segments", json={"segmentId": "seg-1", **seeded}).ok

    response = post_accounts(emulator, [{"domain": "a.com", "name": "A"}], segmentId="seg-1")

    assert response.status_code == 400
    body = response.json()
    assert (body["message"], body["customMessage"], body["data"]) == ("Bad Request", said, None)
    assert emulator.store.accounts() == {}


@pytest.mark.parametrize("status", ["active", "draft"])
def test_accounts_written_join_a_static_active_or_draft_segment(emulator, status):
    admin(emulator, "POST", "segments", json={"segmentId": "seg-1", "status": status})
    accounts = [{"domain": "a.com", "name": "A"}, {"domain": "b.com", "name": "B", "tags": [1]}]

    results(post_accounts(emulator, accounts[:1], segmentId="seg-1"))
    results(post_accounts(emulator, accounts[:1], segmentId="seg-1", upsert=True))

    (record,) = admin(emulator, "GET", "accounts").json()
    assert (record["domain"], record["segments"], record["version"]) == ("a.com", ["seg-1"], 2)


def test_the_older_api_refuses_upsert_as_its_whitelist_refuses_any_unknown_property(emulator):
    emulator.faults.older_api = True

    response = post_accounts(emulator, [{"domain": "a.com", "name": "A"}], upsert=True)

    assert response.status_code == 400
    assert response.json()["data"] == [
        {
            "property": "upsert",
            "constraints": {"whitelistValidation": "property upsert should not exist"},
        }
    ]
    assert emulator.store.accounts() == {}
    assert results(post_accounts(emulator, [{"domain": "a.com", "name": "A"}]))[0]["status"] == (
        "created"
    )


def test_custom_fields_are_created_under_the_derived_key_and_listed_while_active(emulator):
    created = api(
        emulator,
        "POST",
        "/accounts/custom-field",
        json={"label": "Revenue (USD)", "labelType": "number"},
    )
    admin(
        emulator,
        "POST",
        "custom-fields",
        json={"label": "Old", "labelType": "date", "status": "inactive"},
    )

    assert created.status_code == 201
    field = {
        "key": "REVENUE_(USD)_C",
        "label": "Revenue (USD)",
        "labelType": "number",
        "description": None,
        "options": [],
        "objectType": "accounts",
        "status": "active",
    }
    assert created.json()["data"] == [field]
    listed = api(emulator, "GET", "/accounts/custom-fields")
    assert listed.json()["data"] == [field]  # a bare array under data; OLD_C is inactive
    accounts = [{"domain": "a.com", "name": "A", "customFields": {"REVENUE_(USD)_C": 5}}]
    assert results(post_accounts(emulator, accounts))[0]["status"] == "created"


def test_creating_a_custom_field_whose_key_is_active_is_409(emulator):
    body = {"label": "Tier", "labelType": "singleLineText"}
    assert api(emulator, "POST", "/accounts/custom-field", json=body).status_code == 201

    again = api(emulator, "POST", "/accounts/custom-field", json={**body, "label": "TIER"})

    assert again.status_code == 409
    assert len(emulator.store.custom_fields()) == 1


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"labelType": "number"}, "label should not be empty"),
        ({"label": "X", "labelType": "colour"}, "labelType must be one of the following values"),
        ({"label": "X", "labelType": "singleSelection"}, "options should not be empty"),
    ],
)
def test_an_invalid_custom_field_is_400(emulator, body, said):
    response = api(emulator, "POST", "/accounts/custom-field", json=body)

    assert response.status_code == 400
    assert said in response.text
    assert emulator.store.custom_fields() == {}


def test_a_deal_written_notes_whether_each_account_it_names_existed_then(emulator):
    results(post_accounts(emulator, [{"domain": "acme.com", "name": "Acme"}]))
    deal = {
        "externalDealId": "d-1",
        "name": "D",
        "associatedAccounts": [{"domain": "https://www.ACME.com"}, {"domain": "globex.com"}],
    }
    assert api(emulator, "POST", "/deals", json={"deals": [deal]}).ok

    results(post_accounts(emulator, [{"domain": "globex.com", "name": "Globex"}]))

    # Globex came after the deal: unlinked, until the deal is written again.
    assert emulator.store.deal_links() == {"d-1": {"acme.com": True, "globex.com": False}}
    assert api(emulator, "POST", "/deals", json={"deals": [{**deal, "amount": 5}]}).ok
    assert admin(emulator, "GET", "deal-links").json() == {
        "d-1": {"acme.com": True, "globex.com": True}
    }
    # A write that leaves the accounts out keeps them, as the deal keeps its accounts.
    assert api(emulator, "POST", "/deals", json={"deals": [{"externalDealId": "d-1", "name": "E"}]})
    assert emulator.store.deal_links()["d-1"] == {"acme.com": True, "globex.com": True}


def test_associated_accounts_null_is_taken_as_left_out(emulator):
    # The field is optional: its DTO lets null through as it lets absence through.
    results(post_accounts(emulator, [{"domain": "acme.com", "name": "Acme"}]))
    named = {"externalDealId": "d-1", "name": "D", "associatedAccounts": [{"domain": "acme.com"}]}
    assert api(emulator, "POST", "/deals", json={"deals": [named]}).ok

    again = {**named, "name": "E", "associatedAccounts": None}
    new = {"externalDealId": "d-2", "name": "D", "associatedAccounts": None}
    response = api(emulator, "POST", "/deals", json={"deals": [again, new]})

    assert response.status_code == 200, response.text
    assert response.json()["data"]["summary"] == {"total": 2, "upserted": 2, "failed": 0}
    assert emulator.store.deals() == {
        "d-1": {**named, "name": "E"},  # its accounts kept
        "d-2": {"externalDealId": "d-2", "name": "D"},
    }
    assert emulator.store.deal_links() == {"d-1": {"acme.com": True}}


def test_reset_forgets_accounts_fields_and_segments(emulator):
    admin(emulator, "POST", "segments", json={"segmentId": "seg-1"})
    api(emulator, "POST", "/accounts/custom-field", json={"label": "T", "labelType": "number"})
    results(post_accounts(emulator, [{"domain": "a.com", "name": "A"}], segmentId="seg-1"))
    assert admin(emulator, "GET", "stats").json()["accounts"] == 1

    admin(emulator, "POST", "reset")

    assert emulator.store.accounts() == {}
    assert emulator.store.segments() == {}
    assert emulator.store.custom_fields() == {}


def test_cli_show_accounts_as_a_table_and_as_json(tmp_path, capsys):
    path = tmp_path / "emulator.sqlite"
    store = EmulatorStore(path)
    store.add_custom_field(
        {"key": "TIER_C", "label": "Tier", "labelType": "singleLineText", "status": "active"}
    )
    accounts = [
        {"domain": "acme.com", "name": "Acme", "tags": ["a", "b"], "customFields": {"TIER_C": "1"}},
        {"domain": "globex.com", "name": "Globex"},
    ]
    store.write_accounts(accounts, upsert=False, segment_id=None, seq=1)
    store.close()

    assert main(["show", "accounts", "--db", str(path)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["domain", "name", "tags", "customFields"]
    assert table[2].split() == ["acme.com", "Acme", "a,", "b", "TIER_C=1"]
    assert table[3].split() == ["globex.com", "Globex"]
    assert main(["show", "accounts", "--db", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == accounts


@pytest.mark.skipif(sys.platform == "win32", reason="uses select() on a pipe and SIGTERM")
def test_cli_serve_seeds_segments_and_custom_fields_and_can_be_the_older_api(tmp_path):
    port = free_port()
    command = [sys.executable, "-m", "recotap_emulator", "--port", str(port), "--quiet"]
    command += ["--segment", "seg-1", "--custom-field", "Contract Value:number"]
    command += ["--custom-field", "Notes", "--older-api", "--api-key", "cli-key"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([process.stdout], [], [], 10)
        assert ready, "the emulator printed nothing within 10 s"
        process.stdout.readline()
        base_url = f"http://127.0.0.1:{port}/api/v1"
        headers = {"X-Api-Key": "cli-key"}
        listed = requests.get(f"{base_url}/accounts/custom-fields", headers=headers, timeout=5)
        account = {"domain": "a.com", "name": "A", "customFields": {"CONTRACT_VALUE_C": 1}}
        older = requests.post(
            f"{base_url}/accounts",
            json={"accounts": [account], "segmentId": "seg-1", "upsert": True},
            headers=headers,
            timeout=5,
        )
        created = requests.post(
            f"{base_url}/accounts",
            json={"accounts": [account], "segmentId": "seg-1"},
            headers=headers,
            timeout=5,
        )
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)

    assert process.returncode == 0, stderr
    fields = [(f["key"], f["labelType"]) for f in listed.json()["data"]]
    assert fields == [("CONTRACT_VALUE_C", "number"), ("NOTES_C", "singleLineText")]
    assert older.status_code == 400
    assert created.json()["data"]["results"][0]["status"] == "created"


def test_cli_refuses_a_custom_field_of_no_known_type_shape(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--custom-field", ":number"])

    assert exit_info.value.code == 2
    assert "label should not be empty" in capsys.readouterr().err
