"""The deals stream: upserts through POST /deals, at most 100 a request."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from target_recotap.endpoints import ACCOUNTS, DEALS
from target_recotap.normalize import (
    DEAL_ID_NAMES,
    DOUBLE_DIGITS,
    JSONNumber,
    deal_body,
    imprecise_amount,
)
from target_recotap.sinks.merging import MergedItem, MergingSink

if TYPE_CHECKING:
    from collections.abc import Iterable, Set

    from target_recotap.flow import Key
    from target_recotap.settlement import Received


class DealsSink(MergingSink):
    """Buffers one item per ``externalDealId``, its versions merged, and sends full batches."""

    endpoint = DEALS
    id_fields = DEAL_ID_NAMES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._warned_imprecise = False  # one warning a run is enough to explain them all

    def add(self, record: dict[str, Any], received: Received) -> None:
        body = deal_body(record)
        key = body["externalDealId"]
        if not self._warned_imprecise and "amount" in body and imprecise_amount(body["amount"]):
            self._warn_imprecise(key, body["amount"])
        self.buffer(key, body, received)

    def waits_for(self, item: MergedItem) -> tuple[Iterable[Key], Set[str]]:
        """The accounts of the deal's domains: any request of them in flight when the deal's
        batch would start (one of an account read later too: waiting for it costs little and
        needs no bookkeeping), and those read before the deal and still buffered. Recotap
        links a deal to the accounts it holds when the deal is written, and stores it unlinked
        otherwise. The domains of every version count: a merged deal Recotap refuses is sent
        again version by version, in the same job."""
        accounts = self.accounts_for_deals.sink
        if accounts is None:  # no account read yet: none to wait for
            return (), set()
        domains = set().union(*map(_domains, item.versions or [item.body]))
        if not domains:
            return (), set()
        position = item.sources[-1].position
        buffered = {domain for domain in domains if accounts.buffered_before(domain, position)}
        return [(ACCOUNTS.stream, domain) for domain in domains], buffered

    def send_waited_for(self, items: Set[str]) -> None:
        """Send the buffered accounts these deals wait for: they would else wait until the
        accounts batch fills, or the input ends."""
        accounts = self.accounts_for_deals.sink
        if accounts is not None:
            accounts.send_before(items)

    def _warn_imprecise(self, key: str, amount: JSONNumber) -> None:
        self._warned_imprecise = True
        self.logger.warning(
            "Deal %r: amount %s has more than %d significant digits; Recotap stores amounts as "
            "doubles, so it will hold %r. It is sent as read; other amounts like it in this run "
            "get no further warning",
            key,
            amount,
            DOUBLE_DIGITS,
            float(amount),
        )


def _domains(body: dict[str, Any]) -> set[str]:
    """The cleaned domains a deal's associated accounts name."""
    return {
        account["domain"] for account in body.get("associatedAccounts", ()) if "domain" in account
    }
