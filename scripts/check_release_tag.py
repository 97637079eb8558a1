"""Refuse to publish a release whose tag, package versions and changelog disagree.

The release workflow runs it with the pushed tag: `python scripts/check_release_tag.py v1.2.3`.
The version lives in target_recotap/__init__.py (hatch reads it from there too); the tag must
name it, and CHANGELOG.md must say what the release holds. The tag also publishes the emulator
(emulator/), whose own __init__.py must name the same version.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_INIT = Path("target_recotap") / "__init__.py"
EMULATOR_INIT = Path("emulator") / "recotap_emulator" / "__init__.py"


def package_version(init_text: str, path: Path = TARGET_INIT) -> str:
    """`__version__` as written in a package's __init__.py at ``path``, read without importing
    it."""
    for node in ast.parse(init_text).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets
        ):
            return str(ast.literal_eval(node.value))
    raise ValueError(f"{path.as_posix()} sets no __version__")


def release_problems(tag: str, version: str, changelog: str) -> list[str]:
    problems = []
    if tag != f"v{version}":
        problems.append(f"the tag {tag} does not name the package version {version} (v{version})")
    if f"\n## [{version}]" not in f"\n{changelog}":
        problems.append(f"CHANGELOG.md has no '## [{version}]' section for this release")
    return problems


def emulator_problems(version: str, emulator_version: str) -> list[str]:
    """Why the emulator cannot be published under the target's tag, if it cannot."""
    if emulator_version == version:
        return []
    return [
        f"{EMULATOR_INIT.as_posix()} names version {emulator_version}, not {version}: the "
        "emulator is released with the target, under its tag"
    ]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: check_release_tag.py TAG", file=sys.stderr)
        return 2
    version = package_version((ROOT / TARGET_INIT).read_text())
    emulator_version = package_version((ROOT / EMULATOR_INIT).read_text(), EMULATOR_INIT)
    problems = release_problems(argv[0], version, (ROOT / "CHANGELOG.md").read_text())
    problems += emulator_problems(version, emulator_version)
    for problem in problems:
        print(f"Not released: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
