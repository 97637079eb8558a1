"""The page at ``/``: what the emulator holds, laid out as Recotap would hold it, for a person.

Rendered on the server from the store alone, through the queries `recotap-emulator show` uses,
so it never has the API key to show. Every value is escaped (a deal named ``<script>`` shows as
that text), and the page has no script: its Content-Security-Policy would stop one that got in
all the same. While a run goes on (a request in the last few seconds) the page reloads itself.

A plain GET form filters it: ``q`` keeps the records whose ID, domain or name holds the text
(any case; a URL finds its cleaned domain), ``unlinked=1`` keeps only the deals that name a
domain Recotap held no account for.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import msgspec
from werkzeug.wrappers import Response

from target_recotap.addresses import clean_domain

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from recotap_emulator.store import EmulatorStore

#: Seconds between reloads while a run goes on.
REFRESH_SECONDS = 5
#: A run is taken to go on while its last request is at most this many seconds old.
RUNNING_WITHIN = 10.0
#: Rows shown per section at most; a search finds the others.
MAX_ROWS = 500
UNLINKED_MEANING = (
    "Recotap held no account with this domain when the deal was last written with its"
    " accounts: the deal is not attributed to that account"
)
HEADERS = {
    # Nothing but the page's own inline style may load or run, and the form only goes here.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1rem 2rem; color: #222; }
table { border-collapse: collapse; margin: .5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: .2rem .4rem; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.number { text-align: right; }
td ul, td ol { margin: 0; padding-left: 1.1rem; }
tr.unlinked td, tr.faulty td { background: #fdecea; }
.flag { color: #a00; font-weight: bold; }
#totals { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 0 1.5rem; }
#totals span { font-size: 1.3rem; font-weight: bold; }
form { margin: 1rem 0; }
"""


@dataclass(frozen=True)
class FieldOrder:
    """The fields of each kind of record, in the API's order (the app knows its schemas)."""

    deals: Sequence[str]
    accounts: Sequence[str]
    activities: Sequence[str]


def present_fields(records: Iterable[Mapping[str, Any]], order: Sequence[str]) -> list[str]:
    """The fields of ``order`` that some record has, in that order: the rest would be empty."""
    present = {name for record in records for name in record}
    return [name for name in order if name in present]


@dataclass(frozen=True)
class Search:
    """What the page's form asks for: records holding ``text``, only unlinked deals."""

    text: str = ""
    unlinked_only: bool = False

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Search:
        """The search in a request's query parameters."""
        return cls(text=query.get("q", "").strip(), unlinked_only=query.get("unlinked") == "1")

    @property
    def active(self) -> bool:
        """Whether the search leaves some records out."""
        return bool(self.text) or self.unlinked_only

    def matches(self, values: Iterable[Any]) -> bool:
        """Whether one of ``values`` holds the text searched for (always, when there is none)."""
        if not self.text:
            return True
        wanted = {self.text.casefold(), clean_domain(self.text)} - {""}
        return any(
            part in str(value).casefold()
            for value in values
            if value is not None
            for part in wanted
        )

    def link(self, **changes: str) -> str:
        """This page's address with this search, changed by ``changes`` ("" leaves one out)."""
        query = {"q": self.text, "unlinked": "1" if self.unlinked_only else "", **changes}
        kept = {name: value for name, value in query.items() if value}
        return "/?" + urlencode(kept) if kept else "/"


def page_response(store: EmulatorStore, query: Mapping[str, str], fields: FieldOrder) -> Response:
    """The page for a request with these query parameters."""
    body = render_page(store, Search.from_query(query), fields)
    return Response(body, 200, headers=HEADERS, content_type="text/html; charset=utf-8")


def render_page(
    store: EmulatorStore, search: Search, fields: FieldOrder, now: datetime | None = None
) -> str:
    """The whole page as HTML; ``now`` (UTC) tells whether a run goes on."""
    # Each section reads the store again: from one snapshot, so that a run writing meanwhile
    # cannot make one count disagree with another.
    with store.snapshot():
        return _page(store, search, fields, now or datetime.now(timezone.utc))


def _page(store: EmulatorStore, search: Search, fields: FieldOrder, now: datetime) -> str:
    requests = store.requests()
    running = _running(requests, now)
    deals = store.deal_records()
    unlinked = store.unlinked_deal_ids()
    stats = store.stats()
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if running else "",
        "<title>What Recotap holds: recotap-emulator</title>",
        f"<style>{STYLE}</style></head><body>",
        "<header><h1>What Recotap holds</h1>",
        _run_line(store, requests, running, search),
        _totals(stats),
        _unlinked_line(len(unlinked), len(deals)),
        _search_form(search),
        "</header><main>",
        _accounts_section(store, search, fields),
        _deals_section(store, deals, set(unlinked), search, fields),
        _pipelines_section(store, search),
        _activities_section(store, search, fields),
        _requests_section(requests, stats),
        "</main></body></html>",
    ]
    return "\n".join(part for part in parts if part)


# Header


def _running(requests: Sequence[Mapping[str, Any]], now: datetime) -> bool:
    if not requests:
        return False
    last = datetime.fromisoformat(requests[-1]["timestamp"].replace("Z", "+00:00"))
    return (now - last).total_seconds() <= RUNNING_WITHIN


def _run_line(
    store: EmulatorStore, requests: Sequence[Mapping[str, Any]], running: bool, search: Search
) -> str:
    where = "in memory" if store.path == ":memory:" else f"in {store.path}"
    if running:
        state = f"A run is going on: this page reloads every {REFRESH_SECONDS} s."
    elif requests:
        state = f"Last request at {_time(requests[-1]['timestamp'])} UTC; no run is going on."
    else:
        state = "No API request yet."
    return (
        f"<p>The local Recotap emulator's data, {_e(where)}. {_e(state)}"
        f' <a href="{_e(search.link())}">Refresh</a></p>'
    )


def _totals(stats: Mapping[str, Any]) -> str:
    items = [
        f'<li><a href="#{kind}"><span id="total-{kind}">{stats[kind]:,}</span>'
        f" {_noun(stats[kind], noun)}</a></li>"
        for kind, noun in (
            ("accounts", "account"),
            ("deals", "deal"),
            ("pipelines", "pipeline"),
            ("activities", "sales activity"),
            ("requests", "API request"),
        )
    ]
    return f'<ul id="totals">{"".join(items)}</ul>'


def _unlinked_line(unlinked: int, deals: int) -> str:
    if not unlinked:
        text = f"None of the {deals:,} deals names a domain Recotap has no account for."
        return f'<p id="unlinked-summary">{_e(text)}</p>'
    deal_word = "deal names" if deals == 1 else "deals name"
    return (
        f'<p id="unlinked-summary"><strong class="flag">{unlinked:,} of {deals:,} {deal_word}'
        f" a domain Recotap has no account for</strong> ({_e(UNLINKED_MEANING)})."
        f' <a href="{_e(Search(unlinked_only=True).link())}#deals">Show only those</a></p>'
    )


def _search_form(search: Search) -> str:
    checked = " checked" if search.unlinked_only else ""
    return (
        '<form method="get" action="/" role="search">'
        '<label for="q">Find accounts, deals, pipelines and activities by ID, domain or'
        " name</label> "
        f'<input id="q" name="q" type="search" size="30" value="{_e(search.text)}"> '
        f'<label><input type="checkbox" name="unlinked" value="1"{checked}>'
        " only unlinked deals</label> "
        '<button type="submit">Search</button> <a href="/">Show all</a></form>'
    )


# Sections


def _accounts_section(store: EmulatorStore, search: Search, fields: FieldOrder) -> str:
    records = store.account_records()
    usage = store.account_usage()
    labels = {key: field["label"] for key, field in store.custom_fields(active_only=False).items()}
    accounts = [record["account"] for record in records]
    own = [f for f in present_fields(accounts, fields.accounts) if f != "customFields"]
    headers = [*own, "custom fields", "rtp_aid", "segments", "deals linked", "activities", "writes"]
    matching = [
        record
        for record in records
        if search.matches(
            (record["domain"], record["rtp_aid"], *_values(record["account"], *_ACCOUNT_KEYS))
        )
    ]
    rows = [
        _row(
            record["domain"],
            [
                *(_cell(record["account"].get(name)) for name in own),
                _custom_fields_cell(record["account"].get("customFields") or {}, labels),
                _cell(record["rtp_aid"]),
                _cell(", ".join(record["segments"])),
                _number(usage.get(record["domain"], {}).get("deals", 0)),
                _number(usage.get(record["domain"], {}).get("activities", 0)),
                _number(record["version"]),
            ],
        )
        for record in matching[:MAX_ROWS]
    ]
    return _section("accounts", "Accounts", len(records), len(matching), search, headers, rows)


_ACCOUNT_KEYS = ("name", "externalId", "shortName")


def _deals_section(
    store: EmulatorStore,
    records: Sequence[Mapping[str, Any]],
    unlinked: set[str],
    search: Search,
    fields: FieldOrder,
) -> str:
    links = store.deal_links()
    own = present_fields([record["deal"] for record in records], fields.deals)
    # The ID, the name and how the deal is linked come first: a wide table scrolls the rest.
    first = [name for name in ("externalDealId", "name") if name in own]
    rest = [name for name in own if name not in (*first, "associatedAccounts")]
    matching = [
        record
        for record in records
        if (not search.unlinked_only or record["externalDealId"] in unlinked)
        and search.matches(_deal_values(record["deal"], links.get(record["externalDealId"], {})))
    ]
    rows = []
    for record in matching[:MAX_ROWS]:
        external_id = record["externalDealId"]
        deal_links = links.get(external_id, {})
        cells = [
            *(_cell(record["deal"].get(name)) for name in first),
            _link_state(external_id in unlinked, bool(deal_links)),
            _associated_cell(record["deal"].get("associatedAccounts") or [], deal_links),
            *(_cell(record["deal"].get(name)) for name in rest),
            _number(record["version"]),
        ]
        rows.append(_row(external_id, cells, "unlinked" if external_id in unlinked else ""))
    headers = [*first, "link", "associatedAccounts", *rest, "writes"]
    return _section("deals", "Deals", len(records), len(matching), search, headers, rows)


def _deal_values(deal: Mapping[str, Any], links: Mapping[str, bool]) -> list[Any]:
    accounts = deal.get("associatedAccounts") or []
    named = [a.get(key) for a in accounts if isinstance(a, dict) for key in _ACCOUNT_NAMES]
    return [deal.get("externalDealId"), deal.get("name"), *links, *named]


_ACCOUNT_NAMES = ("domain", "externalId", "name")


def _link_state(unlinked: bool, named: bool) -> str:
    if unlinked:
        return f'<td><span class="flag" title="{_e(UNLINKED_MEANING)}">✗ unlinked</span></td>'
    return "<td>✓ linked</td>" if named else "<td>no domain</td>"


def _associated_cell(accounts: Sequence[Any], links: Mapping[str, bool]) -> str:
    """Each account the deal names: its cleaned domain, linked or not, as sent if that differs."""
    items = []
    for account in accounts:
        if not isinstance(account, dict):
            continue
        sent = account.get("domain")
        domain = clean_domain(sent) if isinstance(sent, str) else ""
        others = ", ".join(
            f"{key} {account[key]}" for key in ("externalId", "name") if key in account
        )
        if not domain:
            text = f"{others} (no domain: nothing to link by)" if others else "(no domain)"
            items.append(f"<li>{_e(text)}</li>")
            continue
        as_sent = f" (sent as {sent})" if sent != domain else ""
        label = _e(f"{domain}{as_sent}")
        if links.get(domain) is False:
            items.append(f'<li><span class="flag">{label}: UNLINKED</span></li>')
        else:
            items.append(f"<li>{label}: linked</li>")
    return f"<td><ul>{''.join(items)}</ul></td>" if items else "<td></td>"


def _pipelines_section(store: EmulatorStore, search: Search) -> str:
    pipelines = list(store.pipelines().values())
    matching = [
        pipeline
        for pipeline in pipelines
        if search.matches(
            [
                pipeline["pipelineId"],
                pipeline["pipelineLabel"],
                *(value for stage in pipeline["stages"] for value in stage.values()),
            ]
        )
    ]
    rows = [
        _row(
            pipeline["pipelineId"],
            [
                _cell(pipeline["pipelineId"]),
                _cell(pipeline["pipelineLabel"]),
                "<td><ol>"
                + "".join(
                    f"<li>{_e(stage['stageLabel'])} ({_e(stage['stageId'])})</li>"
                    for stage in pipeline["stages"]
                )
                + "</ol></td>",
            ],
        )
        for pipeline in matching[:MAX_ROWS]
    ]
    headers = ["pipelineId", "pipelineLabel", "stages, in order"]
    return _section("pipelines", "Pipelines", len(pipelines), len(matching), search, headers, rows)


def _activities_section(store: EmulatorStore, search: Search, fields: FieldOrder) -> str:
    activities = list(store.activities().values())
    accounts = store.accounts()
    own = present_fields(activities, fields.activities)
    matching = [
        activity
        for activity in activities
        if search.matches(
            [
                clean_domain(str(activity["domain"])),
                *_values(activity, "externalActivityId", "domain", "accountName", "subject"),
            ]
        )
    ]
    rows = []
    for activity in matching[:MAX_ROWS]:
        account = accounts.get(clean_domain(str(activity["domain"])))
        held = (
            _cell(f"{account['name']} ({account['domain']})")
            if account is not None
            else '<td><span class="flag">no account with this domain</span></td>'
        )
        cells = [held, *(_activity_cell(activity, name) for name in own)]
        rows.append(_row(activity["externalActivityId"], cells))
    headers = ["account", *own]
    count = len(activities)
    return _section("activities", "Sales activities", count, len(matching), search, headers, rows)


def _activity_cell(activity: Mapping[str, Any], name: str) -> str:
    value = activity.get(name)
    if name == "contacts":
        people = [_person(contact) for contact in value or [] if isinstance(contact, dict)]
        return "<td><ul>" + "".join(f"<li>{_e(person)}</li>" for person in people) + "</ul></td>"
    if name == "from" and isinstance(value, dict):
        return _cell(_person(value))
    return _cell(value)


def _person(contact: Mapping[str, Any]) -> str:
    name, email = contact.get("name"), contact.get("email")
    return f"{name} <{email}>" if name and email else str(name or email or "")


def _requests_section(requests: Sequence[Mapping[str, Any]], stats: Mapping[str, Any]) -> str:
    summary = (
        f"{stats['requests']:,} {_noun(stats['requests'], 'API request')}:"
        f" {stats['rateLimited']:,} answered 429,"
        f" {stats['serverErrors']:,} answered 5xx, {stats['lost']:,} with the response lost;"
        f" {stats['injected']:,} with a fault the emulator injected. Latest first."
    )
    rows = [
        _row(
            str(entry["seq"]),
            [
                _number(entry["seq"]),
                _cell(_time(entry["timestamp"])),
                _cell(entry["endpoint"]),
                _number(entry["items"]),
                _cell("pending" if entry["status"] is None else entry["status"]),
                _cell(entry["fault"]),
            ],
            "faulty" if entry["fault"] else "",
        )
        for entry in reversed(requests[-MAX_ROWS:])
    ]
    headers = ["#", "time (UTC)", "endpoint", "items", "status", "fault injected"]
    shown = f"<p>The latest {MAX_ROWS:,} of them.</p>" if len(requests) > MAX_ROWS else ""
    return (
        f'<section id="requests"><h2>Request log</h2><p>{_e(summary)}</p>{shown}'
        f"{_table(headers, rows)}</section>"
    )


# Building blocks


def _section(
    anchor: str,
    title: str,
    total: int,
    matching: int,
    search: Search,
    headers: Sequence[str],
    rows: Sequence[str],
) -> str:
    count = f"{matching:,} of {total:,} match" if search.active else f"{total:,}"
    notes = []
    if matching > MAX_ROWS:
        notes.append(f"<p>The first {MAX_ROWS:,} shown: search to find the others.</p>")
    if not rows:
        notes.append("<p>None.</p>" if not total else "<p>None matches.</p>")
    table = _table(headers, rows) if rows else ""
    return (
        f'<section id="{anchor}"><h2>{_e(title)} <small class="count">({count})</small></h2>'
        f"{''.join(notes)}{table}</section>"
    )


def _table(headers: Sequence[str], rows: Sequence[str]) -> str:
    head = "".join(f"<th>{_e(header)}</th>" for header in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _row(record_id: str, cells: Iterable[str], css_class: str = "") -> str:
    attributes = f' class="{css_class}"' if css_class else ""
    return f'<tr data-id="{_e(record_id)}"{attributes}>{"".join(cells)}</tr>'


def _cell(value: Any) -> str:
    return f"<td>{_e(value)}</td>"


def _number(value: int) -> str:
    return f'<td class="number">{value:,}</td>'


def _custom_fields_cell(values: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    items = "".join(
        f"<li>{_e(labels.get(key, key))} ({_e(key)}): {_e(value)}</li>"
        for key, value in values.items()
    )
    return f"<td><ul>{items}</ul></td>" if items else "<td></td>"


def _values(record: Mapping[str, Any], *names: str) -> list[Any]:
    return [record.get(name) for name in names]


def _noun(count: int, singular: str) -> str:
    if count == 1:
        return singular
    return singular[:-1] + "ies" if singular.endswith("y") else singular + "s"


def _time(timestamp: str) -> str:
    return timestamp.replace("T", " ").removesuffix("Z")


def _e(value: Any) -> str:
    """``value`` as text, escaped for HTML (quotes too: the same text goes into attributes)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return html.escape(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return html.escape(", ".join(value))  # tags
    if isinstance(value, (list, dict, bool)):
        return html.escape(msgspec.json.encode(value).decode())
    return html.escape(str(value))
