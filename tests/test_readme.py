"""The README's settings table is the one ``--about --format=markdown`` prints."""

from __future__ import annotations

import re
from pathlib import Path

from support import run_cli

README = Path(__file__).parent.parent / "README.md"


def test_readme_settings_table_matches_about():
    about = run_cli(["--about", "--format=markdown"]).stdout
    table = re.search(r"^\| Setting \|.*?(?=\n\n|\Z)", about, re.S | re.M)
    documented = re.search(
        r"<!-- settings:start -->\n(.*?)\n<!-- settings:end -->", README.read_text(), re.S
    )
    assert table
    assert documented
    assert documented.group(1).strip() == table.group(0).strip()
