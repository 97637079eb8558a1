"""Generate a Singer file of CRM deals, as a tap like tap-hubspot would emit them.

One SCHEMA for the `deals` stream, then N RECORDs with a STATE after every 1,000. About 10% of
the records are a later version of a deal seen earlier (same `externalDealId`, new amount and
stage), so roughly 0.9 x N IDs are distinct and the last record of each ID is the one Recotap
must end up holding.

    python bench/generate.py --deals 100000 --out deals.singer.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

STREAM = "deals"
STATE_EVERY = 1000
REPEAT_SHARE = 0.1
DEFAULT_SEED = 20260115

NULLABLE_STRING: dict[str, Any] = {"type": ["string", "null"]}
NULLABLE_DATE_TIME: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}

DEALS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "externalDealId": {"type": "string"},
        "name": NULLABLE_STRING,
        "amount": {"type": ["number", "null"]},
        "stageId": NULLABLE_STRING,
        "stageLabel": NULLABLE_STRING,
        "pipelineId": NULLABLE_STRING,
        "pipelineLabel": NULLABLE_STRING,
        "startDate": NULLABLE_DATE_TIME,
        "closedDate": NULLABLE_DATE_TIME,
        "ownerName": NULLABLE_STRING,
        "ownerEmail": NULLABLE_STRING,
        "ownerId": NULLABLE_STRING,
        "dealCurrencyCode": NULLABLE_STRING,
        "associatedAccounts": {
            "type": ["array", "null"],
            "items": {
                "type": "object",
                "properties": {
                    "externalId": NULLABLE_STRING,
                    "domain": NULLABLE_STRING,
                    "name": NULLABLE_STRING,
                },
            },
        },
        "hs_object_id": {"type": ["string", "null"]},
        "hs_lastmodifieddate": NULLABLE_DATE_TIME,
        "_sdc_extracted_at": NULLABLE_DATE_TIME,
    },
}

PIPELINES = {
    "smb-pipeline": (
        "SMB Sales",
        [("smb-1", "Prospecting"), ("smb-2", "Proposal Sent"), ("smb-3", "Closed Won")],
    ),
    "enterprise-pipeline": (
        "Enterprise",
        [
            ("ent-1", "Discovery"),
            ("ent-2", "Security Review"),
            ("ent-3", "Negotiation"),
            ("ent-4", "Closed Won"),
            ("ent-5", "Closed Lost"),
        ],
    ),
    "renewals": ("Renewals", [("ren-1", "Upcoming"), ("ren-2", "Renewed"), ("ren-3", "Churned")]),
}
FIRST_NAMES = ("Jane", "Omar", "Li", "Priya", "Lucas", "Ana", "Kwame", "Sofia", "Hiro", "Maya")
LAST_NAMES = ("Smith", "Haddad", "Wei", "Sharma", "Martin", "Costa", "Mensah", "Rossi", "Sato")
COMPANY_WORDS = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Vandelay")
COMPANY_SUFFIXES = ("Corp", "Labs", "Systems", "Group", "Industries", "Analytics")
PLANS = ("Enterprise Plan", "Team Plan", "Renewal", "Expansion", "Pilot", "Platform Deal")
CURRENCIES = ("USD", "USD", "USD", "EUR", "GBP", "INR")
OFFSETS = (0, 2, -5, 5.5, 1, -8, 9)  # hours
BASE_TIME = datetime(2025, 1, 1, tzinfo=timezone.utc)
EXTRACTED_AT = datetime(2026, 5, 1, 6, 30, tzinfo=timezone.utc)


@dataclass
class Summary:
    """What a generated file holds; `latest` maps each ID to its last record's amount."""

    path: Path
    records: int = 0
    states: int = 0
    latest: dict[str, float] = field(default_factory=dict)

    @property
    def distinct(self) -> int:
        """Number of distinct externalDealIds."""
        return len(self.latest)


def _iso(moment: datetime, offset_hours: float) -> str:
    """A date-time string in the given UTC offset, e.g. 2026-01-15T10:00:00+02:00."""
    return moment.astimezone(timezone(timedelta(hours=offset_hours))).isoformat()


def _owner(rng: random.Random) -> tuple[str, str, str]:
    index = rng.randrange(200)
    first = FIRST_NAMES[index % len(FIRST_NAMES)]
    last = LAST_NAMES[index % len(LAST_NAMES)]
    return f"{first} {last}", f"{first.lower()}.{last.lower()}{index}@yourcompany.com", str(index)


def _accounts(rng: random.Random) -> list[dict[str, str]]:
    accounts = []
    for _ in range(rng.choice((1, 1, 1, 2))):
        number = rng.randrange(50_000)
        word = COMPANY_WORDS[number % len(COMPANY_WORDS)]
        suffix = COMPANY_SUFFIXES[number % len(COMPANY_SUFFIXES)]
        accounts.append(
            {
                "externalId": f"crm-{number}",
                "domain": f"{word.lower()}{number}.example.com",
                "name": f"{word} {suffix} {number}",
            }
        )
    return accounts


def deal_record(rng: random.Random, deal_id: str, sequence: int) -> dict[str, Any]:
    """One deal as a CRM tap emits it; `sequence` orders the modification times."""
    pipeline_id = rng.choice(tuple(PIPELINES))
    pipeline_label, stages = PIPELINES[pipeline_id]
    stage_id, stage_label = rng.choice(stages)
    owner_name, owner_email, owner_id = _owner(rng)
    accounts = _accounts(rng)
    start = BASE_TIME + timedelta(minutes=rng.randrange(500_000))
    closed = start + timedelta(days=rng.randrange(10, 200)) if rng.random() < 0.6 else None
    modified = BASE_TIME + timedelta(days=400, seconds=sequence)
    return {
        "externalDealId": deal_id,
        "name": f"{accounts[0]['name']} - {rng.choice(PLANS)}",
        "amount": round(rng.uniform(500, 500_000), 2),
        "stageId": stage_id,
        "stageLabel": stage_label,
        "pipelineId": pipeline_id,
        "pipelineLabel": pipeline_label,
        "startDate": _iso(start, rng.choice(OFFSETS)),
        "closedDate": None if closed is None else _iso(closed, rng.choice(OFFSETS)),
        "ownerName": owner_name,
        "ownerEmail": owner_email,
        "ownerId": owner_id,
        "dealCurrencyCode": rng.choice(CURRENCIES),
        "associatedAccounts": accounts,
        "hs_object_id": deal_id.removeprefix("deal-"),
        "hs_lastmodifieddate": _iso(modified, 0),
        "_sdc_extracted_at": EXTRACTED_AT.isoformat(),
    }


def _line(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":")) + "\n"


def generate(path: Path, deals: int, seed: int = DEFAULT_SEED) -> Summary:
    """Write `deals` RECORDs (and the SCHEMA and STATEs) to `path`; the same seed, the same file."""
    rng = random.Random(seed)
    summary = Summary(path=path)
    issued: list[str] = []
    with path.open("w", encoding="utf-8") as out:
        out.write(
            _line(
                {
                    "type": "SCHEMA",
                    "stream": STREAM,
                    "schema": DEALS_SCHEMA,
                    "key_properties": ["externalDealId"],
                }
            )
        )
        for sequence in range(1, deals + 1):
            if issued and rng.random() < REPEAT_SHARE:
                # A later version of an earlier deal: mostly recent ones, sometimes old ones.
                if rng.random() < 0.5:
                    deal_id = issued[-rng.randrange(1, min(len(issued), 500) + 1)]
                else:
                    deal_id = rng.choice(issued)
            else:
                deal_id = f"deal-{len(issued) + 1:07d}"
                issued.append(deal_id)
            record = deal_record(rng, deal_id, sequence)
            out.write(_line({"type": "RECORD", "stream": STREAM, "record": record}))
            summary.records += 1
            summary.latest[deal_id] = record["amount"]
            if sequence % STATE_EVERY == 0 or sequence == deals:
                bookmark = {"replication_key": "hs_lastmodifieddate"}
                bookmark["replication_key_value"] = record["hs_lastmodifieddate"]
                out.write(_line({"type": "STATE", "value": {"bookmarks": {STREAM: bookmark}}}))
                summary.states += 1
    return summary


def main() -> int:
    """Command line: write one file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=100_000, help="number of RECORDs")
    parser.add_argument("--out", type=Path, required=True, help="file to write")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args()
    summary = generate(args.out, args.deals, args.seed)
    print(
        f"{summary.path}: {summary.records} records, {summary.distinct} distinct IDs, "
        f"{summary.states} STATEs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
