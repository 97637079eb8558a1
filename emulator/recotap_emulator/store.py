"""SQLite storage for the emulator: deals, pipelines, sales activities and a log of API
requests."""

from __future__ import annotations

import os
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec

if TYPE_CHECKING:
    from collections.abc import Iterable

MEMORY = ":memory:"

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
CREATE TABLE IF NOT EXISTS requests (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint  TEXT    NOT NULL,
    status    INTEGER,
    items     INTEGER NOT NULL,
    lost      INTEGER NOT NULL DEFAULT 0,
    timestamp TEXT    NOT NULL
);
"""


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

    def close(self) -> None:
        """Close the connection; the store is unusable afterwards."""
        with self._lock:
            self._conn.close()

    def reset(self) -> None:
        """Delete every deal, pipeline, activity and logged request; request numbering restarts
        at 1."""
        with self._lock, self._conn:
            self._conn.execute("DELETE FROM deals")
            self._conn.execute("DELETE FROM pipelines")
            self._conn.execute("DELETE FROM activities")
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

    def finish_request(self, seq: int, status: int, *, lost: bool = False) -> None:
        """Record the status a request was answered with, and whether its response was lost."""
        with self._lock, self._conn:
            self._conn.execute(
                "UPDATE requests SET status = ?, lost = ? WHERE seq = ?", (status, int(lost), seq)
            )

    def requests(self) -> list[dict[str, Any]]:
        """Every logged API request, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, endpoint, status, items, lost, timestamp FROM requests ORDER BY seq"
            ).fetchall()
        return [
            {
                "seq": seq,
                "endpoint": endpoint,
                "status": status,
                "items": items,
                "lost": bool(lost),
                "timestamp": timestamp,
            }
            for seq, endpoint, status, items, lost, timestamp in rows
        ]

    def stats(self) -> dict[str, Any]:
        """Request counts by endpoint and status, plus totals of 429s, 5xx and lost responses."""
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
            "maxItems": max((entry["items"] for entry in log), default=0),
            "deals": self._count("deals"),
            "pipelines": self._count("pipelines"),
            "activities": self._count("activities"),
        }

    # Deals

    def upsert_deals(self, deals: Iterable[dict[str, Any]], seq: int) -> None:
        """Write deals in order: fields present overwrite (null included), absent fields stay."""
        deals = list(deals)
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
