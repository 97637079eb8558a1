"""After ``mutmut run``: mutants killed / total for each mutated module, and the survivors.

python scripts/mutation_report.py    # from the repository root, where mutants/ is

A mutant counts as killed when a test failed on it, or when the tests never finished (a
timeout: the mutant made the run hang, which a user would notice). Anything else (survived,
no test reaches it) is listed by name; ``mutmut show NAME`` shows its change.
"""

from __future__ import annotations

from collections import Counter

from mutmut.configuration import config
from mutmut.mutation.data import SourceFileMutationData
from mutmut.stats import status_by_exit_code
from mutmut.utils.file_utils import walk_mutatable_files

CAUGHT = frozenset({"killed", "timeout"})


def main() -> None:
    config()  # read [tool.mutmut] from pyproject.toml
    not_caught: list[tuple[str, str]] = []
    timed_out: list[str] = []
    for path in sorted(walk_mutatable_files()):
        data = SourceFileMutationData(path=path)
        data.load()
        statuses = {name: status_by_exit_code[code] for name, code in data.exit_code_by_key.items()}
        counts = Counter(statuses.values())
        caught = sum(counts[status] for status in CAUGHT)
        total = len(statuses)
        share = f"{100 * caught / total:.1f}%" if total else "-"
        others = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()) if s != "killed")
        print(f"{path}: {caught} killed / {total} ({share}){f'; {others}' if others else ''}")
        not_caught += [(n, s) for n, s in sorted(statuses.items()) if s not in CAUGHT]
        timed_out += [n for n, s in sorted(statuses.items()) if s == "timeout"]
    if timed_out:
        print(f"\n{len(timed_out)} counted killed for hanging (mutmut show NAME to check):")
        for name in timed_out:
            print(f"  {name}")
    if not_caught:
        print(f"\n{len(not_caught)} not killed (mutmut show NAME):")
        for name, status in not_caught:
            print(f"  {name}: {status}")


if __name__ == "__main__":
    main()
