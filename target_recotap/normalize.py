"""Turn tap records into Recotap request items.

Pure functions only: no I/O, no state. A record that the API would refuse is reported with
``InvalidRecord`` and a reason a person can act on; everything else becomes a body that holds
exactly what the source said, with absent, null and empty values left out.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from target_recotap.addresses import clean_domain, is_email

if sys.version_info < (3, 11):  # 3.10's own fromisoformat reads only what isoformat writes
    from backports.datetime_fromisoformat import datetime_fromisoformat
else:
    datetime_fromisoformat = dt.datetime.fromisoformat

JSONNumber = int | float | Decimal


class InvalidRecord(ValueError):
    """A record that cannot become a valid request item; the message says why."""


REQUIRED_DEAL_FIELDS = ("externalDealId", "name")
# The names a record's Recotap ID may come under: Recotap's own, then its snake_case twin.
DEAL_ID_NAMES = ("externalDealId", "external_deal_id")
PIPELINE_ID_NAMES = ("pipelineId", "pipeline_id")

_UTC = dt.timezone.utc
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)
# A positive epoch timestamp below this, 1973-01-01 in milliseconds, is taken for epoch
# seconds sent by mistake: as seconds it covers every date from 1970 to the year 4970.
_SECONDS_LIKE_BELOW = 94_694_400_000
# Digits of the epoch milliseconds a string may hold (shorter ones are ISO basic dates).
_EPOCH_DIGITS = range(10, 17)

# Recotap reads every amount as a JavaScript number, a double: what holds no double is
# refused, and past 15 significant digits (DBL_DIG) a double may round.
DOUBLE_DIGITS = 15
_DOUBLE_EXPONENTS = range(-307, 308)  # decimal exponents well inside a double's range
_FIFTEEN_DIGITS = 10**DOUBLE_DIGITS
_NUMBER_RULE = "write it with ASCII digits, an optional sign, decimal point and exponent"


def pick(record: Mapping[str, Any], names: tuple[str, ...]) -> Any:
    """The first value among ``names`` that is present: not None, not only white space."""
    for name in names:
        value = record.get(name)
        # Inlined rather than a helper: this runs for every field of every record.
        if value is not None and not (type(value) is str and (not value or value.isspace())):
            return value
    return None


def to_text(value: Any, field_name: str) -> str:
    """A string field's value as a string: integer IDs become their digits."""
    if isinstance(value, str):
        if not value.isascii():
            _require_utf8(value, field_name)
        return value
    if isinstance(value, bool):
        raise InvalidRecord(f"{field_name} must be a string, got a boolean")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    raise InvalidRecord(f"{field_name} must be a string, got {_describe(value)}")


def _require_utf8(text: str, field_name: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRecord(f"{field_name} holds a lone surrogate, which is not text") from None


def to_amount(value: Any, field_name: str = "amount") -> JSONNumber:
    """A deal amount as a JSON number, exact: integral values become ints.

    Refused: what is not a number, NaN and infinities, numbers no double holds (Recotap would
    read them as infinite or as 0), and strings other than JSON's number syntax, with an
    optional ``+``: not ``75,000``, ``1_000``, nor digits of other scripts (Arabic-Indic,
    full-width).
    """
    if isinstance(value, bool):
        raise InvalidRecord(f"{field_name} must be a number, got a boolean")
    if isinstance(value, int):
        if value.bit_length() > 1023:
            _require_double(value, field_name)
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidRecord(f"{field_name} must be a finite number, got {value!r}")
        return int(value) if value.is_integer() else value
    if isinstance(value, str):
        text = value.strip()
        # Decimal() would also read digit group underscores and any script's digits.
        if not text.isascii() or "_" in text:
            raise InvalidRecord(f"{field_name} {_clip(value)!r} is not a number: {_NUMBER_RULE}")
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise InvalidRecord(
                f"{field_name} {_clip(value)!r} is not a number: {_NUMBER_RULE}"
            ) from None
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidRecord(f"{field_name} must be a finite number, got {value}")
        if value.adjusted() not in _DOUBLE_EXPONENTS:
            _require_double(value, field_name)
        if value == value.to_integral_value():
            return int(value)
        return value
    raise InvalidRecord(f"{field_name} must be a number, got {_describe(value)}")


def _require_double(value: int | Decimal, field_name: str) -> None:
    """Refuse a number that Recotap, reading it as a double, would take for infinite or 0."""
    try:
        double = float(value)  # rounds to the nearest double, as JavaScript reads a number
    except OverflowError:  # an int past the largest double
        double = math.inf
    if math.isinf(double):
        raise InvalidRecord(
            f"{field_name} {Decimal(value):.3E} is beyond the largest number Recotap can hold "
            f"({sys.float_info.max:.3E})"
        )
    if double == 0 and value != 0:
        raise InvalidRecord(
            f"{field_name} {Decimal(value):.3E} is nearer 0 than any number Recotap can hold "
            "(it would store 0)"
        )


def imprecise_amount(amount: JSONNumber) -> bool:
    """Whether ``amount`` has more than 15 significant digits: the double Recotap stores
    may then be another number (it keeps 15 to 17 digits)."""
    if type(amount) is int:
        if -_FIFTEEN_DIGITS < amount < _FIFTEEN_DIGITS:
            return False
    elif type(amount) is Decimal:
        if len(str(amount)) <= DOUBLE_DIGITS:  # str() writes every digit: a cheap bound
            return False
    else:
        return False  # a float is a double already
    mantissa = f"{Decimal(amount):E}".partition("E")[0]
    return len(mantissa.lstrip("-").replace(".", "").rstrip("0")) > DOUBLE_DIGITS


def to_utc_timestamp(value: Any, field_name: str) -> str:
    """A date as ISO 8601 UTC with a ``Z``: ``2026-01-15T00:00:00Z``.

    Accepts date-time strings with any offset (no offset means UTC; ``T24:00`` is the next
    day's midnight), date-only strings (midnight UTC, or at the date's offset if it has one),
    ``datetime``/``date`` objects and epoch milliseconds, as a number or a string of 10 to 16
    ASCII digits. A positive number before 1973 as milliseconds is refused as epoch seconds.
    """
    if isinstance(value, bool):
        raise InvalidRecord(f"{field_name} must be a date, got a boolean")
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, (int, float, Decimal)):
        moment = _from_epoch_ms(value, field_name, str(value))
    elif isinstance(value, str):
        moment = _parse_date_text(value.strip(), field_name)
    else:
        raise InvalidRecord(f"{field_name} must be a date, got {_describe(value)}")
    try:
        return format_utc(moment)
    except OverflowError:
        raise InvalidRecord(f"{field_name} {value!s:.40} is out of range in UTC") from None


def format_utc(moment: dt.datetime) -> str:
    """Render an aware or naive (taken as UTC) datetime as ISO 8601 UTC with a ``Z``."""
    if moment.microsecond:  # milliseconds, as JavaScript's toISOString() writes them
        naive = moment if moment.tzinfo is None else moment.astimezone(_UTC).replace(tzinfo=None)
        return naive.isoformat("T", "milliseconds") + "Z"
    if moment.tzinfo is None:
        return msgspec.to_builtins(moment) + "Z"
    # msgspec writes a UTC datetime as RFC 3339 with a "Z", in C: a third of isoformat's cost.
    return msgspec.to_builtins(moment.astimezone(_UTC))


def _parse_date_text(text: str, field_name: str) -> dt.datetime:
    digits = text[1:] if text[:1] == "-" else text
    if len(digits) in _EPOCH_DIGITS and digits.isdigit() and digits.isascii():
        return _from_epoch_ms(int(text), field_name, repr(text))
    iso = text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text
    if iso[10:11] in ("+", "-"):
        # A date with an offset, as XML Schema writes one: its midnight there. fromisoformat
        # would take the sign for the date-time separator (it takes any) and the offset for
        # the time of day.
        iso = f"{iso[:10]}T00:00{iso[10:]}"
    try:
        if len(iso) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(iso), dt.time())
        if _COLON_FRACTION.search(iso):
            # Python 3.11+ reads "10:30:45:99" as 45.99 seconds (3.10 refuses it); ISO 8601
            # separates a fraction with "." or ",", and Recotap's validator refuses the rest.
            raise ValueError(iso)
        return datetime_fromisoformat(iso.replace(" ", "T", 1))
    except ValueError:
        moment = _end_of_day(iso)
        if moment is None:
            raise InvalidRecord(f"{field_name} {_clip(text)!r} is not an ISO 8601 date") from None
        return moment


_COLON_FRACTION = re.compile(r"\d\d:?\d\d:?\d\d:")


def _end_of_day(iso: str) -> dt.datetime | None:
    """``2026-01-15T24:00:00``, ISO 8601's end of a day (which Recotap takes), is midnight of
    the 16th; None for anything else. Tried only on what fromisoformat refused."""
    if iso[10:13] not in ("T24", " 24"):
        return None
    try:
        start = datetime_fromisoformat(f"{iso[:10]}T00{iso[13:]}")
        return start + dt.timedelta(days=1) if start.time() == dt.time() else None
    except (ValueError, OverflowError):
        return None


def _from_epoch_ms(value: float | Decimal, field_name: str, shown: str) -> dt.datetime:
    """The moment ``value`` milliseconds after the epoch, computed exactly (no float)."""
    try:
        if type(value) is int:
            moment = _EPOCH + dt.timedelta(milliseconds=value)
        else:
            moment = _EPOCH + dt.timedelta(microseconds=int(Decimal(value).scaleb(3)))
    except (OverflowError, ValueError, InvalidOperation):
        raise InvalidRecord(f"{field_name} {shown} is not epoch milliseconds") from None
    if 0 < value < _SECONDS_LIKE_BELOW:
        as_seconds = _EPOCH + dt.timedelta(microseconds=int(Decimal(value).scaleb(6)))
        raise InvalidRecord(
            f"{field_name} {shown} looks like epoch seconds ({format_utc(as_seconds)}), but "
            f"epoch times are read as milliseconds ({format_utc(moment)}): multiply it by "
            "1000, e.g. in a stream map"
        )
    return moment


def to_email(value: Any, field_name: str) -> str:
    """An email without surrounding white space, if Recotap takes it (see ``addresses``)."""
    text = to_text(value, field_name).strip()
    if not is_email(text):
        raise InvalidRecord(f"{field_name} {_clip(text)!r} is not a valid email")
    return text


def to_domain(value: Any, field_name: str) -> str:
    """An account domain, cleaned as Recotap cleans it (``clean_domain``)."""
    text = to_text(value, field_name)
    domain = clean_domain(text)
    if not domain:
        raise InvalidRecord(f"{field_name} {_clip(text)!r} names no domain once cleaned")
    return domain


def deal_body(record: Mapping[str, Any]) -> dict[str, Any]:
    """The Recotap deal for one tap record, or ``InvalidRecord`` saying why it cannot be sent."""
    body = convert_fields(record, DEAL_FIELDS)
    for name in REQUIRED_DEAL_FIELDS:
        if name not in body:
            raise InvalidRecord(f"{name} is missing or empty")
    # Flat account fields (what a stream map can build: a map cannot make a list of objects)
    # become one more associated account.
    account = pop_flat(body, FLAT_ACCOUNT_FIELDS)
    if account:
        body.setdefault("associatedAccounts", []).append(account)
    if body.get("associatedAccounts") == []:
        del body["associatedAccounts"]
    return body


def pop_flat(body: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
    """The flat fields of ``body`` (``fields``: flat name -> the entry's own), taken out of it
    as one entry of a list a stream map cannot build."""
    return {name: body.pop(flat) for flat, name in fields.items() if flat in body}


def associated_accounts(value: Any, field_name: str = "associatedAccounts") -> list[dict[str, str]]:
    """Accounts linked to a deal; a null entry, like an account with no usable field, is
    dropped."""
    if not isinstance(value, list):
        raise InvalidRecord(f"{field_name} must be a list, got {_describe(value)}")
    accounts = []
    for position, item in enumerate(value):
        if item is None:
            continue
        if not isinstance(item, Mapping):
            raise InvalidRecord(
                f"{field_name}[{position}] must be an object, got {_describe(item)}"
            )
        account = convert_fields(item, ACCOUNT_FIELDS, f"{field_name}[{position}].")
        if account:
            accounts.append(account)
    return accounts


Converter = Callable[[Any, str], Any]
FieldTable = dict[str, tuple[str, Converter]]


def field_table(fields: dict[str, tuple[Converter, tuple[str, ...]]]) -> FieldTable:
    """Each name a field may come under (Recotap's own, its twins) -> (own name, converter)."""
    return {
        alias: (name, convert)
        for name, (convert, twins) in fields.items()
        for alias in (name, *twins)
    }


def convert_fields(item: Mapping[str, Any], table: FieldTable, prefix: str = "") -> dict[str, Any]:
    """The fields of ``item`` that ``table`` knows, present (not None, not blank), converted.

    Recotap's own name, when present, wins over its twin, which is then not read at all; a
    reason names the field as the item spells it. Any other field is left out. One pass over
    the item: this runs for every record.
    """
    out: dict[str, Any] = {}
    for key, value in item.items():
        known = table.get(key)
        if (
            known is None
            or value is None
            or (type(value) is str and (not value or value.isspace()))
        ):
            continue
        name, convert = known
        if key != name and pick(item, (name,)) is not None:
            continue
        if convert is to_text and type(value) is str and value.isascii():
            out[name] = value
        else:
            out[name] = convert(value, prefix + key)
    return out


DEAL_FIELDS = field_table(
    {
        DEAL_ID_NAMES[0]: (to_text, DEAL_ID_NAMES[1:]),
        "name": (to_text, ()),
        "amount": (to_amount, ()),
        "stageId": (to_text, ("stage_id",)),
        "stageLabel": (to_text, ("stage_label",)),
        PIPELINE_ID_NAMES[0]: (to_text, PIPELINE_ID_NAMES[1:]),
        "pipelineLabel": (to_text, ("pipeline_label",)),
        "startDate": (to_utc_timestamp, ("start_date",)),
        "closedDate": (to_utc_timestamp, ("closed_date",)),
        "ownerName": (to_text, ("owner_name",)),
        "ownerEmail": (to_email, ("owner_email",)),
        "ownerId": (to_text, ("owner_id",)),
        "dealCurrencyCode": (to_text, ("deal_currency_code",)),
        "associatedAccounts": (associated_accounts, ("associated_accounts",)),
        "accountExternalId": (to_text, ("account_external_id",)),
        "accountDomain": (to_domain, ("account_domain",)),
        "accountName": (to_text, ("account_name",)),
    }
)
FLAT_ACCOUNT_FIELDS = {
    "accountExternalId": "externalId",
    "accountDomain": "domain",
    "accountName": "name",
}
ACCOUNT_FIELDS = field_table(
    {
        "externalId": (to_text, ("external_id",)),
        "domain": (to_domain, ()),
        "name": (to_text, ()),
    }
)


# Pipelines -------------------------------------------------------------------------------


@dataclass
class PipelinePart:
    """What one deal_stages record says about one pipeline."""

    pipeline_id: str
    label: str | None
    # (stageId, stageLabel, order or None) for each stage, as the record lists them.
    stages: list[tuple[str, str, JSONNumber | None]] = field(default_factory=list)


def pipeline_part(record: Mapping[str, Any]) -> PipelinePart:
    """Read a deal_stages record in either shape.

    A pipeline record carries ``stages: [{stageId, stageLabel}]``; a stage record carries
    one ``stageId``/``stageLabel``. ``label`` names the pipeline in the first shape and the
    stage in the second (HubSpot's ``deal_pipelines`` uses it at both levels).
    """
    raw_id = pick(record, PIPELINE_ID_NAMES)
    if raw_id is None:
        raise InvalidRecord("pipelineId is missing or empty")
    pipeline_id = to_text(raw_id, "pipelineId")
    raw_stages = record.get("stages")
    is_stage_record = pick(record, ("stageId", "stage_id")) is not None
    label_names: tuple[str, ...] = ("pipelineLabel", "pipeline_label")
    if not is_stage_record:
        label_names += ("label",)
    raw_label = pick(record, label_names)
    part = PipelinePart(pipeline_id, None if raw_label is None else to_text(raw_label, "label"))
    if raw_stages is not None:
        if not isinstance(raw_stages, list):
            raise InvalidRecord(f"stages must be a list, got {_describe(raw_stages)}")
        for position, stage in enumerate(raw_stages):
            if not isinstance(stage, Mapping):
                raise InvalidRecord(f"stages[{position}] must be an object")
            part.stages.append(_stage(stage, f"stages[{position}]"))
    if is_stage_record:
        part.stages.append(_stage(record, "stage"))
    return part


def _stage(item: Mapping[str, Any], where: str) -> tuple[str, str, JSONNumber | None]:
    raw_id = pick(item, ("stageId", "stage_id"))
    raw_label = pick(item, ("stageLabel", "stage_label", "label"))
    if raw_id is None:
        raise InvalidRecord(f"{where}: stageId is missing or empty")
    if raw_label is None:
        raise InvalidRecord(f"{where}: stageLabel is missing or empty")
    return to_text(raw_id, "stageId"), to_text(raw_label, "stageLabel"), _stage_order(item)


def _stage_order(item: Mapping[str, Any]) -> JSONNumber | None:
    """A stage's place in its pipeline, if it has a finite number for it; anything else is none.

    HubSpot's stages carry ``displayOrder``; the recipes map Pipedrive's ``order_nr`` and
    Salesforce's ``SortOrder`` to it.
    """
    value = pick(item, ("displayOrder", "display_order"))
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value if type(value) is int else None


_KINDS: dict[type, str] = {dict: "an object", list: "a list"}


def _describe(value: Any) -> str:
    return _KINDS.get(type(value), type(value).__name__)


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# Sales activities ------------------------------------------------------------------------

ACTIVITY_ID_NAMES = ("externalActivityId", "external_activity_id")
# The types Recotap loads, compared as written: the reference names them so and says that any
# other value is skipped. Lower-casing ``Call`` would send what Recotap might skip as written;
# the warning for a skipped type says how to map it instead.
ACTIVITY_TYPES = ("call", "email")
REQUIRED_ACTIVITY_FIELDS = (
    ACTIVITY_ID_NAMES[0],
    "activityType",
    "occurredAt",
    "domain",
    "ownerEmail",
    "contacts",
)
CALL_DIRECTIONS = ("inbound", "outbound")


class UnhandledActivityType(Exception):
    """A sales activity of a type Recotap does not load (it would skip it): not sent."""

    def __init__(self, activity_type: str) -> None:
        super().__init__(activity_type)
        self.activity_type = activity_type


def activity_body(record: Mapping[str, Any]) -> dict[str, Any]:
    """The Recotap sales activity for one tap record; ``InvalidRecord`` if Recotap would refuse
    it (a 400 for the whole request), ``UnhandledActivityType`` if it is neither a call nor an
    email.

    An activity is sent the fields of its own type only: whether Recotap ignores a call's
    field on an email, or refuses the request, the reference does not say.
    """
    activity_type = convert_fields(record, ACTIVITY_TYPE_FIELD).get("activityType")
    if activity_type is None:
        raise InvalidRecord("activityType is missing or empty")
    if activity_type not in ACTIVITY_TYPES:
        raise UnhandledActivityType(activity_type)
    body = convert_fields(record, CALL_FIELDS if activity_type == "call" else EMAIL_FIELDS)
    # Flat contact fields (what a stream map can build: a map cannot make a list of objects)
    # become one more contact, held to the same rule as the others: it needs an email.
    contact = pop_flat(body, FLAT_CONTACT_FIELDS)
    if contact:
        if "email" not in contact:
            raise InvalidRecord(f"{FLAT_CONTACT_EMAIL} is missing or empty")
        body.setdefault("contacts", []).append(contact)
    if body.get("contacts") == []:
        raise InvalidRecord("contacts must hold at least one contact")
    for name in REQUIRED_ACTIVITY_FIELDS:
        if name not in body:
            raise InvalidRecord(f"{name} is missing or empty")
    if body.get("from") == {}:  # a sender with no usable field
        del body["from"]
    return body


def activity_contacts(value: Any, field_name: str) -> list[dict[str, Any]]:
    """The people of an activity, each with an email (a null entry is dropped); that there is
    at least one is judged with the flat contact fields (``activity_body``).

    Which contact fields Recotap requires lies beyond the part of the reference available; an
    email on each is the safe assumption.
    """
    if not isinstance(value, list):
        raise InvalidRecord(f"{field_name} must be a list, got {_describe(value)}")
    people = []
    for position, item in enumerate(value):
        if item is None:
            continue
        where = f"{field_name}[{position}]"
        if not isinstance(item, Mapping):
            raise InvalidRecord(f"{where} must be an object, got {_describe(item)}")
        person = convert_fields(item, CONTACT_FIELDS, f"{where}.")
        if "email" not in person:
            raise InvalidRecord(f"{where}.email is missing or empty")
        people.append(person)
    return people


def activity_sender(value: Any, field_name: str) -> dict[str, Any]:
    """An activity's ``from``: a name and an email, either optional (the email must be one)."""
    if not isinstance(value, Mapping):
        raise InvalidRecord(f"{field_name} must be an object, got {_describe(value)}")
    return convert_fields(value, SENDER_FIELDS, f"{field_name}.")


def call_direction(value: Any, field_name: str) -> str:
    """``inbound`` or ``outbound``, as written: Recotap refuses any other value (a 400)."""
    text = to_text(value, field_name)
    if text not in CALL_DIRECTIONS:
        raise InvalidRecord(f"{field_name} {_clip(text)!r} must be 'inbound' or 'outbound'")
    return text


FLAT_CONTACT_EMAIL = "contactEmail"
FLAT_CONTACT_FIELDS = {
    FLAT_CONTACT_EMAIL: "email",
    "contactName": "name",
    "contactExternalId": "externalContactId",
}
_ACTIVITY_TYPE: dict[str, tuple[Converter, tuple[str, ...]]] = {
    "activityType": (to_text, ("activity_type",))
}
ACTIVITY_TYPE_FIELD = field_table(_ACTIVITY_TYPE)
_ACTIVITY_FIELDS: dict[str, tuple[Converter, tuple[str, ...]]] = {
    ACTIVITY_ID_NAMES[0]: (to_text, ACTIVITY_ID_NAMES[1:]),
    **_ACTIVITY_TYPE,
    "occurredAt": (to_utc_timestamp, ("occurred_at",)),
    "domain": (to_domain, ()),
    "ownerEmail": (to_email, ("owner_email",)),
    "contacts": (activity_contacts, ()),
    "accountName": (to_text, ("account_name",)),
    "subject": (to_text, ()),
    "ownerName": (to_text, ("owner_name",)),
    "ownerId": (to_text, ("owner_id",)),
    "from": (activity_sender, ()),
    FLAT_CONTACT_EMAIL: (to_email, ("contact_email",)),
    "contactName": (to_text, ("contact_name",)),
    "contactExternalId": (to_text, ("contact_external_id",)),
}
CALL_FIELDS = field_table(
    {
        **_ACTIVITY_FIELDS,
        "callTitle": (to_text, ("call_title",)),
        "durationMinutes": (to_amount, ("duration_minutes",)),
        "outcome": (to_text, ()),
        "direction": (call_direction, ()),
    }
)
EMAIL_FIELDS = field_table(
    {
        **_ACTIVITY_FIELDS,
        "openCount": (to_amount, ("open_count",)),
        "clickCount": (to_amount, ("click_count",)),
    }
)
CONTACT_FIELDS = field_table(
    {
        "email": (to_email, ()),
        "externalContactId": (to_text, ("external_contact_id",)),
        "name": (to_text, ()),
        "title": (to_text, ()),
        "department": (to_text, ()),
        "seniority": (to_text, ()),
        "phone": (to_text, ()),
        "linkedinUrl": (to_text, ("linkedin_url",)),
    }
)
SENDER_FIELDS = field_table({"email": (to_email, ()), "name": (to_text, ())})
# Accounts --------------------------------------------------------------------------------

REQUIRED_ACCOUNT_FIELDS = ("domain", "name")
# The name a record's Recotap ID (its domain, cleaned) comes under: it has no twin.
ACCOUNT_ID_NAMES = ("domain",)
# Recotap derives a custom field's key from its label: spaces become "_", the rest is
# upper-cased, and this is appended.
CUSTOM_FIELD_KEY_SUFFIX = "_C"


def account_body(record: Mapping[str, Any]) -> dict[str, Any]:
    """The Recotap account for one tap record, or ``InvalidRecord`` saying why it cannot be
    sent. Its ``domain`` is cleaned as Recotap cleans it: the account's key."""
    body = convert_fields(record, ACCOUNT_RECORD_FIELDS)
    for name in REQUIRED_ACCOUNT_FIELDS:
        if name not in body:
            raise InvalidRecord(f"{name} is missing or empty")
    for name in ("tags", "customFields"):
        if name in body and not body[name]:  # nothing left once nulls and blanks went
            del body[name]
    return body


def to_tags(value: Any, field_name: str) -> list[str]:
    """Free-form tags as strings (integer ones become their digits); null and blank entries are
    dropped."""
    if not isinstance(value, list):
        raise InvalidRecord(f"{field_name} must be a list, got {_describe(value)}")
    return [
        to_text(tag, f"{field_name}[{position}]")
        for position, tag in enumerate(value)
        if not _absent(tag)
    ]


def to_custom_fields(value: Any, field_name: str) -> dict[str, Any]:
    """Recotap custom-field key -> value; null and blank values are left out.

    A value is a string, a number Recotap can hold, a boolean, or a list of strings (the
    selection types); anything else is refused, naming the key.
    """
    if not isinstance(value, Mapping):
        raise InvalidRecord(f"{field_name} must be an object, got {_describe(value)}")
    fields: dict[str, Any] = {}
    for key, raw in value.items():
        if _absent(raw):
            continue
        where = f"{field_name}.{key}"
        if isinstance(raw, bool):
            fields[key] = raw
        elif isinstance(raw, (int, float, Decimal)):
            fields[key] = to_amount(raw, where)
        elif isinstance(raw, str):
            fields[key] = to_text(raw, where)
        elif isinstance(raw, list):
            fields[key] = to_tags(raw, where)
        else:
            raise InvalidRecord(
                f"{where} must be a string, number, boolean or list, got {_describe(raw)}"
            )
    return fields


def _absent(value: Any) -> bool:
    """Null, or a string of nothing but white space: a value the source does not give."""
    return value is None or (type(value) is str and (not value or value.isspace()))


def custom_field_key(label: str) -> str:
    """The key Recotap derives from a custom field's label (``Contract Value`` ->
    ``CONTRACT_VALUE_C``)."""
    return label.replace(" ", "_").upper() + CUSTOM_FIELD_KEY_SUFFIX


def custom_field_label(key: str) -> str | None:
    """A label from which Recotap derives ``key``, or None if no label yields it (a key not
    ending in ``_C``, or with lower-case letters or spaces). Title case where it round-trips:
    a person reads the label in Recotap."""
    stem = key.removesuffix(CUSTOM_FIELD_KEY_SUFFIX)
    if stem == key or not stem:
        return None
    plain = stem.replace("_", " ")
    return next((label for label in (plain.title(), plain) if custom_field_key(label) == key), None)


ACCOUNT_RECORD_FIELDS = field_table(
    {
        "domain": (to_domain, ()),
        "name": (to_text, ()),
        "externalId": (to_text, ("external_id",)),
        "shortName": (to_text, ("short_name",)),
        "linkedinUrl": (to_text, ("linkedin_url",)),
        "tags": (to_tags, ()),
        "customFields": (to_custom_fields, ("custom_fields",)),
    }
)
