"""The emulator's page at `/`, over plain HTTP: what it shows of the store, escaped, searchable,
without the API key; the request log's injected faults; and the store's queries behind it.
tests/test_page_browser.py looks at it in a real browser."""

from __future__ import annotations

import html
import http.client
import re
import select
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone

import pytest
import requests
from support import free_port

from recotap_emulator import EmulatorServer, EmulatorStore, Faults
from recotap_emulator.app import PAGE_FIELDS
from recotap_emulator.page import REFRESH_SECONDS, RUNNING_WITHIN, Search, render_page

TIMEOUT = 5
SECRET_KEY = "sk-page-3f9c1a77e2"
BATCHES_WRITTEN = 60
HTML_NAME = "<script>alert('x')</script> & <b>\"bold\"</b>"


@pytest.fixture
def server():
    store = EmulatorStore(":memory:")
    with EmulatorServer(store=store, api_key=SECRET_KEY, faults=Faults()) as running:
        yield running
    store.close()


def post(server, path: str, body: dict) -> requests.Response:
    return requests.post(
        server.url + path, json=body, headers={"X-Api-Key": SECRET_KEY}, timeout=TIMEOUT
    )


def fill(server) -> None:
    """Two accounts, four deals (one unlinked, one named in HTML), a pipeline, two activities."""
    accounts = [
        {"domain": "acme.com", "name": "Acme"},
        {"domain": "https://www.Globex.example/", "name": "Globex"},
    ]
    assert post(server, "/accounts", {"accounts": accounts, "upsert": True}).ok
    deals = [
        {
            "externalDealId": "d-1",
            "name": "Acme deal",
            "associatedAccounts": [{"domain": "acme.com"}],
        },
        {
            "externalDealId": "d-2",
            "name": "Lost deal",
            "associatedAccounts": [{"domain": "acme.com"}, {"domain": "www.Nowhere.example"}],
        },
        {"externalDealId": 'd-"3"', "name": HTML_NAME},
        {"externalDealId": "d-4", "name": "Globex deal", "amount": 12.5},
    ]
    assert post(server, "/deals", {"deals": deals}).ok
    stages = [{"stageId": "s1", "stageLabel": "Open"}, {"stageId": "s2", "stageLabel": "Won"}]
    pipeline = {"pipelineId": "p-1", "pipelineLabel": "Sales", "stages": stages}
    assert post(server, "/deal-stages", {"pipelines": [pipeline]}).status_code == 201
    call = {
        "activityType": "call",
        "occurredAt": "2026-04-22T10:30:00Z",
        "ownerEmail": "jane@yourcompany.com",
        "contacts": [{"email": "john@acme.com", "name": "John"}],
    }
    activities = [
        {**call, "externalActivityId": "a-1", "domain": "acme.com"},
        {**call, "externalActivityId": "a-2", "domain": "elsewhere.example"},
    ]
    assert post(server, "/sales-activities", {"activities": activities}).ok


def page(server, **query: str) -> requests.Response:
    response = requests.get(server.page_url, params=query, timeout=TIMEOUT)
    assert response.status_code == 200
    return response


def section(body: str, anchor: str) -> str:
    """The HTML of one section of the page."""
    return body.split(f'<section id="{anchor}">', 1)[1].split("</section>", 1)[0]


def rows(body: str, anchor: str) -> list[str]:
    """The data-id of each row of a section's table, in order."""
    found = re.findall(r'<tr data-id="([^"]*)"', section(body, anchor))
    return [html.unescape(record_id) for record_id in found]


def row(body: str, record_id: str) -> str:
    found = re.search(rf'<tr data-id="{re.escape(html.escape(record_id))}"[^>]*>.*?</tr>', body)
    assert found, record_id
    return found.group(0)


def test_the_page_is_html_without_a_key_and_is_not_logged(server):
    fill(server)
    logged = server.store.requests()

    response = page(server)

    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.text.startswith("<!doctype html>")
    assert SECRET_KEY not in response.text
    assert server.store.requests() == logged  # the API's request log only


def test_every_value_is_escaped_in_text_and_attributes(server):
    fill(server)

    body = page(server).text

    assert "<script>" not in body
    assert "<b>" not in body
    assert html.escape(HTML_NAME) in body
    assert '<tr data-id="d-&quot;3&quot;">' in body


def test_the_page_shows_each_record_and_the_store_s_counts(server):
    fill(server)

    body = page(server).text

    assert rows(body, "accounts") == ["acme.com", "globex.example"]
    assert rows(body, "deals") == ["d-1", "d-2", 'd-"3"', "d-4"]
    assert rows(body, "pipelines") == ["p-1"]
    assert rows(body, "activities") == ["a-1", "a-2"]
    assert rows(body, "requests") == ["4", "3", "2", "1"]  # latest first
    for kind, count in [("accounts", 2), ("deals", 4), ("pipelines", 1), ("activities", 2)]:
        assert f'<span id="total-{kind}">{count}</span>' in body
    assert "1 of 4 deals name a domain Recotap has no account for" in body
    # The account's own deals and activities; the stages in their order.
    assert row(body, "acme.com").endswith(
        '<td class="number">2</td><td class="number">1</td><td class="number">1</td></tr>'
    )
    assert "<ol><li>Open (s1)</li><li>Won (s2)</li></ol>" in row(body, "p-1")
    assert "no account with this domain" in row(body, "a-2")
    assert "no account with this domain" not in row(body, "a-1")


def test_an_unlinked_deal_is_marked_with_the_domain_that_has_no_account(server):
    fill(server)

    body = page(server).text

    unlinked = row(body, "d-2")
    assert 'class="unlinked"' in unlinked
    assert "✗ unlinked" in unlinked
    assert "<li>acme.com: linked</li>" in unlinked
    assert "nowhere.example (sent as www.Nowhere.example): UNLINKED" in unlinked
    assert 'class="unlinked"' not in row(body, "d-1")
    assert "✓ linked" in row(body, "d-1")
    assert "no domain" in row(body, "d-4")


@pytest.mark.parametrize(
    ("query", "accounts", "deals", "activities"),
    [
        ({"q": "d-2"}, [], ["d-2"], []),
        ({"q": "ACME.com"}, ["acme.com"], ["d-1", "d-2"], ["a-1"]),
        ({"q": "https://www.globex.example/about"}, ["globex.example"], [], []),  # cleaned
        ({"q": "nowhere"}, [], ["d-2"], []),
        ({"q": "Globex"}, ["globex.example"], ["d-4"], []),  # a name
        ({"unlinked": "1"}, ["acme.com", "globex.example"], ["d-2"], ["a-1", "a-2"]),
        ({"q": "d-1", "unlinked": "1"}, [], [], []),
    ],
)
def test_a_search_keeps_the_records_it_names(server, query, accounts, deals, activities):
    fill(server)

    body = page(server, **query).text

    assert rows(body, "accounts") == accounts
    assert rows(body, "deals") == deals
    assert rows(body, "activities") == activities
    assert rows(body, "requests") == ["4", "3", "2", "1"]  # the log is not searched
    assert f"({len(deals)} of 4 match)" in body
    assert f'value="{html.escape(query.get("q", ""))}"' in body  # the box keeps the search


def test_the_page_reloads_itself_only_while_a_run_goes_on(server):
    fill(server)
    last = datetime.fromisoformat(server.store.requests()[-1]["timestamp"].replace("Z", "+00:00"))
    refresh = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'

    during = render_page(server.store, Search(), PAGE_FIELDS, now=last + timedelta(seconds=1))
    after = render_page(
        server.store, Search(), PAGE_FIELDS, now=last + timedelta(seconds=RUNNING_WITHIN + 1)
    )
    empty = EmulatorStore(":memory:")
    try:
        before = render_page(empty, Search(), PAGE_FIELDS, now=datetime.now(timezone.utc))
    finally:
        empty.close()

    assert refresh in during
    assert refresh not in after
    assert "no run is going on" in after
    assert refresh not in before
    assert "No API request yet" in before
    assert '<a href="/">Refresh</a>' in after  # a reload by hand, always


def test_a_head_request_is_answered_without_a_body_on_a_connection_kept_open(server):
    # A body after HEAD's headers would be read as the start of the next answer on the
    # connection (curl -I, link checkers and monitors send HEAD).
    fill(server)
    connection = http.client.HTTPConnection(server.host, server.port, timeout=TIMEOUT)
    try:
        connection.request("HEAD", "/")
        head = connection.getresponse()
        assert head.status == 200
        assert head.read() == b""
        connection.request("GET", "/")
        page = connection.getresponse()
        assert page.status == 200
        body = page.read()
        assert int(head.getheader("Content-Length")) == len(body)
        assert b"What Recotap holds" in body
    finally:
        connection.close()


def test_an_empty_store_says_so(server):
    body = page(server).text

    assert "None of the 0 deals names a domain" in body
    assert body.count("<p>None.</p>") == 4


def test_the_page_s_log_marks_the_requests_with_an_injected_fault(server):
    server.faults.script.extend(["429", "ok"])
    for _ in range(2):
        post(server, "/deals", {"deals": [{"externalDealId": "d-1", "name": "x"}]})

    body = page(server).text

    assert "2 API requests: 1 answered 429, 0 answered 5xx" in body
    assert "1 with a fault the emulator injected" in body
    assert '<tr data-id="1" class="faulty">' in row(body, "1")
    assert "<td>429</td><td>throttled</td>" in row(body, "1")
    assert 'class="faulty"' not in row(body, "2")


def test_the_store_tells_unlinked_deals_and_what_hangs_on_each_account():
    store = EmulatorStore(":memory:")
    try:
        store.write_accounts(
            [{"domain": "acme.com", "name": "A"}, {"domain": "b.example", "name": "B"}],
            upsert=False,
            segment_id=None,
            seq=1,
        )
        named = [{"domain": "www.acme.com"}, {"domain": "nowhere.example"}]
        store.upsert_deals(
            [
                {"externalDealId": "both", "name": "x", "associatedAccounts": named},
                {"externalDealId": "acme", "name": "x", "associatedAccounts": named[:1]},
                {"externalDealId": "none", "name": "x"},
            ],
            seq=2,
        )
        activity = {"externalActivityId": "a-1", "domain": "https://ACME.com/"}
        store.create_activities([activity, {"externalActivityId": "a-2", "domain": "z.io"}], 3)

        assert store.unlinked_deal_ids() == ["both"]
        assert store.account_usage() == {
            "acme.com": {"deals": 2, "activities": 1},
            "b.example": {"deals": 0, "activities": 0},
        }
        # Written again with accounts Recotap holds, the deal is linked.
        store.upsert_deals(
            [{"externalDealId": "both", "name": "x", "associatedAccounts": named[:1]}], seq=4
        )
        assert store.unlinked_deal_ids() == []
    finally:
        store.close()


def test_every_count_on_a_page_agrees_while_a_run_writes():
    # A render reads the store many times; a writer between two of those reads made one page
    # say "18,100 of 18,000 deals".
    store = EmulatorStore(":memory:")

    def write(batch: int) -> None:
        seq = store.begin_request("POST /deals", 100)
        unlinked = [{"domain": f"nowhere-{batch}.example"}]
        deals = [
            {"externalDealId": f"d-{batch}-{n}", "name": "x", "associatedAccounts": unlinked}
            for n in range(100)
        ]
        store.upsert_deals(deals, seq)
        store.finish_request(seq, 200)

    write(0)  # every page has deals to count
    writer = threading.Thread(target=lambda: [write(batch) for batch in range(1, BATCHES_WRITTEN)])
    writer.start()
    pages = []
    try:
        while writer.is_alive():
            pages.append(render_page(store, Search(), PAGE_FIELDS))
    finally:
        writer.join()
        store.close()

    assert len(pages) > 5, "too few pages rendered while the writer ran to tell"
    for body in pages:
        deals = _number_in(body, r'<span id="total-deals">([\d,]+)</span>')
        assert _number_in(section(body, "deals"), r'<small class="count">\(([\d,]+)\)') == deals
        unlinked = re.search(r'id="unlinked-summary">.*?([\d,]+) of ([\d,]+) deals', body)
        assert unlinked, "no count of unlinked deals"
        assert unlinked.group(1) == unlinked.group(2) == f"{deals:,}"  # every deal is unlinked
        requests_made = _number_in(body, r'<span id="total-requests">([\d,]+)</span>')
        assert _number_in(section(body, "requests"), r"<p>([\d,]+) API requests:") == requests_made
        assert rows(body, "requests")[0] == str(requests_made)  # the latest one
        # A request is logged before its deals are written: the page may fall between the two.
        assert deals in (100 * (requests_made - 1), 100 * requests_made)


def test_a_snapshot_of_a_file_holds_while_another_connection_writes_it(tmp_path):
    # `show` reads the file that `serve --db` may be writing.
    path = tmp_path / "emulator.sqlite"
    writer = EmulatorStore(path)
    reader = EmulatorStore(path, read_only=True)
    try:
        writer.upsert_deals([{"externalDealId": "d-1", "name": "x"}], seq=1)
        with reader.snapshot():
            before = reader.deals()
            written = threading.Thread(
                target=writer.upsert_deals, args=([{"externalDealId": "d-2", "name": "x"}], 2)
            )
            written.start()
            written.join(0.3)  # long enough for the write to land, were nothing holding it
            assert reader.deals() == before
        written.join()
        assert list(reader.deals()) == ["d-1", "d-2"]
    finally:
        reader.close()
        writer.close()


def _number_in(text: str, pattern: str) -> int:
    found = re.search(pattern, text)
    assert found, pattern
    return int(found.group(1).replace(",", ""))


@pytest.mark.skipif(sys.platform == "win32", reason="uses select() on a pipe")
def test_serve_prints_the_page_s_address_and_says_when_its_port_is_taken(tmp_path):
    port = free_port()
    command = [sys.executable, "-m", "recotap_emulator", "--port", str(port), "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([process.stdout], [], [], 10)
        assert ready, "the emulator printed nothing within 10 s"
        process.stdout.readline()
        page_line = process.stdout.readline()
        assert page_line == f"What it holds, as a page: http://127.0.0.1:{port}/\n"
        answer = requests.get(f"http://127.0.0.1:{port}/", timeout=TIMEOUT)
        assert answer.status_code == 200
        assert "What Recotap holds" in answer.text

        taken = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        assert taken.returncode == 2
        assert f"cannot listen on 127.0.0.1:{port}" in taken.stderr
        assert "Traceback" not in taken.stderr
    finally:
        process.terminate()
        process.communicate(timeout=10)
