"""The Meltano Hub definition in hub/ is what ``--about`` says, and says it right."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from support import about_json

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "scripts" / "hub_definition.py"


def test_hub_definition_is_up_to_date():
    check = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_hub_definition_lists_every_setting_with_kind_and_secrets_marked():
    properties = about_json()["settings"]["properties"]
    definition = yaml.safe_load((ROOT / "hub" / "target-recotap.yml").read_text())
    settings = {s["name"]: s for s in definition["settings"]}
    assert list(settings) == list(properties)
    assert settings["api_key"]["sensitive"] is True
    assert not any(s.get("sensitive") for name, s in settings.items() if name != "api_key")
    assert settings["max_retries"]["kind"] == "integer"
    assert settings["dry_run"]["kind"] == "boolean"
    assert settings["api_url"]["value"] == "https://eapi.recotap.com/api/v1"
    assert "meltano_sdk" in definition["keywords"]
    assert definition["namespace"] == "target_recotap"
    assert "validate-records" in definition["capabilities"]
