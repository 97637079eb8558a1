"""SQLite storage for the emulator: deals, pipelines, accounts (with their custom fields and
segments), sales activities and a log of API requests."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec

from target_recotap.addresses import clean_domain

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

MEMORY = ":memory:"
# What reset empties, besides the request log.
_DATA_TABLES = (
    "deals",
    "pipelines",
    "accounts",
    "account_custom_fields",
    "segments",
    "segment_members",
    "deal_accounts",
    "activities",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deals (
    external_id TEXT PRIMARY KEY,
    data        TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    last_seq    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pipelines (
    pipeline_id TEXT PRIMARY KEY,
    data        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS activities (
    external_id TEXT PRIMARY KEY,
    data        TEXT    NOT NULL,
    seq         INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS accounts (
    domain   TEXT PRIMARY KEY,
    rtp_aid  TEXT    NOT NULL,
    data     TEXT    NOT NULL,
    version  INTEGER NOT NULL,
    last_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS account_custom_fields (
    key  TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS segments (
    segment_id TEXT PRIMARY KEY,
    data       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS segment_members (
    segment_id TEXT NOT NULL,
    domain     TEXT NOT NULL,
    PRIMARY KEY (segment_id, domain)
);
CREATE TABLE IF NOT EXISTS deal_accounts (
    external_id TEXT    NOT NULL,
    domain      TEXT    NOT NULL,
    linked      INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    PRIMARY KEY (external_id, domain)
);
CREATE TABLE IF NOT EXISTS requests (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint  TEXT    NOT NULL,
    status    INTEGER,
    items     INTEGER NOT NULL,
    lost      INTEGER NOT NULL DEFAULT 0,
    timestamp TEXT    NOT NULL,
    fault     TEXT
);
"""
# Columns added since the first files were written: a file from before gains them when opened
# for writing (`recotap-emulator serve --db` on an older file).
_ADDED_COLUMNS = (("requests", "fault", "TEXT"),)


def utc_timestamp() -> str:
    """Current UTC time in ISO 8601 with milliseconds, as JavaScript's toISOString() writes it."""
    now = datetime.now(timezone.utc)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EmulatorStore:
    """Thread-safe store over one SQLite connection (a file path or ":memory:")."""

    def __init__(self, path: str | os.PathLike[str] = MEMORY, *, read_only: bool = False) -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        if read_only:
            uri = f"file:{quote(os.path.abspath(self.path))}?mode=ro"
            self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        else:
            if self.path != MEMORY:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, check_same_thread=False)
            with self._lock, self._conn:
                self._conn.executescript(_SCHEMA)
                self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        for table, column, kind in _ADDED_COLUMNS:
            present = {row[1] for row in self._conn.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def close(self) -> None:
        """Close the connection; the store is unusable afterwards."""
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Within the block, every read sees the store at one moment: this store's writers wait
        (its lock is held), and a read transaction keeps out another process writing the file
        (`show` while `serve --db` runs). Read only, inside it."""
        with self._lock:
            if self._conn.in_transaction:  # a snapshot within a snapshot: the outer one holds
                yield
                return
            self._conn.execute("BEGIN")
            try:
                yield
            finally:
                self._conn.rollback()  # nothing was written: ends the read transaction

    def reset(self) -> None:
        """Delete every deal, pipeline, account, custom field, segment, activity and logged
        request; request numbering restarts at 1."""
        with self._lock, self._conn:
            for table in _DATA_TABLES:
                self._conn.execute(f"DELETE FROM {table}")
            self._conn.execute("DELETE FROM requests")
            self._conn.execute("DELETE FROM sqlite_sequence WHERE name = 'requests'")

    # Request log

    def begin_request(self, endpoint: str, items: int) -> int:
        """Log an incoming API request (status unknown yet) and return its sequence number."""
        with self._lock, self._conn:
            cursor = self._conn.execute(
                "INSERT INTO requests (endpoint, items, timestamp) VALUES (?, ?, ?)",
                (endpoint, items, utc_timestamp()),
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def finish_request(
        self, seq: int, status: int, *, lost: bool = False, fault: str | None = None
    ) -> None:
        """Record the status a request was answered with, whether its response was lost, and
        the faults the emulator injected into it (their names, comma-separated), if any."""
        with self._lock, self._conn:
            self._conn.execute(
                "UPDATE requests SET status = ?, lost = ?, fault = ? WHERE seq = ?",
                (status, int(lost), fault, seq),
            )

    def requests(self) -> list[dict[str, Any]]:
        """Every logged API request, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, endpoint, status, items, lost, timestamp, fault FROM requests"
                " ORDER BY seq"
            ).fetchall()
        return [
            {
                "seq": seq,
                "endpoint": endpoint,
                "status": status,
                "items": items,
                "lost": bool(lost),
                "timestamp": timestamp,
                "fault": fault,
            }
            for seq, endpoint, status, items, lost, timestamp, fault in rows
        ]

    def stats(self) -> dict[str, Any]:
        """Request counts by endpoint and status, plus totals of 429s, 5xx, lost responses and
        requests with an injected fault."""
        log = self.requests()
        by_endpoint: dict[str, dict[str, int]] = {}
        for entry in log:
            counts = by_endpoint.setdefault(entry["endpoint"], {})
            status = "pending" if entry["status"] is None else str(entry["status"])
            counts[status] = counts.get(status, 0) + 1
        statuses = [entry["status"] or 0 for entry in log]
        return {
            "requests": len(log),
            "byEndpoint": by_endpoint,
            "rateLimited": statuses.count(429),
            "serverErrors": sum(1 for status in statuses if status >= 500),
            "lost": sum(1 for entry in log if entry["lost"]),
            "injected": sum(1 for entry in log if entry["fault"]),
            "maxItems": max((entry["items"] for entry in log), default=0),
            "deals": self._count("deals"),
            "pipelines": self._count("pipelines"),
            "accounts": self._count("accounts"),
            "activities": self._count("activities"),
        }

    # Deals

    def upsert_deals(self, deals: Iterable[dict[str, Any]], seq: int) -> None:
        """Write deals in order: fields present overwrite (null included), absent fields stay;
        ``associatedAccounts: null`` is taken as absent."""
        deals = [_accounts_null_left_out(deal) for deal in deals]
        with self._lock, self._conn:
            ids = list({deal["externalDealId"] for deal in deals})
            held = dict(
                self._conn.execute(
                    "SELECT external_id, data FROM deals WHERE external_id IN "
                    f"({', '.join('?' * len(ids))})",
                    ids,
                ).fetchall()
            )
            merged: dict[str, dict[str, Any]] = {}
            rows = []
            for deal in deals:  # in order: a later duplicate merges onto the earlier one
                external_id = deal["externalDealId"]
                before = merged.get(external_id)
                if before is None:
                    before = msgspec.json.decode(held[external_id]) if external_id in held else {}
                merged[external_id] = {**before, **deal}
                rows.append((external_id, msgspec.json.encode(merged[external_id]), seq))
            self._conn.executemany(
                "INSERT INTO deals (external_id, data, version, last_seq) VALUES (?, ?, 1, ?)"
                " ON CONFLICT (external_id) DO UPDATE SET"
                " data = excluded.data, version = deals.version + 1, last_seq = excluded.last_seq",
                rows,
            )
            for deal in deals:
                if "associatedAccounts" in deal:  # sent: the deal's accounts are these now
                    self._link_accounts(deal["externalDealId"], deal["associatedAccounts"], seq)

    def deals(self) -> dict[str, dict[str, Any]]:
        """externalDealId -> stored (merged) deal, in creation order."""
        return {record["externalDealId"]: record["deal"] for record in self.deal_records()}

    def deal_versions(self) -> dict[str, int]:
        """externalDealId -> how many times the deal was written."""
        return {record["externalDealId"]: record["version"] for record in self.deal_records()}

    def deal_records(self) -> list[dict[str, Any]]:
        """Every deal with its write count and the sequence number of its last writing request."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT external_id, data, version, last_seq FROM deals ORDER BY rowid"
            ).fetchall()
        return [
            {
                "externalDealId": external_id,
                "version": version,
                "lastSeq": last_seq,
                "deal": msgspec.json.decode(data),
            }
            for external_id, data, version, last_seq in rows
        ]

    # Pipelines

    def create_pipelines(self, pipelines: list[dict[str, Any]]) -> list[str]:
        """Create all pipelines, or none if any exists; return the existing IDs in request order."""
        with self._lock, self._conn:
            existing = set(self.pipelines())
            conflicts = [p["pipelineId"] for p in pipelines if p["pipelineId"] in existing]
            if not conflicts:
                self._conn.executemany(
                    "INSERT INTO pipelines (pipeline_id, data) VALUES (?, ?)",
                    [(p["pipelineId"], msgspec.json.encode(p)) for p in pipelines],
                )
        return conflicts

    def pipelines(self) -> dict[str, dict[str, Any]]:
        """pipelineId -> {"pipelineId", "pipelineLabel", "stages"}, in creation order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT pipeline_id, data FROM pipelines ORDER BY rowid"
            ).fetchall()
        return {pipeline_id: msgspec.json.decode(data) for pipeline_id, data in rows}

    # Sales activities

    def create_activities(self, activities: list[dict[str, Any]], seq: int) -> list[bool]:
        """Store each activity whose externalActivityId is new, in order; for each, whether it
        was stored (False: that ID was stored before, by this request or an earlier one)."""
        with self._lock, self._conn:
            return [
                self._conn.execute(
                    "INSERT OR IGNORE INTO activities (external_id, data, seq) VALUES (?, ?, ?)",
                    (activity["externalActivityId"], msgspec.json.encode(activity), seq),
                ).rowcount
                == 1
                for activity in activities
            ]

    def activities(self) -> dict[str, dict[str, Any]]:
        """externalActivityId -> stored activity, in creation order."""
        return {
            record["externalActivityId"]: record["activity"] for record in self.activity_records()
        }

    def activity_records(self) -> list[dict[str, Any]]:
        """Every activity with the sequence number of the request that created it."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT external_id, data, seq FROM activities ORDER BY rowid"
            ).fetchall()
        return [
            {"externalActivityId": external_id, "seq": seq, "activity": msgspec.json.decode(data)}
            for external_id, data, seq in rows
        ]

    def _count(self, table: str) -> int:
        with self._lock:
            (count,) = self._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
        return int(count)

    # Accounts

    def write_accounts(
        self, accounts: list[dict[str, Any]], *, upsert: bool, segment_id: str | None, seq: int
    ) -> list[dict[str, Any]]:
        """Write accounts in order, as POST /accounts does; one result each.

        The domain is cleaned and names the account. An account with a custom-field key that
        is not an active field fails; one whose domain is held fails too, unless ``upsert``:
        then the fields sent replace those held and the others stay. Each account written
        joins ``segment_id``.
        """
        with self._lock, self._conn:
            active = set(self.custom_fields())
            results = []
            for account in accounts:
                domain = clean_domain(account["domain"])
                unknown = [key for key in account.get("customFields") or {} if key not in active]
                held = self._account(domain)
                if not domain:
                    error = f"domain '{account['domain']}' names no host"
                elif unknown:
                    error = UNKNOWN_CUSTOM_FIELDS.format(keys=", ".join(unknown))
                elif held is not None and not upsert:
                    error = ACCOUNT_EXISTS.format(domain=domain)
                else:
                    results.append(self._write_account(domain, account, held, segment_id, seq))
                    continue
                results.append(
                    {"domain": domain or account["domain"], "status": "failed", "error": error}
                )
        return results

    def _account(self, domain: str) -> tuple[str, dict[str, Any]] | None:
        row = self._conn.execute(
            "SELECT rtp_aid, data FROM accounts WHERE domain = ?", (domain,)
        ).fetchone()
        return None if row is None else (row[0], msgspec.json.decode(row[1]))

    def _write_account(
        self,
        domain: str,
        account: dict[str, Any],
        held: tuple[str, dict[str, Any]] | None,
        segment_id: str | None,
        seq: int,
    ) -> dict[str, Any]:
        stored: dict[str, Any]
        if held is None:
            (rows,) = self._conn.execute("SELECT COUNT(*) FROM accounts").fetchone()
            rtp_aid, stored = f"rtp-{rows + 1}", {}
        else:
            rtp_aid, stored = held
        data = msgspec.json.encode({**stored, **account, "domain": domain})
        self._conn.execute(
            "INSERT INTO accounts (domain, rtp_aid, data, version, last_seq) VALUES (?, ?, ?, 1, ?)"
            " ON CONFLICT (domain) DO UPDATE SET"
            " data = excluded.data, version = accounts.version + 1, last_seq = excluded.last_seq",
            (domain, rtp_aid, data, seq),
        )
        if segment_id is not None:
            self._conn.execute(
                "INSERT OR IGNORE INTO segment_members (segment_id, domain) VALUES (?, ?)",
                (segment_id, domain),
            )
        status = "created" if held is None else "updated"
        return {"domain": domain, "rtp_aid": rtp_aid, "status": status}

    def accounts(self) -> dict[str, dict[str, Any]]:
        """Cleaned domain -> the account as stored (merged), in creation order."""
        return {record["domain"]: record["account"] for record in self.account_records()}

    def account_records(self) -> list[dict[str, Any]]:
        """Every account with its rtp_aid, write count, last writing request and segments."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT domain, rtp_aid, data, version, last_seq FROM accounts ORDER BY rowid"
            ).fetchall()
            members = self._conn.execute(
                "SELECT domain, segment_id FROM segment_members ORDER BY rowid"
            ).fetchall()
        segments: dict[str, list[str]] = {}
        for domain, segment_id in members:
            segments.setdefault(domain, []).append(segment_id)
        return [
            {
                "domain": domain,
                "rtp_aid": rtp_aid,
                "version": version,
                "lastSeq": last_seq,
                "segments": segments.get(domain, []),
                "account": msgspec.json.decode(data),
            }
            for domain, rtp_aid, data, version, last_seq in rows
        ]

    def _link_accounts(self, external_id: str, accounts: list[dict[str, Any]], seq: int) -> None:
        """Note, for each domain a deal names, whether an account with it exists now."""
        self._conn.execute("DELETE FROM deal_accounts WHERE external_id = ?", (external_id,))
        domains = {clean_domain(a["domain"]) for a in accounts if isinstance(a.get("domain"), str)}
        self._conn.executemany(
            "INSERT INTO deal_accounts (external_id, domain, linked, seq) VALUES (?, ?, ?, ?)",
            [
                (external_id, domain, self._account(domain) is not None, seq)
                for domain in sorted(domains - {""})
            ],
        )

    def unlinked_deal_ids(self) -> list[str]:
        """The deals that name a domain Recotap held no account for when they were last written
        with their associated accounts, in creation order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT external_id FROM deals WHERE external_id IN"
                " (SELECT external_id FROM deal_accounts WHERE NOT linked) ORDER BY rowid"
            ).fetchall()
        return [external_id for (external_id,) in rows]

    def account_usage(self) -> dict[str, dict[str, int]]:
        """Cleaned domain -> how many deals are linked to its account ("deals") and how many
        sales activities name it ("activities"), for every account held."""
        with self._lock:
            linked = dict(
                self._conn.execute(
                    "SELECT domain, COUNT(*) FROM deal_accounts WHERE linked GROUP BY domain"
                ).fetchall()
            )
            domains = [domain for (domain,) in self._conn.execute("SELECT domain FROM accounts")]
        # An activity's domain is matched as an account's is, cleaned (the reference does not say
        # whether Recotap cleans it; the target sends it cleaned).
        activities: dict[str, int] = {}
        for activity in self.activities().values():
            domain = clean_domain(str(activity["domain"]))
            activities[domain] = activities.get(domain, 0) + 1
        return {
            domain: {"deals": linked.get(domain, 0), "activities": activities.get(domain, 0)}
            for domain in domains
        }

    def deal_links(self) -> dict[str, dict[str, bool]]:
        """externalDealId -> {cleaned domain: whether an account with it existed when the deal
        was last written with its associated accounts}."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT external_id, domain, linked FROM deal_accounts ORDER BY rowid"
            ).fetchall()
        links: dict[str, dict[str, bool]] = {}
        for external_id, domain, linked in rows:
            links.setdefault(external_id, {})[domain] = bool(linked)
        return links

    # Account custom fields

    def add_custom_field(self, field: dict[str, Any]) -> bool:
        """Store an account custom field (its ``key`` derived already); False, storing nothing,
        if an active one has that key. An inactive one is replaced."""
        with self._lock, self._conn:
            row = self._conn.execute(
                "SELECT data FROM account_custom_fields WHERE key = ?", (field["key"],)
            ).fetchone()
            if row is not None and msgspec.json.decode(row[0])["status"] == "active":
                return False
            self._conn.execute(
                "INSERT OR REPLACE INTO account_custom_fields (key, data) VALUES (?, ?)",
                (field["key"], msgspec.json.encode(field)),
            )
        return True

    def custom_fields(self, *, active_only: bool = True) -> dict[str, dict[str, Any]]:
        """key -> account custom field (the active ones, unless told otherwise), oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT key, data FROM account_custom_fields ORDER BY rowid"
            ).fetchall()
        fields = {key: msgspec.json.decode(data) for key, data in rows}
        if active_only:
            return {key: f for key, f in fields.items() if f["status"] == "active"}
        return fields

    # Segments

    def add_segment(self, segment: dict[str, Any]) -> None:
        """Store a segment ``{segmentId, name, type, status}``, replacing one of that ID."""
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO segments (segment_id, data) VALUES (?, ?)",
                (segment["segmentId"], msgspec.json.encode(segment)),
            )

    def segments(self) -> dict[str, dict[str, Any]]:
        """segmentId -> segment, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT segment_id, data FROM segments ORDER BY rowid"
            ).fetchall()
        return {segment_id: msgspec.json.decode(data) for segment_id, data in rows}


def _accounts_null_left_out(deal: dict[str, Any]) -> dict[str, Any]:
    """The deal without ``associatedAccounts`` if it is null. The reference does not say what
    Recotap makes of a null list of accounts (its DTO lets null through as it lets absence);
    taken as absent, the accounts and links held stay, as when the field is left out."""
    if "associatedAccounts" in deal and deal["associatedAccounts"] is None:
        return {name: value for name, value in deal.items() if name != "associatedAccounts"}
    return deal


# Per-item failures of POST /accounts, in the words a client saw from the sandbox.
ACCOUNT_EXISTS = (
    "Account with domain '{domain}' already exists. Use PUT /accounts/{{rtp_aid}} to update it."
)
UNKNOWN_CUSTOM_FIELDS = "Custom field key(s) not found: {keys}. Unable to add this account."
