"""The ``state-backends`` scenario: the fleet's state in PostgreSQL, against the SQLite file.

Two measurements, each taken with both backends in the same run, alternating
(SQLite, PostgreSQL, SQLite, ...), so that the ratio does not depend on the host:

* **overhead**: the orchestrator alone in a child process (as the ``overhead``
  scenario: no rate limit, 1 ms builds), N VMs; CPU per VM of each backend. The
  PostgreSQL writer runs on the event loop, the SQLite one in a thread: both
  count, as the child's own CPU time. Target: PostgreSQL at most 1.5x SQLite.
* **real budget**: the ``rate-bound-real`` case of 10 s builds at N = 1,000
  (P = 1000 per window, default settings, time-scaled). Target: PostgreSQL's
  wall time within 5% of SQLite's.

The server is a throwaway cluster of the distribution's PostgreSQL
(``tests/pg_cluster.py``) on 127.0.0.1, stopped at the end; without its
binaries the scenario says so and measures nothing.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from benchmarks._engine import make_requests, run_engine
from benchmarks._real_budget import MAX_REAL_REQUESTS_PER_VM
from benchmarks._results import ScenarioResult
from benchmarks._scenarios import ROOT, SPREAD, _accounting, _figures
from benchmarks._sim import SimParams, SimulatorProcess

if TYPE_CHECKING:
    from benchmarks._scenarios import Context

__all__ = ["MAX_CPU_RATIO", "MAX_WALL_RATIO", "state_backends"]

#: targets: PostgreSQL against SQLite, measured in the same run
MAX_CPU_RATIO = 1.5
MAX_WALL_RATIO = 1.05
_BACKENDS = ("sqlite", "postgresql")


async def _overhead_once(n: int, scale: float, journal: str, fleet: str | None) -> dict[str, Any]:
    params = SimParams(time_scale=scale, build_seconds=1.0, build_spread=0.0, seed=5)
    async with SimulatorProcess(params) as sim:
        argv = [sys.executable, "-m", "benchmarks._overhead_child", sim.url, str(n), str(scale)]
        argv += ["--journal", journal] + (["--fleet", fleet] if fleet else [])
        done = await anyio.run_process(argv, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the overhead child failed: {done.stderr.decode()[-2000:]}")
    data: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return data


def _spread(values: list[float], unit: str, digits: int = 3) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}{unit}"
    return (
        f"{statistics.median(values):.{digits}f}{unit} "
        f"({', '.join(f'{v:.{digits}f}' for v in values)})"
    )


async def state_backends(ctx: Context) -> ScenarioResult:
    """Overhead and real-budget wall time, SQLite and PostgreSQL, alternating."""
    from tests.pg_cluster import find_binaries, start, stop

    s = ctx.sizes
    n_over = s.overhead_ns[1]
    n_real, build = s.real_ns[0], s.real_builds[0]
    repeats = 2 if n_over >= 1000 else 1
    #: the real-budget runs vary more from run to run than the overhead: a median of three
    real_repeats = 3 if n_over >= 1000 else 1
    result = ScenarioResult(
        "state-backends",
        f"the fleet's state in SQLite (a file) and in PostgreSQL (a local server), "
        f"alternating: overhead at N={n_over:,} (as the overhead scenario, {repeats} run(s) "
        f"each), and the real budget ({real_repeats} run(s) each; P={s.real_permitted}, "
        f"{build:g} s builds, N={n_real:,}, as rate-bound-real); medians, every run in brackets",
    )
    if find_binaries() is None:
        result.notes.append("PostgreSQL's server is not installed here: nothing measured.")
        return result
    import psycopg

    directory = Path(tempfile.mkdtemp(prefix="orchestrator-bench-pg-"))
    try:
        cluster = await anyio.to_thread.run_sync(start, directory)
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
        url = cluster.url("bench")
        await _measure(ctx, result, url, (n_over, repeats), (n_real, real_repeats), build)
    finally:
        await anyio.to_thread.run_sync(stop, directory)
        shutil.rmtree(directory, ignore_errors=True)
    return result


async def _measure(
    ctx: Context,
    result: ScenarioResult,
    url: str,
    overhead_runs: tuple[int, int],
    real_runs: tuple[int, int],
    build: float,
) -> None:
    s = ctx.sizes
    n_over, repeats = overhead_runs
    n_real, real_repeats = real_runs
    cpu: dict[str, list[float]] = {b: [] for b in _BACKENDS}
    wall: dict[str, list[float]] = {b: [] for b in _BACKENDS}
    per_vm: dict[str, list[float]] = {b: [] for b in _BACKENDS}
    raw: list[dict[str, Any]] = []
    for i in range(repeats):
        for backend in _BACKENDS:
            with tempfile.TemporaryDirectory(dir=ctx.workdir) as tmp:
                journal = str(Path(tmp) / "bench.journal") if backend == "sqlite" else url
                fleet = None if backend == "sqlite" else f"overhead-{i}"
                measure = await _overhead_once(n_over, s.overhead_scale, journal, fleet)
            ok = measure["rows"] == n_over and measure["outcomes"].get("succeeded", 0) == n_over
            result.checks[f"overhead {backend} (run {i + 1}): every VM succeeded once"] = ok
            cpu[backend].append(float(measure["cpu_seconds"]) / n_over * 1000)
            raw.append({"kind": "overhead", "backend": backend, **measure})
    for i in range(real_repeats):
        for backend in _BACKENDS:
            params = SimParams(
                time_scale=s.real_scale,
                rate_limit=s.real_permitted,
                build_seconds=build,
                build_spread=SPREAD,
                seed=31,
            )
            requests = make_requests(n_real)
            with tempfile.TemporaryDirectory(dir=ctx.workdir) as tmp:
                where: Path | str = Path(tmp) / "bench.journal" if backend == "sqlite" else url
                fleet = None if backend == "sqlite" else f"real-{i}"
                async with SimulatorProcess(params) as sim:
                    run = await run_engine(
                        sim.url, requests, scale=s.real_scale, journal=where, fleet=fleet
                    )
                    state = await sim.state()
            f = _figures(run, n_real, s.real_permitted, s.real_scale, build)
            acc = _accounting(run.report, requests, state)
            tag = f"real budget {backend} (run {i + 1})"
            result.checks[f"{tag}: no duplicate VM"] = acc["duplicates"] == 0
            result.checks[f"{tag}: one report row per VM, none lost"] = (
                acc["rows"] == n_real and acc["repeated_rows"] == 0 and acc["lost"] == 0
            )
            wall[backend].append(f.wall)
            per_vm[backend].append(f.per_vm)
            raw.append({"kind": "real", "backend": backend, **f.data(), **acc})
    cpu_ratio = statistics.median(cpu["postgresql"]) / statistics.median(cpu["sqlite"])
    wall_ratio = statistics.median(wall["postgresql"]) / statistics.median(wall["sqlite"])
    result.add(
        f"overhead: CPU per VM, SQLite / PostgreSQL (N={n_over:,})",
        f"{_spread(cpu['sqlite'], ' ms')} / {_spread(cpu['postgresql'], ' ms')}",
    )
    result.add(
        "overhead: CPU per VM, PostgreSQL / SQLite",
        f"{cpu_ratio:.2f}x",
        f"<= {MAX_CPU_RATIO}x",
        cpu_ratio <= MAX_CPU_RATIO,
        "" if cpu_ratio <= MAX_CPU_RATIO else f"{cpu_ratio / MAX_CPU_RATIO - 1:+.0%}",
    )
    result.add(
        f"real budget: wall time, SQLite / PostgreSQL (N={n_real:,}, {build:g} s builds)",
        f"{_spread(wall['sqlite'], ' s', 2)} / {_spread(wall['postgresql'], ' s', 2)}",
    )
    result.add(
        "real budget: wall time, PostgreSQL / SQLite",
        f"{wall_ratio:.3f}x",
        f"<= {MAX_WALL_RATIO}x",
        wall_ratio <= MAX_WALL_RATIO,
        "" if wall_ratio <= MAX_WALL_RATIO else f"{wall_ratio / MAX_WALL_RATIO - 1:+.1%}",
    )
    worst = max(per_vm["postgresql"])
    result.add(
        "real budget: requests per VM, PostgreSQL",
        f"{worst:.3f}",
        f"<= {MAX_REAL_REQUESTS_PER_VM}",
        worst <= MAX_REAL_REQUESTS_PER_VM,
    )
    result.notes.append(
        "The PostgreSQL writer commits in groups as the SQLite one does (a group with an "
        "intent with synchronous_commit on, the others off); its statements go as one "
        "executemany per kind, pipelined by psycopg."
    )
    result.data = {"runs": raw}
