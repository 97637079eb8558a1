"""The target's settings: their JSON Schema (what ``--about`` lists) and further checks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from singer_sdk import typing as th

from target_recotap.addresses import is_loopback
from target_recotap.endpoints import ENDPOINTS
from target_recotap.wording import listing

DEFAULT_API_URL = "https://eapi.recotap.com/api/v1"
DEFAULT_DRY_RUN_PATH = "recotap-dry-run.jsonl"
DEFAULT_PROGRESS_INTERVAL = 30
# The longest backoff between retries, and the longest Retry-After honoured (a longer one, a
# day say, is waited this long), in seconds.
MAX_RETRY_DELAY = 60.0
MAX_RETRY_AFTER = 600.0

CONFIG_SCHEMA = th.PropertiesList(
    th.Property(
        "api_key",
        th.StringType(min_length=1),
        # Not required by the schema only because a dry run needs none: config_problems asks.
        secret=True,
        title="API key",
        description="Recotap API key, sent as the X-Api-Key header. Never logged. Required, "
        "except for a dry run.",
    ),
    th.Property(
        "api_url",
        th.StringType,
        default=DEFAULT_API_URL,
        title="API URL",
        description="Base URL of the Recotap API. Plain http:// is refused unless the host is "
        "loopback (e.g. the local emulator).",
    ),
    th.Property(
        "request_timeout",
        th.NumberType(exclusive_minimum=0),
        default=60,
        title="Request timeout",
        description="Seconds to wait for one HTTP request before it counts as failed.",
    ),
    th.Property(
        "max_retries",
        th.IntegerType(minimum=0),
        default=8,
        title="Max retries",
        description="Retries of one request on 429, 5xx, timeouts and dropped connections, "
        "with exponential backoff and Retry-After honoured.",
    ),
    th.Property(
        "retry_initial_delay",
        th.NumberType(minimum=0),
        default=1,
        title="First retry delay",
        description="Seconds before the first retry; doubles on each retry (with jitter), "
        f"up to {MAX_RETRY_DELAY:g} s. A Retry-After header takes precedence, up to "
        f"{MAX_RETRY_AFTER:g} s.",
    ),
    th.Property(
        "max_concurrent_requests",
        th.IntegerType(minimum=1, maximum=64),
        default=4,
        title="Max concurrent requests",
        description="Most requests in flight at once. Fewer while Recotap answers 429 or 5xx; "
        "after a 429 every request waits for Retry-After and requests are paced.",
    ),
    th.Property(
        "dry_run",
        th.BooleanType,
        default=False,
        title="Dry run",
        description="Validate, normalise and batch, but send nothing: each request body that "
        "would be sent is written as one JSON line to dry_run_path. No STATE is written, so "
        "the next real run starts where the last real run ended.",
    ),
    th.Property(
        "dry_run_path",
        th.StringType(min_length=1),
        default=DEFAULT_DRY_RUN_PATH,
        title="Dry-run output file",
        description="Where dry_run writes request bodies (overwritten each run); relative "
        "paths are from the working directory.",
    ),
    th.Property(
        "dead_letter_path",
        th.StringType(min_length=1),
        title="Dead-letter file",
        description="File to which rejected records are appended as Singer messages, with "
        "the reason; feed it back with --input after fixing them. A run whose input is this "
        "file renames it first (with a timestamp) and writes its own rejections anew.",
    ),
    th.Property(
        "max_rejected_records",
        th.IntegerType(minimum=0),
        default=0,
        title="Max rejected records",
        description="The run exits non-zero at the end if more records than this were rejected.",
    ),
    th.Property(
        "fail_on_unknown_streams",
        th.BooleanType,
        default=False,
        title="Fail on unknown streams",
        description=f"Stop the run at a stream other than {listing(ENDPOINTS)}, instead "
        "of skipping it with a warning.",
    ),
    th.Property(
        "progress_interval",
        th.NumberType(minimum=0),
        default=DEFAULT_PROGRESS_INTERVAL,
        title="Progress interval",
        description="Seconds between progress lines in the log: one per stream, with the "
        "records read (and how many a second since the last line), sent and rejected so far. "
        "0 turns them off.",
    ),
    th.Property(
        "accounts_upsert",
        th.BooleanType,
        default=True,
        title="Upsert accounts",
        description="Send accounts with upsert, so that an account Recotap holds already (by "
        "its cleaned domain) is updated. An API that refuses upsert (an older version) makes "
        "the run go on create-only, with a warning. false: create-only from the start; an "
        "account that exists is skipped as existing, not updated.",
    ),
    th.Property(
        "accounts_segment_id",
        th.StringType(min_length=1),
        title="Accounts segment ID",
        description="A static Recotap segment, active or draft, that every account created or "
        "updated joins (sent as segmentId). A segment Recotap refuses stops the run at the "
        "first accounts request.",
    ),
    th.Property(
        "create_custom_fields",
        th.BooleanType,
        default=False,
        title="Create custom fields",
        description="Create the account custom fields that records name under customFields "
        "but Recotap lacks, typed from the stream's SCHEMA (number; date for a date or "
        "date-time string; else single-line text). Off: an account is sent without such a "
        "field, and each one gets a warning with the count of accounts that carried it.",
    ),
).to_dict()


SECRET_SETTINGS = tuple(
    name for name, schema in CONFIG_SCHEMA["properties"].items() if schema.get("secret")
)


def without_secret_values(problem: str) -> str:
    """A settings problem as the SDK words it, unless it is about a secret setting: the SDK's
    message quotes the value (``987654321 is not of type 'string' in config['api_key']``)."""
    for name in SECRET_SETTINGS:
        if f"config['{name}']" in problem:
            return f"{name} must be a non-empty string (its value is not shown)"
    return problem


def api_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be the API base URL, or None if it can."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"api_url must be an http(s) URL such as {DEFAULT_API_URL}"
    if parts.username or parts.password:
        return "api_url must not contain credentials: put the key in api_key"
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        return (
            "api_url uses plain http to a host that is not loopback, which would send the "
            "API key unencrypted: use https"
        )
    return None


def config_file_problem(path: str) -> str | None:
    """Why the config file at ``path`` cannot be read as settings, or None if it can.

    The SDK reads the files itself; asked first, a missing file or a syntax error is one line
    instead of the SDK's traceback.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return f"config file {path!r} was not found"
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        return f"config file {path!r} cannot be read: {reason}"
    try:
        settings = json.loads(text)
    except json.JSONDecodeError as exc:
        return (
            f"config file {path!r} is not valid JSON: {exc.msg} "
            f"at line {exc.lineno}, column {exc.colno}"
        )
    if not isinstance(settings, dict):
        return f"config file {path!r} must hold a JSON object of settings"
    return None


def config_problems(config: Mapping[str, Any]) -> list[str]:
    """Problems with a config that passed its JSON Schema (which filled in the defaults)."""
    problems = []
    if not config.get("api_key") and not config.get("dry_run"):
        problems.append("api_key is required (only a dry run can do without it)")
    url_problem = api_url_problem(str(config["api_url"]))
    if url_problem:
        problems.append(url_problem)
    if config.get("batch_size_rows") is not None and config["batch_size_rows"] < 1:
        problems.append("batch_size_rows must be at least 1")
    return problems
