"""Deals through the target into the emulator, over a socket."""

from __future__ import annotations

import json
from decimal import Decimal

from support import (
    config_for,
    deal,
    deals_messages,
    record,
    run_cli,
    run_in_process,
    schema,
    write_config,
)

from target_recotap.rejects import REJECTION_KEY


def deal_requests(emulator):
    return [r for r in emulator.store.requests() if r["endpoint"] == "POST /deals"]


def test_deals_arrive_in_batches_of_at_most_100(emulator, capsys):
    outcome = run_in_process(
        config_for(emulator), deals_messages([deal(i) for i in range(250)]), capsys
    )
    assert outcome.exit_code == 0
    assert len(emulator.store.deals()) == 250
    assert sorted(r["items"] for r in deal_requests(emulator)) == [50, 100, 100]


def test_batch_size_rows_lowers_the_batch_but_cannot_raise_it(emulator, capsys):
    run_in_process(
        config_for(emulator, batch_size_rows=30),
        deals_messages([deal(i) for i in range(70)]),
        capsys,
    )
    assert sorted(r["items"] for r in deal_requests(emulator)) == [10, 30, 30]
    emulator.store.reset()
    run_in_process(
        config_for(emulator, batch_size_rows=5000),
        deals_messages([deal(i) for i in range(150)]),
        capsys,
    )
    assert max(r["items"] for r in deal_requests(emulator)) == 100


def test_one_deal_per_id_in_a_request_and_the_later_record_wins(emulator, capsys):
    messages = deals_messages(
        [deal(1, amount=10), deal(2, amount=20), deal(1, amount=11), deal(1, amount=12)]
    )
    outcome = run_in_process(config_for(emulator), messages, capsys)
    assert outcome.exit_code == 0
    assert [r["items"] for r in deal_requests(emulator)] == [2]
    assert emulator.store.deals()["deal-1"]["amount"] == 12
    assert emulator.store.deal_versions()["deal-1"] == 1


def test_across_requests_a_later_version_is_never_overwritten(emulator, capsys):
    # deal-0 is updated in every batch; the last record must be what Recotap keeps.
    deals = []
    for version in range(5):
        deals.append(deal(0, amount=version))
        deals.extend(deal(f"{version}-{i}") for i in range(99))
    run_in_process(config_for(emulator), deals_messages(deals), capsys)
    assert emulator.store.deals()["deal-0"]["amount"] == 4
    # A version waiting behind one in flight may be folded into a later one: never more writes.
    assert 1 <= emulator.store.deal_versions()["deal-0"] <= 5


def test_values_are_converted_as_the_contract_says(emulator, capsys):
    source = {
        "external_deal_id": 42,
        "name": "Converted",
        "amount": "1234.50",
        "startDate": "2026-01-15T05:30:00+05:30",
        "closedDate": 1782777600000,
        "ownerId": 7,
        "stageId": 3,
        "associatedAccounts": [{"external_id": 99, "domain": "acme.com", "name": None}],
        "_sdc_extracted_at": "2026-01-01T00:00:00Z",
    }
    body_schema = {"type": "object", "properties": {}}
    outcome = run_in_process(
        config_for(emulator), [schema("deals", body_schema), record("deals", source)], capsys
    )
    assert outcome.exit_code == 0
    assert emulator.store.deals()["42"] == {
        "externalDealId": "42",
        "name": "Converted",
        "amount": 1234.5,
        "startDate": "2026-01-15T00:00:00Z",
        "closedDate": "2026-06-30T00:00:00Z",
        "ownerId": "7",
        "stageId": "3",
        "associatedAccounts": [{"externalId": "99", "domain": "acme.com"}],
    }


def test_decimal_amounts_are_sent_exactly(emulator, capsys, tmp_path):
    # The request body is checked in a dry run: the emulator, like the real service, reads
    # numbers as doubles, so only the bytes on the wire can show the digits were kept.
    out = tmp_path / "bodies.jsonl"
    run_in_process(
        config_for(emulator, dry_run=True, dry_run_path=str(out)),
        deals_messages([deal(1, amount=Decimal("98765432109876.01"))]),
        capsys,
    )
    body = json.loads(out.read_text(), parse_float=Decimal)
    assert body["deals"][0]["amount"] == Decimal("98765432109876.01")


def test_null_or_empty_fields_never_blank_what_recotap_holds(emulator, capsys):
    first = deal(1, ownerName="Jane", stageLabel="Proposal", amount=5)
    later = deal(1, ownerName=None, stageLabel="", amount=6)
    run_in_process(config_for(emulator), deals_messages([first]), capsys)
    run_in_process(config_for(emulator), deals_messages([later]), capsys)
    stored = emulator.store.deals()["deal-1"]
    assert stored["ownerName"] == "Jane"
    assert stored["stageLabel"] == "Proposal"
    assert stored["amount"] == 6


def test_a_deal_whose_optional_fields_are_all_null_is_stored_with_none_of_them(emulator, tmp_path):
    optional = [
        *("amount", "stageId", "stageLabel", "pipelineId", "pipelineLabel", "startDate"),
        *("closedDate", "ownerName", "ownerEmail", "ownerId", "dealCurrencyCode"),
        *("associatedAccounts", "accountExternalId", "accountDomain", "accountName"),
    ]
    twins = [
        *("stage_id", "stage_label", "pipeline_id", "pipeline_label", "start_date"),
        *("closed_date", "owner_name", "owner_email", "owner_id", "deal_currency_code"),
        *("associated_accounts", "account_external_id", "account_domain", "account_name"),
    ]
    nulls = dict.fromkeys([*optional, *twins])
    config = write_config(tmp_path, config_for(emulator))
    loose = {"type": "object", "properties": {}}
    run = run_cli(
        ["--config", str(config)], [schema("deals", loose), record("deals", deal(1, **nulls))]
    )
    assert run.returncode == 0, run.stderr
    assert emulator.store.deals() == {"deal-1": deal(1)}


def test_associated_domains_are_sent_as_recotap_cleans_them_and_one_with_no_host_is_rejected(
    emulator, tmp_path
):
    # Recotap keys accounts by the cleaned domain: a deal that names its account as the CRM
    # writes it (a URL, capitals) would otherwise not name it as Recotap holds it.
    deals = [
        deal(1, associatedAccounts=[{"domain": "https://www.Acme.com/pricing?x=1"}]),
        deal(2, account_domain="  WWW.Globex.COM  "),
        deal(3, associatedAccounts=[{"domain": "app.initech.com:8443/login"}]),
        deal(4, associatedAccounts=[{"domain": "https://www./"}]),
    ]
    config = config_for(emulator, dead_letter_path=str(tmp_path / "rejected.jsonl"))
    run = run_cli(["--config", str(write_config(tmp_path, config))], deals_messages(deals))
    stored = emulator.store.deals()
    assert stored["deal-1"]["associatedAccounts"] == [{"domain": "acme.com"}]
    assert stored["deal-2"]["associatedAccounts"] == [{"domain": "globex.com"}]
    # What the reference leaves undocumented (a port, a sub-domain) is kept as written.
    assert stored["deal-3"]["associatedAccounts"] == [{"domain": "app.initech.com:8443"}]
    assert "deal-4" not in stored
    assert (
        "Rejected deals record 'deal-4': associatedAccounts[0].domain 'https://www./' names no "
        "domain once cleaned"
    ) in run.stderr
    assert run.returncode == 3  # a record rejected, more than max_rejected_records (0)


def test_a_merged_deal_the_answer_leaves_out_is_rejected_whole(emulator, capsys, tmp_path):
    # No answer to send its versions apart on: both records are rejected, with the reason.
    dead_letter = tmp_path / "rejected.jsonl"
    emulator.faults.drop_ids = {"deal-3"}
    messages = deals_messages([deal(3, amount=1), deal(4), deal(3, amount=2)])

    config = config_for(emulator, dead_letter_path=str(dead_letter), max_rejected_records=2)

    outcome = run_in_process(config, messages, capsys)

    assert outcome.exit_code == 0
    assert [r["items"] for r in deal_requests(emulator)] == [2]
    rejected = [json.loads(line) for line in dead_letter.read_text().splitlines()]
    assert [
        (m["record"]["amount"], m[REJECTION_KEY]["reason"])
        for m in rejected
        if m["type"] == "RECORD"
    ] == [
        (amount, "record 'deal-3': Recotap's answer left this deal out: outcome unknown")
        for amount in (1, 2)
    ]
