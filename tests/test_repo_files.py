"""CI workflows, dependabot and meltano.yml are valid against their published JSON schemas
(check-jsonschema's bundled copies: no network)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize(
    ("schema", "files"),
    [
        ("vendor.github-workflows", sorted((ROOT / ".github" / "workflows").glob("*.yml"))),
        ("vendor.dependabot", [ROOT / ".github" / "dependabot.yml"]),
        ("vendor.meltano", [ROOT / "meltano.yml"]),
    ],
)
def test_file_is_valid_against_its_schema(schema, files):
    assert files
    check = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_meltano_yml_uses_meltano_4_keys():
    text = (ROOT / "meltano.yml").read_text()
    assert "requires_meltano:" in text
    assert not text.startswith("version:")
    assert "\nversion:" not in text
    assert "kind: password" not in text
