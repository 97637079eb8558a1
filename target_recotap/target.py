"""TargetRecotap: routes streams to sinks, writes STATE only when safe, ends with a summary."""

from __future__ import annotations

import copy
import gc
import io
import os
import reprlib
import signal
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from singer_sdk import metrics
from singer_sdk.exceptions import (
    ConfigValidationError,
    InvalidJSONSchema,
    MapExpressionError,
    MissingKeyPropertiesError,
    RecordsWithoutSchemaException,
    StreamMapConfigError,
)
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.singerlib.exceptions import InvalidInputLine

from target_recotap.client import RecotapClient
from target_recotap.connection import EnvironmentUnusable, route_for
from target_recotap.dry_run import DryRunTransport
from target_recotap.endpoints import ENDPOINTS
from target_recotap.errors import RecotapError
from target_recotap.flow import Dispatcher, Throttle
from target_recotap.progress import ProgressLog
from target_recotap.reader import LineCountingReader
from target_recotap.rejects import DeadLetterUnwritable, MovedAside, RejectLog
from target_recotap.retry import RetryPolicy
from target_recotap.settings import (
    CONFIG_SCHEMA,
    config_file_problem,
    config_problems,
    without_secret_values,
)
from target_recotap.settlement import SettlementLedger
from target_recotap.singer_adapter import SingerTarget
from target_recotap.sinks import (
    AccountsSink,
    DealsSink,
    DealStagesSink,
    InputProgress,
    RecotapSink,
    SalesActivitiesSink,
    SinkContext,
    SkippedStreamSink,
    StreamSink,
)
from target_recotap.wording import listing, plural

if TYPE_CHECKING:
    from collections.abc import Sequence

    from singer_sdk.sinks import Sink

SINKS: dict[str, type[RecotapSink]] = {
    "deals": DealsSink,
    "deal_stages": DealStagesSink,
    "sales_activities": SalesActivitiesSink,
    "accounts": AccountsSink,
}
INPUT_ERRORS = (
    InvalidInputLine,
    RecordsWithoutSchemaException,
    InvalidJSONSchema,
    MissingKeyPropertiesError,
)

RECORD_KEYS = {"stream", "record"}  # read only

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_TOO_MANY_REJECTED = 3


class InputError(Exception):
    """The input broke the Singer spec in a way this target cannot go past."""


class RunInterrupted(Exception):
    """SIGINT or SIGTERM arrived."""


class TargetRecotap(SingerTarget):
    """Pushes CRM accounts, deals, deal pipelines and sales activities into Recotap."""

    name = "target-recotap"
    # A copy: the SDK adds its built-in settings to this dict in place, and CONFIG_SCHEMA is
    # what this target's settings are (read by the docs, the Hub definition and the tests).
    config_jsonschema = copy.deepcopy(CONFIG_SCHEMA)
    message_reader_class = LineCountingReader
    message_reader: LineCountingReader  # made from message_reader_class: none is passed in

    def __init__(self, **kwargs: Any) -> None:
        # The SDK fills in each setting's default from CONFIG_SCHEMA as it validates the
        # config, so settings are read as they are, with no default written again here.
        super().__init__(**kwargs)
        problems = config_problems(self.config) + self._prepare_output_files()
        if problems:
            raise ConfigValidationError("Config validation failed", errors=problems)
        self.throttle = Throttle(int(self.config["max_concurrent_requests"]))
        self.dispatcher = Dispatcher(self.throttle)
        # What the run writes to in place of Recotap in a dry run; None in a real run.
        self.dry_run: DryRunTransport | None = None
        if self.config.get("dry_run"):
            path = self.config["dry_run_path"]
            try:
                self.dry_run = DryRunTransport(path)
            except OSError as exc:
                problem = f"dry_run_path {path!r} cannot be written: {exc.strerror}"
                raise ConfigValidationError("Dry run unwritable", errors=[problem]) from None
        try:
            self.client = self._make_client()
        except EnvironmentUnusable as exc:
            raise ConfigValidationError("Environment unusable", errors=[str(exc)]) from None
        # A dry run keeps no dead letter: what it rejects was never sent, and a dry run of a
        # replay would otherwise append to the file it reads.
        dead_letter = None if self.dry_run is not None else self.config.get("dead_letter_path")
        self.rejects = RejectLog(self.logger, dead_letter)
        self.ledger = SettlementLedger(self.write_state)
        self.input = InputProgress()
        self.sink_context = SinkContext(
            self.client,
            self.dispatcher,
            self.ledger,
            self.rejects,
            self.input,
            dry_run=self.dry_run is not None,
        )
        self.progress = ProgressLog(
            self.logger,
            self.sink_context.stream_stats,
            SINKS,
            float(self.config["progress_interval"]),
            dry_run=self.dry_run is not None,
        )

    def _prepare_output_files(self) -> list[str]:
        """Create the folders of the files this run writes; say which cannot be written."""
        problems = []
        for setting in ("dead_letter_path", "dry_run_path"):
            path = self.config.get(setting)
            if not path or (setting == "dry_run_path" and not self.config.get("dry_run")):
                continue
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                problems.append(f"{setting} {path!r} cannot be written: {exc.strerror}")
        return problems

    def _make_client(self) -> RecotapClient:
        api_url = self.config["api_url"]
        if self.dry_run is not None:
            # A dry run is the check before a real run: the proxy and CA bundle that one would
            # use are read and refused as it would, though no connection is made.
            route_for(api_url)
            return RecotapClient(
                DryRunTransport.URL, api_key="", throttle=self.throttle, transport=self.dry_run
            )
        return RecotapClient(
            api_url,
            self.config["api_key"],
            timeout=float(self.config["request_timeout"]),
            retry=RetryPolicy(
                max_retries=int(self.config["max_retries"]),
                initial_delay=float(self.config["retry_initial_delay"]),
            ),
            throttle=self.throttle,
        )

    @classmethod
    def append_builtin_config(cls, config_jsonschema: dict) -> None:
        super().append_builtin_config(config_jsonschema)
        # The API fixes how data loads (deals upsert, pipelines are created once): no choice.
        config_jsonschema["properties"].pop("load_method", None)

    # Streams ------------------------------------------------------------------------------

    def get_sink_class(self, stream_name: str) -> type[RecotapSink | SkippedStreamSink]:
        if stream_name not in SINKS and self.config.get("fail_on_unknown_streams"):
            raise InputError(
                f"stream {stream_name!r} is not one this target loads ({listing(ENDPOINTS)}), "
                "and fail_on_unknown_streams is set; rename it with a stream map or deselect it"
            )
        return SINKS.get(stream_name, SkippedStreamSink)

    def on_schema(self, message_dict: dict) -> None:
        self.require_keys(message_dict, {"stream", "schema"})
        stream = message_dict["stream"]
        if not isinstance(message_dict["schema"], dict):
            raise InvalidJSONSchema(f"the SCHEMA of stream {stream!r} is not a JSON object")
        if "properties" not in message_dict["schema"]:  # the SDK requires it, in other words
            raise InvalidJSONSchema(
                f"the SCHEMA of stream {stream!r} has no 'properties': "
                "a tap must declare its fields"
            )
        keys = message_dict.get("key_properties")
        if keys is not None and not (
            isinstance(keys, list) and all(isinstance(key, str) for key in keys)
        ):
            # The SDK would take a string's letters for the names ('e', 'x', ...) and reject
            # every record as missing a key property 'e'.
            raise InvalidJSONSchema(
                f"the SCHEMA of stream {stream!r} gives key_properties as {reprlib.repr(keys)}, "
                "not as a list of field names"
            )
        self.rejects.remember_schema(message_dict)
        self.register_schema(message_dict)
        for stream_map in self.mapper.stream_maps[stream]:
            sink = self._stream_sink(stream_map.stream_alias)
            if sink is not None:
                sink.use_schema(
                    stream, stream_map.transformed_schema, stream_map.transformed_key_properties
                )

    def _stream_sink(self, stream_name: str) -> StreamSink | None:
        """The sink of ``stream_name``, if there is one yet: one of this target's (``SINKS``, or
        ``SkippedStreamSink``), as ``get_sink_class`` chose."""
        return cast("StreamSink | None", self.sink_named(stream_name))

    def get_sink(
        self,
        stream_name: str,
        *,
        record: dict | None = None,
        schema: dict | None = None,
        key_properties: Sequence[str] | None = None,
    ) -> Sink:
        existing = self.sink_named(stream_name)
        if schema is not None and isinstance(existing, RecotapSink):
            # The SDK would start a new sink for a changed SCHEMA (or a second stream mapped
            # onto this one) and drop the old one at the next drain, with the deals held back
            # and the pipelines gathered in it. Here the sink stays; each source stream keeps
            # its own schema (``use_schema``).
            return existing
        return super().get_sink(
            stream_name, record=record, schema=schema, key_properties=key_properties
        )

    def on_record(self, message_dict: dict) -> None:
        # The SDK's version stops the run on a schema mismatch and turns date strings into
        # datetimes; here a bad record is rejected alone and values reach the sink as read.
        self.require_keys(message_dict, RECORD_KEYS)
        raw = message_dict["record"]
        if type(raw) is not dict:
            raise InvalidInputLine("the RECORD message's 'record' is not a JSON object")
        reader = self.message_reader
        # Held by the reader until routed. A record whose routing fails stays unsettled: the run
        # stops at its line, and no STATE after it is written.
        received = self.ledger.receive(message_dict, reader.line, reader.line_number)
        stream_name = message_dict["stream"]
        if stream_name not in self.mapper.stream_maps:
            self.require_sink(stream_name)
        for stream_map in self.mapper.stream_maps[stream_name]:
            # Nothing here changes a record; only a custom map might, and the dead letter
            # must keep the record as it arrived.
            unchanged = type(stream_map) is SameRecordTransform
            try:
                record = stream_map.transform(raw if unchanged else copy.copy(raw))
            except Exception as exc:  # a map expression is the user's code: it can raise anything
                failed = self._stream_sink(stream_map.stream_alias)
                if failed is not None:
                    failed.reject_unmapped(received, f"the stream map failed on it: {_why(exc)}")
                continue
            if record is None:
                continue
            sink = self.get_sink(stream_map.stream_alias, record=record)
            cast("StreamSink", sink).accept(record, received)  # a sink of this target's
            sink.record_counter_metric.increment()
            if sink.is_full:
                self.drain_one(sink)
        self.ledger.settle((received,))  # routed: now held by the sinks that buffered it, if any
        self.drain_aged_sinks()

    def on_state(self, message_dict: dict) -> None:
        self.require_keys(message_dict, {"value"})
        if self.dry_run is not None:
            return  # nothing reaches Recotap, so the tap's bookmarks must not move
        self.ledger.state(message_dict["value"])

    def on_activate_version(self, message_dict: dict) -> None:
        self.require_keys(message_dict, {"stream", "version"})
        # Recotap has no table versions to switch: deals are upserted one by one.
        self.logger.debug("ACTIVATE_VERSION for %r ignored", message_dict["stream"])

    def on_batch(self, message_dict: dict) -> None:
        raise InputError("BATCH messages are not supported: run the tap without batch mode")

    def process_endofpipe(self) -> None:
        self.input.finished = self.input.complete = True
        super().process_endofpipe()
        self._settle()

    def _settle(self) -> None:
        """Wait for every request in flight (the ledger writes the STATEs they make safe), then
        report."""
        self.dispatcher.wait_all()
        pipelines = self.sink_named("deal_stages")
        if isinstance(pipelines, DealStagesSink):
            pipelines.report_existing()

    # Running ------------------------------------------------------------------------------

    def run(self, file_input: IO[str] | None = None) -> int:
        """Read the input to its end and return the exit code; errors end in one log line."""
        # The reading thread is CPU-bound; the sending threads mostly wait on the network. A
        # shorter switch interval lets a sender take its answer without waiting 5 ms each time.
        sys.setswitchinterval(0.0002)
        self._started = time.monotonic()
        self.progress.start()
        moved = None
        source = file_input or self.message_reader.default_input
        if isinstance(source, io.TextIOWrapper):
            # Singer messages are UTF-8, whatever the locale says (under LC_ALL=C, Python would
            # read them as ASCII). A byte that is not UTF-8 would stop the run with a traceback,
            # wherever it is: read as a lone surrogate, it rejects its record alone, and the
            # dead letter keeps it as an escape. Nothing is read yet, so both can be set.
            source.reconfigure(encoding="utf-8", errors="surrogateescape")
        try:
            moved = self._move_dead_letter_aside_if_read(source)
            code = self._run(file_input)
        except (RecotapError, DeadLetterUnwritable) as exc:
            self.client.stop()  # requests still in flight give up their retries
            self.logger.error("Stopped: %s. %s", exc, self._stop_checkpoints())
            code = EXIT_FAILED
        except RunInterrupted as exc:
            self.logger.error(
                "Stopped by %s: records not yet confirmed were not checkpointed. %s",
                exc,
                self._stop_checkpoints(),
            )
            code = EXIT_FAILED
        finally:
            self.progress.stop()
            self.dispatcher.close()
            self.client.close()
        if moved is not None and code == EXIT_FAILED:
            self._put_dead_letter_back(moved)
        self._log_request_metrics()
        self._log_summary()
        return code

    def _move_dead_letter_aside_if_read(self, source: IO[str]) -> MovedAside | None:
        moved = self.rejects.move_aside_if_read(source)
        if moved is not None:
            self.logger.info(
                "The input is the dead letter %s: it was moved to %s, which this run replays; "
                "records rejected again go to a new %s",
                self.rejects.path,
                moved.moved,
                self.rejects.path,
            )
        return moved

    def _put_dead_letter_back(self, moved: MovedAside) -> None:
        """A replay that stopped early: the dead letter goes back to what it held before it.

        Every record this run rejected came from that file, so nothing is lost; the records it
        did deliver are delivered again by the next replay, which is harmless (upserts, 409s).
        """
        try:
            moved.put_back()
        except OSError as exc:
            self.logger.error(
                "The replay stopped early, and %s could not be moved back to %s (%s): replay %s",
                moved.moved,
                moved.original,
                exc.strerror,
                moved.moved,
            )
            return
        self.logger.info(
            "The replay stopped early: %s holds again what it held before it, to replay again",
            self.rejects.path,
        )

    def _stop_checkpoints(self) -> str:
        """Write no further STATE (requests may still land), and say where a rerun resumes."""
        self.ledger.stop()
        if self.ledger.last_written is not None:
            return "Run again to continue from the last STATE written"
        return "No STATE was written: a rerun starts where this run started"

    def _run(self, file_input: IO[str] | None) -> int:
        try:
            self.listen(file_input)
        except (*INPUT_ERRORS, InputError, StreamMapConfigError) as exc:
            why = _first_sentence(exc)
            if isinstance(exc, StreamMapConfigError):  # a setting's mistake, found at a line
                why = f"the stream_maps setting does not fit this SCHEMA: {why}"
            self.logger.error("Input line %d: %s", self.message_reader.line_number, why)
            # What was read before the bad line is still delivered and checkpointed.
            self.input.finished = True
            self.drain_all()
            self._settle()
            return EXIT_FAILED
        limit = int(self.config["max_rejected_records"])
        if self.rejects.total > limit:
            if self.rejects.path:
                where = f"they are in {self.rejects.path}"
            elif self.dry_run is not None:
                where = "a dry run writes no dead letter: the warnings above name them"
            else:
                where = "set dead_letter_path to keep them"
            self.logger.error(
                "Rejected records: %d, more than max_rejected_records (%d); %s.",
                self.rejects.total,
                limit,
                where,
            )
            return EXIT_TOO_MANY_REJECTED
        return EXIT_OK

    def on_signal(self, signum: int) -> None:
        self.client.stop()
        raise RunInterrupted(signal.Signals(signum).name)

    def _log_request_metrics(self) -> None:
        """Per endpoint, one METRIC of the requests sent and one of the seconds they took.

        Once at the end, not one per request: the seconds are those of every attempt added up,
        so that a sum over runs is what per-request timers would sum to.
        """
        if self.dry_run is not None:
            return
        logger = metrics.get_metrics_logger()
        for stream, endpoint in ENDPOINTS.items():
            calls = self.client.stats.get(endpoint.path)
            if calls is None:
                continue
            tags = {"stream": stream, "endpoint": endpoint.path, "pid": os.getpid()}
            for point in (
                metrics.Point("counter", metrics.Metric.HTTP_REQUEST_COUNT, calls.requests, tags),
                metrics.Point(
                    "timer", metrics.Metric.HTTP_REQUEST_DURATION, round(calls.seconds, 3), tags
                ),
            ):
                metrics.log(logger, point)

    def _log_summary(self) -> None:
        """Each stream's summary line, in the order the streams came, then the run's."""
        for stream in self.sink_context.stream_stats:
            sink = self._stream_sink(stream)
            if sink is not None:
                sink.log_summary()
        if self.dry_run is not None:
            bodies = sum(calls.requests for calls in self.client.stats.values())
            self.logger.info(
                "Dry run: %s written to %s; nothing was sent to Recotap, and no STATE was written",
                plural(bodies, "request body", "request bodies"),
                self.dry_run.path.absolute(),
            )
        self.logger.info("Run took %.1f s", time.monotonic() - self._started)

    @classmethod
    def check_config_files(cls, paths: list[str]) -> None:
        """A config file that is missing or not JSON ends the run in a line."""
        for path in paths:
            problem = config_file_problem(path)
            if problem:
                cls.logger.error("Settings: %s", problem)
                sys.exit(EXIT_FAILED)

    @classmethod
    def run_from_cli(cls, config: dict, parse_env: bool, file_input: IO[str] | None) -> int:
        try:
            target = cls(config=config, parse_env_config=parse_env)
        except ConfigValidationError as exc:
            # The SDK would log each problem, then "Config validation failed": one line says it.
            problems = [without_secret_values(problem) for problem in exc.errors]
            cls.logger.error("Settings: %s", "; ".join(problems) or exc)
            return EXIT_FAILED
        # What exists now (modules, the SDK's classes, settings) lives until exit. Frozen, the
        # collector stops walking it on every full pass, and exit skips it: about 0.1 s less.
        gc.freeze()
        return target.run(file_input)


def _why(exc: Exception) -> str:
    """What went wrong in a stream map expression: the SDK wraps simpleeval's own words."""
    cause = exc.__cause__ if isinstance(exc, MapExpressionError) and exc.__cause__ else exc
    return str(cause) or type(cause).__name__


def _first_sentence(exc: Exception) -> str:
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    return text.split("\n", 1)[0]


if __name__ == "__main__":
    TargetRecotap.cli()
