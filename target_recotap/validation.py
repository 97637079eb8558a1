"""Record validation against the stream's SCHEMA message.

A compiled validator (fastjsonschema) judges each record; only a record it refuses is judged
again by the stock validator, whose verdict and message are the ones used. So verdicts and
reasons are the stock validator's, at the compiled validator's speed for the valid majority.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import fastjsonschema
import jsonschema
from singer_sdk.exceptions import InvalidJSONSchema
from singer_sdk.typing import DEFAULT_JSONSCHEMA_VALIDATOR


class RecordValidator:
    """Checks records against one stream schema, as the SDK does (formats not checked)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        try:
            DEFAULT_JSONSCHEMA_VALIDATOR.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise InvalidJSONSchema(f"the SCHEMA is not valid JSON Schema: {exc.message}") from None
        self._stock = DEFAULT_JSONSCHEMA_VALIDATOR(
            schema, format_checker=jsonschema.FormatChecker(formats=())
        )
        self._compiled = _compile(schema)

    def problem(self, record: dict[str, Any]) -> str | None:
        """Why ``record`` does not fit the schema, or None if it does."""
        if self._compiled is not None:
            try:
                self._compiled(record)
            except fastjsonschema.JsonSchemaValueException:
                pass  # refused: the stock validator decides, and words the reason
            else:
                return None
        error = jsonschema.exceptions.best_match(self._stock.iter_errors(record))
        if error is None:
            return None
        where = ".".join(str(part) for part in error.absolute_path)
        return f"does not match the stream's SCHEMA: {where + ': ' if where else ''}{error.message}"


def _refuse_remote(uri: str) -> Any:
    raise fastjsonschema.JsonSchemaDefinitionException(f"remote $ref not fetched: {uri}")


# fastjsonschema would download a remote $ref at compile time: never reach the network.
_NO_DOWNLOADS = {scheme: _refuse_remote for scheme in ("http", "https", "ftp", "file")}


def _compile(schema: dict[str, Any]) -> Callable[[Any], Any] | None:
    """The compiled validator, or None where fastjsonschema cannot compile the schema."""
    try:
        return fastjsonschema.compile(
            schema,
            handlers=_NO_DOWNLOADS,
            use_default=False,
            use_formats=False,
            detailed_exceptions=False,
        )
    except Exception:
        return None
