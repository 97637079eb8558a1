"""How an endpoint's per-item results read into outcomes: written, held already, or rejected
with a reason; an item the answer leaves out is never taken as written."""

from __future__ import annotations

import re
from dataclasses import replace

from target_recotap.endpoints import DEALS, Accepted, Existing, Rejected, WriteMode

# A create-only endpoint that fails an item Recotap holds already (as POST /accounts without
# upsert, or POST /sales-activities, do), declared as such an endpoint would be.
CREATE_ONLY = replace(
    DEALS,
    mode=WriteMode.CREATE_OR_FAIL,
    verb="create",
    written=frozenset({"created"}),
    exists_when=re.compile(r"already exists", re.IGNORECASE),
)


def test_each_item_reads_as_written_or_rejected_with_recotap_s_reason():
    data = {
        "results": [
            {"externalDealId": "a", "status": "upserted"},
            {"externalDealId": "b", "status": "failed", "error": "ownerEmail must be an email"},
            {"externalDealId": "c", "status": "failed"},
            "not an object",
        ]
    }
    assert DEALS.outcomes(data, ["a", "b", "c", "d"]) == {
        "a": Accepted(),
        "b": Rejected("Recotap did not upsert it: ownerEmail must be an email"),
        "c": Rejected("Recotap did not upsert it: status 'failed'"),
        "d": Rejected("Recotap's answer left this deal out: outcome unknown", answered=False),
    }


def test_an_upsert_takes_no_failure_for_an_item_held_already():
    data = {"results": [{"externalDealId": "a", "status": "failed", "error": "Already exists"}]}
    assert DEALS.outcomes(data, ["a"]) == {
        "a": Rejected("Recotap did not upsert it: Already exists")
    }


def test_a_create_only_endpoint_reads_its_exists_failure_as_held_already_and_keeps_the_words():
    said = (
        "Account with domain 'acme.com' already exists. Use PUT /accounts/{rtp_aid} to update it."
    )
    data = {
        "results": [
            {"externalDealId": "a", "status": "created"},
            {"externalDealId": "b", "status": "failed", "error": said},
            {
                "externalDealId": "c",
                "status": "failed",
                "error": "Custom field key(s) not found: X",
            },
        ]
    }
    assert CREATE_ONLY.outcomes(data, ["a", "b", "c"]) == {
        "a": Accepted(),
        "b": Existing(said),
        "c": Rejected("Recotap did not create it: Custom field key(s) not found: X"),
    }
