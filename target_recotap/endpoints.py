"""Recotap's endpoints, one declaration each, and how their per-item results read.

An endpoint is where its items go, how many a request takes, what names an item, and how it
writes: an upsert answers each item written (``upserted``; accounts ``created`` or ``updated``)
or ``failed``; a create-only endpoint answers each ``created``, and either refuses the whole
request with a 409 when an item exists already, or fails that item alone, in words
``exists_when`` recognises. An endpoint may also answer an item ``skipped``: one it does not
handle, ignored, and not an error. Adding an endpoint is one declaration here and one
normaliser in normalize.py, and its sink.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any


class WriteMode(enum.Enum):
    UPSERT = "upsert"  # an item that exists is updated
    CREATE_OR_CONFLICT = "create-only, 409"  # one item that exists refuses the whole request
    CREATE_OR_FAIL = "create-only, failed"  # an item that exists fails alone (``exists_when``)


@dataclass(frozen=True)
class Accepted:
    """Recotap wrote the item."""


@dataclass(frozen=True)
class Existing:
    """Recotap holds the item already and left it as it was: delivered before (a re-run, or a
    retry after a lost answer), not an error. ``said`` is Recotap's words, for the debug log."""

    said: str


@dataclass(frozen=True)
class Skipped:
    """Recotap ignored the item, as one it does not handle (not an error): nothing was written.
    ``said`` is Recotap's words, for the debug log."""

    said: str


@dataclass(frozen=True)
class Rejected:
    """Recotap did not write the item, or (``answered`` false) its answer left the item out."""

    reason: str
    answered: bool = True


Outcome = Accepted | Existing | Skipped | Rejected


@dataclass(frozen=True)
class Endpoint:
    stream: str  # the Singer stream loaded into it
    path: str
    items_field: str  # the request body's list of items
    noun: str  # one item, in messages
    key: str  # the field that names an item, in the request and in each result
    per_request: int  # the most items a request may carry (the API reference's limit)
    mode: WriteMode
    verb: str  # what it does to an item, for messages
    written: frozenset[str]  # the statuses of an item written
    # CREATE_OR_FAIL: the words of a failed item that Recotap holds already (undocumented:
    # matched defensively, on the failure text).
    exists_when: re.Pattern[str] | None = None
    skipped: str | None = None  # the status of an item Recotap ignores, if it has one
    # What the request body carries beside the items (POST /accounts: upsert, segmentId).
    beside: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def written_as(self) -> str:
        """The statuses of an item written, as the summary words them: "created or updated"."""
        return " or ".join(sorted(self.written))

    def body(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return {self.items_field: items, **self.beside}

    def outcomes(self, data: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Outcome]:
        """What the answer ``data`` says of each item named in ``keys``.

        Results that are not objects are ignored; an item the answer leaves out is rejected,
        since nothing says it was written.
        """
        results = data.get("results")
        by_key = {
            str(result.get(self.key)): result
            for result in (results if isinstance(results, list) else [])
            if isinstance(result, dict)
        }
        outcomes: dict[str, Outcome] = {}
        for key in keys:
            result = by_key.get(key)
            if result is None:
                outcomes[key] = Rejected(
                    f"Recotap's answer left this {self.noun} out: outcome unknown", answered=False
                )
            elif result.get("status") in self.written:
                outcomes[key] = Accepted()
            elif self.skipped is not None and result.get("status") == self.skipped:
                outcomes[key] = Skipped(str(result.get("error") or f"status {self.skipped!r}"))
            else:
                error = result.get("error") or f"status {result.get('status')!r}"
                if self.exists_when is not None and self.exists_when.search(str(error)):
                    outcomes[key] = Existing(str(error))
                else:
                    outcomes[key] = Rejected(f"Recotap did not {self.verb} it: {error}")
        return outcomes


DEALS = Endpoint(
    stream="deals",
    path="/deals",
    items_field="deals",
    noun="deal",
    key="externalDealId",
    per_request=100,
    mode=WriteMode.UPSERT,
    verb="upsert",
    written=frozenset({"upserted"}),
)
PIPELINES = Endpoint(
    stream="deal_stages",
    path="/deal-stages",
    items_field="pipelines",
    noun="pipeline",
    key="pipelineId",
    per_request=20,
    mode=WriteMode.CREATE_OR_CONFLICT,
    verb="create",
    written=frozenset({"created"}),
)


# Accounts --------------------------------------------------------------------------------

# POST /accounts with ``upsert: true`` (the newest API reference): an account whose cleaned
# domain Recotap holds is updated with the fields sent.
ACCOUNTS = Endpoint(
    stream="accounts",
    path="/accounts",
    items_field="accounts",
    noun="account",
    key="domain",  # cleaned, as Recotap stores it (addresses.clean_domain)
    per_request=100,
    mode=WriteMode.UPSERT,
    verb="upsert",
    written=frozenset({"created", "updated"}),
    beside={"upsert": True},
)
# Without upsert (an older API refuses the property): an account Recotap holds already fails,
# as a client saw, "Account with domain 'X' already exists. Use PUT /accounts/{rtp_aid} ...".
ACCOUNTS_CREATE_ONLY = replace(
    ACCOUNTS,
    mode=WriteMode.CREATE_OR_FAIL,
    verb="create",
    exists_when=re.compile(r"already exists", re.IGNORECASE),
    beside={},
)
ACCOUNT_CUSTOM_FIELDS_PATH = "/accounts/custom-fields"  # GET: the active ones
ACCOUNT_CUSTOM_FIELD_PATH = "/accounts/custom-field"  # POST: create one


# Sales activities ------------------------------------------------------------------------

ACTIVITIES = Endpoint(
    stream="sales_activities",
    path="/sales-activities",
    items_field="activities",
    noun="sales activity",
    key="externalActivityId",
    per_request=50,
    mode=WriteMode.CREATE_OR_FAIL,
    verb="create",
    written=frozenset({"created"}),
    # Defensive: the reference says a duplicate externalActivityId comes back "failed", but
    # not in what words. These are the words of Recotap's other duplicates ("Account with
    # domain 'X' already exists", "Pipeline(s) already exist") and the usual others; a
    # duplicate worded otherwise is rejected with Recotap's words (in the dead letter), not lost.
    exists_when=re.compile(r"already (?:exists?|been)|duplicate", re.IGNORECASE),
    skipped="skipped",  # an activityType other than call or email
)

ENDPOINTS = {endpoint.stream: endpoint for endpoint in (DEALS, PIPELINES, ACCOUNTS, ACTIVITIES)}
