"""`make demo`: a real `meltano run` of the bundled sample deals and pipelines through
target-recotap into the local Recotap emulator; then what arrived, the state Meltano recorded
and the record that was rejected.

Meltano is installed on first use into `.meltano-venv/` (a minute; later runs reuse it).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from meltano_env import RUN, STATE_IDS, MeltanoProject, meltano_project

from recotap_emulator import EmulatorServer, EmulatorStore

OUT = Path(__file__).resolve().parent.parent / "demo-output"
API_KEY = "demo-key"


def meltano(project: MeltanoProject, *args: str) -> str:
    """Run `meltano ARGS`, echo the command, stop the demo if it fails."""
    print(f"$ meltano {' '.join(args)}")
    result = project.run(*args)
    if result.returncode != 0:
        print(result.stdout[-3000:] + result.stderr[-3000:])
        sys.exit(f"meltano {args[0]} failed (exit code {result.returncode})")
    return result.stdout + result.stderr


def main() -> int:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    store = EmulatorStore(str(OUT / "emulator.sqlite"))
    with EmulatorServer(store=store, api_key=API_KEY, port=0) as server:
        print(f"Recotap emulator on {server.url}; Meltano project in {OUT / 'project'}\n")
        project = meltano_project(
            OUT,
            {
                "TARGET_RECOTAP_API_URL": server.url,
                "TARGET_RECOTAP_API_KEY": API_KEY,
                "TARGET_RECOTAP_DEAD_LETTER_PATH": str(OUT / "rejected.jsonl"),
            },
        )
        meltano(project, "install")
        output = meltano(project, *RUN)
        for line in output.splitlines():
            start = max(line.find("Summary "), line.find("Rejected "))
            if start >= 0:
                print("  " + line[start:])

        print("\nDeals in Recotap (emulator):")
        for deal in store.deals().values():
            print("  " + json.dumps(deal))
        print("\nPipelines in Recotap (emulator):")
        for pipeline in store.pipelines().values():
            stages = ", ".join(s["stageLabel"] for s in pipeline["stages"])
            print(f"  {pipeline['pipelineId']} ({pipeline['pipelineLabel']}): {stages}")
        print("\nState Meltano recorded:")
        for state_id in STATE_IDS.values():
            state = meltano(project, "state", "get", state_id).splitlines()[0]
            print(f"  {state_id}: {state}")
        print(f"\nRejected records, ready to fix and replay: {OUT / 'rejected.jsonl'}")
        for line in (OUT / "rejected.jsonl").read_text().splitlines():
            message = json.loads(line)
            if message["type"] == "RECORD":
                print(f"  {message['recotap_rejection']['reason']}")  # it names the record
    return 0


if __name__ == "__main__":
    sys.exit(main())
