"""Generate a Singer file of CRM records, as a tap like tap-hubspot would emit them.

One file holds one of four inputs: `deals`, `accounts`, `sales_activities`, or `mixed` (accounts
and deals interleaved, each deal a few records after the account it names). Each starts with
the SCHEMA of its streams; a STATE follows every 1,000 RECORDs and the last one.

- deals: about 10% of the records are a later version of a deal seen earlier (same
  `externalDealId`, new amount and stage), so roughly 0.9 x N IDs are distinct and the last
  record of each ID is the one Recotap must end up holding.
- accounts: likewise about 10% are a later version of an earlier account (the same domain,
  often written another way: `https://www.Acme1.example.com/about`, `www.acme1.example.com`),
  with a new contract value.
- sales_activities: calls and emails, every one a new `externalActivityId`.
- mixed: every account record (10% of them later versions) is followed, 1 to 5 records
  later, by one new deal that names the account's domain (written as some record of it is).

    python bench/generate.py --stream accounts --records 100000 --out accounts.singer.jsonl

The same seed gives the same file.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TextIO

DEALS = "deals"
ACCOUNTS = "accounts"
ACTIVITIES = "sales_activities"
MIXED = "mixed"  # accounts and deals in one file
STATE_EVERY = 1000
REPEAT_SHARE = 0.1
RECENT = 500  # half the repeats are of an item among the last RECENT, half of any earlier one
MAX_DEAL_DISTANCE = 5  # in the mixed file, a deal comes 1 to this many records after its account
DEFAULT_SEED = 20260115
REPLICATION_KEY = "hs_lastmodifieddate"

NULLABLE_STRING: dict[str, Any] = {"type": ["string", "null"]}
NULLABLE_DATE_TIME: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}
NULLABLE_INTEGER: dict[str, Any] = {"type": ["integer", "null"]}
TAP_FIELDS: dict[str, Any] = {  # what the tap adds and the target does not send
    "hs_object_id": NULLABLE_STRING,
    REPLICATION_KEY: NULLABLE_DATE_TIME,
    "_sdc_extracted_at": NULLABLE_DATE_TIME,
}

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
        **TAP_FIELDS,
    },
}

ACCOUNTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "domain": {"type": "string"},
        "name": NULLABLE_STRING,
        "externalId": NULLABLE_STRING,
        "shortName": NULLABLE_STRING,
        "linkedinUrl": NULLABLE_STRING,
        "tags": {"type": ["array", "null"], "items": {"type": "string"}},
        "customFields": {
            "type": ["object", "null"],
            "properties": {
                "CONTRACT_VALUE_C": {"type": ["number", "null"]},
                "REGION_C": NULLABLE_STRING,
            },
        },
        "industry": NULLABLE_STRING,
        "numberofemployees": NULLABLE_INTEGER,
        **TAP_FIELDS,
    },
}
# The account custom fields the records carry, as POST /accounts/custom-field takes them: the
# harness creates them in the emulator, as a Recotap account in use would hold them already.
ACCOUNT_CUSTOM_FIELDS = (
    {"label": "Contract Value", "labelType": "number"},
    {"label": "Region", "labelType": "singleLineText"},
)

ACTIVITIES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "externalActivityId": {"type": "string"},
        "activityType": {"type": "string"},
        "occurredAt": {"type": "string", "format": "date-time"},
        "domain": NULLABLE_STRING,
        "ownerEmail": NULLABLE_STRING,
        "ownerName": NULLABLE_STRING,
        "ownerId": NULLABLE_STRING,
        "accountName": NULLABLE_STRING,
        "subject": NULLABLE_STRING,
        "contacts": {
            "type": ["array", "null"],
            "items": {
                "type": "object",
                "properties": {
                    "email": NULLABLE_STRING,
                    "externalContactId": NULLABLE_STRING,
                    "name": NULLABLE_STRING,
                    "title": NULLABLE_STRING,
                    "phone": NULLABLE_STRING,
                },
            },
        },
        "from": {
            "type": ["object", "null"],
            "properties": {"name": NULLABLE_STRING, "email": NULLABLE_STRING},
        },
        "callTitle": NULLABLE_STRING,
        "durationMinutes": NULLABLE_INTEGER,
        "outcome": NULLABLE_STRING,
        "direction": NULLABLE_STRING,
        "openCount": NULLABLE_INTEGER,
        "clickCount": NULLABLE_INTEGER,
        **TAP_FIELDS,
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
TAGS = ("enterprise", "smb", "emea", "amer", "apac", "target-account", "partner")
REGIONS = ("EMEA", "AMER", "APAC", "LATAM")
INDUSTRIES = ("Software", "Manufacturing", "Retail", "Finance", "Healthcare")
PAGES = ("about", "pricing", "contact-us", "en/home")
TITLES = ("VP of Engineering", "CTO", "Head of Marketing", "Procurement Lead", "CFO")
CALL_OUTCOMES = ("Connected", "Left voicemail", "No answer")
TOPICS = ("Discovery", "Pricing", "Follow-up", "Renewal", "Security questionnaire", "Demo")
CALL_SHARE = 0.6  # of the sales activities; the others are emails
ACCOUNT_SPACE = 50_000  # the companies deals and activities name when no account stream does
BASE_TIME = datetime(2025, 1, 1, tzinfo=timezone.utc)
EXTRACTED_AT = datetime(2026, 5, 1, 6, 30, tzinfo=timezone.utc)


@dataclass
class Summary:
    """What a generated file holds.

    ``latest``: for each stream, each item's key (a deal's ID, an account's domain as Recotap
    cleans it, an activity's ID) to what its last record says that Recotap must end up holding
    (the deal's amount, the account's CONTRACT_VALUE_C, the activity's subject). ``links``, in
    the mixed file: each deal's ID to the cleaned domain of the account it names.
    """

    path: Path
    records: int = 0
    states: int = 0
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)

    @property
    def distinct(self) -> int:
        """Number of distinct items, all streams together."""
        return sum(map(len, self.latest.values()))


class _Writer:
    """Writes Singer messages to ``out``, a STATE after every STATE_EVERY RECORDs, and counts
    them in ``summary``."""

    def __init__(self, out: TextIO, summary: Summary) -> None:
        self._out = out
        self._summary = summary
        self._bookmarks: dict[str, dict[str, Any]] = {}

    def schema(self, stream: str, schema: dict[str, Any], key: str) -> None:
        message = {"type": "SCHEMA", "stream": stream, "schema": schema, "key_properties": [key]}
        self._out.write(_line(message))

    def record(self, stream: str, record: dict[str, Any], key: str, value: Any) -> None:
        """Write ``record``, the latest version of the item ``key`` holding ``value``."""
        self._out.write(_line({"type": "RECORD", "stream": stream, "record": record}))
        summary = self._summary
        summary.records += 1
        summary.latest.setdefault(stream, {})[key] = value
        bookmark = {"replication_key": REPLICATION_KEY}
        bookmark["replication_key_value"] = record[REPLICATION_KEY]
        self._bookmarks[stream] = bookmark
        if summary.records % STATE_EVERY == 0:
            self._state()

    def close(self) -> None:
        """The STATE after the last RECORD, unless one was written just before."""
        if self._summary.records % STATE_EVERY:
            self._state()

    def _state(self) -> None:
        self._out.write(_line({"type": "STATE", "value": {"bookmarks": dict(self._bookmarks)}}))
        self._summary.states += 1


def _iso(moment: datetime, offset_hours: float) -> str:
    """A date-time string in the given UTC offset, e.g. 2026-01-15T10:00:00+02:00."""
    return moment.astimezone(timezone(timedelta(hours=offset_hours))).isoformat()


def _modified(sequence: int) -> str:
    """The tap's modification time of the record at ``sequence``: later records, later times."""
    return _iso(BASE_TIME + timedelta(days=400, seconds=sequence), 0)


def _owner(rng: random.Random) -> tuple[str, str, str]:
    index = rng.randrange(200)
    first = FIRST_NAMES[index % len(FIRST_NAMES)]
    last = LAST_NAMES[index % len(LAST_NAMES)]
    return f"{first} {last}", f"{first.lower()}.{last.lower()}{index}@yourcompany.com", str(index)


def _company(number: int) -> tuple[str, str, str]:
    """(word, name, domain as Recotap cleans it) of the company ``number``."""
    word = COMPANY_WORDS[number % len(COMPANY_WORDS)]
    suffix = COMPANY_SUFFIXES[number % len(COMPANY_SUFFIXES)]
    return word, f"{word} {suffix} {number}", f"{word.lower()}{number}.example.com"


def _written(rng: random.Random, domain: str) -> str:
    """``domain`` as a CRM user may have typed it: mostly as it is, sometimes with ``www.``,
    as a URL with capitals and a path, or in capitals; each cleans back to ``domain``."""
    draw = rng.random()
    if draw < 0.6:
        return domain
    if draw < 0.75:
        return f"www.{domain}"
    if draw < 0.9:
        return f"https://www.{domain.capitalize()}/{rng.choice(PAGES)}"
    return domain.upper()


def _accounts(rng: random.Random) -> list[dict[str, str]]:
    accounts = []
    for _ in range(rng.choice((1, 1, 1, 2))):
        number = rng.randrange(ACCOUNT_SPACE)
        _, name, domain = _company(number)
        accounts.append({"externalId": f"crm-{number}", "domain": domain, "name": name})
    return accounts


def deal_record(
    rng: random.Random,
    deal_id: str,
    sequence: int,
    accounts: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """One deal as a CRM tap emits it; `sequence` orders the modification times. It names
    `accounts`, or one or two companies drawn at random."""
    pipeline_id = rng.choice(tuple(PIPELINES))
    pipeline_label, stages = PIPELINES[pipeline_id]
    stage_id, stage_label = rng.choice(stages)
    owner_name, owner_email, owner_id = _owner(rng)
    if accounts is None:
        accounts = _accounts(rng)
    start = BASE_TIME + timedelta(minutes=rng.randrange(500_000))
    closed = start + timedelta(days=rng.randrange(10, 200)) if rng.random() < 0.6 else None
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
        REPLICATION_KEY: _modified(sequence),
        "_sdc_extracted_at": EXTRACTED_AT.isoformat(),
    }


def account_record(rng: random.Random, number: int, sequence: int) -> dict[str, Any]:
    """A version of the account of company ``number``, as a CRM tap emits it; its domain is
    written as a user may have typed it, and its contract value is new."""
    word, name, domain = _company(number)
    return {
        "domain": _written(rng, domain),
        "name": name,
        "externalId": f"crm-{number}",
        "shortName": f"{word} {number}",
        "linkedinUrl": f"https://www.linkedin.com/company/{word.lower()}-{number}",
        "tags": rng.sample(TAGS, rng.randrange(3)),
        "customFields": {
            "CONTRACT_VALUE_C": round(rng.uniform(1_000, 2_000_000), 2),
            "REGION_C": rng.choice((*REGIONS, None)),
        },
        "industry": rng.choice(INDUSTRIES),
        "numberofemployees": rng.randrange(5, 50_000),
        "hs_object_id": str(number),
        REPLICATION_KEY: _modified(sequence),
        "_sdc_extracted_at": EXTRACTED_AT.isoformat(),
    }


def activity_record(rng: random.Random, number: int, sequence: int) -> dict[str, Any]:
    """The sales activity ``number``, a call or an email with one to three contacts at the
    company it names; the fields of the other type are null, as a tap emits them."""
    call = rng.random() < CALL_SHARE
    owner_name, owner_email, owner_id = _owner(rng)
    _, company, domain = _company(rng.randrange(ACCOUNT_SPACE))
    contacts = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        person = rng.randrange(1_000_000)
        contacts.append(
            {
                "email": f"{first.lower()}.{last.lower()}@{domain}",
                "externalContactId": f"contact-{person}",
                "name": f"{first} {last}",
                "title": rng.choice(TITLES),
                "phone": f"+1 415 555 {person % 10_000:04d}" if rng.random() < 0.5 else None,
            }
        )
    occurred = BASE_TIME + timedelta(minutes=rng.randrange(500_000))
    subject = f"{rng.choice(TOPICS)} with {company} #{number}"
    return {
        "externalActivityId": f"{'call' if call else 'email'}-{number:07d}",
        "activityType": "call" if call else "email",
        "occurredAt": _iso(occurred, rng.choice(OFFSETS)),
        "domain": _written(rng, domain),
        "ownerEmail": owner_email,
        "ownerName": owner_name,
        "ownerId": owner_id,
        "accountName": company,
        "subject": subject,
        "contacts": contacts,
        "from": None if call else {"name": owner_name, "email": owner_email},
        "callTitle": subject if call else None,
        "durationMinutes": rng.randrange(1, 90) if call else None,
        "outcome": rng.choice(CALL_OUTCOMES) if call else None,
        "direction": rng.choice(("inbound", "outbound")) if call else None,
        "openCount": None if call else rng.randrange(10),
        "clickCount": None if call else rng.randrange(4),
        "hs_object_id": str(number),
        REPLICATION_KEY: _modified(sequence),
        "_sdc_extracted_at": EXTRACTED_AT.isoformat(),
    }


def _line(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":")) + "\n"


def _pick(rng: random.Random, issued: list[Any]) -> Any:
    """An earlier item for a later version: half the time a recent one, else any."""
    if rng.random() < 0.5:
        return issued[-rng.randrange(1, min(len(issued), RECENT) + 1)]
    return rng.choice(issued)


def generate(path: Path, deals: int, seed: int = DEFAULT_SEED) -> Summary:
    """Write `deals` RECORDs (and the SCHEMA and STATEs) to `path`; the same seed, the same file."""
    rng = random.Random(seed)
    summary = Summary(path=path)
    issued: list[str] = []
    with path.open("w", encoding="utf-8") as out:
        writer = _Writer(out, summary)
        writer.schema(DEALS, DEALS_SCHEMA, "externalDealId")
        for sequence in range(1, deals + 1):
            if issued and rng.random() < REPEAT_SHARE:
                deal_id = _pick(rng, issued)
            else:
                deal_id = f"deal-{len(issued) + 1:07d}"
                issued.append(deal_id)
            record = deal_record(rng, deal_id, sequence)
            writer.record(DEALS, record, deal_id, record["amount"])
        writer.close()
    return summary


def generate_accounts(path: Path, accounts: int, seed: int = DEFAULT_SEED) -> Summary:
    """Write `accounts` account RECORDs, about 10% of them later versions of earlier ones."""
    rng = random.Random(seed)
    summary = Summary(path=path)
    issued: list[int] = []
    with path.open("w", encoding="utf-8") as out:
        writer = _Writer(out, summary)
        writer.schema(ACCOUNTS, ACCOUNTS_SCHEMA, "domain")
        for sequence in range(1, accounts + 1):
            _write_account(rng, writer, issued, sequence)
        writer.close()
    return summary


def _write_account(
    rng: random.Random, writer: _Writer, issued: list[int], sequence: int
) -> tuple[str, dict[str, Any]]:
    """Write a new account or a later version of an earlier one; return its domain as Recotap
    cleans it, and its record."""
    if issued and rng.random() < REPEAT_SHARE:
        number = _pick(rng, issued)
    else:
        number = len(issued) + 1
        issued.append(number)
    record = account_record(rng, number, sequence)
    domain = _company(number)[2]
    writer.record(ACCOUNTS, record, domain, record["customFields"]["CONTRACT_VALUE_C"])
    return domain, record


def generate_activities(path: Path, activities: int, seed: int = DEFAULT_SEED) -> Summary:
    """Write `activities` sales-activity RECORDs: calls and emails, each a new ID."""
    rng = random.Random(seed)
    summary = Summary(path=path)
    with path.open("w", encoding="utf-8") as out:
        writer = _Writer(out, summary)
        writer.schema(ACTIVITIES, ACTIVITIES_SCHEMA, "externalActivityId")
        for sequence in range(1, activities + 1):
            record = activity_record(rng, sequence, sequence)
            writer.record(ACTIVITIES, record, record["externalActivityId"], record["subject"])
        writer.close()
    return summary


def generate_mixed(path: Path, records: int, seed: int = DEFAULT_SEED) -> Summary:
    """Write `records` RECORDs (rounded down to even), accounts and deals in equal numbers:
    each account record is followed, 1 to MAX_DEAL_DISTANCE records later, by a new deal
    that names that account with its domain as the account record writes it."""
    rng = random.Random(seed)
    summary = Summary(path=path)
    issued: list[int] = []
    # Position in the file -> the account (cleaned domain, record) the deal there names.
    due: dict[int, tuple[str, dict[str, Any]]] = {}
    pairs = accounts = deals = records // 2
    with path.open("w", encoding="utf-8") as out:
        writer = _Writer(out, summary)
        writer.schema(ACCOUNTS, ACCOUNTS_SCHEMA, "domain")
        writer.schema(DEALS, DEALS_SCHEMA, "externalDealId")
        while deals:
            position = summary.records + 1
            if position not in due and accounts:
                accounts -= 1
                written = _write_account(rng, writer, issued, position)
                # The deals due at the next positions are those of the at most 4 accounts
                # just before this one, so one of the next MAX_DEAL_DISTANCE is always free.
                after = range(position + 1, position + MAX_DEAL_DISTANCE + 1)
                due[rng.choice([p for p in after if p not in due])] = written
                continue
            # The deal due here; once every account is written, the next one due, early.
            domain, account = due.pop(position if position in due else min(due))
            deals -= 1
            deal_id = f"deal-{pairs - deals:07d}"
            named = [{key: account[key] for key in ("externalId", "domain", "name")}]
            record = deal_record(rng, deal_id, position, named)
            writer.record(DEALS, record, deal_id, record["amount"])
            summary.links[deal_id] = domain
        writer.close()
    return summary


GENERATORS: dict[str, Callable[[Path, int, int], Summary]] = {
    DEALS: generate,
    ACCOUNTS: generate_accounts,
    ACTIVITIES: generate_activities,
    MIXED: generate_mixed,
}


def main() -> int:
    """Command line: write one file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", choices=GENERATORS, default=DEALS, help="what to write")
    parser.add_argument("--records", "--deals", type=int, default=100_000, help="RECORDs")
    parser.add_argument("--out", type=Path, required=True, help="file to write")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args()
    summary = GENERATORS[args.stream](args.out, args.records, args.seed)
    print(
        f"{summary.path}: {summary.records} records, {summary.distinct} distinct items, "
        f"{summary.states} STATEs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
