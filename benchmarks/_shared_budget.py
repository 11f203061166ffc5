"""The ``shared-budget`` scenario: a run beside another client of the same token.

The real numbers of issue 25, time-scaled by 1/10: P = 1000 requests per 6 s
window (60 s on the API), builds of 4 s (40 s), N = 1,000 VMs, every setting at
its default. A neighbour (:mod:`benchmarks._neighbour`) spends the same token's
budget from one window before the run starts until it ends: steadily (40, 60
and 80% of every window, evenly spaced GETs) or in bursts (50% of the budget
at the start of every window, 10 at a time, as ``terraform apply`` does).

Targets, at default settings: the neighbour gets at most 2% of its requests
refused (429), the run at most 1% of its own, and the run's wall time is at
most 1.25x the lower bound computed on what the neighbour leaves
(2N / (P - neighbour's share) windows, plus one build). Each case runs
``Sizes.budget_repeats`` times, each on a fresh simulator; the worst run is
held against the targets and the spread is reported.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from benchmarks._engine import make_requests, run_engine
from benchmarks._neighbour import Neighbour
from benchmarks._results import ScenarioResult
from benchmarks._scenarios import SPREAD, WINDOW, _accounting
from benchmarks._sim import SimParams, SimulatorProcess

if TYPE_CHECKING:
    from benchmarks._scenarios import Context

__all__ = [
    "MAX_NEIGHBOUR_REFUSED",
    "MAX_OURS_REFUSED",
    "MAX_SHARED_RATIO",
    "shared_budget",
]

#: targets (issue 25)
MAX_NEIGHBOUR_REFUSED = 0.02
MAX_OURS_REFUSED = 0.01
MAX_SHARED_RATIO = 1.25
#: the real API's budget and the build time of the issue (simulated seconds)
_PERMITTED = 1000
_BUILD = 40.0


@dataclass(frozen=True, slots=True)
class _Case:
    share: float
    bursty: bool

    @property
    def label(self) -> str:
        kind = "bursty (at window starts, 10 at a time)" if self.bursty else "steady"
        return f"neighbour {kind} at {self.share:.0%}"


@dataclass(frozen=True, slots=True)
class _Figures:
    wall: float
    bound: float
    ours: int
    ours_refused: int
    neighbour_sent: int
    neighbour_refused: int
    others_seen: list[int]
    ours_per_window: list[int]
    #: duplicates, lost VMs, report rows (``_accounting``)
    accounting: dict[str, int]

    @property
    def ratio(self) -> float:
        return self.wall / self.bound

    @property
    def neighbour_share(self) -> float:
        return self.neighbour_refused / self.neighbour_sent if self.neighbour_sent else 0.0

    @property
    def ours_share(self) -> float:
        return self.ours_refused / self.ours if self.ours else 0.0


def _cases(ctx: Context) -> list[_Case]:
    s = ctx.sizes
    return [*(_Case(share, False) for share in s.budget_shares), _Case(s.budget_bursty, True)]


def _bound(n: int, share: float, scale: float) -> float:
    """Real seconds: 2N requests at what the neighbour leaves, plus one build."""
    left = _PERMITTED * (1 - share)
    return (2 * n / left * WINDOW + _BUILD) / scale


async def _one(case: _Case, n: int, scale: float, workdir: Path, seed: int) -> _Figures:
    params = SimParams(
        time_scale=scale,
        rate_limit=_PERMITTED,
        build_seconds=_BUILD,
        build_spread=SPREAD,
        seed=seed,
    )
    window = WINDOW / scale
    requests = make_requests(n, prefix="shared")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        async with SimulatorProcess(params) as sim:
            neighbour = Neighbour(
                sim.url,
                permitted=_PERMITTED,
                window=window,
                share=case.share,
                bursty=case.bursty,
            )
            async with neighbour:
                await anyio.sleep(window)  # the neighbour was there first
                run = await run_engine(
                    sim.url, requests, scale=scale, journal=Path(tmp) / "run.journal"
                )
            state = await sim.state()
    acc = _accounting(run.report, requests, state)
    if acc["duplicates"] or acc["lost"] or acc["rows"] != n or acc["repeated_rows"]:
        raise _Incorrect(case, acc)
    summary = run.report.summary.requests
    budget = run.report.budget
    windows = budget.windows if budget is not None else []
    return _Figures(
        wall=run.wall,
        bound=_bound(n, case.share, scale),
        ours=summary.total,
        ours_refused=summary.rate_limited,
        neighbour_sent=neighbour.sent,
        neighbour_refused=neighbour.refused,
        others_seen=[w.others for w in windows if w.others is not None],
        ours_per_window=[w.requests for w in windows],
        accounting=acc,
    )


class _Incorrect(Exception):
    def __init__(self, case: _Case, acc: dict[str, int]) -> None:
        super().__init__(f"{case.label}: {acc}")
        self.case = case
        self.acc = acc


def _spread(values: list[float], fmt: str) -> str:
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(min(values), fmt)}-{format(max(values), fmt)}"


async def shared_budget(ctx: Context) -> ScenarioResult:
    """A run of N VMs beside a neighbour on the same token, steady or bursty."""
    s = ctx.sizes
    n, scale, repeats = s.budget_n, s.real_scale, s.budget_repeats
    cases = _cases(ctx)
    result = ScenarioResult(
        "shared-budget",
        f"N={n:,} VMs, P={_PERMITTED} requests per 60 s window shared with a neighbour on "
        f"the same token (from one window before the run until its end): steady at "
        f"{', '.join(f'{c.share:.0%}' for c in cases if not c.bursty)} of every window "
        f"(evenly spaced GETs), or bursty ({s.budget_bursty:.0%} of the budget at each "
        f"window's start, 10 at a time); builds {_BUILD:g} s +/-{SPREAD:.0%}, time scale "
        f"{scale:g} (a window lasts {WINDOW / scale:g} s); default settings, journal; each "
        f"case {repeats} time(s), each on a fresh simulator. The bound is 2N requests at "
        "what the neighbour leaves, plus one build",
    )
    runs: list[dict[str, object]] = []
    for case in cases:
        figures: list[_Figures] = []
        for i in range(repeats):
            try:
                f = await _one(case, n, scale, ctx.workdir, seed=51 + i)
            except _Incorrect as exc:
                result.checks[f"{case.label} (run {i + 1}): every VM once, none lost"] = False
                result.notes.append(f"{case.label} (run {i + 1}): INCORRECT {exc.acc}")
                continue
            result.checks[f"{case.label} (run {i + 1}): every VM once, none lost"] = True
            figures.append(f)
            runs.append(
                {
                    "case": case.label,
                    "share": case.share,
                    "bursty": case.bursty,
                    "wall": f.wall,
                    "bound": f.bound,
                    "ratio": f.ratio,
                    "requests": f.ours,
                    "rate_limited": f.ours_refused,
                    "neighbour_sent": f.neighbour_sent,
                    "neighbour_refused": f.neighbour_refused,
                    "others_per_window": f.others_seen,
                    "ours_per_window": f.ours_per_window,
                    "n": n,
                    **f.accounting,
                }
            )
        if not figures:
            continue
        worst_nb = max(f.neighbour_share for f in figures)
        result.add(
            f"{case.label}: neighbour's requests refused (429)",
            f"{worst_nb:.2%}"
            + (
                f" ({_spread([f.neighbour_share * 100 for f in figures], '.2f')}%)"
                if repeats > 1
                else ""
            )
            + f" of {sum(f.neighbour_sent for f in figures) // len(figures):,}",
            f"<= {MAX_NEIGHBOUR_REFUSED:.0%}",
            worst_nb <= MAX_NEIGHBOUR_REFUSED,
        )
        worst_ours = max(f.ours_share for f in figures)
        result.add(
            f"{case.label}: this run's requests refused (429)",
            f"{worst_ours:.2%} ({sum(f.ours_refused for f in figures)} in {len(figures)} run(s))",
            f"<= {MAX_OURS_REFUSED:.0%}",
            worst_ours <= MAX_OURS_REFUSED,
        )
        worst = max(f.ratio for f in figures)
        result.add(
            f"{case.label}: wall / bound on what is left",
            f"{worst:.3f}x"
            + (f" ({_spread([f.ratio for f in figures], '.3f')}x)" if repeats > 1 else ""),
            f"<= {MAX_SHARED_RATIO}x",
            worst <= MAX_SHARED_RATIO,
            "" if worst <= MAX_SHARED_RATIO else f"{worst / MAX_SHARED_RATIO - 1:+.1%}",
        )
        for i, f in enumerate(figures):
            mid = f.ours_per_window[1:-1] or f.ours_per_window
            others = f.others_seen[1:-1] or f.others_seen
            result.notes.append(
                f"{case.label} (run {i + 1}): {f.wall:.1f} s for a bound of {f.bound:.1f} s; "
                f"{f.ours} requests, {f.ours_refused} refused; the neighbour sent "
                f"{f.neighbour_sent}, {f.neighbour_refused} refused; per window (whole ones, "
                f"as the report shows them): this run {_range(mid)}, others {_range(others)}."
            )
    result.data = {"runs": runs}
    return result


def _range(values: list[int]) -> str:
    if not values:
        return "?"
    return f"{min(values)}-{max(values)}" if min(values) != max(values) else str(values[0])
