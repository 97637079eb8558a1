"""CI workflows, dependabot and meltano.yml are valid against their published JSON schemas
(check-jsonschema's bundled copies: no network)."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.version import Version

ROOT = Path(__file__).parent.parent
# check-jsonschema stops at 0.38 on Python 3.10, and 0.38's copy of Meltano's schema predates
# the validate-records capability that singer-sdk targets declare (0.39's has it).
MELTANO_SCHEMA_KNOWS_VALIDATE_RECORDS = Version(version("check-jsonschema")) >= Version("0.39")


@pytest.mark.parametrize(
    ("schema", "files"),
    [
        ("vendor.github-workflows", sorted((ROOT / ".github" / "workflows").glob("*.yml"))),
        ("vendor.dependabot", [ROOT / ".github" / "dependabot.yml"]),
        ("vendor.meltano", [ROOT / "meltano.yml"]),
    ],
)
def test_file_is_valid_against_its_schema(schema, files):
    if schema == "vendor.meltano" and not MELTANO_SCHEMA_KNOWS_VALIDATE_RECORDS:
        pytest.skip("this check-jsonschema's Meltano schema predates validate-records")
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
