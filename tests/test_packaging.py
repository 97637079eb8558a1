"""The package builds into an sdist and a wheel that PyPI would accept, versioned from one place."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import target_recotap

ROOT = Path(__file__).parent.parent


@pytest.mark.slow
def test_sdist_and_wheel_build_and_pass_twine_check(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    built = sorted(p.name for p in tmp_path.iterdir())
    version = target_recotap.__version__
    assert built == [
        f"target_recotap-{version}-py3-none-any.whl",
        f"target_recotap-{version}.tar.gz",
    ]
    check = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, tmp_path.iterdir())],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    with zipfile.ZipFile(tmp_path / built[0]) as wheel:
        names = wheel.namelist()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        scripts = wheel.read(entry_points).decode()
    assert "target-recotap = target_recotap.target:TargetRecotap.cli" in scripts
    assert "recotap-emulator = target_recotap.emulator.cli:main" in scripts
    assert "target_recotap/emulator/app.py" in names
    # PEP 561: type checkers read the package's own hints.
    assert "target_recotap/py.typed" in names
    # The license the metadata declares ships with the wheel.
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
