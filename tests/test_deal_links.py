"""Deals linked to their accounts: a deal is written only after the account records read before
it that share one of its domains have settled, since Recotap links a deal to the accounts it
holds when the deal is written (and stores it unlinked otherwise); and it waits no longer."""

from __future__ import annotations

import threading
import time
from typing import Any

from support import (
    LiveTarget,
    config_for,
    deal,
    record,
    run_cli,
    schema,
    state,
    wait_until,
    write_config,
)
from test_account_sinks import FakeAccountsApi, accounts_run
from test_accounts import accounts_messages
from test_sinks import DEAL_SCHEMA, Run

from target_recotap.client import Reply
from target_recotap.endpoints import DEALS, Endpoint
from target_recotap.errors import RequestRejected
from target_recotap.sinks import AccountsSink, DealsSink


def company(n: int) -> dict[str, Any]:
    return {"domain": f"https://www.Company-{n}.example/about", "name": f"Company {n}"}


def deal_of(n: int, company_n: int) -> dict[str, Any]:
    return deal(n, associatedAccounts=[{"domain": f"company-{company_n}.example"}])


def test_a_deal_is_written_after_the_accounts_read_before_it_so_recotap_links_it(
    emulator, tmp_path
):
    # 150 accounts: a full request of 100, then 50 left in the buffer when the deals come. The
    # 100 deals fill a request of their own, naming accounts among those 50: sent as they
    # were, before the accounts, Recotap would store every one of them unlinked.
    emulator.faults.latency_ms = 100
    messages = [
        *accounts_messages([company(n) for n in range(150)]),
        schema("deals"),
        *(record("deals", deal_of(n, 100 + n % 50)) for n in range(100)),
        state({"s": 1}),
    ]
    run = run_cli(["--config", str(write_config(tmp_path, config_for(emulator)))], messages)

    assert run.returncode == 0, run.stderr
    links = emulator.store.deal_links()
    assert len(links) == 100
    assert {
        deal_id: domains for deal_id, domains in links.items() if not all(domains.values())
    } == {}
    assert len(emulator.store.accounts()) == 150


def test_deals_go_as_soon_as_their_accounts_landed_without_waiting_for_the_end(emulator, tmp_path):
    # 30 accounts do not fill a request; 100 deals naming them do. With the input still open,
    # the accounts go at the first deal, the deals once the accounts have landed: all linked.
    emulator.faults.latency_ms = 100
    target = LiveTarget(write_config(tmp_path, config_for(emulator)))
    target.send(
        [
            *accounts_messages([company(n) for n in range(30)]),
            schema("deals"),
            *(record("deals", deal_of(n, n % 30)) for n in range(100)),
        ]
    )
    wait_until(lambda: len(emulator.store.deals()) == 100, "the 100 deals stored", timeout=30)
    links = emulator.store.deal_links()
    assert all(all(domains.values()) for domains in links.values()), links
    target.send([state({"s": 1})])
    code, states, log = target.finish()
    assert code == 0, log
    assert states == [{"s": 1}]


def test_a_deal_naming_no_account_of_this_run_goes_at_once_and_is_stored_unlinked(
    emulator, tmp_path
):
    emulator.faults.latency_ms = 100
    target = LiveTarget(write_config(tmp_path, config_for(emulator)))
    target.send(
        [
            *accounts_messages([company(n) for n in range(30)]),  # buffered: not full
            schema("deals"),
            *(record("deals", deal_of(n, 1000 + n)) for n in range(100)),
        ]
    )
    wait_until(lambda: len(emulator.store.deals()) == 100, "the 100 deals stored", timeout=30)
    # The accounts were not sent for these deals: they share none of their domains.
    assert emulator.store.accounts() == {}
    assert not any(any(domains.values()) for domains in emulator.store.deal_links().values())
    code, _, log = target.finish()
    assert code == 0, log
    assert len(emulator.store.accounts()) == 30


def test_a_deal_waits_for_the_later_version_of_its_account_held_behind_one_in_flight():
    # acme.com v1 is in flight; v2 waits behind it in the accounts buffer. A deal naming
    # acme.com is read: v2 must be sent once v1 lands, and the deal only after v2 has.
    order: list[str] = []
    first_in_flight = threading.Event()
    release_first = threading.Event()

    class Api(FakeAccountsApi):
        def push(self, endpoint: Endpoint, items: list[dict[str, Any]]) -> Reply:
            if endpoint is DEALS:
                order.append("deal")
                return Reply(
                    {
                        "results": [
                            {"externalDealId": d["externalDealId"], "status": "upserted"}
                            for d in items
                        ]
                    }
                )
            name = items[0]["name"]
            if name == "v1":
                first_in_flight.set()
                assert release_first.wait(timeout=10)
            reply = super().push(endpoint, items)
            order.append(name)
            return reply

    run, accounts = accounts_run(Api())
    deals = run.sink(DealsSink, "deals", DEAL_SCHEMA, ["externalDealId"])
    run.read(accounts, {"domain": "acme.com", "name": "v1"})
    accounts.process_batch({})
    assert first_in_flight.wait(timeout=10)
    run.read(accounts, {"domain": "https://www.acme.com", "name": "v2"})
    threading.Timer(0.2, release_first.set).start()  # v1 lands while the deal is being read
    run.read(deals, deal(1, associatedAccounts=[{"domain": "acme.com"}]))
    finish_both(run, deals, accounts)

    assert order == ["v1", "v2", "deal"]
    assert not accounts.buffered_before("acme.com", 10**9)


class Recording(FakeAccountsApi):
    """Writes accounts and deals, refuses a deal named ``Bad``; keeps the order of writes as
    ``stream:name``, and the versions it is asked to send."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[str] = []
        self.in_flight = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def push(self, endpoint: Endpoint, items: list[dict[str, Any]]) -> Reply:
        if endpoint is DEALS:
            if any(d["name"] == "Bad" for d in items):
                raise RequestRejected("400", 400, [])
            self.order += [f"deal:{d['name']}" for d in items]
            return Reply(
                {
                    "results": [
                        {"externalDealId": d["externalDealId"], "status": "upserted"} for d in items
                    ]
                }
            )
        if not self.in_flight.is_set():
            self.in_flight.set()
            assert self.release.wait(timeout=10)
        reply = super().push(endpoint, items)
        self.order += [f"account:{a['name']}" for a in items]
        return reply


def account_in_flight(name: str) -> tuple[Recording, Run, AccountsSink, DealsSink]:
    """A run whose first account write (acme.com, ``name``) is in flight, held there until
    ``api.release`` is set, with a deals sink beside its accounts sink."""
    api = Recording()
    api.release.clear()
    run, accounts = accounts_run(api)
    deals = run.sink(DealsSink, "deals", DEAL_SCHEMA, ["externalDealId"])
    run.read(accounts, {"domain": "acme.com", "name": name})
    accounts.process_batch({})
    assert api.in_flight.wait(timeout=10)
    return api, run, accounts, deals


def finish_both(run: Run, deals: DealsSink, accounts: AccountsSink) -> None:
    """The end of the input: both sinks drained, deals first, and every request answered."""
    run.input.finished = run.input.complete = True
    deals.process_batch({})
    accounts.process_batch({})
    run.dispatcher.wait_all()
    run.dispatcher.close()


def test_a_refused_merged_deal_sent_version_by_version_still_waits_for_each_version_s_accounts():
    # Version 1 names a.com, version 2 b.com and is refused: the merge is sent apart, and
    # version 1 must still come after the a.com account read before it.
    api = Recording()
    run, accounts = accounts_run(api)
    deals = run.sink(DealsSink, "deals", DEAL_SCHEMA, ["externalDealId"])
    run.read(accounts, {"domain": "a.com", "name": "A"})
    run.read(deals, deal(1, name="Good", associatedAccounts=[{"domain": "a.com"}]))
    run.read(deals, deal(1, name="Bad", associatedAccounts=[{"domain": "b.com"}]))
    finish_both(run, deals, accounts)

    assert api.order == ["account:A", "deal:Good"]
    assert run.rejects.total == 1  # the refused version


def test_a_deal_held_for_an_account_behind_one_in_flight_is_waited_for_not_spun_on():
    api, run, accounts, deals = account_in_flight("v1")
    run.read(accounts, {"domain": "acme.com", "name": "v2"})  # held behind v1
    run.read(deals, deal(1, name="D", associatedAccounts=[{"domain": "acme.com"}]))
    looks = []
    send_before = accounts.send_before
    accounts.send_before = lambda keys: (looks.append(keys), send_before(keys))  # type: ignore[method-assign]
    run.input.finished = run.input.complete = True
    draining = threading.Thread(target=deals.process_batch, args=({},))
    draining.start()
    draining.join(timeout=0.5)
    assert draining.is_alive()  # waiting for v1 to land
    assert len(looks) <= 2  # a wait, not a loop asking again and again
    api.release.set()
    draining.join(timeout=10)
    accounts.process_batch({})
    run.dispatcher.wait_all()
    run.dispatcher.close()
    assert api.order == ["account:v1", "account:v2", "deal:D"]


def test_accounts_sent_for_a_deal_fill_one_request_and_the_rest_wait_for_their_batch():
    # 130 accounts buffered (more than a batch: no drain in between), then a deal naming the
    # last of them: its account goes in a full request of 100, the 30 others stay buffered
    # for a later batch (sending them all would cut a request of 30).
    api = Recording()
    run, accounts = accounts_run(api)
    deals = run.sink(DealsSink, "deals", DEAL_SCHEMA, ["externalDealId"])
    for n in range(130):
        run.read(accounts, {"domain": f"c{n}.example", "name": f"C{n}"})
    run.read(deals, deal(1, name="D", associatedAccounts=[{"domain": "c129.example"}]))
    deals.process_batch({})  # a drain while reading goes on
    run.dispatcher.wait_all()

    (request,) = api.bodies
    assert len(request["accounts"]) == 100
    assert "c129.example" in {a["domain"] for a in request["accounts"]}
    still = [n for n in range(130) if accounts.buffered_before(f"c{n}.example", 10**9)]
    assert len(still) == 30
    assert not accounts.is_full
    finish_both(run, deals, accounts)
    assert api.order.index("deal:D") > api.order.index("account:C129")


def test_a_deal_whose_account_is_in_flight_goes_with_its_batch_and_waits_for_it_there():
    api, run, _, deals = account_in_flight("A")
    run.read(deals, deal(1, name="D", associatedAccounts=[{"domain": "acme.com"}]))
    deals.process_batch({})  # a drain while reading: the deal leaves the buffer at once
    assert not deals.buffered_before("deal-1", 10**9)
    time.sleep(0.3)  # time enough for a deal sent too soon to arrive
    assert api.order == []
    api.release.set()
    run.dispatcher.wait_all()
    run.dispatcher.close()

    assert api.order == ["account:A", "deal:D"]


def test_a_drain_while_reading_leaves_an_account_behind_one_in_flight_and_returns():
    # acme.com v2 waits behind v1 in flight; a deal naming it is read, and the deals sink
    # drains while reading goes on: v2 stays in the buffer, and the drain does not wait.
    api, run, accounts, deals = account_in_flight("v1")
    run.read(accounts, {"domain": "acme.com", "name": "v2"})
    run.read(deals, deal(1, name="D", associatedAccounts=[{"domain": "acme.com"}]))
    draining = threading.Thread(target=deals.process_batch, args=({},))
    draining.start()
    draining.join(timeout=5)
    assert not draining.is_alive()  # reading goes on while v1 is in flight
    assert accounts.buffered_before("acme.com", 10**9)
    api.release.set()
    finish_both(run, deals, accounts)

    assert api.order == ["account:v1", "account:v2", "deal:D"]
