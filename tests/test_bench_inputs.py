"""The inputs `make bench` generates for accounts, sales activities and the mixed stream are valid:
every RECORD passes its stream's SCHEMA (with formats checked), the target rejects none of them,
and in the mixed file each deal names the account written 1 to 5 records before it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from singer_sdk.typing import DEFAULT_JSONSCHEMA_VALIDATOR
from support import run_cli, write_config

GENERATOR = Path(__file__).resolve().parent.parent / "bench" / "generate.py"
# Past one STATE_EVERY (1,000), and enough for later versions of accounts among the records.
RECORDS = 1_200


def generate(stream: str, out: Path) -> list[dict[str, Any]]:
    """Run `python bench/generate.py` for ``stream`` and return the messages it wrote."""
    arguments = ["--stream", stream, "--records", str(RECORDS), "--out", str(out)]
    done = subprocess.run(
        [sys.executable, str(GENERATOR), *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.parametrize(
    ("stream", "streams"),
    [
        ("accounts", ["accounts"]),
        ("sales_activities", ["sales_activities"]),
        ("mixed", ["accounts", "deals"]),
    ],
)
def test_every_record_passes_its_schema_and_the_target_rejects_none(
    tmp_path: Path, stream: str, streams: list[str]
) -> None:
    out = tmp_path / f"{stream}.singer.jsonl"
    messages = generate(stream, out)
    validators = {
        m["stream"]: DEFAULT_JSONSCHEMA_VALIDATOR(
            m["schema"], format_checker=DEFAULT_JSONSCHEMA_VALIDATOR.FORMAT_CHECKER
        )
        for m in messages
        if m["type"] == "SCHEMA"
    }
    assert sorted(validators) == sorted(streams)
    records = [m for m in messages if m["type"] == "RECORD"]
    assert len(records) == RECORDS
    for message in records:
        errors = [e.message for e in validators[message["stream"]].iter_errors(message["record"])]
        assert errors == [], (message["record"], errors)
    assert messages[-1]["type"] == "STATE"
    assert sorted(messages[-1]["value"]["bookmarks"]) == sorted(streams)

    config = write_config(tmp_path, {"dry_run": True, "dry_run_path": str(tmp_path / "dry.jsonl")})
    run = run_cli(["--config", str(config), "--input", str(out)])
    assert run.returncode == 0, run.stderr
    summaries = [line for line in run.stderr.splitlines() if "| Summary " in line]
    assert len(summaries) == len(streams), run.stderr
    for line in summaries:
        assert "rejected 0," in line, line
        assert "skipped by type" not in line or "skipped by type 0," in line, line


def test_mixed_deals_name_the_account_written_just_before(tmp_path: Path) -> None:
    records = [
        m["record"] | {"stream": m["stream"]}
        for m in generate("mixed", tmp_path / "mixed.singer.jsonl")
        if m["type"] == "RECORD"
    ]
    assert sum(1 for r in records if r["stream"] == "accounts") == RECORDS // 2
    named_at: dict[str, list[int]] = {}  # externalId -> positions of its account records
    distances = set()
    for position, record in enumerate(records):
        if record["stream"] == "accounts":
            named_at.setdefault(record["externalId"], []).append(position)
            continue
        (named,) = record["associatedAccounts"]
        before = [p for p in named_at.get(named["externalId"], []) if p < position]
        assert before, record["externalDealId"]
        # The account record written last of the 5 before the deal, with the domain as written.
        recent = [p for p in before if position - p <= 5]
        assert any(records[p]["domain"] == named["domain"] for p in recent), record
        distances.add(position - max(recent))
    assert distances == {1, 2, 3, 4, 5}


def test_accounts_repeat_and_write_domains_as_users_do(tmp_path: Path) -> None:
    accounts = [
        m["record"]
        for m in generate("accounts", tmp_path / "accounts.singer.jsonl")
        if m["type"] == "RECORD"
    ]
    assert len({r["externalId"] for r in accounts}) < 0.95 * len(accounts)  # later versions
    domains = [r["domain"] for r in accounts]
    assert any(d.startswith("https://www.") and "/" in d.removeprefix("https://") for d in domains)
    assert any(d.startswith("www.") for d in domains)
    assert any(d != d.lower() for d in domains)
    assert sum(1 for d in domains if not d.startswith(("www.", "https://"))) > len(domains) / 2


def test_the_same_seed_writes_the_same_file(tmp_path: Path) -> None:
    for stream in ("accounts", "sales_activities", "mixed"):
        first = tmp_path / f"{stream}-1.jsonl"
        second = tmp_path / f"{stream}-2.jsonl"
        generate(stream, first)
        generate(stream, second)
        assert first.read_bytes() == second.read_bytes(), stream
