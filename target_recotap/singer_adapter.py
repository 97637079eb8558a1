"""Every place this target leans on singer-sdk's private surface, and why.

The SDK's ``Target`` reads each message and hands it to a private ``_process_*_message``
method; its CLI builds the target and calls ``listen``. This target has to take some of that
over: a bad record is rejected alone instead of stopping the run, a STATE waits for the ledger,
a run ends with an exit code that says how it went. So ``SingerTarget`` overrides those private
methods, each forwarding to a public hook that ``TargetRecotap`` implements, and gives the few
private SDK helpers the target calls a public name. No other module names a private SDK
attribute (``LineReader`` below does it for the reader).

tests/test_sdk_surface.py checks each name used here against the installed singer-sdk: a
renamed or re-signed one, or an SDK method whose copy or override here no longer matches what
it replaced, fails with its name and what to re-read. Moving the singer-sdk pin in
pyproject.toml is then: move it, run that test, fix what it names.
"""

from __future__ import annotations

import abc
import json
import sys
from typing import IO, TYPE_CHECKING, Any

import click
from singer_sdk import Target
from singer_sdk.io_base import SingerReader
from singer_sdk.plugin_base import _ConfigInput
from singer_sdk.singerlib.exceptions import InvalidInputLine

if TYPE_CHECKING:
    from types import FrameType

    from singer_sdk.sinks import Sink


class SingerTarget(Target, abc.ABC):
    """singer-sdk's ``Target``, with its message handling and CLI run handed to public hooks."""

    # The hooks --------------------------------------------------------------------------------

    @abc.abstractmethod
    def on_schema(self, message: dict) -> None:
        """A SCHEMA message; ``register_schema`` does what the SDK does with one."""

    @abc.abstractmethod
    def on_record(self, message: dict) -> None:
        """A RECORD message, in place of the SDK's handling (which stops the run on a record
        that does not match its schema)."""

    @abc.abstractmethod
    def on_state(self, message: dict) -> None:
        """A STATE message, in place of the SDK's (which writes it at the next drain)."""

    @abc.abstractmethod
    def on_activate_version(self, message: dict) -> None:
        """An ACTIVATE_VERSION message, in place of the SDK's (which asks the sink to act)."""

    @abc.abstractmethod
    def on_batch(self, message: dict) -> None:
        """A BATCH message, in place of the SDK's."""

    @abc.abstractmethod
    def on_signal(self, signum: int) -> None:
        """SIGINT or SIGTERM, in place of the SDK's handler (which exits at once)."""

    @classmethod
    @abc.abstractmethod
    def check_config_files(cls, paths: list[str]) -> None:
        """Exit if one of the ``--config`` files cannot be read, before the SDK reads them."""

    @classmethod
    @abc.abstractmethod
    def run_from_cli(cls, config: dict, parse_env: bool, file_input: IO[str] | None) -> int:
        """Build the target from the CLI's settings and run it; the process's exit code."""

    # Private SDK helpers under public names ---------------------------------------------------

    def register_schema(self, message: dict) -> None:
        """What the SDK does with a SCHEMA: stream maps, and the sinks it starts or replaces."""
        super()._process_schema_message(message)

    def require_keys(self, message: dict, keys: set[str]) -> None:
        """Raise the SDK's input error if ``message`` lacks one of ``keys``."""
        self._assert_line_requires(message, requires=keys)

    def require_sink(self, stream_name: str) -> None:
        """Raise the SDK's error for a RECORD of a stream no SCHEMA came for."""
        self._assert_sink_exists(stream_name)

    def sink_named(self, stream_name: str) -> Sink | None:
        """The sink of ``stream_name``, if it has one yet."""
        return self._sinks_active.get(stream_name)

    def drain_aged_sinks(self) -> None:
        """Drain the sinks whose oldest record is older than the SDK's max record age."""
        self._handle_max_record_age()

    def write_state(self, state: dict[str, Any]) -> None:
        """Write a STATE message to standard output, as the SDK would: the only way this
        target writes one (the settlement ledger calls it)."""
        sys.stdout.write(json.dumps(state) + "\n")
        sys.stdout.flush()

    # The overrides ----------------------------------------------------------------------------

    def _process_schema_message(self, message_dict: dict) -> None:
        self.on_schema(message_dict)

    def _process_record_message(self, message_dict: dict) -> None:
        self.on_record(message_dict)

    def _process_state_message(self, message_dict: dict) -> None:
        self.on_state(message_dict)

    def _process_activate_version_message(self, message_dict: dict) -> None:
        self.on_activate_version(message_dict)

    def _process_batch_message(self, message_dict: dict) -> None:
        self.on_batch(message_dict)

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        self.on_signal(signum)

    def _write_state_message(self, state: dict) -> None:
        # The SDK writes the last STATE it read whenever it drains its sinks, whether or not
        # their records are settled. This target's STATEs come from its ledger alone (through
        # write_state), and it reads none through the SDK; a new SDK that writes one anyway
        # must stop the run loudly, not quietly break the promise.
        raise RuntimeError(
            "singer-sdk tried to write a STATE itself, which this target never lets it do: "
            "see target_recotap/singer_adapter.py"
        )

    @classmethod
    def cb_config(
        cls, ctx: click.Context, param: click.Option, value: tuple[str, ...]
    ) -> _ConfigInput:
        """The SDK's, once ``check_config_files`` passed: the SDK would end a config file that is
        missing or not JSON with a traceback."""
        cls.check_config_files([path for path in value if path != "ENV"])
        return super().cb_config(ctx, param, value)

    @classmethod
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: _ConfigInput | None = None,
        file_input: IO[str] | None = None,
    ) -> None:
        """The SDK's ``Target.invoke``, but for its last two steps: the target is built and run
        by ``run_from_cli``, whose exit code ends the process (the SDK's always exits 0)."""
        super(Target, cls).invoke(about=about, about_format=about_format)
        cls.print_version(print_fn=cls.logger.info)
        config = config or _ConfigInput()
        sys.exit(cls.run_from_cli(config.config, config.parse_env, file_input))


class LineReader(SingerReader):
    """singer-sdk's message reader, with an unknown message type as an input error."""

    def _process_unknown_message(self, message_dict: dict) -> None:
        # The SDK's raises a ValueError that would end the run with a traceback.
        raise InvalidInputLine(f"unknown message type {str(message_dict['type'])[:40]!r}")
