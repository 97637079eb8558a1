"""`make bench`: how fast and how lean target-recotap is, measured against the local emulator.

One run, seven scenarios, one table at the end (see docs/benchmarks.md for what each figure
means):

1. CPU: target-recotap and a stock singer-sdk target that discards its batches, on the same
   N deals; CPU seconds (user+sys) of each target process alone (least of 5 runs each), and
   their ratio.
2. Latency: the emulator answers after 100 ms; deals/s with 8 requests in flight, as a share
   of the 8 x 100 deals / 0.1 s bound; then every deal's latest version is checked.
3. Accounts: the same for N accounts (100 a request: the same bound), every account's latest
   version checked under its cleaned domain.
4. Activities: the same for N/2 sales activities (50 a request: half the bound), each one
   checked stored, and sent, exactly once.
5. Mixed: N records, accounts and deals, each deal a few records after its account; records/s
   as a share of the deals-only rate of scenario 2 (run here if 2 is not), latest versions
   checked and every deal checked linked to its account.
6. Rate limit: the emulator allows 20 requests/s; share of that rate used, share of requests
   answered 429, and whether every deal arrived in its latest version.
7. Memory: peak RSS of the target on 10,000 and on 200,000 deals, and the growth; the same for
   the mixed input.

    python bench/run_bench.py [--deals 100000] [--cpu-repeats 5] [--keep] [--timeout SECONDS]
                              [--only cpu,latency,accounts,activities,mixed,rate-limit,memory]

Exits 0 when every run completed (goals met or not: the table says); 1 when something broke
(a target run exited non-zero or timed out, the emulator did not start, ...).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from generate import (
    ACCOUNT_CUSTOM_FIELDS,
    ACCOUNTS,
    ACTIVITIES,
    DEALS,
    DEFAULT_SEED,
    GENERATORS,
    MIXED,
    Summary,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from types import FrameType

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable
API_KEY = "bench-key"

LATENCY_MS = 100
LATENCY_CONCURRENCY = 8
DEALS_PER_REQUEST = 100  # accounts too
ACTIVITIES_PER_REQUEST = 50
LATENCY_BOUND = LATENCY_CONCURRENCY * DEALS_PER_REQUEST / (LATENCY_MS / 1000)  # items/s
ACTIVITIES_BOUND = LATENCY_CONCURRENCY * ACTIVITIES_PER_REQUEST / (LATENCY_MS / 1000)
# Activities take twice as long as deals at the bound: half as many keep the scenario as long.
ACTIVITIES_SHARE_OF_DEALS = 0.5
RATE_LIMIT = 20.0  # requests/s
RATE_CONCURRENCY = 16
RATE_MAX_DEALS = 20_000
CPU_CONCURRENCY = 4
REFERENCE_RECORDS = 30_000
RECOTAP_FIELDS = (
    "externalDealId",
    "name",
    "amount",
    "stageId",
    "stageLabel",
    "pipelineId",
    "pipelineLabel",
    "startDate",
    "closedDate",
    "ownerName",
    "ownerEmail",
    "ownerId",
    "dealCurrencyCode",
    "associatedAccounts",
)
MEMORY_SIZES = (10_000, 200_000)

GOAL_CPU_RATIO = 0.35
GOAL_LATENCY_SHARE = 0.90  # deals, accounts and activities alike
GOAL_MIXED_SHARE = 0.85  # of the deals-only rate
GOAL_RATE_SHARE = 0.90
GOAL_429_SHARE = 0.10
GOAL_RSS_GROWTH_MB = 10.0

STARTED = time.monotonic()


class BenchError(Exception):
    """Something broke: the figure cannot be measured."""


def progress(message: str) -> None:
    """One progress line, with the seconds since the harness started."""
    print(f"[{time.monotonic() - STARTED:7.1f}s] {message}", flush=True)


# ---------------------------------------------------------------------------
# Child processes, measured alone
# ---------------------------------------------------------------------------


@dataclass
class Run:
    """One finished child process: exit code, wall seconds and its own resource usage."""

    label: str
    exit_code: int
    wall: float
    user: float
    sys: float
    maxrss_kb: int
    timed_out: bool
    stderr_path: Path
    emulator_cpu: float = 0.0  # CPU seconds the emulator spent meanwhile (set by run_target)

    @property
    def cpu(self) -> float:
        """CPU seconds, user + system."""
        return self.user + self.sys

    @property
    def rss_mb(self) -> float:
        """Peak resident set size in MiB (Linux reports ru_maxrss in KiB)."""
        return self.maxrss_kb / 1024

    def stderr_tail(self, lines: int = 15) -> str:
        """The last lines the child wrote to stderr, for error messages."""
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError:
            return "(no stderr)"
        kept = [line for line in text.splitlines() if "METRIC:" not in line]
        return "\n".join("    " + line for line in kept[-lines:])


def child_env() -> dict[str, str]:
    """The environment for children: never reach 127.0.0.1 through a proxy."""
    env = dict(os.environ)
    for name in ("NO_PROXY", "no_proxy"):
        env[name] = ",".join(filter(None, [env.get(name, ""), "127.0.0.1", "localhost"]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wait_unreaped(proc: subprocess.Popen[bytes]) -> None:
    """Wait for `proc` to exit but leave it a zombie, so its PID stays ours (Linux, BSDs)."""
    if hasattr(os, "waitid"):
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
    else:  # macOS: no waitid; reaping here leaves a negligible PID-reuse window for the kill
        proc.wait()


def run_measured(
    label: str, argv: Sequence[str], stdin_path: Path, workdir: Path, timeout: float
) -> Run:
    """Run `argv` with `stdin_path` as input and measure that process alone.

    The command is started by bench/measure.py, a small process that waits for it with wait4
    and writes its rusage (see there why the harness cannot fork it itself). The launcher
    leads a new process group, so a timeout or an interrupted harness kills both with one
    killpg; the launcher is waited for without being reaped (waitid + WNOWAIT) until then, so
    its PID, which names the group, cannot have been reused by the time of the kill.
    """
    out_path = workdir / f"{label}.stdout"
    err_path = workdir / f"{label}.stderr"
    report_path = workdir / f"{label}.rusage.json"
    report_path.unlink(missing_ok=True)
    lock = threading.Lock()
    state = {"exited": False, "timed_out": False}

    def kill_group() -> None:
        with lock:
            if not state["exited"]:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)

    def on_timeout() -> None:
        with lock:
            state["timed_out"] = not state["exited"]
        kill_group()

    command = [PYTHON, str(HERE / "measure.py"), str(report_path), "--", *argv]
    with stdin_path.open("rb") as stdin, out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            command,
            stdin=stdin,
            stdout=out,
            stderr=err,
            cwd=workdir,
            env=child_env(),
            start_new_session=True,
        )
        timer = threading.Timer(timeout, on_timeout)
        timer.daemon = True
        timer.start()
        try:
            wait_unreaped(proc)
        except BaseException:
            # The harness itself is stopping (Ctrl-C, SIGTERM): take the target down with it.
            kill_group()
            raise
        finally:
            timer.cancel()
            kill_group()  # a no-op unless something the target started outlived it
            with lock:
                state["exited"] = True
            proc.wait()
    try:
        usage = json.loads(report_path.read_text())
    except (OSError, ValueError):
        usage = {"exit_code": proc.returncode, "wall": 0.0, "user": 0.0, "sys": 0.0}
        usage["maxrss_kb"] = 0
    return Run(
        label=label,
        exit_code=usage["exit_code"],
        wall=usage["wall"],
        user=usage["user"],
        sys=usage["sys"],
        maxrss_kb=usage["maxrss_kb"],
        timed_out=bool(state["timed_out"]),
        stderr_path=err_path,
    )


def require_success(run: Run, timeout: float) -> Run:
    """Raise BenchError unless the run exited 0 in time."""
    if run.timed_out:
        raise BenchError(f"{run.label} timed out after {timeout:.0f} s\n{run.stderr_tail()}")
    if run.exit_code != 0:
        raise BenchError(f"{run.label} exited with {run.exit_code}\n{run.stderr_tail()}")
    return run


# ---------------------------------------------------------------------------
# The emulator, as its own process
# ---------------------------------------------------------------------------

EMULATOR_COMMAND: tuple[str, ...] = (PYTHON, "-m", "recotap_emulator", "serve", "--quiet")
EMULATOR_COMMAND += ("--host", "127.0.0.1", "--port", "0")  # port 0: it prints the one it bound
URL_LINE = re.compile(r"Recotap emulator at (http://127\.0\.0\.1:(\d+))(/api/v1)")
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Emulator:
    """`recotap-emulator serve --port 0 --quiet` in a child process, driven by its admin routes."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.proc: subprocess.Popen[str] | None = None
        self.root = ""
        self.api_url = ""
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        """Start it and read the URL it prints (port 0: the OS picks a free loopback port)."""
        self._log = (self.workdir / "emulator.stderr").open("wb")
        self.proc = subprocess.Popen(
            [*EMULATOR_COMMAND, "--api-key", API_KEY],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            cwd=self.workdir,
            env=child_env(),
        )
        lines: list[str] = []
        stdout = self.proc.stdout
        assert stdout is not None  # stdout=PIPE
        reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        match = URL_LINE.search(lines[0]) if lines else None
        if match is None:
            raise BenchError(
                f"the emulator did not report its URL within {timeout:.0f} s "
                f"(got {lines[0] if lines else 'nothing'!r}); see {self._log.name}"
            )
        self.root = match.group(1)
        self.api_url = match.group(1) + match.group(3)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not stopped within 10 s."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def cpu_seconds(self) -> float:
        """CPU seconds the emulator process has used so far (from /proc)."""
        if self.proc is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        # utime and stime are fields 14 and 15 of stat; fields[0] here is field 3 (state).
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def admin(self, method: str, path: str, body: Any = None, timeout: float = 300) -> Any:
        """Call an admin route (`/_emulator/...`) and return its JSON answer."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.root}/_emulator/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with _NO_PROXY.open(request, timeout=timeout) as response:
                return json.loads(response.read())
        except OSError as error:
            raise BenchError(f"emulator {method} /_emulator/{path} failed: {error}") from None

    def prepare(self, **faults: Any) -> None:
        """Empty the store, create the account custom fields the inputs carry, and set the
        faults for the next scenario (others back to off)."""
        self.admin("POST", "reset")
        for custom_field in ACCOUNT_CUSTOM_FIELDS:
            self.admin("POST", "custom-fields", custom_field)
        self.admin("PUT", "faults", {"latency_ms": 0, "rate_limit": 0.0, **faults})


# ---------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the result table."""

    figure: str
    measured: str
    goal: str = "—"
    met: bool | None = None

    @property
    def met_text(self) -> str:
        """yes / no / — (an informational figure)."""
        return "—" if self.met is None else ("yes" if self.met else "NO")


@dataclass
class Bench:
    """Shared state of one benchmark run."""

    deals: int
    workdir: Path
    emulator: Emulator
    timeout: float | None
    cpu_repeats: int = 5
    rows: list[Row] = field(default_factory=list)
    files: dict[tuple[str, int], Summary] = field(default_factory=dict)
    deals_rate: float | None = None  # records/s of the deals-only latency run, once measured

    def file(self, records: int, kind: str = DEALS) -> Summary:
        """The generated input of `kind` with `records` records (made once, reused)."""
        if (kind, records) not in self.files:
            progress(f"generating {records:,} records: {kind}")
            path = self.workdir / f"{kind}-{records}.singer.jsonl"
            summary = GENERATORS[kind](path, records, DEFAULT_SEED)
            size_mb = path.stat().st_size / 1e6
            progress(
                f"  {summary.records:,} RECORDs, {summary.distinct:,} distinct items, "
                f"{summary.states} STATEs, {size_mb:.0f} MB"
            )
            self.files[kind, records] = summary
        return self.files[kind, records]

    def timeout_for(self, records: int) -> float:
        """A hang guard: generous for a slow, sequential target, finite all the same."""
        return self.timeout if self.timeout is not None else 120 + records * 0.005

    def run_target(self, label: str, data: Summary, concurrency: int) -> Run:
        """target-recotap on `data` against the emulator, with the given concurrency."""
        config = {
            "api_key": API_KEY,
            "api_url": self.emulator.api_url,
            "max_concurrent_requests": concurrency,
        }
        config_path = self.workdir / f"{label}.config.json"
        config_path.write_text(json.dumps(config))
        timeout = self.timeout_for(data.records)
        argv = [PYTHON, "-m", "target_recotap", "--config", str(config_path)]
        progress(f"{label}: target-recotap, {data.records:,} records, {concurrency} in flight")
        emulator_cpu = self.emulator.cpu_seconds()
        run = require_success(run_measured(label, argv, data.path, self.workdir, timeout), timeout)
        run.emulator_cpu = self.emulator.cpu_seconds() - emulator_cpu
        progress(
            f"  wall {run.wall:.1f} s, CPU {run.cpu:.1f} s (user {run.user:.1f} + sys "
            f"{run.sys:.1f}), peak RSS {run.rss_mb:.0f} MB, emulator CPU {run.emulator_cpu:.1f} s"
        )
        return run

    def check_latest(self, data: Summary, stream: str = DEALS) -> int:
        """Mismatches: items of `stream` missing, not holding what their last record says
        (`Summary.latest`), or not in the file."""
        route, stored_value = STORED[stream]
        progress(f"  fetching GET /_emulator/{route} to check every item's latest version")
        stored = dict(map(stored_value, self.emulator.admin("GET", route)))
        latest = data.latest[stream]
        mismatches = sum(1 for key, value in latest.items() if stored.get(key) != value)
        mismatches += sum(1 for key in stored if key not in latest)
        progress(f"  {len(stored):,} {stream} stored, {mismatches} mismatches")
        return mismatches


# Per stream: the admin route listing what the emulator stores, and (key, value) of one entry
# of it, as `Summary.latest` holds them.
STORED: dict[str, tuple[str, Callable[[dict[str, Any]], tuple[str, Any]]]] = {
    DEALS: ("deals", lambda entry: (entry["externalDealId"], entry["deal"].get("amount"))),
    ACCOUNTS: (
        "accounts",
        lambda entry: (
            entry["domain"],
            (entry["account"].get("customFields") or {}).get("CONTRACT_VALUE_C"),
        ),
    ),
    ACTIVITIES: (
        "activities",
        lambda entry: (entry["externalActivityId"], entry["activity"].get("subject")),
    ),
}


def scenario_cpu(bench: Bench) -> None:
    """CPU seconds of target-recotap vs a stock singer-sdk target on the same file.

    Each is run `cpu_repeats` times, alternately, and the least CPU of each is compared: on a
    shared machine the noise only ever adds time.
    """
    data = bench.file(bench.deals)
    timeout = bench.timeout_for(data.records)
    ours: list[Run] = []
    stock: list[Run] = []
    for attempt in range(1, bench.cpu_repeats + 1):
        bench.emulator.prepare()
        ours.append(bench.run_target(f"cpu-target-recotap-{attempt}", data, CPU_CONCURRENCY))
        progress(
            f"cpu-stock-{attempt}: stock singer-sdk target (null BatchSink), {data.records:,} deals"
        )
        argv = [PYTHON, str(HERE / "stock_target.py")]
        run = run_measured(f"cpu-stock-{attempt}", argv, data.path, bench.workdir, timeout)
        stock.append(require_success(run, timeout))
        progress(f"  wall {run.wall:.1f} s, CPU {run.cpu:.1f} s, peak RSS {run.rss_mb:.0f} MB")
    empty = bench.run_target("startup", bench.file(0), CPU_CONCURRENCY)
    progress("startup-stock: stock singer-sdk target, 0 deals")
    argv = [PYTHON, str(HERE / "stock_target.py")]
    run = run_measured("startup-stock", argv, bench.file(0).path, bench.workdir, timeout)
    empty_stock = require_success(run, timeout)
    progress(f"  wall {empty_stock.wall:.2f} s, CPU {empty_stock.cpu:.2f} s")
    best_ours = min(run.cpu for run in ours)
    best_stock = min(run.cpu for run in stock)
    ratio = best_ours / best_stock
    n = f"{data.records:,} deals"
    bench.rows += [
        Row(f"CPU (user+sys), target-recotap, {n}", _cpu_text(ours)),
        Row(f"CPU (user+sys), stock singer-sdk null target, {n}", _cpu_text(stock)),
        Row(
            "CPU ratio target-recotap / stock",
            f"{ratio:.2f}",
            f"<= {GOAL_CPU_RATIO}",
            ratio <= GOAL_CPU_RATIO,
        ),
        Row(
            "  start-up and shut-down alone (0 deals), CPU: target-recotap / stock",
            f"{empty.cpu:.2f} s / {empty_stock.cpu:.2f} s (wall {empty.wall:.2f} s / "
            f"{empty_stock.wall:.2f} s)",
        ),
        Row(
            "  per deal, start-up left out: target-recotap / stock",
            f"{(best_ours - empty.cpu) / data.records * 1e6:.0f} / "
            f"{(best_stock - empty_stock.cpu) / data.records * 1e6:.0f} µs",
        ),
    ]


def _cpu_text(runs: Sequence[Run]) -> str:
    cpus = sorted(run.cpu for run in runs)
    if len(cpus) == 1:
        return f"{cpus[0]:.1f} s"
    return f"{cpus[0]:.1f} s (least of {len(cpus)}; most {cpus[-1]:.1f} s)"


def _sending_span(bench: Bench) -> float:
    """Seconds from the emulator's first request to its last answer (arrival + latency)."""
    stamps = [
        datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))
        for entry in bench.emulator.admin("GET", "requests")
    ]
    return (max(stamps) - min(stamps)).total_seconds() + LATENCY_MS / 1000


def _run_at_latency(bench: Bench, label: str, data: Summary) -> tuple[Run, float]:
    """target-recotap on `data` while every answer takes LATENCY_MS; the run, and the seconds
    from the emulator's first request to its last answer."""
    bench.emulator.prepare(latency_ms=LATENCY_MS)
    progress(f"{label}: emulator answers after {LATENCY_MS} ms")
    run = bench.run_target(label, data, LATENCY_CONCURRENCY)
    return run, _sending_span(bench)


def _latency_rows(data: Summary, run: Run, span: float, noun: str, bound: float) -> list[Row]:
    """Throughput, its share of `bound` (items/s), the same without start-up, and the CPU."""
    rate = data.records / run.wall
    share = rate / bound
    return [
        Row(
            f"{LATENCY_MS} ms latency, {LATENCY_CONCURRENCY} in flight, {data.records:,} {noun}: "
            "throughput",
            f"{rate:,.0f} {noun}/s ({run.wall:.1f} s)",
        ),
        Row(
            f"  share of the bound {bound:,.0f} {noun}/s",
            f"{share:.0%}",
            f">= {GOAL_LATENCY_SHARE:.0%}",
            share >= GOAL_LATENCY_SHARE,
        ),
        Row(
            "  the same from the first request to the last answer (no start-up)",
            f"{data.records / span / bound:.0%} ({span:.1f} s)",
        ),
        _cpu_meanwhile(run),
    ]


def _cpu_meanwhile(run: Run) -> Row:
    return Row(
        "  CPU meanwhile: target-recotap / emulator",
        f"{run.cpu:.1f} s / {run.emulator_cpu:.1f} s in {run.wall:.1f} s on {nproc()} cores",
    )


def scenario_latency(bench: Bench) -> None:
    """Throughput when every request takes 100 ms, and that the latest versions won."""
    data = bench.file(bench.deals)
    run, span = _run_at_latency(bench, "latency", data)
    bench.deals_rate = data.records / run.wall
    mismatches = bench.check_latest(data)
    *rows, cpu = _latency_rows(data, run, span, "deals", LATENCY_BOUND)
    bench.rows += [
        *rows,
        Row("  latest versions stored", _yes_no(mismatches), "yes", mismatches == 0),
        cpu,
    ]
    records, wall = reference_client(bench, data, LATENCY_CONCURRENCY)
    bench.rows.append(
        Row(
            f"  reference: bare {LATENCY_CONCURRENCY}-thread client, ready-made bodies "
            f"({records:,} deals)",
            f"{records / wall:,.0f} deals/s ({records / wall / LATENCY_BOUND:.0%} of the bound)",
        )
    )


def scenario_accounts(bench: Bench) -> None:
    """Accounts at 100 ms latency: throughput, and that each domain holds its latest version."""
    data = bench.file(bench.deals, ACCOUNTS)
    run, span = _run_at_latency(bench, "accounts", data)
    mismatches = bench.check_latest(data, ACCOUNTS)
    *rows, cpu = _latency_rows(data, run, span, "accounts", LATENCY_BOUND)
    bench.rows += [
        *rows,
        Row(
            "  latest versions stored (by cleaned domain)",
            _yes_no(mismatches),
            "yes",
            mismatches == 0,
        ),
        cpu,
    ]


def scenario_activities(bench: Bench) -> None:
    """Sales activities at 100 ms latency: throughput, and each one stored and sent once."""
    data = bench.file(max(1, round(bench.deals * ACTIVITIES_SHARE_OF_DEALS)), ACTIVITIES)
    run, span = _run_at_latency(bench, "activities", data)
    mismatches = bench.check_latest(data, ACTIVITIES)
    sent = sum(
        entry["items"]
        for entry in bench.emulator.admin("GET", "requests")
        if entry["endpoint"] == "POST /sales-activities" and entry["status"] == 200
    )
    progress(f"  {sent:,} activities sent in requests answered 200")
    once = mismatches == 0 and sent == data.records
    *rows, cpu = _latency_rows(data, run, span, "activities", ACTIVITIES_BOUND)
    bench.rows += [
        *rows,
        Row(
            "  every activity stored exactly once (and sent once)",
            f"{'yes' if once else 'no'} ({mismatches} mismatches, {sent:,} sent)",
            "yes",
            once,
        ),
        cpu,
    ]


def scenario_mixed(bench: Bench) -> None:
    """Accounts and deals interleaved at 100 ms latency: records/s against the deals-only
    rate, latest versions, and every deal linked to its account."""
    if bench.deals_rate is None:
        progress("mixed: the deals-only rate is not measured yet (the latency scenario)")
        data = bench.file(bench.deals)
        run, _ = _run_at_latency(bench, "latency", data)
        bench.deals_rate = data.records / run.wall
    data = bench.file(bench.deals, MIXED)
    run, span = _run_at_latency(bench, "mixed", data)
    rate = data.records / run.wall
    share = rate / bench.deals_rate
    mismatches = bench.check_latest(data, ACCOUNTS) + bench.check_latest(data, DEALS)
    progress("  fetching GET /_emulator/deal-links to check that every deal is linked")
    links = bench.emulator.admin("GET", "deal-links")
    unlinked = sum(1 for deal, domain in data.links.items() if links.get(deal) != {domain: True})
    progress(f"  {len(links):,} deals with links, {unlinked} not linked to their account alone")
    bench.rows += [
        Row(
            f"{LATENCY_MS} ms latency, {LATENCY_CONCURRENCY} in flight, mixed, "
            f"{data.records:,} records (accounts, deals): throughput",
            f"{rate:,.0f} records/s ({run.wall:.1f} s)",
        ),
        Row(
            "  share of the deals-only rate (records/s over the deals run's)",
            f"{share:.0%} (deals only: {bench.deals_rate:,.0f}/s)",
            f">= {GOAL_MIXED_SHARE:.0%}",
            share >= GOAL_MIXED_SHARE,
        ),
        Row(
            "  the same from the first request to the last answer (no start-up)",
            f"{data.records / span / LATENCY_BOUND:.0%} of the bound ({span:.1f} s)",
        ),
        Row(
            "  latest versions stored (accounts and deals)",
            _yes_no(mismatches),
            "yes",
            mismatches == 0,
        ),
        Row(
            "  every deal linked to its account",
            f"{'yes' if unlinked == 0 else 'no'} ({unlinked} of {len(data.links):,} not)",
            "yes",
            unlinked == 0,
        ),
        _cpu_meanwhile(run),
    ]


def reference_client(bench: Bench, data: Summary, concurrency: int) -> tuple[int, float]:
    """What this emulator on this machine gives a client that costs next to nothing.

    Up to REFERENCE_RECORDS records of `data`, cut into bodies of 100 (Recotap's fields only,
    one version per deal) before the clock starts, are posted by `concurrency` threads with
    keep-alive sessions. Returns (records posted, wall seconds); the store is reset after.
    """
    import requests  # a dependency of target-recotap, so present in its virtualenv

    bodies: list[bytes] = []
    batch: dict[str, dict[str, Any]] = {}
    records = 0
    with data.path.open(encoding="utf-8") as lines:
        for line in lines:
            message = json.loads(line)
            if message["type"] != "RECORD":
                continue
            record = message["record"]
            deal = {key: record[key] for key in RECOTAP_FIELDS if record.get(key) is not None}
            batch.pop(deal["externalDealId"], None)
            batch[deal["externalDealId"]] = deal
            records += 1
            if records % DEALS_PER_REQUEST == 0:
                bodies.append(json.dumps({"deals": list(batch.values())}).encode())
                batch = {}
                if records >= REFERENCE_RECORDS:
                    break
    if batch:
        bodies.append(json.dumps({"deals": list(batch.values())}).encode())
    bench.emulator.admin("POST", "reset")
    progress(
        f"reference: {len(bodies)} ready-made requests ({records:,} deals), {concurrency} threads"
    )
    local = threading.local()
    url = bench.emulator.api_url + "/deals"
    headers = {"X-Api-Key": API_KEY, "Content-Type": "application/json"}

    def post(body: bytes) -> int:
        if not hasattr(local, "session"):
            local.session = requests.Session()
            local.session.trust_env = False  # no proxy for 127.0.0.1
        return local.session.post(url, data=body, headers=headers, timeout=60).status_code

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        statuses = list(pool.map(post, bodies))
    wall = time.perf_counter() - start
    bench.emulator.admin("POST", "reset")
    refused = len(statuses) - statuses.count(200)
    if refused:
        raise BenchError(f"the reference client had {refused} requests refused")
    progress(f"  {records / wall:,.0f} deals/s ({wall:.1f} s)")
    return records, wall


def scenario_rate_limit(bench: Bench) -> None:
    """Use of a 20 requests/s rate limit: throughput, 429s, nothing lost."""
    data = bench.file(min(bench.deals, RATE_MAX_DEALS))
    bench.emulator.prepare(rate_limit=RATE_LIMIT)
    progress(f"rate limit: emulator allows {RATE_LIMIT:g} requests/s (429 + Retry-After beyond)")
    run = bench.run_target("rate-limit", data, RATE_CONCURRENCY)
    stats = bench.emulator.admin("GET", "stats")
    by_status = stats["byEndpoint"].get("POST /deals", {})
    total = sum(by_status.values())
    ok = by_status.get("200", 0)
    throttled = by_status.get("429", 0)
    progress(f"  POST /deals answers by status: {json.dumps(by_status, sort_keys=True)}")
    used = ok / run.wall / RATE_LIMIT
    share_429 = throttled / total if total else 0.0
    mismatches = bench.check_latest(data)
    bench.rows += [
        Row(
            f"Rate limit {RATE_LIMIT:g} req/s, {RATE_CONCURRENCY} in flight, "
            f"{data.records:,} deals: throughput",
            f"{data.records / run.wall:,.0f} deals/s ({run.wall:.1f} s)",
        ),
        Row(
            "  share of the allowed rate used (2xx POST /deals per s / 20)",
            f"{used:.0%}",
            f">= {GOAL_RATE_SHARE:.0%}",
            used >= GOAL_RATE_SHARE,
        ),
        Row(
            "  requests answered 429",
            f"{share_429:.1%} ({throttled} of {total})",
            f"<= {GOAL_429_SHARE:.0%}",
            share_429 <= GOAL_429_SHARE,
        ),
        Row(
            "  nothing lost (every ID stored, latest version)",
            _yes_no(mismatches),
            "yes",
            mismatches == 0,
        ),
    ]


def scenario_memory(bench: Bench) -> None:
    """Peak RSS on a small and a large input, deals alone and mixed with accounts: memory must
    not grow with the input (holding deals for their accounts included)."""
    for kind, noun in ((DEALS, "deals"), (MIXED, "records, mixed")):
        runs = []
        for size in MEMORY_SIZES:
            data = bench.file(size, kind)
            bench.emulator.prepare()
            runs.append(bench.run_target(f"memory-{kind}-{size}", data, CPU_CONCURRENCY))
        small, large = runs
        growth = large.rss_mb - small.rss_mb
        bench.rows += [
            Row(f"Peak RSS, {MEMORY_SIZES[0]:,} {noun}", f"{small.rss_mb:.0f} MB"),
            Row(f"Peak RSS, {MEMORY_SIZES[1]:,} {noun}", f"{large.rss_mb:.0f} MB"),
            Row(
                "  growth",
                f"{growth:+.1f} MB",
                f"<= {GOAL_RSS_GROWTH_MB:g} MB",
                growth <= GOAL_RSS_GROWTH_MB,
            ),
        ]


def _yes_no(mismatches: int) -> str:
    return f"{'yes' if mismatches == 0 else 'no'} ({mismatches} mismatches)"


SCENARIOS: dict[str, Callable[[Bench], None]] = {
    "cpu": scenario_cpu,
    "latency": scenario_latency,
    "accounts": scenario_accounts,
    "activities": scenario_activities,
    "mixed": scenario_mixed,
    "rate-limit": scenario_rate_limit,
    "memory": scenario_memory,
}


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def nproc() -> int:
    """CPUs this process may run on, as `nproc` counts them."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine_line() -> str:
    """nproc, CPU model and Python version of this machine."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"machine: nproc {nproc()}, {model}, Python {platform.python_version()}"


def table(rows: Sequence[Row]) -> str:
    """A Markdown table: figure | measured | goal | met?"""
    header = ("figure", "measured", "goal", "met?")
    cells = [header, *((r.figure, r.measured, r.goal, r.met_text) for r in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(c) for c in cells[1:])])


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so `finally` blocks stop the children."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every scenario, print the table; exit 1 if any run broke."""
    parser = argparse.ArgumentParser(description="Benchmark target-recotap (see module doc).")
    parser.add_argument("--deals", type=int, default=100_000, help="deals for CPU and latency")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (inputs, logs)")
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds per target run (default scales)"
    )
    parser.add_argument(
        "--cpu-repeats",
        type=int,
        default=5,
        help="runs of each target in the CPU scenario; the least CPU counts (default 5)",
    )
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"comma-separated scenarios to run (default: all of {','.join(SCENARIOS)})",
    )
    args = parser.parse_args(argv)
    if args.deals < 1 or args.cpu_repeats < 1:
        parser.error("--deals and --cpu-repeats must be at least 1")
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown or not chosen:
        parser.error(f"--only takes names from {','.join(SCENARIOS)} (got {args.only!r})")

    command = " ".join(["python", "bench/run_bench.py", *(argv or sys.argv[1:])])
    workdir = Path(tempfile.mkdtemp(prefix="recotap-bench-"))
    emulator = Emulator(workdir)
    bench = Bench(
        deals=args.deals,
        workdir=workdir,
        emulator=emulator,
        timeout=args.timeout,
        cpu_repeats=args.cpu_repeats,
    )
    failures: list[str] = []
    progress(machine_line())
    progress(f"work dir {workdir}")
    try:
        with stop_on_sigterm():
            emulator.start()
            progress(f"emulator at {emulator.api_url}")
            for name in chosen:
                try:
                    SCENARIOS[name](bench)
                except BenchError as error:
                    progress(f"FAILED {name}: {error}")
                    failures.append(name)
                    bench.rows.append(Row(f"{name} scenario", "FAILED (see above)", "runs", False))
    except BenchError as error:
        progress(f"FAILED: {error}")
        failures.append("setup")
    finally:
        emulator.stop()
        progress("emulator stopped")
        if args.keep or failures:
            progress(f"inputs and logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(machine_line())
    print(f"command: {command}   ({time.monotonic() - STARTED:.0f} s in all)")
    print()
    print(table(bench.rows))
    if failures:
        print(f"\nbroken: {', '.join(failures)} (exit 1)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
