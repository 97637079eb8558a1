"""The client's calls for accounts' custom fields, against canned answers: the listing is a
documented GET, retried as a POST is; a creation answered 409 exists already; a business 400
keeps Recotap's words."""

from __future__ import annotations

import json
import threading

import pytest
from test_client import CannedApi, answer, client_of

from target_recotap.client import RecotapClient
from target_recotap.endpoints import ACCOUNTS
from target_recotap.errors import RequestRejected, UnexpectedResponse
from target_recotap.retry import RetryPolicy


@pytest.fixture
def api():
    server = CannedApi()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


FIELD = {"key": "CONTRACT_VALUE_C", "label": "Contract Value", "labelType": "number"}


def test_the_custom_fields_are_a_get_of_the_bare_array_under_data(api):
    api.answers.append(answer(200, {"statusCode": 200, "data": [FIELD]}))

    assert client_of(api).account_custom_fields() == {"CONTRACT_VALUE_C": FIELD}
    ((method, path, headers, _),) = api.received
    assert (method, path, headers["X-Api-Key"]) == (
        "GET",
        "/api/v1/accounts/custom-fields",
        "a-key",
    )


def test_the_custom_fields_listing_is_retried_after_a_5xx(api):
    api.answers += [answer(503, {}), answer(200, {"statusCode": 200, "data": [FIELD]})]
    client = RecotapClient(api.url, "a-key", retry=RetryPolicy(max_retries=2, initial_delay=0))

    assert list(client.account_custom_fields()) == ["CONTRACT_VALUE_C"]
    assert [method for method, *_ in api.received] == ["GET", "GET"]


@pytest.mark.parametrize(
    "body", [{"statusCode": 200, "data": {"a": 1}}, {"statusCode": 200, "data": [{"label": "X"}]}]
)
def test_a_custom_fields_listing_that_is_not_one_is_refused(api, body):
    api.answers.append(answer(200, body))

    with pytest.raises(UnexpectedResponse, match="not with a list of custom fields"):
        client_of(api).account_custom_fields()


def test_creating_a_custom_field_posts_it_and_a_409_means_it_exists(api):
    api.answers += [answer(201, {"statusCode": 201, "data": [FIELD]}), answer(409, {})]
    client = client_of(api)

    assert client.create_account_custom_field({"label": "Contract Value", "labelType": "number"})
    assert not client.create_account_custom_field(
        {"label": "Contract Value", "labelType": "number"}
    )
    method, path, _, body = api.received[0]
    assert (method, path) == ("POST", "/api/v1/accounts/custom-field")
    assert json.loads(body) == {"label": "Contract Value", "labelType": "number"}


def test_accounts_go_with_upsert_beside_them_and_a_business_400_keeps_its_words(api):
    said = "Segment 'abc' is not active or draft and cannot accept new members"
    api.answers.append(answer(400, {"statusCode": 400, "customMessage": said, "data": None}))

    with pytest.raises(RequestRejected) as refused:
        client_of(api).push(ACCOUNTS, [{"domain": "a.com", "name": "A"}])

    assert refused.value.custom_message == said
    assert refused.value.violations == []
    body = json.loads(api.received[0][3])
    assert body == {"accounts": [{"domain": "a.com", "name": "A"}], "upsert": True}
