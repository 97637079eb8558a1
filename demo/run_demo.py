"""`make demo`: push the bundled sample deals and pipelines through target-recotap into the
local Recotap emulator, then show what arrived, the STATE written and what was rejected."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from target_recotap.emulator import EmulatorServer, EmulatorStore

HERE = Path(__file__).parent
OUT = HERE.parent / "demo-output"
API_KEY = "demo-key"


def main() -> int:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    store = EmulatorStore(str(OUT / "emulator.sqlite"))
    with EmulatorServer(store=store, api_key=API_KEY, port=0) as server:
        config = {
            "api_key": API_KEY,
            "api_url": server.url,
            "dead_letter_path": str(OUT / "rejected.jsonl"),
            "max_rejected_records": 1,
        }
        config_path = OUT / "config.json"
        config_path.write_text(json.dumps(config))
        print(f"Recotap emulator on {server.url}\n")
        print("$ target-recotap --config demo-output/config.json < demo/sample.singer.jsonl")
        with (HERE / "sample.singer.jsonl").open() as sample:
            run = subprocess.run(
                [sys.executable, "-m", "target_recotap", "--config", str(config_path)],
                stdin=sample,
                capture_output=True,
                text=True,
                check=False,
            )
        for line in run.stderr.splitlines():
            parts = [part.strip() for part in line.split("|", 3)]
            if len(parts) == 4 and parts[2] == "target-recotap":
                print(f"  {parts[1]:<8} {parts[3]}")
        print(f"exit code {run.returncode}\n")

        print("Deals in Recotap (emulator):")
        for deal in store.deals().values():
            print("  " + json.dumps(deal))
        print("\nPipelines in Recotap (emulator):")
        for pipeline in store.pipelines().values():
            stages = ", ".join(s["stageLabel"] for s in pipeline["stages"])
            print(f"  {pipeline['pipelineId']} ({pipeline['pipelineLabel']}): {stages}")
        print("\nSTATE written by the target (stdout):")
        for line in run.stdout.splitlines():
            print("  " + line)
        print(f"\nRejected records, ready to fix and replay: {OUT / 'rejected.jsonl'}")
        for line in (OUT / "rejected.jsonl").read_text().splitlines():
            message = json.loads(line)
            if message["type"] == "RECORD":
                print(
                    f"  {message['record']['externalDealId']}: "
                    f"{message['recotap_rejection']['reason']}"
                )
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
