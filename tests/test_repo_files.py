"""The repository's own files: CI workflows, dependabot and meltano.yml valid against their
published JSON schemas (check-jsonschema's bundled copies: no network), the pre-commit hooks, and
the release check."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from check_release_tag import (
    EMULATOR_INIT,
    emulator_problems,
    package_version,
    release_problems,
)
from packaging.version import Version

import target_recotap

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


def test_pre_commit_config_is_valid_and_runs_the_lint_checks():
    check = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-config", ".pre-commit-config.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    hooks = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    ids = {hook["id"] for repo in hooks["repos"] for hook in repo["hooks"]}
    assert {"ruff-check", "ruff-format", "typos", "mypy", "check-github-workflows"} <= ids


def test_every_workflow_reads_the_repository_only():
    for workflow in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
        assert yaml.safe_load(workflow.read_text())["permissions"] == {"contents": "read"}, (
            workflow.name
        )


def test_a_release_tag_must_name_the_version_and_have_its_changelog_section():
    version = package_version((ROOT / "target_recotap" / "__init__.py").read_text())
    assert version == target_recotap.__version__
    released = f"# Changelog\n\n## [{version}] - 2027-01-01\n\n- A change.\n"
    assert release_problems(f"v{version}", version, released) == []
    assert release_problems("v9.9.9", version, released) == [
        f"the tag v9.9.9 does not name the package version {version} (v{version})"
    ]
    assert release_problems(f"v{version}", version, "# Changelog\n\n## [Unreleased]\n") == [
        f"CHANGELOG.md has no '## [{version}]' section for this release"
    ]
    # As the release workflow runs it: the changelog has no section yet for an unreleased version.
    run = subprocess.run(
        [sys.executable, "scripts/check_release_tag.py", "v0.0.0-not-this"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1
    assert run.stderr.startswith("Not released: the tag v0.0.0-not-this does not name")


def test_a_release_tag_publishes_the_emulator_only_under_the_same_version(tmp_path):
    version = package_version((ROOT / "target_recotap" / "__init__.py").read_text())
    assert package_version((ROOT / EMULATOR_INIT).read_text(), EMULATOR_INIT) == version
    assert emulator_problems(version, version) == []
    # As the release workflow runs it, on a copy whose emulator lags behind.
    for path in ("scripts/check_release_tag.py", "target_recotap/__init__.py", EMULATOR_INIT):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text((ROOT / path).read_text())
    emulator_init = tmp_path / EMULATOR_INIT
    emulator_init.write_text(emulator_init.read_text().replace(f'"{version}"', '"0.0.1"'))
    (tmp_path / "CHANGELOG.md").write_text(f"# Changelog\n\n## [{version}] - 2027-01-01\n")
    run = subprocess.run(
        [sys.executable, "scripts/check_release_tag.py", f"v{version}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1
    assert run.stderr.splitlines() == [
        f"Not released: emulator/recotap_emulator/__init__.py names version 0.0.1, not "
        f"{version}: the emulator is released with the target, under its tag"
    ]


def test_make_installs_the_emulator_extra_only_with_the_clones_emulator():
    # recotap-emulator is not on PyPI: a pip command that asks for the extra without the local
    # copy would look the name up on an index, where anyone could have published it.
    makefile = (ROOT / "Makefile").read_text()
    installs = [line for line in makefile.splitlines() if "pip install" in line]
    with_extra = [line for line in installs if re.search(r"\.\[[^\]]*\bemulator\b", line)]
    assert with_extra, "make setup should install the emulator extra"
    for line in with_extra:
        assert line.rstrip().endswith("-e ./emulator"), line
