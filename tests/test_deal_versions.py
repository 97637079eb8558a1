"""Several versions of a deal: what Recotap holds does not depend on how they were batched."""

from __future__ import annotations

import json
import logging
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import config_for, deal, deals_messages, run_in_process

from target_recotap.normalize import InvalidRecord, deal_body
from target_recotap.rejects import REJECTION_KEY

FAILED_CURRENCY = "XXX"  # the emulator answers "failed" for a deal holding it (fail_values)
REFUSED_CURRENCY = "YYY"  # and refuses the whole request holding it (refuse_values)


def use_faults(emulator, *, fail_ids=()):
    emulator.faults.fail_values = {FAILED_CURRENCY: "currency XXX is not enabled"}
    emulator.faults.refuse_values = {REFUSED_CURRENCY: "dealCurrencyCode is unknown"}
    emulator.faults.fail_ids = {deal_id: "deal is locked" for deal_id in fail_ids}


def run(emulator, capsys, dead_letter, deals, **config):
    """Load ``deals`` into an emptied emulator; return what it holds and what was rejected."""
    emulator.store.reset()
    dead_letter.unlink(missing_ok=True)
    config = config_for(
        emulator, dead_letter_path=str(dead_letter), max_rejected_records=1000, **config
    )
    outcome = run_in_process(config, deals_messages(deals), capsys)
    assert outcome.exit_code == 0, outcome.log
    rejected = []
    if dead_letter.exists():
        for line in dead_letter.read_text().splitlines():
            message = json.loads(line)
            if message["type"] == "RECORD":
                rejected.append((message["record"], message[REJECTION_KEY]["reason"]))
    return emulator.store.deals(), rejected


def last_summary(caplog):
    found = re.findall(r"Summary deals: (received .*?, merged duplicates \d+)", caplog.text)
    return found[-1]


def test_versions_in_one_batch_keep_the_fields_a_later_one_leaves_out(
    emulator, capsys, caplog, tmp_path
):
    caplog.set_level(logging.INFO)
    first = deal(
        1,
        name="v1",
        amount=100,
        ownerEmail="jane@example.com",
        closedDate="2026-06-30",
        associatedAccounts=[{"domain": "a.com"}, {"domain": "b.com"}],
    )
    second = deal(1, name="v2", amount=None, closedDate=None, associatedAccounts=[{"name": "C"}])
    third = deal(1, name="v3", associatedAccounts=None, ownerName="")
    expected = {
        "externalDealId": "deal-1",
        "name": "v3",
        "amount": 100,
        "ownerEmail": "jane@example.com",
        "closedDate": "2026-06-30T00:00:00Z",
        "associatedAccounts": [{"name": "C"}],  # a list sent replaces the one held, whole
    }
    dead_letter = tmp_path / "rejected.jsonl"

    stored, rejected = run(emulator, capsys, dead_letter, [first, second, third])
    assert [r["items"] for r in emulator.store.requests()] == [1]
    assert stored == {"deal-1": expected}
    assert rejected == []
    assert last_summary(caplog) == (
        "received 3, sent 1, upserted 1, skipped as existing 0, rejected 0, merged duplicates 2"
    )

    stored, _ = run(emulator, capsys, dead_letter, [first, second, third], batch_size_rows=1)
    assert stored == {"deal-1": expected}


def test_a_version_recotap_fails_leaves_the_versions_around_it_stored(
    emulator, capsys, caplog, tmp_path
):
    caplog.set_level(logging.INFO)
    use_faults(emulator)
    versions = [
        deal(1, name="v1", amount=100),
        deal(1, name="v2", amount=200, dealCurrencyCode=FAILED_CURRENCY),
        deal(1, name="v3", ownerName="Jo"),
    ]
    stored, rejected = run(emulator, capsys, tmp_path / "rejected.jsonl", versions)
    assert stored == {
        "deal-1": {"externalDealId": "deal-1", "name": "v3", "amount": 100, "ownerName": "Jo"}
    }
    assert rejected == [
        (versions[1], "record 'deal-1': Recotap did not upsert it: currency XXX is not enabled")
    ]
    # The merged request failed, then each version went alone: counted as sent one by one.
    assert [r["items"] for r in emulator.store.requests()] == [1, 1, 1, 1]
    assert last_summary(caplog) == (
        "received 3, sent 3, upserted 2, skipped as existing 0, rejected 1, merged duplicates 0"
    )


def test_a_version_recotap_refuses_whole_leaves_the_earlier_one_stored(emulator, capsys, tmp_path):
    use_faults(emulator)
    versions = [
        deal(1, name="v1", amount=100),
        deal(2),
        deal(1, name="v2", amount=200, dealCurrencyCode=REFUSED_CURRENCY),
    ]
    stored, rejected = run(emulator, capsys, tmp_path / "rejected.jsonl", versions)
    assert stored == {
        "deal-1": {"externalDealId": "deal-1", "name": "v1", "amount": 100},
        "deal-2": deal(2),
    }
    assert rejected == [
        (
            versions[2],
            "record 'deal-1': Recotap refused it: "
            "deals.0.dealCurrencyCode: dealCurrencyCode is unknown",
        )
    ]


# Versions of three deals, each field present, null, blank or absent. A present currency is
# one Recotap fails or refuses: since no later version can replace it with one it takes, the
# merged item fails whenever a version would have failed alone (see README, "Guarantees").
ABSENT = object()
FIELD_VALUES = {
    "amount": [100, "250.50", 0, None],
    "closedDate": ["2026-06-30", 1782777600000, None, ""],
    "ownerEmail": ["jane@example.com", "raj@example.org", "not an email", None],
    "ownerName": ["Jane", "Raj", None, " "],
    "dealCurrencyCode": [FAILED_CURRENCY, REFUSED_CURRENCY, None],
    "associatedAccounts": [[{"domain": "a.com"}], [{"domain": "b.com"}, {"name": "B"}], [], None],
    "accountDomain": ["c.com", None],
}
versions = st.tuples(
    st.sampled_from(["1", "2", "3"]),
    st.fixed_dictionaries(
        {name: st.sampled_from([ABSENT, *values]) for name, values in FIELD_VALUES.items()}
    ),
).map(
    lambda drawn: deal(
        drawn[0], **{name: value for name, value in drawn[1].items() if value is not ABSENT}
    )
)


def fields_sent_replace(deals, locked):
    """What Recotap holds if each version is sent alone, in order, and which are rejected."""
    stored, rejected = {}, []
    for version in deals:
        try:
            body = deal_body(version)
        except InvalidRecord:  # refused before sending
            rejected.append(version)
            continue
        if body["externalDealId"] in locked or "dealCurrencyCode" in body:  # refused by Recotap
            rejected.append(version)
            continue
        stored[body["externalDealId"]] = {**stored.get(body["externalDealId"], {}), **body}
    return stored, rejected


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    deals=st.lists(versions, min_size=1, max_size=12).map(
        lambda drawn: [{**d, "name": f"v{n}"} for n, d in enumerate(drawn)]
    ),
    batch_size=st.integers(min_value=2, max_value=12),
    locked=st.sets(st.sampled_from(["deal-1", "deal-2", "deal-3"]), max_size=1),
)
def test_what_recotap_holds_does_not_depend_on_batch_size_rows(
    emulator, capsys, tmp_path, deals, batch_size, locked
):
    use_faults(emulator, fail_ids=locked)
    dead_letter = tmp_path / "rejected.jsonl"
    expected, expected_rejected = fields_sent_replace(deals, locked)
    one_by_one, rejected_one_by_one = run(emulator, capsys, dead_letter, deals, batch_size_rows=1)
    batched, rejected_batched = run(
        emulator, capsys, dead_letter, deals, batch_size_rows=batch_size
    )
    assert one_by_one == expected
    assert batched == expected
    key = json.dumps  # deals are sent concurrently: the dead letter's order may differ
    assert sorted(map(key, (r for r, _ in rejected_one_by_one))) == sorted(
        map(key, expected_rejected)
    )
    assert sorted(map(key, rejected_batched)) == sorted(map(key, rejected_one_by_one))
