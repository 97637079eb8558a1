"""`recotap-emulator`: run the local Recotap emulator, or show what a database file holds."""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recotap_emulator.app import (
    ACCOUNT_ITEM,
    ACTIVITY,
    CREATE_CUSTOM_FIELD,
    DEAL,
    LABEL_TYPES,
    ApiError,
    custom_field,
    segment,
    validate,
)
from recotap_emulator.faults import CONFLICT_FORMS, DEFAULT_BODY_LIMIT, Faults
from recotap_emulator.page import present_fields
from recotap_emulator.server import DEFAULT_API_KEY, EmulatorServer
from recotap_emulator.store import MEMORY, EmulatorStore
from target_recotap.addresses import clean_domain, is_loopback

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import FrameType

COMMANDS = ("serve", "show")
MAX_CELL = 40


# Argument types


def _ranged(
    kind: Callable[[str], float], low: float, high: float, meaning: str
) -> Callable[[str], Any]:
    """An argparse type: ``kind`` of the text, refused outside ``low``..``high``."""

    def parse(text: str) -> Any:
        value = kind(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not {meaning}")
        return value

    return parse


_share = _ranged(float, 0, 1, "between 0 and 1")
_non_negative_int = _ranged(int, 0, math.inf, "zero or more")
_positive_int = _ranged(int, 1, math.inf, "positive")
_non_negative_float = _ranged(float, 0, math.inf, "zero or more")
_port = _ranged(int, 0, 65535, "a TCP port")


def _custom_field(text: str) -> dict[str, Any]:
    """An argparse type: ``LABEL[:TYPE]`` as the field POST /accounts/custom-field creates."""
    label, _, label_type = text.rpartition(":")
    if label_type not in LABEL_TYPES:
        label, label_type = text, "singleLineText"
    body = {"label": label, "labelType": label_type}
    rows = validate(body, CREATE_CUSTOM_FIELD)
    try:
        if rows:
            raise ApiError(400, custom_message="; ".join(map(str, rows)))
        return custom_field(body)
    except ApiError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for both sub-commands."""
    parser = argparse.ArgumentParser(
        prog="recotap-emulator",
        description=(
            "Local emulator of the Recotap external API "
            "(POST /deals, /deal-stages, /accounts, /sales-activities)."
        ),
    )
    commands = parser.add_subparsers(dest="command", metavar="{serve,show}")
    _add_serve(commands.add_parser("serve", help="run the emulator (the default command)"))
    _add_show(commands.add_parser("show", help="list what an emulator database file holds"))
    return parser


def _add_serve(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=_port, default=8765, help="0 picks a free port")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="key clients must send")
    parser.add_argument("--db", default=MEMORY, help="SQLite file, or :memory: (default)")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    seeds = parser.add_argument_group("what Recotap holds before the first request")
    seeds.add_argument(
        "--segment",
        action="append",
        default=[],
        metavar="ID",
        help="a static, active segment that POST /accounts may name as segmentId (repeatable)",
    )
    seeds.add_argument(
        "--custom-field",
        action="append",
        default=[],
        type=_custom_field,
        metavar="LABEL[:TYPE]",
        help="an active account custom field; its key is derived from LABEL (Contract Value: "
        f"CONTRACT_VALUE_C), TYPE one of {', '.join(LABEL_TYPES)} (singleLineText if left "
        "out). Repeatable",
    )
    parser.add_argument(
        "--older-api",
        action="store_true",
        help="POST /accounts as the older API reference has it: a body with upsert is refused",
    )
    faults = parser.add_argument_group("faults (all off by default)")
    faults.add_argument(
        "--latency-ms",
        type=_non_negative_int,
        default=0,
        help="time each API answer takes, at least",
    )
    faults.add_argument(
        "--rate-limit", type=_non_negative_float, default=0.0, help="requests/s, 0=off"
    )
    faults.add_argument("--error-rate", type=_share, default=0.0, help="share answered 5xx")
    faults.add_argument("--rate-429", type=_share, default=0.0, help="share answered 429 at random")
    faults.add_argument("--retry-after", type=_non_negative_int, default=1, help="seconds")
    faults.add_argument(
        "--retry-after-http-date", action="store_true", help="send Retry-After as an HTTP date"
    )
    faults.add_argument(
        "--lose-rate", type=_share, default=0.0, help="share of writes whose response is lost"
    )
    faults.add_argument("--seed", type=int, default=None, help="seed of the fault RNG")
    faults.add_argument(
        "--body-limit", type=_positive_int, default=DEFAULT_BODY_LIMIT, help="bytes"
    )
    faults.add_argument(
        "--conflict-form",
        choices=CONFLICT_FORMS,
        default="short",
        help="409 customMessage: documented, with the trailing sentence, or naming no IDs",
    )


def _add_show(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=("deals", "pipelines", "accounts", "activities"))
    parser.add_argument("--db", required=True, help="SQLite file written by `serve --db`")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `recotap-emulator`; `serve` is assumed when no command is given."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0] not in COMMANDS and args_list[0] not in ("-h", "--help")):
        args_list.insert(0, "serve")
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.command == "show":
        return show(args)
    return serve(args, parser)


# serve


class _StopRequested(Exception):
    """Raised in the main thread by SIGINT/SIGTERM."""


def _request_stop(signum: int, frame: FrameType | None) -> None:
    raise _StopRequested


def _faults_from(args: argparse.Namespace) -> Faults:
    return Faults(
        latency_ms=args.latency_ms,
        rate_limit=args.rate_limit,
        rate_429=args.rate_429,
        retry_after=args.retry_after,
        retry_after_http_date=args.retry_after_http_date,
        error_rate=args.error_rate,
        lose_rate=args.lose_rate,
        body_limit=args.body_limit,
        conflict_form=args.conflict_form,
        older_api=args.older_api,
        seed=args.seed,
    )


def serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run the emulator until SIGINT or SIGTERM."""
    if not is_loopback(args.host):
        parser.error(
            f"--host must be a loopback address (got {args.host!r}): the emulator is local-only"
        )
    # Request threads wake together after --latency-ms; a short switch interval lets each take
    # its turn without waiting milliseconds for the GIL, so latency stays what was asked for.
    sys.setswitchinterval(0.0002)
    store = EmulatorStore(args.db)
    for segment_id in args.segment:
        store.add_segment(segment({"segmentId": segment_id}))
    for field in args.custom_field:
        store.add_custom_field(field)  # one that is there already stays as it is
    server = EmulatorServer(
        store=store,
        api_key=args.api_key,
        faults=_faults_from(args),
        host=args.host,
        port=args.port,
        log_requests=not args.quiet,
    )
    previous = {sig: signal.signal(sig, _request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            server.start()
        except OSError as error:  # the port is taken, most likely
            print(
                f"recotap-emulator: cannot listen on {args.host}:{args.port}: {error.strerror}"
                " (--port 0 picks a free port)",
                file=sys.stderr,
            )
            return 2
        print(
            f"Recotap emulator at {server.url}  X-Api-Key: {server.api_key}  db: {args.db}\n"
            f"What it holds, as a page: {server.page_url}",
            flush=True,
        )
        while True:
            time.sleep(3600)
    except _StopRequested:
        pass
    finally:
        server.stop()
        store.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("Recotap emulator stopped", file=sys.stderr)
    return 0


# show


def show(args: argparse.Namespace) -> int:
    """Print the deals, pipelines, accounts or sales activities stored in a database file."""
    if not Path(args.db).is_file():
        print(f"recotap-emulator: no database file at {args.db}", file=sys.stderr)
        return 2
    store = EmulatorStore(args.db, read_only=True)
    try:
        stored = {
            "deals": store.deals,
            "pipelines": store.pipelines,
            "accounts": store.accounts,
            "activities": store.activities,
        }
        with store.snapshot():  # a run may be writing the file: its deals and links agree
            records = list(stored[args.what]().values())
            links = store.deal_links() if args.what == "deals" else {}
            unlinked = store.unlinked_deal_ids() if args.what == "deals" else []
    finally:
        store.close()
    if args.json:
        print(json.dumps(records, indent=2, ensure_ascii=False))
    elif not records:
        print(f"(no {args.what})")
    elif args.what == "deals":
        columns = deal_columns(records)
        rows = [_deal_row(deal, columns, links.get(deal["externalDealId"], {})) for deal in records]
        print(format_table(columns, rows))
        print(f"\n{len(unlinked)} of {len(records)} deals name a domain Recotap has no account for")
    elif args.what == "activities":
        columns = activity_columns(records)
        print(format_table(columns, [_activity_row(activity, columns) for activity in records]))
    elif args.what == "accounts":
        columns = account_columns(records)
        print(format_table(columns, [_account_row(account, columns) for account in records]))
    else:
        print(format_table(PIPELINE_COLUMNS, [_pipeline_row(pipeline) for pipeline in records]))
    return 0


PIPELINE_COLUMNS = ("pipelineId", "pipelineLabel", "stages")


def deal_columns(deals: Sequence[dict[str, Any]]) -> list[str]:
    """The deal fields that some stored deal has, in the API's order: the rest would be empty."""
    return present_fields(deals, list(DEAL.props))


def _deal_row(deal: dict[str, Any], columns: Sequence[str], links: dict[str, bool]) -> list[str]:
    """The deal's cells; each domain it names Recotap held no account for is marked."""
    accounts = ", ".join(
        str(a.get("domain") or a.get("externalId") or a.get("name"))
        + (" (unlinked)" if links.get(clean_domain(a.get("domain") or "")) is False else "")
        for a in deal.get("associatedAccounts") or []
    )
    return [
        _cell(accounts if column == "associatedAccounts" else deal.get(column))
        for column in columns
    ]


def account_columns(accounts: Sequence[dict[str, Any]]) -> list[str]:
    """The account fields that some stored account has, in the API's order."""
    return present_fields(accounts, list(ACCOUNT_ITEM.props))


def _account_row(account: dict[str, Any], columns: Sequence[str]) -> list[str]:
    shown = {
        "tags": ", ".join(account.get("tags") or []),
        "customFields": ", ".join(
            f"{k}={v}" for k, v in (account.get("customFields") or {}).items()
        ),
    }
    return [_cell(shown[column] if column in shown else account.get(column)) for column in columns]


def _pipeline_row(pipeline: dict[str, Any]) -> list[str]:
    stages = ", ".join(f"{stage['stageId']}={stage['stageLabel']}" for stage in pipeline["stages"])
    return [_cell(pipeline["pipelineId"]), _cell(pipeline["pipelineLabel"]), _cell(stages)]


def activity_columns(activities: Sequence[dict[str, Any]]) -> list[str]:
    """The activity fields that some stored activity has, in the API's order."""
    return present_fields(activities, list(ACTIVITY.props))


def _activity_row(activity: dict[str, Any], columns: Sequence[str]) -> list[str]:
    sender = activity.get("from") or {}
    shown = {
        "contacts": ", ".join(
            str(contact.get("email") or contact.get("name"))
            for contact in activity.get("contacts") or []
        ),
        "from": sender.get("email") or sender.get("name"),
    }
    return [_cell(shown[name] if name in shown else activity.get(name)) for name in columns]


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned plain-text table with a header rule."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = [headers, ["-" * width for width in widths], *rows]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )
