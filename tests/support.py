"""Helpers shared by the tests: Singer message builders and ways to run the target."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from singer_sdk.singerlib.json import serialize_json

from target_recotap.target import TargetRecotap

DEALS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "externalDealId": {"type": ["string", "integer", "null"]},
        "external_deal_id": {"type": ["string", "integer", "null"]},
        "name": {"type": ["string", "null"]},
        "amount": {"type": ["number", "string", "null"]},
        "stageId": {"type": ["string", "integer", "null"]},
        "stageLabel": {"type": ["string", "null"]},
        "pipelineId": {"type": ["string", "integer", "null"]},
        "pipelineLabel": {"type": ["string", "null"]},
        "startDate": {"type": ["string", "integer", "null"]},
        "closedDate": {"type": ["string", "integer", "null"]},
        "ownerName": {"type": ["string", "null"]},
        "ownerEmail": {"type": ["string", "null"]},
        "ownerId": {"type": ["string", "integer", "null"]},
        "dealCurrencyCode": {"type": ["string", "null"]},
        "associatedAccounts": {"type": ["array", "null"], "items": {"type": "object"}},
    },
}
# Pipelines arrive in several shapes; an open schema lets each test send its own.
DEAL_STAGES_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


def schema(stream: str, body: dict[str, Any] | None = None, keys: list[str] | None = None) -> dict:
    if body is None:
        body = DEALS_SCHEMA if stream == "deals" else DEAL_STAGES_SCHEMA
    return {"type": "SCHEMA", "stream": stream, "schema": body, "key_properties": keys or []}


def record(stream: str, data: dict[str, Any]) -> dict:
    return {"type": "RECORD", "stream": stream, "record": data}


def state(value: Any) -> dict:
    return {"type": "STATE", "value": value}


def deal(n: int | str, **fields: Any) -> dict[str, Any]:
    return {"externalDealId": f"deal-{n}", "name": f"Deal {n}", **fields}


def deals_messages(deals: list[dict[str, Any]]) -> list[dict]:
    return [schema("deals"), *(record("deals", d) for d in deals)]


def pipeline(pid: str, stages: int = 2, label: str | None = None) -> dict[str, Any]:
    return {
        "pipelineId": pid,
        "pipelineLabel": label or f"Pipeline {pid}",
        "stages": [{"stageId": f"{pid}-s{i}", "stageLabel": f"Stage {i}"} for i in range(stages)],
    }


def to_lines(messages: list[dict | str]) -> str:
    return "".join((m if isinstance(m, str) else serialize_json(m)) + "\n" for m in messages)


def config_for(emulator: Any, **extra: Any) -> dict[str, Any]:
    return {
        "api_key": emulator.api_key,
        "api_url": emulator.url,
        "retry_initial_delay": 0.01,
        **extra,
    }


@dataclass
class Outcome:
    exit_code: int
    states: list[Any] = field(default_factory=list)
    log: str = ""


def run_in_process(config: dict[str, Any], messages: list[dict | str], capsys: Any) -> Outcome:
    """Run the target in this process, as the CLI does after parsing its arguments."""
    capsys.readouterr()
    target = TargetRecotap(config=dict(config))
    code = target.run(io.StringIO(to_lines(messages)))
    captured = capsys.readouterr()
    states = [json.loads(line) for line in captured.out.splitlines() if line.strip()]
    return Outcome(code, states, captured.err)


def run_cli(
    args: list[str],
    messages: list[dict | str] | None = None,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m target_recotap`` as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "target_recotap", *args],
        input=to_lines(messages or []),
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def run_cli_on_file(
    args: list[str], source: Path, *, via: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m target_recotap`` on the bytes of ``source``, as standard input
    (``via="stdin"``) or named by ``--input`` (``via="--input"``); output kept as bytes."""
    with source.open("rb") as standard_input:
        return subprocess.run(
            [sys.executable, "-m", "target_recotap", *args]
            + (["--input", str(source)] if via == "--input" else []),
            stdin=standard_input if via == "stdin" else subprocess.DEVNULL,
            capture_output=True,
            env={**os.environ, **(env or {})},
            timeout=60,
            check=False,
        )


def about_json() -> dict[str, Any]:
    """What ``target-recotap --about --format json`` says of itself."""
    about = run_cli(["--about", "--format", "json"])
    assert about.returncode == 0, about.stderr
    return json.loads(about.stdout)  # type: ignore[no-any-return]


def free_port() -> int:
    """A loopback port where nothing listens: bound to find it, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(tmp_path: Path, config: dict[str, Any]) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def states_from(stdout: str) -> list[Any]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


class LiveTarget:
    """``python -m target_recotap`` fed line by line, for tests that act in the middle of a run."""

    def __init__(self, config_path: Path, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "target_recotap", "--config", str(config_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        # The log is read as it comes, so that a test can act on a line while the run goes on.
        self._log_lines: list[str] = []
        self._log_reader = threading.Thread(target=self._read_log, daemon=True)
        self._log_reader.start()

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._log_lines.append(line)

    def send(self, messages: list[dict | str]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(to_lines(messages))
        self.process.stdin.flush()

    def next_state(self) -> Any:
        """Wait for the next STATE line on stdout."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, "the target ended without writing another STATE"
        return json.loads(line)

    def log_line(self, fragment: str, timeout: float = 30) -> str:
        """Wait for the first log line that holds ``fragment``; return it."""

        def found() -> str | None:
            return next((line for line in list(self._log_lines) if fragment in line), None)

        wait_until(found, f"a log line holding {fragment!r}", timeout)
        return str(found()).rstrip("\n")

    def finish(self, timeout: float = 60) -> tuple[int, list[Any], str]:
        """Close stdin and wait; return the exit code, the STATEs not yet read, and the log."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        out = self.process.stdout.read()
        self._log_reader.join(timeout)
        return self.process.returncode, states_from(out), "".join(self._log_lines)


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 10) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` if it does not within ``timeout``
    (generous: the wait ends as soon as it holds, however loaded the machine)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.01)
