"""When the API refuses a whole request anyway: find the records to blame, send the rest."""

from __future__ import annotations

import json

from support import config_for, deal, deals_messages, pipeline, record, run_in_process, schema

from target_recotap.rejects import REJECTION_KEY


def rejected_reasons(path):
    return {
        (m["record"].get("externalDealId") or m["record"].get("pipelineId")): m[REJECTION_KEY][
            "reason"
        ]
        for m in map(json.loads, path.read_text().splitlines())
        if m["type"] == "RECORD"
    }


def test_a_400_batch_is_split_down_to_the_deals_to_blame(emulator, capsys, tmp_path):
    dead_letter = tmp_path / "rejected.jsonl"
    emulator.faults.refuse_ids = {"deal-17": "a rule we did not know", "deal-60": "another"}
    outcome = run_in_process(
        config_for(emulator, dead_letter_path=str(dead_letter), max_rejected_records=2),
        deals_messages([deal(n) for n in range(100)]),
        capsys,
    )
    assert outcome.exit_code == 0
    assert len(emulator.store.deals()) == 98
    assert rejected_reasons(dead_letter) == {
        "deal-17": (
            "record 'deal-17': Recotap refused it: deals.0.externalDealId: a rule we did not know"
        ),
        "deal-60": "record 'deal-60': Recotap refused it: deals.0.externalDealId: another",
    }
    # Halving: far fewer requests than one per deal.
    assert len(emulator.store.requests()) < 30


def test_a_413_batch_is_split_until_it_fits(emulator, capsys):
    emulator.faults.body_limit = 20_000
    deals = [deal(n, ownerName="x" * 500) for n in range(100)]
    outcome = run_in_process(config_for(emulator), deals_messages(deals), capsys)
    assert outcome.exit_code == 0
    assert len(emulator.store.deals()) == 100
    statuses = [r["status"] for r in emulator.store.requests()]
    assert 413 in statuses
    assert statuses.count(200) >= 4


def test_after_a_413_the_limit_learned_holds_for_the_rest_of_the_run(emulator, capsys):
    emulator.faults.body_limit = 20_000
    # Deals of one size (about 560 bytes), so that a body's size follows its deal count: 25
    # fit in the limit, 50 do not. One request at a time, so that the order is the run's own.
    deals = [deal(f"{n:03d}", ownerName="x" * 500) for n in range(300)]
    outcome = run_in_process(
        config_for(emulator, max_concurrent_requests=1), deals_messages(deals), capsys
    )
    assert outcome.exit_code == 0
    assert len(emulator.store.deals()) == 300
    sent = [(r["status"], r["items"]) for r in emulator.store.requests()]
    # The first batch of 100 is refused, then its first half: the limit is now below 50
    # deals. The other half and the two later batches are split before they are sent.
    assert sent == [(413, 100), (413, 50)] + [(200, 25)] * 12


def test_a_deal_too_large_on_its_own_is_rejected(emulator, capsys, tmp_path):
    dead_letter = tmp_path / "rejected.jsonl"
    emulator.faults.body_limit = 5_000
    deals = [deal(1), deal(2, name="y" * 10_000), deal(3)]
    outcome = run_in_process(
        config_for(emulator, dead_letter_path=str(dead_letter), max_rejected_records=1),
        deals_messages(deals),
        capsys,
    )
    assert outcome.exit_code == 0
    assert set(emulator.store.deals()) == {"deal-1", "deal-3"}
    # Named as what it is, not as a refusal by Recotap: the last try may not have been sent.
    assert rejected_reasons(dead_letter)["deal-2"].startswith(
        "record 'deal-2': too large for a request of its own: POST /deals "
    )


def test_a_400_pipeline_request_is_split_down_to_one_pipeline(emulator, capsys, tmp_path):
    dead_letter = tmp_path / "rejected.jsonl"
    emulator.faults.refuse_ids = {"p7": "stage labels must be unique"}
    outcome = run_in_process(
        config_for(emulator, dead_letter_path=str(dead_letter), max_rejected_records=1),
        [schema("deal_stages"), *[record("deal_stages", pipeline(f"p{i}")) for i in range(20)]],
        capsys,
    )
    assert outcome.exit_code == 0
    assert len(emulator.store.pipelines()) == 19
    assert "stage labels must be unique" in rejected_reasons(dead_letter)["p7"]


def test_a_dry_run_shows_the_bodies_a_real_run_sends_split_under_the_size_limit(
    emulator, capsys, tmp_path
):
    # About 1.1 KB a deal: 100 of them are over the 100 KiB a body may have, so each batch is
    # split before it is sent, in a dry run as in a real one.
    deals = [deal(f"{n:03d}", ownerName="x" * 1000) for n in range(300)]
    real = run_in_process(
        config_for(emulator, max_concurrent_requests=1), deals_messages(deals), capsys
    )
    assert real.exit_code == 0
    sent = [r["items"] for r in emulator.store.requests()]
    dry_run_path = tmp_path / "dry-run.jsonl"
    dry = run_in_process(
        {"dry_run": True, "dry_run_path": str(dry_run_path), "max_concurrent_requests": 1},
        deals_messages(deals),
        capsys,
    )
    assert dry.exit_code == 0
    bodies = dry_run_path.read_bytes().splitlines()
    assert [len(json.loads(body)["deals"]) for body in bodies] == sent
    assert sum(sent) == 300
    assert max(len(body) for body in bodies) <= 100 * 1024
    assert len(bodies) > 3  # split: not three bodies of 100
