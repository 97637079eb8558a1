"""The target as a user runs it: a command, a config file, stdin, an exit code, a log."""

from __future__ import annotations

import json

from support import (
    config_for,
    deal,
    deals_messages,
    pipeline,
    record,
    run_cli,
    schema,
    state,
    states_from,
    write_config,
)

from target_recotap.settings import CONFIG_SCHEMA


def test_version_and_about_list_every_setting():
    version = run_cli(["--version"])
    assert version.returncode == 0
    assert "target-recotap v" in version.stdout
    about = run_cli(["--about", "--format=markdown"])
    assert about.returncode == 0
    for name in CONFIG_SCHEMA["properties"]:
        assert f"| {name} |" in about.stdout


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
    assert "Skipped stream 'meltano_test_stream' (2 records)" in run.stderr
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
    assert "Input line 4: stream 'contacts' is not one this target loads" in run.stderr
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
