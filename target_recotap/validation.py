"""Record validation against the stream's SCHEMA message."""

from __future__ import annotations

from typing import Any

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
        self._validator = DEFAULT_JSONSCHEMA_VALIDATOR(
            schema, format_checker=jsonschema.FormatChecker(formats=())
        )

    def problem(self, record: dict[str, Any]) -> str | None:
        """Why ``record`` does not fit the schema, or None if it does."""
        error = jsonschema.exceptions.best_match(self._validator.iter_errors(record))
        if error is None:
            return None
        where = ".".join(str(part) for part in error.absolute_path)
        return f"does not match the stream's SCHEMA: {where + ': ' if where else ''}{error.message}"
