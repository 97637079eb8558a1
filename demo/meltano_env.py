"""A Meltano 4 installation for tests/test_meltano.py, cached between runs on one machine.

Layout of the cache, `.meltano-venv/` at the repository root (git-ignored):

- `venv/`: Meltano itself (and uv, which installs it quickly), made on first use;
- `ready`: the requirements `venv/` was made with; any other content means "make it again";
- `sys-<hash>/`: Meltano's system directory (`MELTANO_SYS_DIR_ROOT`), i.e. the plugins'
  virtualenvs. The hash covers everything that decides what gets installed there (meltano.yml,
  pyproject.toml, the repository's path), so an edit makes a fresh one.

Each test gets its own copy of the project (meltano.yml and demo/meltano/) in a temporary
directory and its own system database, so no state leaks from one run to the next and nothing
is written into the repository.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from recotap_emulator import EmulatorStore
from recotap_emulator.app import custom_field

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".meltano-venv"
MELTANO_REQUIREMENT = "meltano==4.4.1"
UV_REQUIREMENT = "uv==0.13.9"
LOCAL_PIP_URL = "pip_url: -e .\n"
# The job meltano.yml's header runs: each stream's extractor, then the loader, accounts first so
# that Recotap links each deal to the accounts it names; and the state ID Meltano keeps for each
# pair in the demo environment.
EXTRACTORS = {
    "accounts": "tap-jsonl--accounts",
    "deal_stages": "tap-jsonl--deal-stages",
    "deals": "tap-jsonl--deals",
    "sales_activities": "tap-jsonl--sales-activities",
}
RUN = [
    "run",
    *(name for extractor in EXTRACTORS.values() for name in (extractor, "target-recotap")),
]
STATE_IDS = {
    stream: f"demo:{extractor}-to-target-recotap" for stream, extractor in EXTRACTORS.items()
}


def seed_emulator(store: EmulatorStore) -> None:
    """What the project's Recotap holds before its first run: the account custom field that a
    sample account fills in (CONTRACT_VALUE_C), as `--custom-field "Contract Value:number"`."""
    store.add_custom_field(custom_field({"label": "Contract Value", "labelType": "number"}))


def _bin(venv: Path, name: str) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin") / name


def meltano_venv() -> Path:
    """Meltano's own virtualenv, made (from scratch) unless the cache already holds it."""
    venv = CACHE / "venv"
    ready = CACHE / "ready"
    wanted = f"{MELTANO_REQUIREMENT} {UV_REQUIREMENT} compiled"
    if ready.exists() and ready.read_text() == wanted and _bin(venv, "meltano").exists():
        return venv
    shutil.rmtree(CACHE, ignore_errors=True)
    # Without pip of its own: ensurepip is slow, and once failed here for no reason it printed.
    # This interpreter's pip puts uv in it; uv then installs Meltano (pip would take half a
    # minute to resolve it; uv takes a few seconds).
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = _bin(venv, "python")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
    subprocess.run([*pip, "--disable-pip-version-check", UV_REQUIREMENT], check=True)
    # Bytecode is compiled at install time: with PYTHONDONTWRITEBYTECODE set, every start
    # would compile.
    uv: list[str | Path] = [_bin(venv, "uv"), "pip", "install", "--quiet", "--compile-bytecode"]
    uv += ["--python", python]
    subprocess.run([*uv, MELTANO_REQUIREMENT], check=True)
    ready.write_text(wanted)
    return venv


def _sys_dir() -> Path:
    """The plugins' cache for this meltano.yml and pyproject.toml; stale ones are removed."""
    digest = hashlib.sha256()
    for part in (
        MELTANO_REQUIREMENT.encode(),
        str(REPO).encode(),
        (REPO / "meltano.yml").read_bytes(),
        (REPO / "pyproject.toml").read_bytes(),
    ):
        digest.update(part + b"\0")
    sys_dir = CACHE / f"sys-{digest.hexdigest()[:16]}"
    for other in CACHE.glob("sys-*"):
        if other != sys_dir:
            shutil.rmtree(other, ignore_errors=True)
    # Keep only the virtualenvs: generated configs, cached catalogs and logs are per run.
    for per_run in ("run", "logs"):
        shutil.rmtree(sys_dir / per_run, ignore_errors=True)
    sys_dir.mkdir(parents=True, exist_ok=True)
    return sys_dir


def copy_project(destination: Path) -> Path:
    """Copy meltano.yml and demo/meltano/ to `destination`, the loader installed from REPO."""
    text = (REPO / "meltano.yml").read_text()
    if text.count(LOCAL_PIP_URL) != 1:
        raise AssertionError(f"meltano.yml should have exactly one {LOCAL_PIP_URL!r}")
    destination.mkdir(parents=True)
    shutil.copytree(REPO / "demo" / "meltano", destination / "demo" / "meltano")
    (destination / "meltano.yml").write_text(
        text.replace(LOCAL_PIP_URL, f"pip_url: -e {shlex.quote(str(REPO))}\n")
    )
    return destination


@dataclass
class MeltanoProject:
    """A copy of the project and the environment to run Meltano in it."""

    root: Path
    executable: Path
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """`meltano ARGS` in the project; output captured, exit code not checked."""
        return subprocess.run(
            [str(self.executable), *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def meltano_project(tmp_path: Path, settings: dict[str, str]) -> MeltanoProject:
    """A fresh copy of the project in `tmp_path`, run with `settings` as environment variables.

    Meltano's system database is in `tmp_path` too, so every project starts without state.
    """
    venv = meltano_venv()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MELTANO_", "TARGET_RECOTAP_", "TAP_JSONL")) and key != "VIRTUAL_ENV"
    }
    env.update(
        MELTANO_SYS_DIR_ROOT=str(_sys_dir()),
        MELTANO_DATABASE_URI=f"sqlite:///{tmp_path / 'meltano.db'}",
        MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
        UV_COMPILE_BYTECODE="1",  # for the plugins' virtualenvs, which Meltano makes with uv
        **settings,
    )
    return MeltanoProject(copy_project(tmp_path / "project"), _bin(venv, "meltano"), env)
