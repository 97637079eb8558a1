"""WSGI application that answers like the Recotap external API (NestJS + class-validator).

Request pipeline for the documented routes, in the order NestJS/Express would apply it:
fault injection (like a gateway) -> body parsing (413, invalid JSON) -> X-Api-Key guard (401)
-> DTO validation (400, nothing written) -> handler (writes) -> optional lost response.
"""

from __future__ import annotations

import hmac
import json
import re
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msgspec
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from recotap_emulator.faults import (
    ITEMS_FAILED,
    REFUSED,
    RESULTS_LEFT_OUT,
    FaultInjector,
    Faults,
)
from recotap_emulator.page import FieldOrder, page_response
from recotap_emulator.store import EmulatorStore, utc_timestamp
from target_recotap.addresses import is_email, is_loopback

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    from _typeshed.wsgi import StartResponse, WSGIEnvironment

BASE_PATH = "/api/v1"
ADMIN_PATH = "/_emulator"
#: WSGI environ entry set on requests whose response the emulator loses on purpose: "dropped"
#: (no answer at all) or "cut" (the answer stops halfway through its body).
LOST_RESPONSE_KEY = "recotap_emulator.lost_response"
#: WSGI environ entry the server sets: time.monotonic() when the request line arrived.
RECEIVED_KEY = "recotap_emulator.received"
#: WSGI environ entry the handlers add to: the faults they injected (refusals, failed items).
INJECTED_KEY = "recotap_emulator.injected"
MAX_DEALS = 100
MAX_PIPELINES = 20
MAX_ACTIVITIES = 50
MAX_ACCOUNTS = 100
# Bodies are read whole (up to this size) so the request log can count items even in
# requests that are rejected, e.g. for exceeding the body limit.
READ_CAP = 64 * 1024 * 1024

REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    409: "Conflict",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


# ---------------------------------------------------------------------------
# Validation, modelled on class-validator with whitelist + forbidNonWhitelisted
# ---------------------------------------------------------------------------


class _Missing:
    """Marker for a property absent from the body (JavaScript's `undefined`)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Constraint:
    """One class-validator constraint: its name, a test, and a message about `{property}`."""

    name: str
    test: Callable[[Any], bool]
    message: str


@dataclass(frozen=True)
class Prop:
    """Rules for one DTO property; `each` validates every array element against a schema."""

    constraints: tuple[Constraint, ...]
    optional: bool = False  # @IsOptional(): null or absent skips every check
    each: Schema | None = None
    unique_by: str | None = None  # @ArrayUnique(element => element[unique_by])
    nested: Schema | None = None  # @ValidateNested() of one object


@dataclass(frozen=True)
class Schema:
    """A DTO: its properties; any other property is rejected."""

    props: Mapping[str, Prop] = field(default_factory=dict)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# validator.js isISO8601 (non-strict), which class-validator's @IsISO8601() calls.
_ISO8601 = re.compile(
    r"([\+-]?\d{4}(?!\d{2}\b))((-?)((0[1-9]|1[0-2])(\3([12]\d|0[1-9]|3[01]))?|W([0-4]\d|5[0-3])"
    r"(-?[1-7])?|(00[1-9]|0[1-9]\d|[12]\d{2}|3([0-5]\d|6[1-6])))([T\s]((([01]\d|2[0-3])"
    r"((:?)[0-5]\d)?|24:?00)([\.,]\d+(?!:))?)?(\17[0-5]\d([\.,]\d+)?)?([zZ]|([\+-])"
    r"([01]\d|2[0-3]):?([0-5]\d)?)?)?)?",
    re.ASCII,
)


def is_iso8601(value: Any) -> bool:
    """True for strings validator.js accepts as ISO 8601 (dates, week dates, date-times)."""
    return isinstance(value, str) and _ISO8601.fullmatch(value) is not None


IS_STRING = Constraint("isString", lambda v: isinstance(v, str), "{property} must be a string")
IS_NOT_EMPTY = Constraint(
    "isNotEmpty",
    lambda v: v is not MISSING and v is not None and v != "",
    "{property} should not be empty",
)
IS_NUMBER = Constraint(
    "isNumber", _is_number, "{property} must be a number conforming to the specified constraints"
)
IS_ISO8601 = Constraint("isIso8601", is_iso8601, "{property} must be a valid ISO 8601 date string")
IS_ARRAY = Constraint("isArray", lambda v: isinstance(v, list), "{property} must be an array")
ARRAY_NOT_EMPTY = Constraint(
    "arrayNotEmpty", lambda v: isinstance(v, list) and len(v) > 0, "{property} should not be empty"
)


def array_max_size(limit: int) -> Constraint:
    """@ArrayMaxSize(limit)."""
    return Constraint(
        "arrayMaxSize",
        lambda v: isinstance(v, list) and len(v) <= limit,
        f"{{property}} must contain no more than {limit} elements",
    )


REQUIRED_STRING = Prop((IS_NOT_EMPTY, IS_STRING))
OPTIONAL_STRING = Prop((IS_STRING,), optional=True)

ACCOUNT = Schema(
    {"externalId": OPTIONAL_STRING, "domain": OPTIONAL_STRING, "name": OPTIONAL_STRING}
)
DEAL = Schema(
    {
        "externalDealId": REQUIRED_STRING,
        # An empty name passes the DTO and fails the item instead (see DEAL_ITEM_RULES).
        "name": Prop((IS_STRING,)),
        "amount": Prop((IS_NUMBER,), optional=True),
        "stageId": OPTIONAL_STRING,
        "stageLabel": OPTIONAL_STRING,
        "pipelineId": OPTIONAL_STRING,
        "pipelineLabel": OPTIONAL_STRING,
        "startDate": Prop((IS_ISO8601,), optional=True),
        "closedDate": Prop((IS_ISO8601,), optional=True),
        "ownerName": OPTIONAL_STRING,
        # Checked as an email per item, not by the DTO: a bad address fails only its deal.
        "ownerEmail": OPTIONAL_STRING,
        "ownerId": OPTIONAL_STRING,
        "dealCurrencyCode": OPTIONAL_STRING,
        "associatedAccounts": Prop((IS_ARRAY,), optional=True, each=ACCOUNT),
    }
)
PUSH_DEALS = Schema(
    {"deals": Prop((IS_ARRAY, ARRAY_NOT_EMPTY, array_max_size(MAX_DEALS)), each=DEAL)}
)

STAGE = Schema({"stageId": REQUIRED_STRING, "stageLabel": REQUIRED_STRING})
PIPELINE = Schema(
    {
        "pipelineId": REQUIRED_STRING,
        "pipelineLabel": REQUIRED_STRING,
        "stages": Prop((IS_ARRAY, ARRAY_NOT_EMPTY), each=STAGE, unique_by="stageId"),
    }
)
PUSH_DEAL_STAGES = Schema(
    {
        "pipelines": Prop(
            (IS_ARRAY, ARRAY_NOT_EMPTY, array_max_size(MAX_PIPELINES)),
            each=PIPELINE,
            unique_by="pipelineId",
        )
    }
)

# POST /sales-activities: one DTO for both types, so a call's field on an email passes (the
# reference does not say whether Recotap ignores or refuses it; the target never sends one).
ACTIVITY_TYPES = ("call", "email")
IS_EMAIL = Constraint(
    "isEmail", lambda v: isinstance(v, str) and is_email(v), "{property} must be an email"
)


def array_min_size(limit: int) -> Constraint:
    """@ArrayMinSize(limit)."""
    return Constraint(
        "arrayMinSize",
        lambda v: isinstance(v, list) and len(v) >= limit,
        f"{{property}} must contain at least {limit} elements",
    )


def is_in(values: tuple[str, ...]) -> Constraint:
    """@IsIn(values): compared as written."""
    return Constraint(
        "isIn",
        lambda v: v in values,
        f"{{property}} must be one of the following values: {', '.join(values)}",
    )


OPTIONAL_NUMBER = Prop((IS_NUMBER,), optional=True)
# The contact's field table is beyond the part of the reference available: every field of its
# example, none required.
CONTACT = Schema(
    dict.fromkeys(
        (
            *("email", "externalContactId", "name", "title", "department", "seniority"),
            *("phone", "linkedinUrl"),
        ),
        OPTIONAL_STRING,
    )
)
SENDER = Schema({"name": OPTIONAL_STRING, "email": OPTIONAL_STRING})
ACTIVITY = Schema(
    {
        "externalActivityId": REQUIRED_STRING,
        "activityType": REQUIRED_STRING,
        "occurredAt": Prop((IS_ISO8601,)),
        "domain": REQUIRED_STRING,
        "ownerEmail": Prop((IS_EMAIL,)),
        "contacts": Prop((IS_ARRAY, array_min_size(1)), each=CONTACT),
        "accountName": OPTIONAL_STRING,
        "subject": OPTIONAL_STRING,
        "ownerName": OPTIONAL_STRING,
        "ownerId": OPTIONAL_STRING,
        "from": Prop((), optional=True, nested=SENDER),
        "callTitle": OPTIONAL_STRING,
        "durationMinutes": OPTIONAL_NUMBER,
        "outcome": OPTIONAL_STRING,
        "direction": Prop((is_in(("inbound", "outbound")),), optional=True),
        "openCount": OPTIONAL_NUMBER,
        "clickCount": OPTIONAL_NUMBER,
    }
)
PUSH_SALES_ACTIVITIES = Schema(
    {"activities": Prop((IS_ARRAY, ARRAY_NOT_EMPTY, array_max_size(MAX_ACTIVITIES)), each=ACTIVITY)}
)
IS_BOOLEAN = Constraint(
    "isBoolean", lambda v: isinstance(v, bool), "{property} must be a boolean value"
)
IS_OBJECT = Constraint("isObject", lambda v: isinstance(v, dict), "{property} must be an object")
EACH_STRING = Constraint(
    "isString",
    lambda v: isinstance(v, list) and all(isinstance(item, str) for item in v),
    "each value in {property} must be a string",
)
#: The types of an account custom field (``labelType``); the selection types need options.
LABEL_TYPES = (
    "singleLineText",
    "multiLineText",
    "singleSelection",
    "multiSelection",
    "number",
    "date",
)
SELECTION_TYPES = ("singleSelection", "multiSelection")
IS_LABEL_TYPE = Constraint(
    "isIn",
    lambda v: v in LABEL_TYPES,
    f"{{property}} must be one of the following values: {', '.join(LABEL_TYPES)}",
)

ACCOUNT_ITEM = Schema(
    {
        "domain": REQUIRED_STRING,
        "name": REQUIRED_STRING,
        "externalId": OPTIONAL_STRING,
        "shortName": OPTIONAL_STRING,
        "linkedinUrl": OPTIONAL_STRING,
        "tags": Prop((IS_ARRAY, EACH_STRING), optional=True),
        "customFields": Prop((IS_OBJECT,), optional=True),
    }
)
PUSH_ACCOUNTS = Schema(
    {
        "accounts": Prop(
            (IS_ARRAY, ARRAY_NOT_EMPTY, array_max_size(MAX_ACCOUNTS)), each=ACCOUNT_ITEM
        ),
        "segmentId": OPTIONAL_STRING,
        "upsert": Prop((IS_BOOLEAN,), optional=True),
    }
)
#: The older API reference's POST /accounts: no ``upsert``, which the whitelist then refuses
#: ("property upsert should not exist").
PUSH_ACCOUNTS_OLDER = Schema(
    {name: prop for name, prop in PUSH_ACCOUNTS.props.items() if name != "upsert"}
)
CREATE_CUSTOM_FIELD = Schema(
    {
        "label": REQUIRED_STRING,
        "labelType": Prop((IS_NOT_EMPTY, IS_LABEL_TYPE)),
        "description": OPTIONAL_STRING,
        "options": Prop((IS_ARRAY, EACH_STRING), optional=True),
    }
)

#: Per-item checks of POST /deals, after the DTO passed: the first failing message fails the deal.
DEAL_ITEM_RULES: tuple[tuple[str, Callable[[dict[str, Any]], bool]], ...] = (
    ("name should not be empty", lambda deal: deal["name"] != ""),
    (
        "ownerEmail must be an email",
        lambda deal: deal.get("ownerEmail") is None or is_email(deal["ownerEmail"]),
    ),
)


def _row(path: str, constraints: dict[str, str]) -> dict[str, Any]:
    return {"property": path, "constraints": constraints}


def _join(prefix: str, name: str | int) -> str:
    return f"{prefix}.{name}" if prefix else str(name)


def validate(body: Mapping[str, Any], schema: Schema, prefix: str = "") -> list[dict[str, Any]]:
    """Return class-validator style rows `{property, constraints}`; empty when `body` is valid."""
    rows = [
        _row(_join(prefix, name), {"whitelistValidation": f"property {name} should not exist"})
        for name in body
        if name not in schema.props
    ]
    for name, prop in schema.props.items():
        rows += _validate_prop(name, body.get(name, MISSING), prop, _join(prefix, name))
    return rows


def conforms(body: Mapping[str, Any], schema: Schema) -> bool:
    """Whether ``validate`` would find nothing: the same rules, stopping at the first failure."""
    # Plain loops, no generators: this runs for every property of every item of every request.
    props = schema.props
    for name in body:
        if name not in props:
            return False
    for name, prop in props.items():
        value = body.get(name, MISSING)
        if prop.optional and (value is MISSING or value is None):
            continue
        for constraint in prop.constraints:
            if not constraint.test(value):
                return False
        if type(value) is list:
            if prop.each is not None:
                for item in value:
                    if type(item) is not dict or not conforms(item, prop.each):
                        return False
            if prop.unique_by is not None and _has_duplicates(value, prop.unique_by):
                return False
        if prop.nested is not None and (
            type(value) is not dict or not conforms(value, prop.nested)
        ):
            return False
    return True


def _validate_prop(name: str, value: Any, prop: Prop, path: str) -> list[dict[str, Any]]:
    if prop.optional and (value is MISSING or value is None):
        return []
    failed = {
        c.name: c.message.format(property=name) for c in prop.constraints if not c.test(value)
    }
    rows = [_row(path, failed)] if failed else []
    if isinstance(value, list):
        if prop.each is not None:
            rows += _validate_each(name, value, prop.each, path)
        if prop.unique_by is not None and _has_duplicates(value, prop.unique_by):
            rows.append(_row(path, {"arrayUnique": f"All {name}'s elements must be unique"}))
    if prop.nested is not None:
        if isinstance(value, dict):
            rows += validate(value, prop.nested, path)
        else:
            rows.append(_row(path, {"nestedValidation": _NESTED_MESSAGE.format(property=name)}))
    return rows


def _validate_each(name: str, items: list[Any], schema: Schema, path: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        item_path = _join(path, index)
        if isinstance(item, dict):
            rows += validate(item, schema, item_path)
        else:
            message = f"each value in {_NESTED_MESSAGE.format(property=name)}"
            rows.append(_row(item_path, {"nestedValidation": message}))
    return rows


_NESTED_MESSAGE = "nested property {property} must be either object or array"


def _has_duplicates(items: list[Any], key: str) -> bool:
    keys = [item.get(key) for item in items if isinstance(item, dict) and item.get(key) is not None]
    return len(keys) != len(set(map(json.dumps, keys)))


def deal_item_error(deal: dict[str, Any]) -> str | None:
    """Why a DTO-valid deal fails on its own, or None if it can be upserted."""
    return next((message for message, passes in DEAL_ITEM_RULES if not passes(deal)), None)


def duplicate_activity_message(external_id: str) -> str:
    """Why an activity whose externalActivityId is stored already fails. The reference gives no
    text for it: this one is worded as the sandbox's duplicate account was."""
    return f"Activity with externalActivityId '{external_id}' already exists"


def custom_field_key(label: str) -> str:
    """The key Recotap derives from a custom field's label: spaces to ``_``, upper-cased,
    ``_C`` appended (``Contract Value`` -> ``CONTRACT_VALUE_C``)."""
    return label.replace(" ", "_").upper() + "_C"


def segment_problem(segment_id: str, segment: Mapping[str, Any] | None) -> str | None:
    """Why POST /accounts cannot add accounts to this segment, or None if it can."""
    if segment is None:
        return f"Segment '{segment_id}' not found"
    if segment.get("type") != "static":
        return f"Segment '{segment_id}' is not a static segment and cannot accept new members"
    if segment.get("status") not in ("active", "draft"):
        return f"Segment '{segment_id}' is not active or draft and cannot accept new members"
    return None


def conflict_message(pipeline_ids: Iterable[str], form: str) -> str:
    """The 409 customMessage naming existing pipelines, in its short or long form."""
    if form == "unreadable":
        return "One or more pipelines already exist"
    message = f"Pipeline(s) already exist: {', '.join(pipeline_ids)}"
    if form == "long":
        message += ". Use the update endpoint to modify existing pipelines."
    return message


# ---------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------


class ApiError(Exception):
    """An error answer in the Recotap envelope."""

    def __init__(
        self,
        status: int,
        *,
        custom_message: str | None = None,
        data: Any = None,
        message: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(custom_message or message or REASONS.get(status, str(status)))
        self.status = status
        self.custom_message = custom_message
        self.data = data
        self.message = message or REASONS.get(status, "Error")
        self.headers = dict(headers or {})

    def response(self, request: Request) -> Response:
        """Render the error for `request`."""
        body = envelope(request, self.status, self.data, self.message, self.custom_message)
        return json_response(body, self.status, self.headers)


def _original_url(request: Request) -> str:
    query = request.query_string.decode("latin-1")
    return f"{request.path}?{query}" if query else request.path


def envelope(
    request: Request,
    status: int,
    data: Any,
    message: str | None = None,
    custom_message: str | None = None,
) -> dict[str, Any]:
    """The fields every Recotap response carries; errors add `message` and maybe `customMessage`."""
    body: dict[str, Any] = {
        "statusCode": status,
        "timestamp": utc_timestamp(),
        "path": _original_url(request),
    }
    if message is not None:
        body["message"] = message
    if custom_message is not None:
        body["customMessage"] = custom_message
    body["data"] = data
    return body


def json_response(
    payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """Serialise compactly, like Express's res.json()."""
    return Response(
        msgspec.json.encode(payload),
        status,
        headers=dict(headers or {}),
        content_type="application/json; charset=utf-8",
    )


def not_found(request: Request) -> ApiError:
    """NestJS's answer for an unknown route."""
    message = f"Cannot {request.method} {_original_url(request)}"
    return ApiError(404, message=message, custom_message=message)


# ---------------------------------------------------------------------------
# Application
# ---------------------------------------------------------------------------

ROUTES = Map(
    [
        Rule("/", methods=["GET"], endpoint="page"),
        Rule(f"{BASE_PATH}/deals", methods=["POST"], endpoint="push_deals"),
        Rule(f"{BASE_PATH}/deals", methods=["GET"], endpoint="list_deals"),
        Rule(f"{BASE_PATH}/deal-stages", methods=["POST"], endpoint="push_deal_stages"),
        Rule(f"{BASE_PATH}/deal-stages", methods=["GET"], endpoint="list_deal_stages"),
        Rule(f"{BASE_PATH}/sales-activities", methods=["POST"], endpoint="push_sales_activities"),
        Rule(f"{BASE_PATH}/accounts", methods=["POST"], endpoint="push_accounts"),
        Rule(f"{BASE_PATH}/accounts/custom-fields", methods=["GET"], endpoint="list_custom_fields"),
        Rule(
            f"{BASE_PATH}/accounts/custom-field", methods=["POST"], endpoint="create_custom_field"
        ),
        Rule(f"{ADMIN_PATH}/deals", methods=["GET"], endpoint="admin_deals"),
        Rule(f"{ADMIN_PATH}/accounts", methods=["GET"], endpoint="admin_accounts"),
        Rule(f"{ADMIN_PATH}/deal-links", methods=["GET"], endpoint="admin_deal_links"),
        Rule(f"{ADMIN_PATH}/segments", methods=["GET", "POST"], endpoint="admin_segments"),
        Rule(
            f"{ADMIN_PATH}/custom-fields", methods=["GET", "POST"], endpoint="admin_custom_fields"
        ),
        Rule(f"{ADMIN_PATH}/pipelines", methods=["GET"], endpoint="admin_pipelines"),
        Rule(f"{ADMIN_PATH}/activities", methods=["GET"], endpoint="admin_activities"),
        Rule(f"{ADMIN_PATH}/requests", methods=["GET"], endpoint="admin_requests"),
        Rule(f"{ADMIN_PATH}/stats", methods=["GET"], endpoint="admin_stats"),
        Rule(f"{ADMIN_PATH}/reset", methods=["POST"], endpoint="admin_reset"),
        Rule(f"{ADMIN_PATH}/faults", methods=["GET", "PUT"], endpoint="admin_faults"),
    ],
    strict_slashes=False,  # Express matches "/deals/" as "/deals"
)

#: The fields of each record the page shows, in the API's order.
PAGE_FIELDS = FieldOrder(
    deals=tuple(DEAL.props), accounts=tuple(ACCOUNT_ITEM.props), activities=tuple(ACTIVITY.props)
)

#: Array whose length is logged as the request's item count, per API endpoint.
ITEM_KEYS = {
    "push_deals": "deals",
    "push_deal_stages": "pipelines",
    "push_accounts": "accounts",
    "push_sales_activities": "activities",
}


class EmulatorApp:
    """The emulator as a WSGI callable; `store` and `faults` may be inspected and changed live."""

    def __init__(self, store: EmulatorStore, api_key: str, faults: Faults | None = None) -> None:
        self.store = store
        self.api_key = api_key
        self.faults = faults if faults is not None else Faults()
        self.injector = FaultInjector(self.faults)
        self._api: dict[str, Callable[[Request, dict[str, Any], int], Response]] = {
            "push_deals": self._push_deals,
            "list_deals": self._list_deals,
            "push_deal_stages": self._push_deal_stages,
            "list_deal_stages": self._list_deal_stages,
            "push_sales_activities": self._push_sales_activities,
            "push_accounts": self._push_accounts,
            "list_custom_fields": self._list_custom_fields,
            "create_custom_field": self._create_custom_field,
        }
        # The page and the admin routes: no key, no faults, not logged.
        self._admin: dict[str, Callable[[Request], Response]] = {
            "page": lambda request: page_response(self.store, request.args, PAGE_FIELDS),
            "admin_deals": lambda _: json_response(self.store.deal_records()),
            "admin_pipelines": lambda _: json_response(list(self.store.pipelines().values())),
            "admin_activities": lambda _: json_response(self.store.activity_records()),
            "admin_requests": lambda _: json_response(self.store.requests()),
            "admin_stats": lambda _: json_response(self.store.stats()),
            "admin_reset": self._admin_reset,
            "admin_faults": self._admin_faults,
            "admin_accounts": lambda _: json_response(self.store.account_records()),
            "admin_deal_links": lambda _: json_response(self.store.deal_links()),
            "admin_segments": self._admin_segments,
            "admin_custom_fields": self._admin_custom_fields,
        }

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """WSGI entry point."""
        request = Request(environ)
        return self.dispatch(request)(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        """Route `request` to an API handler, an admin handler, or a NestJS-style 404."""
        adapter = ROUTES.bind_to_environ(request.environ)
        try:
            rule, _ = adapter.match(return_rule=True)
        except (NotFound, MethodNotAllowed):
            return self._unknown_route(request)
        endpoint = str(rule.endpoint)
        if endpoint in self._admin:
            if request.method not in ("GET", "HEAD") and _from_another_origin(request):
                return json_response({"error": CROSS_ORIGIN_REFUSED}, 403)
            return self._admin[endpoint](request)
        label = f"{request.method} {rule.rule.removeprefix(BASE_PATH)}"
        return self._api_call(request, endpoint, label)

    def _unknown_route(self, request: Request) -> Response:
        if request.path.startswith(BASE_PATH + "/"):
            # Logged so a test can see a client calling a wrong URL under the API base.
            seq = self.store.begin_request(
                f"{request.method} {request.path.removeprefix(BASE_PATH)}", 0
            )
            self.store.finish_request(seq, 404)
        return not_found(request).response(request)

    # API pipeline

    def _api_call(self, request: Request, endpoint: str, label: str) -> Response:
        # Latency counts from the request's arrival: reading it and queueing for the store are
        # part of the time an answer takes.
        received = request.environ.get(RECEIVED_KEY) or time.monotonic()
        raw = RawBody(_read_body(request) if request.method == "POST" else b"")
        seq = self.store.begin_request(label, _count_items(raw, ITEM_KEYS.get(endpoint)))
        try:
            decision = self.injector.decide(is_write=request.method == "POST")
            if decision.status is not None:
                response = self._injected_error(request, decision.status)
            else:
                response = self._answer(request, endpoint, raw, seq)
        except Exception:
            self.store.finish_request(seq, 500)  # the server answers 500 and prints the traceback
            raise
        # Latency is how long an answer takes in all, the emulator's own work included.
        time.sleep(max(0.0, self.injector.latency_seconds() - (time.monotonic() - received)))
        # The faults the handler injected, each named once (none when the injector answered
        # instead of it), then the injector's own.
        injected = list(dict.fromkeys(request.environ.get(INJECTED_KEY, ())))
        if decision.fault is not None:
            injected.append(decision.fault)
        self.store.finish_request(
            seq, response.status_code, lost=decision.lose, fault=", ".join(injected) or None
        )
        if decision.lose:
            # The server hangs up instead of answering, or halfway through the answer.
            request.environ[LOST_RESPONSE_KEY] = "cut" if decision.cut else "dropped"
        return response

    def _answer(self, request: Request, endpoint: str, raw: RawBody, seq: int) -> Response:
        try:
            body = self._parse_body(request, raw)
            self._authenticate(request)
            return self._api[endpoint](request, body, seq)
        except ApiError as error:
            return error.response(request)

    def _injected_error(self, request: Request, status: int) -> Response:
        if status == 429:
            return ApiError(
                429,
                custom_message="ThrottlerException: Too Many Requests",
                headers={"Retry-After": self.injector.retry_after()},
            ).response(request)
        return ApiError(status).response(request)

    def _parse_body(self, request: Request, raw: RawBody) -> dict[str, Any]:
        # Like Express's json parser: other content types are not parsed and the body is empty.
        if request.method != "POST" or request.mimetype != "application/json":
            return {}
        if len(raw.data) > self.faults.body_limit:
            raise ApiError(413, custom_message="request entity too large")
        if not raw.data.strip():
            return {}
        try:
            body = raw.parsed
        except (UnicodeDecodeError, ValueError) as error:
            raise ApiError(400, custom_message=_json_error_message(error)) from None
        if not isinstance(body, dict):
            raise ApiError(400, custom_message="Request body must be a JSON object")
        return body

    def _authenticate(self, request: Request) -> None:
        key = request.headers.get("X-Api-Key", "")
        if not key:
            raise ApiError(401, custom_message="X-Api-Key header is required")
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            raise ApiError(401, custom_message="Invalid API key")

    # API handlers

    def _push_deals(self, request: Request, body: dict[str, Any], seq: int) -> Response:
        _require_valid(body, PUSH_DEALS)
        self._apply_refusals(request, body["deals"], "deals", "externalDealId")
        self._refuse_values(request, body["deals"])
        results: list[dict[str, Any]] = []
        accepted: list[dict[str, Any]] = []
        for deal in body["deals"]:
            injected = self.faults.fail_ids.get(deal["externalDealId"]) or next(
                (why for _, why in _faulty_values(deal, self.faults.fail_values)), None
            )
            if injected is not None:
                _note_fault(request, ITEMS_FAILED)
            error = injected or deal_item_error(deal)
            if error is None:
                accepted.append(deal)
                results.append({"externalDealId": deal["externalDealId"], "status": "upserted"})
            else:
                results.append(
                    {"externalDealId": deal["externalDealId"], "status": "failed", "error": error}
                )
        self.store.upsert_deals(accepted, seq)
        summary = {
            "total": len(results),
            "upserted": len(accepted),
            "failed": len(results) - len(accepted),
        }
        results = self._drop_results(request, results, "externalDealId")
        return _success(request, 200, {"results": results, "summary": summary})

    def _apply_refusals(
        self, request: Request, items: list[dict[str, Any]], key: str, id_field: str
    ) -> None:
        rows = [
            _row(f"{key}.{index}.{id_field}", {"isRefused": self.faults.refuse_ids[item[id_field]]})
            for index, item in enumerate(items)
            if item[id_field] in self.faults.refuse_ids
        ]
        if rows:
            _note_fault(request, REFUSED)
            raise ApiError(400, data=rows)

    def _refuse_values(self, request: Request, deals: list[dict[str, Any]]) -> None:
        rows = [
            _row(f"deals.{index}.{name}", {"isRefused": message})
            for index, deal in enumerate(deals)
            for name, message in _faulty_values(deal, self.faults.refuse_values)
        ]
        if rows:
            _note_fault(request, REFUSED)
            raise ApiError(400, data=rows)

    def _drop_results(
        self, request: Request, results: list[dict[str, Any]], id_field: str
    ) -> list[dict[str, Any]]:
        """The results less those of the items ``drop_ids`` names."""
        kept = [r for r in results if r[id_field] not in self.faults.drop_ids]
        if len(kept) < len(results):
            _note_fault(request, RESULTS_LEFT_OUT)
        return kept

    def _list_deals(self, request: Request, body: dict[str, Any], seq: int) -> Response:
        return _success(request, 200, list(self.store.deals().values()))

    def _push_deal_stages(self, request: Request, body: dict[str, Any], seq: int) -> Response:
        _require_valid(body, PUSH_DEAL_STAGES)
        pipelines = body["pipelines"]
        self._apply_refusals(request, pipelines, "pipelines", "pipelineId")
        conflicts = self.store.create_pipelines(pipelines)
        if conflicts:
            raise ApiError(
                409, custom_message=conflict_message(conflicts, self.faults.conflict_form)
            )
        results = [{"pipelineId": p["pipelineId"], "status": "created"} for p in pipelines]
        summary = {"total": len(results), "created": len(results)}
        return _success(request, 201, {"results": results, "summary": summary})

    def _list_deal_stages(self, request: Request, body: dict[str, Any], seq: int) -> Response:
        # Undocumented; seen by one client as a bare array, without the envelope.
        form = self.faults.deal_stages_listing
        if form == "absent":
            raise not_found(request)
        pipelines = list(self.store.pipelines().values())
        return _success(request, 200, pipelines) if form == "envelope" else json_response(pipelines)

    def _push_sales_activities(self, request: Request, body: dict[str, Any], seq: int) -> Response:
        _require_valid(body, PUSH_SALES_ACTIVITIES)
        activities = body["activities"]
        self._apply_refusals(request, activities, "activities", "externalActivityId")
        failing = self.faults.fail_ids
        to_store = [
            activity
            for activity in activities
            if activity["activityType"] in ACTIVITY_TYPES
            and activity["externalActivityId"] not in failing
        ]
        # In request order: of two items with one ID (in one request, or across requests), the
        # first is stored and the later fails as a duplicate. Whether Recotap processes both of
        # two in one request is not documented.
        created = iter(self.store.create_activities(to_store, seq))
        results: list[dict[str, Any]] = []
        for activity in activities:
            external_id = activity["externalActivityId"]
            if activity["activityType"] not in ACTIVITY_TYPES:
                results.append({"externalActivityId": external_id, "status": "skipped"})
            elif external_id in failing or not next(created):
                if external_id in failing:
                    _note_fault(request, ITEMS_FAILED)
                error = failing.get(external_id) or duplicate_activity_message(external_id)
                results.append(
                    {"externalActivityId": external_id, "status": "failed", "error": error}
                )
            else:
                results.append({"externalActivityId": external_id, "status": "created"})
        statuses = [result["status"] for result in results]
        summary = {
            "total": len(results),
            **{status: statuses.count(status) for status in ("created", "failed", "skipped")},
        }
        results = self._drop_results(request, results, "externalActivityId")
        return _success(request, 200, {"results": results, "summary": summary})

    def _push_accounts(self, request: Request, body: dict[str, Any], seq: int) -> Response:
        _require_valid(body, PUSH_ACCOUNTS_OLDER if self.faults.older_api else PUSH_ACCOUNTS)
        segment_id = body.get("segmentId")
        if segment_id is not None:  # checked before any account is touched
            problem = segment_problem(segment_id, self.store.segments().get(segment_id))
            if problem:
                raise ApiError(400, custom_message=problem)
        results = self.store.write_accounts(
            body["accounts"], upsert=body.get("upsert") is True, segment_id=segment_id, seq=seq
        )
        statuses = [result["status"] for result in results]
        summary = {
            "total": len(results),
            **{status: statuses.count(status) for status in ("created", "updated", "failed")},
        }
        return _success(request, 200, {"results": results, "summary": summary})

    def _list_custom_fields(self, request: Request, body: dict[str, Any], seq: int) -> Response:
        return _success(request, 200, list(self.store.custom_fields().values()))

    def _create_custom_field(self, request: Request, body: dict[str, Any], seq: int) -> Response:
        _require_valid(body, CREATE_CUSTOM_FIELD)
        field = custom_field(body)
        if not self.store.add_custom_field(field):
            raise ApiError(
                409, custom_message=f"Custom field with key '{field['key']}' already exists"
            )
        return _success(request, 201, [field])

    # Admin handlers (no auth, no faults, not logged)

    def _admin_segments(self, request: Request) -> Response:
        """GET: the segments; POST ``{segmentId, name?, type?, status?}``: add or replace one
        (static and active unless told)."""
        if request.method == "POST":
            try:
                self.store.add_segment(segment(_json_object(request)))
            except ValueError as error:
                return json_response({"error": str(error)}, 400)
        return json_response(list(self.store.segments().values()))

    def _admin_custom_fields(self, request: Request) -> Response:
        """GET: every account custom field, inactive ones too; POST a field as POST
        /accounts/custom-field takes it, with ``status`` ("inactive" seeds one that GET
        /accounts/custom-fields leaves out)."""
        if request.method == "POST":
            try:
                changes = _json_object(request)
                status = changes.pop("status", "active")
                if status not in ("active", "inactive"):
                    raise ValueError("status must be active or inactive")
                rows = validate(changes, CREATE_CUSTOM_FIELD)
                if rows:
                    raise ValueError(json.dumps(rows))
                self.store.add_custom_field({**custom_field(changes), "status": status})
            except (ValueError, ApiError) as error:
                return json_response({"error": str(error)}, 400)
        return json_response(list(self.store.custom_fields(active_only=False).values()))

    def _admin_reset(self, request: Request) -> Response:
        self.store.reset()
        self.injector.reset()
        return json_response({"reset": True})

    def _admin_faults(self, request: Request) -> Response:
        if request.method == "PUT":
            try:
                changes = json.loads(request.get_data() or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("expected a JSON object of fault fields")
                self.faults.update(changes)
            except ValueError as error:
                return json_response({"error": str(error)}, 400)
        return json_response(self.faults.to_dict())


def custom_field(body: Mapping[str, Any]) -> dict[str, Any]:
    """An account custom field as Recotap stores it, from a valid creation body; raises the
    400 Recotap answers when a selection type has no options."""
    label_type = body["labelType"]
    options = list(body.get("options") or [])
    if label_type in SELECTION_TYPES and not options:
        raise ApiError(400, custom_message=f"options should not be empty for a {label_type} field")
    return {
        "key": custom_field_key(body["label"]),
        "label": body["label"],
        "labelType": label_type,
        "description": body.get("description"),
        "options": options if label_type in SELECTION_TYPES else [],
        "objectType": "accounts",
        "status": "active",
    }


SEGMENT_TYPES = ("static", "dynamic")
SEGMENT_STATUSES = ("active", "draft", "archived")


def segment(changes: Mapping[str, Any]) -> dict[str, Any]:
    """A segment to seed, from ``{segmentId, name?, type?, status?}``; ValueError if unusable."""
    segment_id = changes.get("segmentId")
    if not isinstance(segment_id, str) or not segment_id:
        raise ValueError("segmentId must be a non-empty string")
    kind = changes.get("type", "static")
    status = changes.get("status", "active")
    if kind not in SEGMENT_TYPES:
        raise ValueError(f"type must be one of {', '.join(SEGMENT_TYPES)}")
    if status not in SEGMENT_STATUSES:
        raise ValueError(f"status must be one of {', '.join(SEGMENT_STATUSES)}")
    return {
        "segmentId": segment_id,
        "name": str(changes.get("name") or segment_id),
        "type": kind,
        "status": status,
    }


CROSS_ORIGIN_REFUSED = (
    "refused: sent from a page of another origin (its Origin header), which may not change"
    " what the emulator holds or does"
)


def _from_another_origin(request: Request) -> bool:
    """Whether a browser sent the request from a page that is not the emulator's own.

    The admin routes need no key, and a page on any site open in the user's browser may post a
    form or a simple fetch to the emulator's port; the browser then names that site in Origin
    ("null" for a file or a sandboxed frame). Scripts and tests send none. The host must be a
    loopback name too: a name of another site that resolves here (DNS rebinding) would
    otherwise match the Host header its requests carry.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    own = f"{request.scheme}://{request.host}"
    return origin != own or not is_loopback(urlsplit(origin).hostname or "")


def _json_object(request: Request) -> dict[str, Any]:
    value = json.loads(request.get_data() or b"{}")
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object")
    return value


def _faulty_values(deal: Mapping[str, Any], faults: Mapping[str, str]) -> Iterator[tuple[str, str]]:
    """(field, message) for each field of ``deal`` whose value ``faults`` names."""
    if faults:
        for name, value in deal.items():
            if isinstance(value, str) and value in faults:
                yield name, faults[value]


def _note_fault(request: Request, name: str) -> None:
    """Name a fault a handler injected, for the request log."""
    request.environ.setdefault(INJECTED_KEY, []).append(name)


def _success(request: Request, status: int, data: Any) -> Response:
    return json_response(envelope(request, status, data), status)


def _require_valid(body: Mapping[str, Any], schema: Schema) -> None:
    if conforms(body, schema):
        return  # the common case, told without building a row per property
    rows = validate(body, schema)
    if rows:
        raise ApiError(400, data=rows)


class RawBody:
    """A request body, parsed at most once (the request log counts its items too)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    @cached_property
    def parsed(self) -> Any:
        """The JSON value; raises ValueError (or UnicodeDecodeError) as ``json.loads`` does."""
        try:
            return msgspec.json.decode(self.data)  # fast; rejects NaN as JSON.parse does
        except msgspec.DecodeError:
            # What msgspec refuses, json words the error for (or accepts, e.g. lone surrogates).
            return json.loads(self.data.decode("utf-8"), parse_constant=_reject_constant)


def _read_body(request: Request) -> bytes:
    return request.stream.read(READ_CAP + 1)


def _count_items(raw: RawBody, key: str | None) -> int:
    """Length of the body's `key` array, for the request log; 0 when it cannot be told."""
    if key is None or not raw.data:
        return 0
    try:
        body = raw.parsed
    except ValueError:
        return 0
    items = body.get(key) if isinstance(body, dict) else None
    return len(items) if isinstance(items, list) else 0


def _reject_constant(name: str) -> Any:
    # JSON.parse rejects NaN and Infinity, which Python's json would accept.
    raise ValueError(f"Unexpected token {name[0]} in JSON")


def _json_error_message(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} in JSON at position {error.pos}"
    return str(error)
