"""Record validation against the stream's SCHEMA message.

A compiled validator (fastjsonschema) judges each record; only a record it refuses is judged
again by the stock validator, whose verdict and message are the ones used. So verdicts and
reasons are the stock validator's, at the compiled validator's speed for the valid majority.

Numbers arrive as Decimals, the record's and the SCHEMA's alike (the reader reads them so).
Neither library's own ``multipleOf`` takes them (fastjsonschema's code divides a Decimal by a
float; jsonschema's remainder fails once the quotient passes 28 digits), so both judge it by
``is_multiple``, which is exact. A number with a zero fractional part (``75000.0``, ``1e5``)
is an integer, as JSON Schema says from draft 6 on: the stock validator says so, and judges
such a record, which the compiled one refuses.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import fastjsonschema
import jsonschema
from fastjsonschema.draft2019 import CodeGeneratorDraft2019
from fastjsonschema.ref_resolver import RefResolver
from singer_sdk.exceptions import InvalidJSONSchema
from singer_sdk.typing import DEFAULT_JSONSCHEMA_VALIDATOR

Number = int | float | Decimal

# Decimal arithmetic that is exact or raises: a rounded result, a quotient of more than 100
# digits or one too small to hold signals, instead of giving an approximate remainder.
_EXACT = decimal.Context(
    prec=100,
    traps=[
        decimal.InvalidOperation,
        decimal.Inexact,
        decimal.Rounded,
        decimal.Subnormal,
        decimal.Underflow,
        decimal.Overflow,
    ],
)


def is_multiple(value: Number, step: Number) -> bool:
    """Whether ``value`` is a whole multiple of ``step`` (> 0), exactly, at any size.

    A float counts as its shortest decimal spelling (0.01, not the binary fraction nearest
    it), as fastjsonschema reads one. NaN and the infinities are multiples of nothing.
    """
    value, step = _as_decimal(value), _as_decimal(step)
    if not (value.is_finite() and step.is_finite()):
        return False
    try:
        return not _EXACT.remainder(value, step)  # the usual case, in C
    except ArithmeticError:  # too large or too small for that: in integers, at any size
        pass
    # value = v * 10**a and step = s * 10**b, so value / step = v / s * 10**(a - b).
    v, a, v_digits = _integer_parts(value)
    s, b, _ = _integer_parts(step)
    if a >= b:
        return v * pow(10, a - b, s) % s == 0  # 10**(a - b) modulo s: cheap for any a - b
    # s * 10**(b - a) must divide v, which it cannot (v being > 0) once it has more digits.
    return v == 0 or (b - a < v_digits and v % (s * 10 ** (b - a)) == 0)


def _as_decimal(number: Number) -> Decimal:
    if isinstance(number, Decimal):
        return number
    return Decimal(repr(number) if isinstance(number, float) else number)


def _integer_parts(number: Decimal) -> tuple[int, int, int]:
    """A finite ``|number|`` as (coefficient, exponent, digits in the coefficient)."""
    _, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # only NaN and the infinities have a letter there
    return int(Decimal((0, digits, 0))), exponent, len(digits)


def _multiple_of(
    validator: Any, step: Number, instance: Any, schema: dict[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    if validator.is_type(instance, "number") and not is_multiple(instance, step):
        yield jsonschema.ValidationError(f"{instance} is not a multiple of {step}")


def _is_integer(checker: Any, instance: Any) -> bool:
    return bool(checker.is_type(instance, "number")) and is_multiple(instance, 1)


_StockValidator = jsonschema.validators.extend(
    DEFAULT_JSONSCHEMA_VALIDATOR,
    validators={"multipleOf": _multiple_of},
    type_checker=DEFAULT_JSONSCHEMA_VALIDATOR.TYPE_CHECKER.redefine("integer", _is_integer),
)


class RecordValidator:
    """Checks records against one stream schema, as the SDK does (formats not checked)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        try:
            _StockValidator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise InvalidJSONSchema(f"the SCHEMA is not valid JSON Schema: {exc.message}") from None
        self._stock = _StockValidator(schema, format_checker=jsonschema.FormatChecker(formats=()))
        self._compiled = _compile(schema)

    def problem(self, record: dict[str, Any]) -> str | None:
        """Why ``record`` does not fit the schema, or None if it does."""
        if self._compiled is not None:
            try:
                self._compiled(record)
            except Exception:  # refused, or a value its code cannot take: the stock decides
                pass
            else:
                return None
        try:
            error = jsonschema.exceptions.best_match(self._stock.iter_errors(record))
        except RecursionError:
            raise  # the caller says the record is nested too deeply
        except Exception as exc:  # the record is judged alone: whatever fails, it is rejected
            return f"the stream's SCHEMA could not be checked against it: {_failure(exc)}"
        if error is None:
            return None
        where = ".".join(str(part) for part in error.absolute_path)
        message = error.message
        if isinstance(error.instance, Decimal):  # jsonschema shows a value's repr: Decimal('7.5')
            message = message.replace(repr(error.instance), str(error.instance))
        return f"does not match the stream's SCHEMA: {where + ': ' if where else ''}{message}"


def _failure(exc: Exception) -> str:
    if isinstance(exc, decimal.InvalidOperation):
        # A Decimal signal says nothing; with multipleOf exact, it is a NaN met by a bound.
        return "it holds NaN, which cannot be compared with the SCHEMA's numbers"
    text = str(exc).split("\n", 1)[0] or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."


class _CompiledCode(CodeGeneratorDraft2019):
    """fastjsonschema's code for a schema, with ``multipleOf`` judged by ``is_multiple``.

    Always draft 2019-09, fastjsonschema's newest: the stock validator reads every schema as
    draft 2020-12, whatever its ``$schema`` says.
    """

    @property
    def global_state(self) -> dict[str, Any]:
        return {**super().global_state, "is_multiple": is_multiple}

    def generate_multiple_of(self) -> None:
        with self.l(
            "if isinstance({variable}, (int, float, Decimal)) and not isinstance({variable}, bool)"
            " and not is_multiple({variable}, {step}):",
            step=repr(self._definition["multipleOf"]),  # Decimal('0.01') is code here too
        ):
            self.exc("{name} must be multiple of {multipleOf}", rule="multipleOf")


def _refuse_remote(uri: str) -> Any:
    raise fastjsonschema.JsonSchemaDefinitionException(f"remote $ref not fetched: {uri}")


# fastjsonschema would download a remote $ref at compile time: never reach the network.
_NO_DOWNLOADS = {scheme: _refuse_remote for scheme in ("http", "https", "ftp", "file")}


def _compile(schema: dict[str, Any]) -> Callable[[Any], Any] | None:
    """The compiled validator, or None where fastjsonschema cannot compile the schema.

    As ``fastjsonschema.compile`` does it, with ``_CompiledCode`` for its code generator.
    """
    try:
        resolver = RefResolver.from_schema(schema, handlers=_NO_DOWNLOADS, store={})
        code = _CompiledCode(
            schema,
            resolver=resolver,
            use_default=False,
            use_formats=False,
            detailed_exceptions=False,
        )
        global_state = code.global_state
        exec(code.func_code, global_state)  # the code fastjsonschema generated, as it does
        return global_state[resolver.get_scope_name()]
    except Exception:
        return None
