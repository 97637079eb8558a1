"""The accounts stream: POST /accounts, at most 100 a request, one item per cleaned domain.

Accounts go with ``upsert: true``, so that a re-run updates them. An API that refuses the
property (an older version) turns the rest of the run create-only, where an account Recotap
holds already is skipped as existing. Custom-field keys Recotap lacks would fail the whole
account: they are left out (or, with ``create_custom_fields``, created first), and counted.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from target_recotap.addresses import clean_domain
from target_recotap.endpoints import ACCOUNTS, ACCOUNTS_CREATE_ONLY, Endpoint, WriteMode
from target_recotap.errors import RequestRejected, SettingRefused
from target_recotap.normalize import ACCOUNT_ID_NAMES, account_body, custom_field_label
from target_recotap.sinks.merging import MergingSink
from target_recotap.wording import plural

if TYPE_CHECKING:
    import logging
    from collections.abc import Mapping, Sequence

    from target_recotap.settlement import Received
    from target_recotap.sinks.base import Item
    from target_recotap.sinks.context import RecotapApi

# Why a custom-field key is left out of the accounts that carry it, as the end-of-run warning
# words it after the key.
NOT_ACTIVE = "is not among Recotap's active ones"
NOT_CREATED = f"{NOT_ACTIVE} (set create_custom_fields to create it)"
NO_LABEL = (
    f"{NOT_ACTIVE}, and cannot be created: Recotap derives a key from a label (spaces to _, "
    "upper-cased, _C appended), and no label gives this one"
)


class AccountsSink(MergingSink):
    """Buffers one item per cleaned domain, its versions merged, and sends full batches."""

    endpoint = ACCOUNTS
    id_fields = ACCOUNT_ID_NAMES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._segment_id: str | None = self.config.get("accounts_segment_id")
        self.endpoint = self._endpoint(upsert=bool(self.config["accounts_upsert"]))
        self._mode_lock = threading.Lock()  # the sending threads may all meet a refused upsert
        # Source stream -> the SCHEMA's properties of customFields, which type a created field.
        self._field_schemas: dict[str, Mapping[str, Any]] = {}
        self._custom_fields = CustomFields(
            self.client, self.logger, create=bool(self.config["create_custom_fields"])
        )
        self._told_dry_run = False
        self.accounts_for_deals.sink = self  # deals wait for the accounts read before them

    def _endpoint(self, *, upsert: bool) -> Endpoint:
        endpoint = ACCOUNTS if upsert else ACCOUNTS_CREATE_ONLY
        if self._segment_id is None:
            return endpoint
        return replace(endpoint, beside={**endpoint.beside, "segmentId": self._segment_id})

    def use_schema(self, source: str, schema: dict, key_properties: Sequence[str] | None) -> None:
        super().use_schema(source, schema, key_properties)
        properties = schema.get("properties") or {}
        custom = properties.get("customFields") or properties.get("custom_fields") or {}
        fields = custom.get("properties") if isinstance(custom, dict) else None
        self._field_schemas[source] = fields if isinstance(fields, dict) else {}

    def record_id(self, record: dict[str, Any]) -> str | None:
        """The domain Recotap would know ``record`` by: cleaned, as the item's key is."""
        text = super().record_id(record)
        if text is None:
            return None
        return clean_domain(text) or None  # a domain that cleans to nothing names nothing

    def add(self, record: dict[str, Any], received: Received) -> None:
        body = account_body(record)
        fields = body.get("customFields")
        if fields is not None:
            if self.dry_run:
                self._tell_dry_run()
            else:
                known = self._custom_fields.known(
                    fields, self._field_schemas.get(received.message["stream"], {})
                )
                if not known:
                    del body["customFields"]
                elif len(known) < len(fields):
                    body["customFields"] = known
        self.buffer(body["domain"], body, received)

    def _tell_dry_run(self) -> None:
        if not self._told_dry_run:
            self._told_dry_run = True
            self.logger.info(
                "Dry run: account custom fields are written as the records name them; a real "
                "run first leaves out those Recotap lacks (GET /accounts/custom-fields)"
            )

    def _send(self, items: list[Item]) -> None:
        endpoint = self.endpoint
        try:
            reply = self.client.push(endpoint, [item.body for item in items])
        except RequestRejected as exc:
            refused = [str(v) for v in exc.violations if v.property == "upsert"]
            if endpoint.mode is WriteMode.UPSERT and refused:
                self._create_only_from_now("; ".join(refused))
                self._send(items)
                return
            if self._segment_id is not None and _about_segment(exc):
                raise SettingRefused(
                    f"Recotap refused the accounts_segment_id setting ({self._segment_id!r}): "
                    f"{exc.custom_message}. Set it to a static segment that is active or draft "
                    "(GET /segments lists them), or leave it out"
                ) from None
            raise
        self.settle_reply(endpoint, items, reply)

    def _create_only_from_now(self, refusal: str) -> None:
        with self._mode_lock:
            if self.endpoint.mode is not WriteMode.UPSERT:
                return  # another request met the refusal first, and said so
            self.endpoint = self._endpoint(upsert=False)
            self.logger.warning(
                "Recotap refused upsert on POST %s (%s): this API creates accounts but cannot "
                "update them. The run goes on create-only: accounts Recotap holds already are "
                "skipped as existing, not updated; updating them needs an API that takes "
                "upsert (accounts_upsert: false goes create-only from the start)",
                self.endpoint.path,
                refusal,
            )

    def log_summary(self) -> None:
        for key, why, count in self._custom_fields.left_out():
            self.logger.warning(
                "Account custom field %r %s: %s sent without it",
                key,
                why,
                plural(count, "account"),
            )
        super().log_summary()


def _about_segment(exc: RequestRejected) -> bool:
    """Whether a refused request is the business error of an unusable segment: it names the
    segment, as the documented one does (``Segment 'abc' is not active or draft ...``)."""
    return not exc.violations and "segment" in (exc.custom_message or "").lower()


class CustomFields:
    """Which account custom-field keys Recotap holds active, listed once a run, as the first
    account that carries one arrives; creates missing ones when asked; counts those left out.

    Used by the reading thread alone.
    """

    def __init__(self, client: RecotapApi, logger: logging.Logger, *, create: bool) -> None:
        self._client = client
        self._logger = logger
        self._create = create
        self._active: set[str] | None = None
        self._why_not: dict[str, str] = {}  # key -> why it is left out, for each one that is
        self._left_out: Counter[str] = Counter()  # key -> accounts sent without it

    def known(self, fields: dict[str, Any], schemas: Mapping[str, Any]) -> dict[str, Any]:
        """``fields`` without the keys Recotap lacks; ``schemas`` types a field created."""
        if self._active is None:
            self._active = set(self._client.account_custom_fields())
        kept = {}
        for key, value in fields.items():
            if key not in self._active and key not in self._why_not:
                self._provide(key, schemas.get(key))
            if key in self._active:
                kept[key] = value
            else:
                self._left_out[key] += 1
        return kept

    def left_out(self) -> list[tuple[str, str, int]]:
        """(key, why, accounts sent without it) for each key left out, as first met."""
        return [(key, self._why_not[key], count) for key, count in self._left_out.items()]

    def _provide(self, key: str, schema: Any) -> None:
        """Create the field ``key`` if asked to and a label yields it; else say why not."""
        assert self._active is not None
        if not self._create:
            self._why_not[key] = NOT_CREATED
            return
        label = custom_field_label(key)
        if label is None:
            self._why_not[key] = NO_LABEL
            return
        label_type = field_type(schema)
        try:
            created = self._client.create_account_custom_field(
                {"label": label, "labelType": label_type}
            )
        except RequestRejected as exc:
            self._why_not[key] = f"{NOT_ACTIVE}, and creating it failed: {exc}"
            return
        if created:
            self._active.add(key)
            self._logger.info(
                "Created account custom field %r in Recotap (label %r, type %s)",
                key,
                label,
                label_type,
            )
            return
        # 409: a field of that key exists now (made since the list was read): read it again.
        self._active = set(self._client.account_custom_fields())
        if key not in self._active:
            self._why_not[key] = (
                f"{NOT_ACTIVE}, and creating it answered 409 (it exists) though Recotap does "
                "not list it as active"
            )


def field_type(schema: Any) -> str:
    """The Recotap ``labelType`` for a custom field whose values ``schema`` describes: a number,
    a date (a string of format date or date-time), else single-line text."""
    if not isinstance(schema, dict):
        return "singleLineText"
    types = schema.get("type")
    types = {types} if isinstance(types, str) else set(types or ())
    if types & {"number", "integer"}:
        return "number"
    if "string" in types and schema.get("format") in ("date", "date-time"):
        return "date"
    return "singleLineText"
