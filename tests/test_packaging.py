"""Both distributions, target-recotap (the repository's root) and recotap-emulator (emulator/),
build into an sdist and a wheel that PyPI would accept, versioned alike; the target's bring no
emulator and no werkzeug, which only the `emulator` extra installs."""

from __future__ import annotations

import ast
import subprocess
import sys
import tarfile
import zipfile
from email.parser import HeaderParser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import recotap_emulator
import target_recotap

ROOT = Path(__file__).parent.parent
TARGET_PACKAGE = Path(target_recotap.__file__).parent
EMULATOR_PACKAGE = Path(recotap_emulator.__file__).parent
# The one module of the target that the emulator may import: what both sides judge alike.
SHARED = "target_recotap.addresses"
VERSION = target_recotap.__version__


def imported(path: Path) -> set[str]:
    """What a module imports, at any depth: ``import a.b`` as ``a.b``, ``from a import b`` as
    ``a.b`` (b may be a module)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_the_emulator_imports_nothing_of_the_target_but_the_shared_module():
    modules = sorted(EMULATOR_PACKAGE.glob("*.py"))
    assert EMULATOR_PACKAGE / "app.py" in modules
    for module in modules:
        reaching_in = {
            name
            for name in imported(module)
            if name.split(".")[0] == "target_recotap"
            and name != SHARED
            and not name.startswith(SHARED + ".")
        }
        assert not reaching_in, f"recotap_emulator/{module.name} imports {sorted(reaching_in)}"


def test_the_shared_module_needs_only_the_standard_library():
    imports = {name.split(".")[0] for name in imported(TARGET_PACKAGE / "addresses.py")}
    assert imports <= sys.stdlib_module_names


def test_the_target_never_imports_the_emulator_or_werkzeug():
    modules = sorted(TARGET_PACKAGE.rglob("*.py"))
    assert TARGET_PACKAGE / "target.py" in modules
    for module in modules:
        emulator_side = {
            name
            for name in imported(module)
            if name.split(".")[0] in ("recotap_emulator", "werkzeug")
        }
        assert not emulator_side, f"{module.relative_to(ROOT)} imports {sorted(emulator_side)}"


def test_the_emulator_has_the_targets_version():
    # One tag releases both (scripts/check_release_tag.py).
    assert recotap_emulator.__version__ == VERSION


# The built distributions


def build(source: Path, outdir: Path) -> list[Path]:
    """The sdist and wheel of the project at ``source``, passed by ``twine check --strict``."""
    outdir.mkdir()
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(outdir), str(source)],
        check=True,
        capture_output=True,
    )
    built = sorted(outdir.iterdir())
    check = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, built)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    return built


class Wheel:
    """What a built wheel holds: its files, console scripts and requirements."""

    def __init__(self, path: Path) -> None:
        with zipfile.ZipFile(path) as wheel:
            self.names = wheel.namelist()
            self.scripts = wheel.read(self._dist_info("entry_points.txt")).decode()
            metadata = HeaderParser().parsestr(wheel.read(self._dist_info("METADATA")).decode())
        self.requires = [Requirement(text) for text in metadata.get_all("Requires-Dist", [])]

    def _dist_info(self, name: str) -> str:
        return next(n for n in self.names if n.endswith(f".dist-info/{name}"))

    def required(self, name: str) -> list[Requirement]:
        return [requirement for requirement in self.requires if requirement.name == name]


@pytest.fixture(scope="module")
def target_dists(tmp_path_factory) -> list[Path]:
    return build(ROOT, tmp_path_factory.mktemp("target") / "dist")


@pytest.fixture(scope="module")
def emulator_dists(tmp_path_factory) -> list[Path]:
    return build(ROOT / "emulator", tmp_path_factory.mktemp("emulator") / "dist")


@pytest.mark.slow
def test_the_target_builds_without_the_emulator(target_dists):
    assert [p.name for p in target_dists] == [
        f"target_recotap-{VERSION}-py3-none-any.whl",
        f"target_recotap-{VERSION}.tar.gz",
    ]
    wheel = Wheel(target_dists[0])
    assert "target-recotap = target_recotap.target:TargetRecotap.cli" in wheel.scripts
    assert "recotap-emulator" not in wheel.scripts
    assert not [n for n in wheel.names if "emulator" in n]
    with tarfile.open(target_dists[1]) as sdist:
        assert not [n for n in sdist.getnames() if "emulator/" in n or "recotap_emulator" in n]
    # werkzeug comes with the emulator extra alone, through recotap-emulator.
    assert wheel.required("werkzeug") == []
    [extra] = wheel.required("recotap-emulator")
    assert extra.marker is not None
    assert extra.marker.evaluate({"extra": "emulator"})
    assert not extra.marker.evaluate({"extra": ""})
    # PEP 561: type checkers read the package's own hints.
    assert "target_recotap/py.typed" in wheel.names
    # The license the metadata declares ships with the wheel.
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in wheel.names)


@pytest.mark.slow
def test_the_emulator_builds_with_its_command_modules_and_werkzeug(emulator_dists):
    assert [p.name for p in emulator_dists] == [
        f"recotap_emulator-{VERSION}-py3-none-any.whl",
        f"recotap_emulator-{VERSION}.tar.gz",
    ]
    wheel = Wheel(emulator_dists[0])
    assert "recotap-emulator = recotap_emulator.cli:main" in wheel.scripts
    assert {n for n in wheel.names if n.endswith(".py")} == {
        f"recotap_emulator/{module.name}" for module in EMULATOR_PACKAGE.glob("*.py")
    }
    for name in ("werkzeug", "msgspec", "target-recotap"):
        [requirement] = wheel.required(name)
        assert requirement.marker is None, requirement
    license_file = next(n for n in wheel.names if n.endswith(".dist-info/licenses/LICENSE"))
    with zipfile.ZipFile(emulator_dists[0]) as built:
        assert built.read(license_file) == (ROOT / "LICENSE").read_bytes()
