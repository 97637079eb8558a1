"""The emulator's POST /sales-activities, over a real loopback socket: the documented rules."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from recotap_emulator import EmulatorStore
from recotap_emulator.cli import main

TIMEOUT = 5


def activity(external_id: str = "a-1", **fields: Any) -> dict[str, Any]:
    return {
        "externalActivityId": external_id,
        "activityType": "call",
        "occurredAt": "2026-04-22T10:30:00Z",
        "domain": "acme.com",
        "ownerEmail": "jane@yourcompany.com",
        "contacts": [{"email": "john@acme.com", "name": "John Doe"}],
        **fields,
    }


def post_activities(emulator, activities: Any) -> requests.Response:
    return requests.post(
        f"{emulator.url}/sales-activities",
        json={"activities": activities},
        headers={"X-Api-Key": emulator.api_key},
        timeout=TIMEOUT,
    )


def test_calls_and_emails_are_created_once_and_other_types_skipped(emulator):
    email = activity("a-2", activityType="email", openCount=2, clickCount=1)
    meeting = activity("a-3", activityType="meeting")
    response = post_activities(emulator, [activity("a-1"), email, meeting])

    assert response.status_code == 200
    body = response.json()
    assert body["path"] == "/api/v1/sales-activities"
    assert body["data"] == {
        "results": [
            {"externalActivityId": "a-1", "status": "created"},
            {"externalActivityId": "a-2", "status": "created"},
            {"externalActivityId": "a-3", "status": "skipped"},
        ],
        "summary": {"total": 3, "created": 2, "failed": 0, "skipped": 1},
    }
    assert emulator.store.activities() == {"a-1": activity("a-1"), "a-2": email}


def test_an_id_stored_already_fails_and_keeps_the_first(emulator):
    post_activities(emulator, [activity("a-1", subject="First")])
    data = post_activities(
        emulator, [activity("a-1", subject="Again"), activity("a-2"), activity("a-2")]
    ).json()["data"]

    duplicate = "Activity with externalActivityId '{}' already exists"
    assert data["results"] == [
        {"externalActivityId": "a-1", "status": "failed", "error": duplicate.format("a-1")},
        {"externalActivityId": "a-2", "status": "created"},
        {"externalActivityId": "a-2", "status": "failed", "error": duplicate.format("a-2")},
    ]
    assert emulator.store.activities()["a-1"]["subject"] == "First"
    assert [r["seq"] for r in emulator.store.activity_records()] == [1, 2]


@pytest.mark.parametrize(
    ("fields", "property_", "constraint", "message"),
    [
        ({"occurredAt": None}, "occurredAt", "isIso8601", None),
        ({"occurredAt": "22/04/2026"}, "occurredAt", "isIso8601", None),
        ({"domain": ""}, "domain", "isNotEmpty", "domain should not be empty"),
        ({"ownerEmail": "jane"}, "ownerEmail", "isEmail", "ownerEmail must be an email"),
        ({"contacts": []}, "contacts", "arrayMinSize", None),
        (
            {"direction": "sideways"},
            "direction",
            "isIn",
            "direction must be one of the following values: inbound, outbound",
        ),
        ({"durationMinutes": "5"}, "durationMinutes", "isNumber", None),
        ({"from": "jane"}, "from", "nestedValidation", None),
        ({"from": {"email": 5}}, "from.email", "isString", "email must be a string"),
        ({"contacts": [{"emails": "x"}]}, "contacts.0.emails", "whitelistValidation", None),
        ({"meetingRoom": "4B"}, "meetingRoom", "whitelistValidation", None),
    ],
)
def test_an_invalid_activity_refuses_the_whole_request_and_nothing_is_written(
    emulator, fields, property_, constraint, message
):
    response = post_activities(emulator, [activity("a-1"), activity("a-2", **fields)])

    assert response.status_code == 400
    body = response.json()
    assert body["message"] == "Bad Request"
    rows = {row["property"]: row["constraints"] for row in body["data"]}
    assert constraint in rows[f"activities.1.{property_}"]
    if message is not None:
        assert rows[f"activities.1.{property_}"][constraint] == message
    assert emulator.store.activities() == {}


def test_the_documented_messages_of_a_missing_field(emulator):
    bare = {"externalActivityId": "a-1", "activityType": "call"}
    rows = {
        row["property"]: row["constraints"]
        for row in post_activities(emulator, [bare]).json()["data"]
    }
    assert rows["activities.0.occurredAt"] == {
        "isIso8601": "occurredAt must be a valid ISO 8601 date string"
    }
    assert rows["activities.0.domain"]["isNotEmpty"] == "domain should not be empty"
    assert rows["activities.0.ownerEmail"] == {"isEmail": "ownerEmail must be an email"}
    assert rows["activities.0.contacts"]["arrayMinSize"] == (
        "contacts must contain at least 1 elements"
    )


def test_at_most_50_activities_a_request(emulator):
    response = post_activities(emulator, [activity(f"a-{i}") for i in range(51)])

    assert response.status_code == 400
    assert response.json()["data"][0]["constraints"]["arrayMaxSize"] == (
        "activities must contain no more than 50 elements"
    )
    assert post_activities(emulator, [activity(f"a-{i}") for i in range(50)]).status_code == 200
    assert emulator.store.requests()[0]["items"] == 51


def test_faults_apply_to_it_as_to_the_other_routes(emulator):
    emulator.faults.script.extend(["503", "lose"])
    assert post_activities(emulator, [activity("a-1")]).status_code == 503
    assert emulator.store.activities() == {}
    with pytest.raises(requests.ConnectionError):
        post_activities(emulator, [activity("a-1")])  # stored, then the answer is lost
    assert list(emulator.store.activities()) == ["a-1"]

    emulator.faults.fail_ids = {"a-2": "owner is archived"}
    emulator.faults.drop_ids = {"a-3"}
    emulator.faults.refuse_ids = {"a-9": "externalActivityId is reserved"}
    data = post_activities(emulator, [activity("a-2"), activity("a-3")]).json()["data"]
    assert data["results"] == [
        {"externalActivityId": "a-2", "status": "failed", "error": "owner is archived"}
    ]
    assert data["summary"] == {"total": 2, "created": 1, "failed": 1, "skipped": 0}
    refused = post_activities(emulator, [activity("a-4"), activity("a-9")])
    assert refused.status_code == 400
    assert refused.json()["data"] == [
        {
            "property": "activities.1.externalActivityId",
            "constraints": {"isRefused": "externalActivityId is reserved"},
        }
    ]
    assert list(emulator.store.activities()) == ["a-1", "a-3"]


def test_admin_route_stats_and_reset_cover_activities(emulator):
    post_activities(emulator, [activity("a-1")])
    admin = emulator.admin_url

    listed = requests.get(f"{admin}/activities", timeout=TIMEOUT).json()
    stats = requests.get(f"{admin}/stats", timeout=TIMEOUT).json()

    assert listed == [{"externalActivityId": "a-1", "seq": 1, "activity": activity("a-1")}]
    assert stats["activities"] == 1
    assert stats["byEndpoint"] == {"POST /sales-activities": {"200": 1}}
    assert requests.post(f"{admin}/reset", timeout=TIMEOUT).status_code == 200
    assert emulator.store.activities() == {}


def test_cli_show_lists_the_activities_of_a_file_database(tmp_path, capsys):
    path = tmp_path / "emulator.sqlite"
    store = EmulatorStore(path)
    sender = {"from": {"name": "Jane Smith", "email": "jane@yourcompany.com"}}
    store.create_activities(
        [activity("a-1", durationMinutes=12, **sender), activity("a-2", activityType="email")],
        seq=3,
    )
    store.close()

    assert main(["show", "activities", "--db", str(path)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == [
        *("externalActivityId", "activityType", "occurredAt", "domain", "ownerEmail"),
        *("contacts", "from", "durationMinutes"),
    ]
    assert table[2].split() == [
        *("a-1", "call", "2026-04-22T10:30:00Z", "acme.com", "jane@yourcompany.com"),
        *("john@acme.com", "jane@yourcompany.com", "12"),
    ]
    assert table[3].split() == [
        *("a-2", "email", "2026-04-22T10:30:00Z", "acme.com", "jane@yourcompany.com"),
        "john@acme.com",
    ]
    assert len(table) == 4

    assert main(["show", "activities", "--db", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        activity("a-1", durationMinutes=12, **sender),
        activity("a-2", activityType="email"),
    ]
