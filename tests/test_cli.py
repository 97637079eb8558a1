"""The target as a user runs it: a command, a config file, stdin, an exit code, a log."""

from __future__ import annotations

import copy
import json
import re
import time

import pytest
from support import (
    LiveTarget,
    config_for,
    deal,
    deals_messages,
    pipeline,
    record,
    run_cli,
    run_cli_on_file,
    schema,
    state,
    states_from,
    wait_until,
    write_config,
)

from target_recotap.settings import CONFIG_SCHEMA
from target_recotap.target import TargetRecotap


def test_version_and_about_list_every_setting():
    version = run_cli(["--version"])
    assert version.returncode == 0
    assert "target-recotap v" in version.stdout
    about = run_cli(["--about", "--format=markdown"])
    assert about.returncode == 0
    for name in CONFIG_SCHEMA["properties"]:
        assert f"| {name} |" in about.stdout


def test_a_target_leaves_the_settings_schema_as_written(emulator):
    # The SDK adds its built-in settings (stream_maps, batch_size_rows, ...) to the target's
    # config_jsonschema in place: were that CONFIG_SCHEMA itself, the first target made in a
    # process would change what every later reader of it (the docs check above) sees.
    written = copy.deepcopy(CONFIG_SCHEMA)
    TargetRecotap(config=config_for(emulator))
    assert written == CONFIG_SCHEMA
    assert "stream_maps" not in CONFIG_SCHEMA["properties"]


def test_unknown_stream_is_skipped_with_a_warning(emulator, tmp_path):
    # What `meltano config test` sends.
    messages = [
        schema(
            "meltano_test_stream", {"type": "object", "properties": {"id": {"type": "integer"}}}
        ),
        record("meltano_test_stream", {"id": 1}),
        record("meltano_test_stream", {"id": "not even an integer"}),
        state({"s": 1}),
    ]
    run = run_cli(["--config", str(write_config(tmp_path, config_for(emulator)))], messages)
    assert run.returncode == 0, run.stderr
    assert (
        "Skipped stream 'meltano_test_stream' (2 records): this target loads only deals, "
        "deal_stages, accounts and sales_activities; rename a stream with a stream map to load it"
    ) in run.stderr
    assert states_from(run.stdout) == [{"s": 1}]
    assert emulator.store.requests() == []


def test_unknown_stream_is_an_error_when_asked(emulator, tmp_path):
    config = config_for(emulator, fail_on_unknown_streams=True)
    messages = [
        *deals_messages([deal(1)]),
        state({"s": 1}),
        schema("contacts"),
        record("contacts", {}),
    ]
    run = run_cli(["--config", str(write_config(tmp_path, config))], messages)
    assert run.returncode == 1
    assert (
        "Input line 4: stream 'contacts' is not one this target loads (deals, deal_stages, "
        "accounts and sales_activities), and fail_on_unknown_streams is set"
    ) in run.stderr
    assert "Traceback" not in run.stderr
    # What came before the bad line was delivered and checkpointed.
    assert "deal-1" in emulator.store.deals()
    assert states_from(run.stdout) == [{"s": 1}]


def test_dry_run_sends_nothing_and_writes_the_bodies(emulator, tmp_path):
    out = tmp_path / "bodies.jsonl"
    config = config_for(emulator, dry_run=True, dry_run_path=str(out), api_key="dry-secret-key")
    messages = [
        *deals_messages([deal(n) for n in range(150)]),
        schema("deal_stages"),
        record("deal_stages", pipeline("p1")),
    ]
    run = run_cli(["--config", str(write_config(tmp_path, config))], messages)
    assert run.returncode == 0, run.stderr
    assert emulator.store.requests() == []
    bodies = [json.loads(line) for line in out.read_text().splitlines()]
    # Requests go out concurrently, so the lines may come in any order.
    assert sorted(len(b.get("deals", b.get("pipelines"))) for b in bodies) == [1, 50, 100]
    assert "dry-secret-key" not in out.read_text()
    # Nothing was upserted: the summary says what would have been sent, and where it went.
    assert "Summary deals (dry run): received 150, would send 150 in 2 requests" in run.stderr
    assert "Summary deal_stages (dry run): received 1, would send 1 in 1 request," in run.stderr
    summaries = [line for line in run.stderr.splitlines() if "Summary" in line]
    assert not any("upserted" in line or "created" in line for line in summaries)
    last_lines = run.stderr.splitlines()[-2:]
    assert last_lines[0].endswith(
        f"Dry run: 3 request bodies written to {out}; nothing was sent to Recotap, and no STATE "
        "was written"
    )
    assert "Run took" in last_lines[1]


def test_a_dry_run_needs_no_key_and_moves_no_bookmark(emulator, tmp_path):
    out = tmp_path / "bodies.jsonl"
    config = {"api_url": emulator.url, "dry_run": True, "dry_run_path": str(out)}
    messages = [*deals_messages([deal(1)]), state({"s": 1}), record("deals", deal(2))]
    run = run_cli(["--config", str(write_config(tmp_path, config))], [*messages, state({"s": 2})])
    assert run.returncode == 0, run.stderr
    # Nothing reached Recotap, so the tap's bookmarks must stay where they were.
    assert states_from(run.stdout) == []
    assert emulator.store.requests() == []
    assert [len(json.loads(line)["deals"]) for line in out.read_text().splitlines()] == [2]


def test_each_dry_run_writes_its_bodies_anew(emulator, tmp_path):
    # README: dry_run_path, "Where dry_run writes request bodies (overwritten each run)".
    out = tmp_path / "bodies.jsonl"
    config = write_config(
        tmp_path, {"api_url": emulator.url, "dry_run": True, "dry_run_path": str(out)}
    )

    def bodies() -> list[dict]:
        return [json.loads(line) for line in out.read_text().splitlines()]

    first = run_cli(["--config", str(config)], deals_messages([deal(1), deal(2)]))
    assert first.returncode == 0, first.stderr
    assert bodies() == [{"deals": [deal(1), deal(2)]}]
    second = run_cli(["--config", str(config)], deals_messages([deal(3)]))
    assert second.returncode == 0, second.stderr
    assert bodies() == [{"deals": [deal(3)]}]


def test_the_key_never_appears_in_any_output(emulator, tmp_path):
    key = "k3y-that-must-stay-secret"
    emulator.api_key = key
    dead_letter = tmp_path / "rejected.jsonl"
    config = config_for(emulator, dead_letter_path=str(dead_letter), max_retries=1)
    emulator.faults.script.extend(["503", "ok"])
    messages = [*deals_messages([deal(1), deal(2, ownerEmail="bad")]), state({"s": 1})]
    ok = run_cli(
        ["--config", str(write_config(tmp_path, config))], messages, env={"LOGLEVEL": "DEBUG"}
    )
    wrong = run_cli(
        ["--config", str(write_config(tmp_path, {**config, "api_key": key + "-old"}))],
        messages,
        env={"LOGLEVEL": "DEBUG"},
    )
    assert "deal-1" in emulator.store.deals()
    assert wrong.returncode == 1
    for text in (ok.stdout, ok.stderr, wrong.stdout, wrong.stderr, dead_letter.read_text()):
        assert key not in text


def test_plain_http_to_a_remote_host_is_refused(tmp_path):
    config = {"api_key": "secret-value", "api_url": "http://eapi.recotap.com/api/v1"}
    run = run_cli(["--config", str(write_config(tmp_path, config))], deals_messages([deal(1)]))
    assert run.returncode == 1
    assert "plain http to a host that is not loopback" in run.stderr
    assert "Traceback" not in run.stderr
    assert "secret-value" not in run.stderr


def error_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "| ERROR" in line]


def test_invalid_settings_stop_before_reading_input_in_one_line(tmp_path):
    for config, expected in [
        ({}, "Settings: api_key is required (only a dry run can do without it)"),
        ({"api_key": "k", "max_retries": -1}, "-1 is less than the minimum of 0"),
        ({"api_key": "k", "api_url": "not a url"}, "api_url must be an http(s) URL"),
    ]:
        run = run_cli(["--config", str(write_config(tmp_path, config))], ["not json at all"])
        assert run.returncode == 1, config
        errors = error_lines(run.stderr)
        assert len(errors) == 1, run.stderr
        assert expected in errors[0]
        assert "Traceback" not in run.stderr


def test_a_config_file_missing_or_not_json_is_one_line(tmp_path):
    (tmp_path / "broken.json").write_text('{"api_key": "k",\n "api_url": }')
    (tmp_path / "list.json").write_text('["api_key"]')
    for name, expected in [
        ("missing.json", "Settings: config file 'missing.json' was not found"),
        ("broken.json", "config file 'broken.json' is not valid JSON: Expecting value at line 2"),
        ("list.json", "config file 'list.json' must hold a JSON object of settings"),
    ]:
        run = run_cli(["--config", name], ["never read"], cwd=tmp_path)
        assert run.returncode == 1, name
        assert "Traceback" not in run.stderr
        assert [expected in line for line in error_lines(run.stderr)] == [True], run.stderr
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_the_stop_line_says_whether_a_state_was_written(emulator, tmp_path):
    emulator.api_key = "the-new-key"
    config_path = write_config(tmp_path, config_for(emulator, api_key="an-old-key"))
    run = run_cli(["--config", str(config_path)], [*deals_messages([deal(1)]), state({"s": 1})])
    assert run.returncode == 1
    assert states_from(run.stdout) == []
    [stopped] = error_lines(run.stderr)
    assert "Recotap refused the API key" in stopped
    assert "No STATE was written: a rerun starts where this run started" in stopped
    assert "last STATE" not in stopped


def test_a_line_that_is_not_json_names_its_line(emulator, tmp_path):
    messages = [*deals_messages([deal(1)]), state({"s": 1}), '{"type": "RECORD", "stream"']
    run = run_cli(["--config", str(write_config(tmp_path, config_for(emulator)))], messages)
    assert run.returncode == 1
    # Cut at its end: no column of a line that is not there.
    assert "Input line 4: not a JSON message: the line ends in the middle of it" in run.stderr
    assert "Traceback" not in run.stderr
    assert "deal-1" in emulator.store.deals()
    assert states_from(run.stdout) == [{"s": 1}]

    run = run_cli(
        ["--config", str(write_config(tmp_path, config_for(emulator)))],
        ['{"type": "STATE", "value": nope}'],
    )
    assert "Input line 1: not a JSON message (Expecting value at column 28)" in run.stderr


def test_record_before_schema_names_its_line(emulator, tmp_path):
    run = run_cli(
        ["--config", str(write_config(tmp_path, config_for(emulator)))],
        [record("deals", deal(1))],
    )
    assert run.returncode == 1
    assert "Input line 1:" in run.stderr
    assert "before a corresponding schema" in run.stderr
    assert "Traceback" not in run.stderr


def test_output_folders_are_created_and_an_unwritable_one_is_a_settings_error(emulator, tmp_path):
    dead_letter = tmp_path / "not" / "yet" / "rejected.jsonl"
    config = config_for(emulator, dead_letter_path=str(dead_letter), max_rejected_records=1)
    run = run_cli(
        ["--config", str(write_config(tmp_path, config))], deals_messages([{"name": "x"}])
    )
    assert run.returncode == 0, run.stderr
    assert "externalDealId is missing" in dead_letter.read_text()

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    config = config_for(emulator, dead_letter_path=str(blocker / "rejected.jsonl"))
    run = run_cli(["--config", str(write_config(tmp_path, config))], ["never read"])
    assert run.returncode == 1
    assert "dead_letter_path" in run.stderr
    assert "cannot be written" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_dry_run_path_that_is_a_folder_is_a_settings_error_in_one_line(tmp_path):
    config = write_config(tmp_path, {"dry_run": True, "dry_run_path": str(tmp_path)})
    run = run_cli(["--config", str(config)], ["never read"])
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1
    assert errors[0].endswith(
        f"Settings: dry_run_path {str(tmp_path)!r} cannot be written: Is a directory"
    )


PROGRESS = re.compile(
    r"Progress deals: read (\d+) \(([\d,]+)/s over the last 0\.2 s\), "
    r"sent (\d+), rejected (\d+)$"
)


def test_progress_lines_come_while_requests_are_slow_and_stop_before_the_summary(
    emulator, tmp_path
):
    # Two requests of 100 deals, one at a time, each answered after 1 s: the reader has read
    # everything at once and then waits, and the log must still say the run is alive.
    emulator.faults.latency_ms = 1000
    config = config_for(
        emulator, progress_interval=0.2, max_concurrent_requests=1, max_rejected_records=5
    )
    bad = [deal(f"bad-{n}", ownerEmail="not an email") for n in range(5)]
    messages = deals_messages([*bad, *(deal(n) for n in range(200))])
    run = run_cli(["--config", str(write_config(tmp_path, config))], messages)
    assert run.returncode == 0, run.stderr

    lines = run.stderr.splitlines()
    summary = next(i for i, line in enumerate(lines) if "Summary deals:" in line)
    progress = [(i, PROGRESS.search(line)) for i, line in enumerate(lines) if "Progress" in line]
    assert progress, run.stderr
    assert all(match for _, match in progress), run.stderr
    assert all(i < summary for i, _ in progress)  # none after (or instead of) the summary
    counts = [tuple(int(n.replace(",", "")) for n in match.groups()) for _, match in progress]
    # read, rate, sent, rejected: while the first request is out, nothing is sent yet...
    waiting = [c for c in counts if c[0] == 205 and c[2] == 0]
    assert len(waiting) >= 2, run.stderr
    assert all(c[3] == 5 for c in counts if c[0] == 205)
    assert counts[0][1] > 0  # everything was read in the first interval
    assert waiting[-1][1] == 0  # and nothing since
    # ...then the first 100 land while the second request is out.
    assert any(c[2] == 100 for c in counts), run.stderr


def test_progress_interval_0_turns_progress_off_and_a_negative_one_is_refused(emulator, tmp_path):
    emulator.faults.latency_ms = 300
    config = config_for(emulator, progress_interval=0, max_concurrent_requests=1)
    run = run_cli(
        ["--config", str(write_config(tmp_path, config))],
        deals_messages([deal(n) for n in range(300)]),
    )
    assert run.returncode == 0, run.stderr
    assert "Progress" not in run.stderr

    config = config_for(emulator, progress_interval=-1)
    run = run_cli(["--config", str(write_config(tmp_path, config))], ["never read"])
    assert run.returncode == 1
    assert "-1 is less than the minimum of 0" in run.stderr
    assert "Traceback" not in run.stderr


def metric_points(log: str) -> list[dict]:
    return [
        json.loads(line.split("METRIC: ", 1)[1]) for line in log.splitlines() if "METRIC: " in line
    ]


def test_metric_lines_count_records_and_requests_not_batch_hand_offs(emulator, tmp_path):
    emulator.faults.latency_ms = 100
    messages = [
        *deals_messages([deal(n) for n in range(450)]),
        schema("deal_stages"),
        record("deal_stages", pipeline("p1")),
    ]
    run = run_cli(["--config", str(write_config(tmp_path, config_for(emulator)))], messages)
    assert run.returncode == 0, run.stderr
    assert "batch_processing_time" not in run.stderr
    points = {(p["metric"], p["tags"].get("stream")): p for p in metric_points(run.stderr)}
    assert points["record_count", "deals"]["value"] == 450
    assert points["record_count", "deal_stages"]["value"] == 1
    deals_requests = points["http_request_count", "deals"]
    assert deals_requests["type"] == "counter"
    assert deals_requests["value"] == 5
    assert deals_requests["tags"]["endpoint"] == "/deals"
    assert points["http_request_count", "deal_stages"]["value"] == 1
    # Seconds spent in those requests, all together: five answers of at least 100 ms each.
    assert points["http_request_duration", "deals"]["type"] == "timer"
    assert points["http_request_duration", "deals"]["value"] >= 0.45
    assert 0.09 <= points["http_request_duration", "deal_stages"]["value"] < 5


RUN_TOOK = re.compile(r"Run took (\d+\.\d) s$")


def test_summary_gives_the_run_wall_time_apart_from_request_seconds(emulator, tmp_path):
    # Eight requests of 500 ms, four at a time: about 1 s of run, 4 s spent in requests.
    emulator.faults.latency_ms = 500
    config = config_for(emulator, max_concurrent_requests=4)
    started = time.monotonic()
    run = run_cli(
        ["--config", str(write_config(tmp_path, config))],
        deals_messages([deal(n) for n in range(800)]),
    )
    wall = time.monotonic() - started
    assert run.returncode == 0, run.stderr
    took = RUN_TOOK.search(run.stderr.splitlines()[-1])
    assert took, run.stderr
    run_seconds = float(took.group(1))
    summary = re.search(
        r"Summary deals: .*requests 8, retries 0, request-seconds (\d+\.\d)$", run.stderr, re.M
    )
    assert summary, run.stderr
    request_seconds = float(summary.group(1))
    assert 0.9 <= run_seconds <= wall
    assert request_seconds >= 3.6
    assert request_seconds > run_seconds  # requests in flight at once add up


def test_requests_that_time_out_count_in_request_seconds(emulator, tmp_path):
    emulator.faults.latency_ms = 3000
    config = config_for(emulator, request_timeout=0.3, max_retries=2)
    run = run_cli(["--config", str(write_config(tmp_path, config))], deals_messages([deal(1)]))
    assert run.returncode == 1
    assert "failed 3 times, the last: a timeout waiting for 127.0.0.1:" in run.stderr
    summary = re.search(r"requests 3, retries 2, request-seconds (\d+\.\d)$", run.stderr, re.M)
    assert summary, run.stderr
    assert float(summary.group(1)) >= 0.8  # three attempts of 0.3 s each


def test_a_request_that_times_out_is_retried_and_the_retry_lands_the_deals(emulator, tmp_path):
    # README: request_timeout, "Seconds to wait for one HTTP request before it counts as
    # failed"; max_retries, "Retries of one request on 429, 5xx, timeouts ...".
    emulator.faults.latency_ms = 3000
    # The retry waits 1 to 2 s: time enough to make the emulator answer at once again. Two
    # deals fill a batch, so it is sent while the input is still open.
    config = config_for(emulator, request_timeout=1, retry_initial_delay=2, batch_size_rows=2)
    target = LiveTarget(write_config(tmp_path, config))
    target.send([*deals_messages([deal(1), deal(2)]), state({"s": 1})])
    timed_out = target.log_line("POST /deals: a timeout")
    emulator.faults.latency_ms = 0
    code, states, log = target.finish()

    assert code == 0, log
    assert re.search(
        rf"POST /deals: a timeout waiting for 127\.0\.0\.1:{emulator.port} to answer; "
        r"retry 1 of 8 in (1\.\d|2\.0) s$",
        timed_out,
    ), timed_out
    assert states == [{"s": 1}]
    assert emulator.store.deals() == {f"deal-{n}": deal(n) for n in (1, 2)}
    # The attempt that timed out had written them too, before its answer came too late: the
    # upsert makes two writes one deal each.
    assert emulator.store.deal_versions() == {"deal-1": 2, "deal-2": 2}
    assert re.search(
        r"Summary deals: received 2, sent 2, upserted 2, .*requests 2, retries 1, "
        r"request-seconds (\d+\.\d)$",
        log,
        re.M,
    ), log
    wait_until(
        lambda: all(r["status"] for r in emulator.store.requests()),
        "the late answer to the attempt that timed out",
    )


SUMMARY = re.compile(r"Summary (deals|deal_stages): (.*)$", re.M)


def summaries(log: str) -> dict[str, dict[str, float]]:
    """Stream -> each count of its summary line, by name (``{"received": 9, ...}``)."""
    return {
        stream: {
            name: float(number)
            for name, number in (part.rsplit(" ", 1) for part in counts.split(", "))
        }
        for stream, counts in SUMMARY.findall(log)
    }


def test_the_summary_counts_are_what_recotap_and_the_dead_letter_hold(emulator, tmp_path):
    # README: "one summary line per stream: received, sent, upserted/created, skipped as
    # existing, rejected, merged duplicates, requests (every attempt, retries included), retries".
    emulator.store.create_pipelines([pipeline("p-old")])
    emulator.faults.fail_ids = {"deal-5": "deal is locked"}  # Recotap answers "failed" for it
    dead_letter = tmp_path / "rejected.jsonl"
    config = config_for(emulator, dead_letter_path=str(dead_letter), max_rejected_records=10)
    messages = [
        *deals_messages(
            [
                deal(1),
                deal(2, amount=1),
                deal(2, amount=2),  # merged into the one before
                *(deal(3, amount=n) for n in range(3)),  # two merged
                deal(4, ownerEmail="not an email"),  # rejected before sending
                deal(5),  # sent, and failed by Recotap
                {"name": "no ID"},  # rejected before sending
            ]
        ),
        schema("deal_stages"),
        record("deal_stages", pipeline("p-old")),  # skipped as existing
        record("deal_stages", pipeline("p-new")),
        record("deal_stages", {**pipeline("p-bad"), "pipelineLabel": ""}),  # rejected
    ]

    run = run_cli(["--config", str(write_config(tmp_path, config))], messages)

    assert run.returncode == 0, run.stderr
    counts = summaries(run.stderr)
    rejected = [json.loads(line) for line in dead_letter.read_text().splitlines()]
    rejected = [m for m in rejected if m["type"] == "RECORD"]
    requests = emulator.store.requests()
    deals = counts["deals"]
    assert deals == {
        "received": 9,
        "sent": 4,
        "upserted": 3,
        "skipped as existing": 0,
        "rejected": 3,
        "merged duplicates": 3,
        "requests": 1,
        "retries": 0,
        "request-seconds": deals["request-seconds"],
    }
    assert deals["upserted"] == len(emulator.store.deals())
    assert deals["rejected"] == len([m for m in rejected if m["stream"] == "deals"])
    deal_requests = [r for r in requests if r["endpoint"] == "POST /deals"]
    assert deals["requests"] == len(deal_requests)
    assert deals["sent"] == sum(r["items"] for r in deal_requests)
    assert deals["received"] == deals["sent"] + deals["merged duplicates"] + 2  # 2 never sent

    pipelines = counts["deal_stages"]
    assert pipelines == {
        "received": 3,
        "sent": 1,
        "created": 1,
        "skipped as existing": 1,
        "rejected": 1,
        "merged duplicates": 0,
        "requests": 2,
        "retries": 0,
        "request-seconds": pipelines["request-seconds"],
    }
    assert pipelines["created"] == len(emulator.store.pipelines()) - 1  # less p-old
    assert pipelines["rejected"] == len([m for m in rejected if m["stream"] == "deal_stages"])
    # p-old and p-new together, refused with a 409 for p-old; then p-new alone.
    pipeline_requests = [r for r in requests if r["endpoint"] == "POST /deal-stages"]
    assert [(r["items"], r["status"]) for r in pipeline_requests] == [(2, 409), (1, 201)]
    assert pipelines["requests"] == len(pipeline_requests)


def test_a_mistyped_api_key_is_not_printed(tmp_path):
    for key in (987654321, ["sekrit-key-123"]):
        run = run_cli(["--config", str(write_config(tmp_path, {"api_key": key}))], ["never read"])
        assert run.returncode == 1
        assert "api_key must be a non-empty string (its value is not shown)" in run.stderr
        assert "987654321" not in run.stderr
        assert "sekrit" not in run.stderr


@pytest.mark.parametrize("how", ["stdin", "--input"])
def test_input_is_read_as_utf_8_whatever_the_locale(emulator, tmp_path, how):
    # Under LC_ALL=C without UTF-8 mode, Python reads files and standard input as ASCII.
    config = write_config(tmp_path, config_for(emulator))
    source = tmp_path / "input.jsonl"
    messages = deals_messages([deal(1, name="Café 東京 🚀")])
    # Raw UTF-8, as taps write it (not \u escapes, which are ASCII).
    text = "".join(json.dumps(m, ensure_ascii=False) + "\n" for m in messages)
    source.write_text(text, encoding="utf-8")
    ascii_locale = {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""}
    run = run_cli_on_file(["--config", str(config)], source, via=how, env=ascii_locale)
    assert run.returncode == 0, run.stderr.decode("utf-8", "replace")
    assert emulator.store.deals()["deal-1"]["name"] == "Café 東京 🚀"
