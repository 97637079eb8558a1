"""`make demo`: a real `meltano run` of the bundled sample accounts, pipelines, deals and sales
activities through target-recotap into the local Recotap emulator; then what arrived (each deal
with its accounts, linked or not), the state Meltano recorded and the record that was rejected,
and how to see it all as a page (`make browse` serves demo-output/emulator.sqlite).

Meltano is installed on first use into `.meltano-venv/` (a minute; later runs reuse it).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from meltano_env import RUN, STATE_IDS, MeltanoProject, meltano_project, seed_emulator

from recotap_emulator import EmulatorServer, EmulatorStore
from recotap_emulator.page import UNLINKED_MEANING

OUT = Path(__file__).resolve().parent.parent / "demo-output"
API_KEY = "demo-key"
# The target's lines shown from Meltano's log, each from where its message starts.
TARGET_LINES = ("Summary ", "Rejected ", "Skipped ")
UNLINKED = f"unlinked: {UNLINKED_MEANING}"


def meltano(project: MeltanoProject, *args: str) -> str:
    """Run `meltano ARGS`, echo the command, stop the demo if it fails."""
    print(f"$ meltano {' '.join(args)}")
    result = project.run(*args)
    if result.returncode != 0:
        print(result.stdout[-3000:] + result.stderr[-3000:])
        sys.exit(f"meltano {args[0]} failed (exit code {result.returncode})")
    return result.stdout + result.stderr


def target_lines(output: str) -> list[str]:
    """The summaries, rejections and skips the target logged, without Meltano's prefixes."""
    shown = []
    for line in output.splitlines():
        starts = [start for start in map(line.find, TARGET_LINES) if start >= 0]
        if starts:
            shown.append(line[min(starts) :])
    return shown


def main() -> int:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    store = EmulatorStore(str(OUT / "emulator.sqlite"))
    seed_emulator(store)
    with EmulatorServer(store=store, api_key=API_KEY, port=0) as server:
        fields = ", ".join(store.custom_fields())
        print(f"Recotap emulator on {server.url}, with the account custom field {fields}")
        print(f"Meltano project in {OUT / 'project'}\n")
        project = meltano_project(
            OUT,
            {
                "TARGET_RECOTAP_API_URL": server.url,
                "TARGET_RECOTAP_API_KEY": API_KEY,
                "TARGET_RECOTAP_DEAD_LETTER_PATH": str(OUT / "rejected.jsonl"),
            },
        )
        meltano(project, "install")
        for line in target_lines(meltano(project, *RUN)):
            print("  " + line)

        print("\nAccounts in Recotap (emulator), one per cleaned domain:")
        for account in store.accounts().values():
            print("  " + json.dumps(account))
        print("\nDeals in Recotap (emulator), each with the accounts it names, linked or not:")
        links = store.deal_links()
        for external_id, deal in store.deals().items():
            print("  " + json.dumps(deal))
            for domain, linked in links.get(external_id, {}).items():
                print(f"      {domain}: {'linked' if linked else UNLINKED}")
        print("\nPipelines in Recotap (emulator):")
        for pipeline in store.pipelines().values():
            stages = ", ".join(s["stageLabel"] for s in pipeline["stages"])
            print(f"  {pipeline['pipelineId']} ({pipeline['pipelineLabel']}): {stages}")
        print("\nSales activities in Recotap (emulator):")
        for activity in store.activities().values():
            print("  " + json.dumps(activity))
        print("\nState Meltano recorded:")
        for state_id in STATE_IDS.values():
            state = meltano(project, "state", "get", state_id).splitlines()[0]
            print(f"  {state_id}: {state}")
        print(f"\nRejected records, ready to fix and replay: {OUT / 'rejected.jsonl'}")
        for line in (OUT / "rejected.jsonl").read_text().splitlines():
            message = json.loads(line)
            if message["type"] == "RECORD":
                print(f"  {message['recotap_rejection']['reason']}")  # it names the record
    print(
        "\nTo see all of it as Recotap would hold it, unlinked deals flagged, in a browser:"
        "\n  make browse   (serves this demo's data until Ctrl-C, and prints the address:"
        " http://127.0.0.1:8765/)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
