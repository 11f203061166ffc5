"""The ``rate-bound-real`` scenario: the real API's budget, every setting at its default.

P = 1000 requests per 60 s window (``X-Ratelimit-Permitted`` in the recorded
traffic), builds of 10 s, 40 s and 120 s (+/-25%), N = 1,000 and 5,000; the
engine runs with its default settings, only scaled to the simulator's clock.
Each case runs on a fresh simulator process; ``Context.cases`` can narrow the
matrix (``python -m benchmarks --scenario rate-bound-real --build 40 --n 1000``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchmarks._engine import make_requests
from benchmarks._results import ScenarioResult
from benchmarks._scenarios import (
    MAX_RATIO,
    SPREAD,
    WINDOW,
    _accounting,
    _engine_on_fresh_sim,
    _figures,
    _RateFigures,
)
from benchmarks._sim import SimParams

if TYPE_CHECKING:
    from benchmarks._scenarios import Context

__all__ = ["MAX_REAL_REQUESTS_PER_VM", "rate_bound_real"]

#: targets of this scenario (the wall-time ratio is the common one)
MAX_REAL_REQUESTS_PER_VM = 2.1


@dataclass(frozen=True, slots=True)
class _Case:
    build: float
    n: int

    @property
    def label(self) -> str:
        return f"{self.build:g} s builds, N={self.n:,}"


def _cases(ctx: Context) -> list[_Case]:
    s = ctx.sizes
    return [
        _Case(build, n)
        for build in s.real_builds
        for n in s.real_ns
        if (ctx.only_build is None or build == ctx.only_build)
        and (ctx.only_n is None or n == ctx.only_n)
    ]


def _summary(f: _RateFigures) -> str:
    lag, _ = f.lag
    limit = f.run.limit_samples
    chosen = f"{min(limit)}-{max(limit)}" if limit else "?"
    return (
        f"{f.wall:.1f} s, in flight mean {f.mean_in_flight:.0f} (limit chosen {chosen}), "
        f"first poll {lag:.0f} s after the POST, requests by kind: {f.breakdown()}"
    )


async def rate_bound_real(ctx: Context) -> ScenarioResult:
    """P = 1000 per window, default settings: 10/40/120 s builds, N = 1,000 and 5,000."""
    s = ctx.sizes
    p, scale, repeats = s.real_permitted, s.real_scale, s.real_repeats
    cases = _cases(ctx)
    result = ScenarioResult(
        "rate-bound-real",
        f"P={p} requests per 60 s window (the real API's), builds of "
        f"{', '.join(f'{b:g}' for b in s.real_builds)} s +/-{SPREAD:.0%}, "
        f"N={' and '.join(f'{n:,}' for n in s.real_ns)}; every setting at its default, "
        f"only scaled to the clock (time scale {scale:g}: a window lasts {WINDOW / scale:g} s); "
        f"journal; each case on a fresh simulator, {repeats} run(s) each",
    )
    all_runs: list[dict[str, object]] = []
    for case in cases:
        params = SimParams(
            time_scale=scale,
            rate_limit=p,
            build_seconds=case.build,
            build_spread=SPREAD,
            seed=31,
        )
        requests = make_requests(case.n)
        runs: list[_RateFigures] = []
        for i in range(repeats):
            run, state, _ = await _engine_on_fresh_sim(params, requests, ctx.workdir)
            f = _figures(run, case.n, p, scale, case.build)
            acc = _accounting(run.report, requests, state)
            tag = f"{case.label}" + (f" (run {i + 1})" if repeats > 1 else "")
            result.checks[f"{tag}: no duplicate VM"] = acc["duplicates"] == 0
            result.checks[f"{tag}: one report row per VM, none lost"] = (
                acc["rows"] == case.n and acc["repeated_rows"] == 0 and acc["lost"] == 0
            )
            all_runs.append({"build": case.build, **f.data(), **acc})
            runs.append(f)
        worst = max(runs, key=lambda r: r.ratio)
        ratios = ", ".join(f"{r.ratio:.3f}x" for r in runs)
        result.add(
            f"{case.label}: wall / lower bound" + (" (worst)" if repeats > 1 else ""),
            f"{worst.ratio:.3f}x" + (f" ({ratios})" if repeats > 1 else ""),
            f"<= {MAX_RATIO}x",
            worst.ratio <= MAX_RATIO,
            "" if worst.ratio <= MAX_RATIO else f"{worst.ratio / MAX_RATIO - 1:+.1%}",
        )
        per_vm = max(r.per_vm for r in runs)
        result.add(
            f"{case.label}: requests per VM",
            f"{per_vm:.3f}",
            f"<= {MAX_REAL_REQUESTS_PER_VM}",
            per_vm <= MAX_REAL_REQUESTS_PER_VM,
        )
        limited = sum(r.traffic.rate_limited for r in runs)
        result.add(f"{case.label}: 429s", str(limited), "0", limited == 0)
        for r in runs:
            result.notes.append(f"{case.label}: {r.ratio:.3f}x the bound; {_summary(r)}.")
    result.data = {"runs": all_runs}
    return result
