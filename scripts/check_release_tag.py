"""Refuse to publish a release whose tag, package version and changelog disagree.

The release workflow runs it with the pushed tag: `python scripts/check_release_tag.py v1.2.3`.
The version lives in one place, target_recotap/__init__.py (hatch reads it from there too); the
tag must name it, and CHANGELOG.md must say what the release holds.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def package_version(init_text: str) -> str:
    """`__version__` as written in the package's __init__.py, read without importing it."""
    for node in ast.parse(init_text).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets
        ):
            return str(ast.literal_eval(node.value))
    raise ValueError("target_recotap/__init__.py sets no __version__")


def release_problems(tag: str, version: str, changelog: str) -> list[str]:
    problems = []
    if tag != f"v{version}":
        problems.append(f"the tag {tag} does not name the package version {version} (v{version})")
    if f"\n## [{version}]" not in f"\n{changelog}":
        problems.append(f"CHANGELOG.md has no '## [{version}]' section for this release")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: check_release_tag.py TAG", file=sys.stderr)
        return 2
    version = package_version((ROOT / "target_recotap" / "__init__.py").read_text())
    problems = release_problems(argv[0], version, (ROOT / "CHANGELOG.md").read_text())
    for problem in problems:
        print(f"Not released: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
