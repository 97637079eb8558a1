"""Reads Singer messages line by line, so that an input error can name its line."""

from __future__ import annotations

import json
from decimal import Decimal

import msgspec
from singer_sdk.singerlib.exceptions import InvalidInputLine
from singer_sdk.singerlib.json import deserialize_json

from target_recotap.singer_adapter import LineReader

# Numbers with a fraction become Decimals, as in the SDK's reader: amounts stay exact.
_decode = msgspec.json.Decoder(float_hook=Decimal).decode


class LineCountingReader(LineReader):
    """The SDK's reader, counting lines and explaining bad ones in one sentence."""

    def __init__(self) -> None:
        super().__init__()
        self.line_number = 0
        self.line = ""  # the line last read, as it came: a rejected record is written from it

    def deserialize_json(self, line: str) -> dict:
        self.line_number += 1
        self.line = line
        try:
            message = _decode(line)
        except (msgspec.DecodeError, RecursionError, UnicodeEncodeError):
            # msgspec is stricter than the SDK's reader (e.g. lone surrogates, escaped or, from
            # undecodable bytes on standard input, raw): let that decide.
            message = self._decode_as_sdk_does(line)
        if not isinstance(message, dict):
            raise InvalidInputLine("not a JSON object")
        return message

    @staticmethod
    def _decode_as_sdk_does(line: str) -> object:
        try:
            return deserialize_json(line)
        except json.JSONDecodeError as exc:
            # The decoder counts the line's own newline, so a line cut short would be "broken"
            # at column 1 of a second line: say that it ended instead.
            if exc.pos >= len(line.rstrip("\r\n")):
                problem = "not a JSON message: the line ends in the middle of it"
            else:
                problem = f"not a JSON message ({exc.msg} at column {exc.pos + 1})"
            raise InvalidInputLine(problem) from None
        except ValueError:  # not JSONDecodeError: an integer of over 4300 digits, too long for int
            raise InvalidInputLine("a JSON message with an integer too long to read") from None
        except RecursionError:
            raise InvalidInputLine("a JSON message nested too deeply to read") from None

    @staticmethod
    def assert_line_requires(line_dict: dict, requires: set[str]) -> None:
        for key in requires:  # the usual case, without building sets for every line
            if key not in line_dict:
                break
        else:
            return
        missing = sorted(requires - set(line_dict))
        if missing:
            kind = line_dict.get("type", "the")
            raise InvalidInputLine(f"{kind} message has no {' or '.join(map(repr, missing))} key")
