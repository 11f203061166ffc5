"""``python -m benchmarks``: run the scenarios, print the table, write ``docs/benchmarks.md``.

Options: ``--quick`` (small N, a smoke run in seconds), ``--scenario NAME``
(repeatable, or the names alone: ``python -m benchmarks rate-bound-real``;
default every scenario), ``--build SECONDS`` / ``--n N`` (``rate-bound-real``:
only the cases with that build duration / that N), ``--repeat K`` (run each
``rate-bound-real`` and ``shared-budget`` case K times), ``--output PATH`` (the Markdown file;
by default ``docs/benchmarks.md`` and only for a full run of every
scenario), ``--json PATH`` (every figure as JSON). Exit status 1 when a
correctness check failed (a duplicate or a lost VM), 0 otherwise: a missed
performance target is reported, not fatal.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import anyio
import structlog

from benchmarks._destroy import destroy
from benchmarks._real_budget import rate_bound_real
from benchmarks._report import machine, render_markdown, render_table
from benchmarks._results import ScenarioResult
from benchmarks._scenarios import FULL, QUICK, ROOT, SCENARIOS, Context, ScenarioFn
from benchmarks._shared_budget import shared_budget
from benchmarks._shared_org import shared_org
from benchmarks._state_backends import state_backends

__all__ = ["main"]

#: every scenario, in the order they run
ALL: dict[str, ScenarioFn] = {
    "rate-bound": SCENARIOS["rate-bound"],
    "rate-bound-real": rate_bound_real,
    **SCENARIOS,
    "shared-org": shared_org,
    "destroy": destroy,
    "state-backends": state_backends,
    "shared-budget": shared_budget,
}

DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"

_INTRO = """
How fast `orchestrator` provisions VMs, measured against the built-in simulator
(`orchestrator simulate`), each scenario with its own simulator process.
Regenerate with `python -m benchmarks` (about {minutes} minutes on 2 cores);
`python -m benchmarks --quick` is a smoke run. One scenario alone:
`python -m benchmarks rate-bound-real` (the real API's budget, every case),
`python -m benchmarks rate-bound-real --build 40 --n 1000` (one case),
`python -m benchmarks shared-budget` (beside another client of the token),
`--repeat 3` to run each case three times.

What users feel is how long a bulk run takes, and on the real API the ceiling
is the rate budget: every VM needs at least two requests (its build POST and
one poll that sees it finished), so with P requests permitted per 60 s window
no run of N VMs can finish faster than about 2N/P windows plus one build
duration. The simulator runs on a scaled clock (time scale S: a 60 s window
lasts 60/S real seconds, a 40 s build 40/S) and the orchestrator's settings
are scaled the same way (rate window, poll bounds, expected build time, build
timeout), so a "window" below is one rate window whatever its real length.
Everything else is the engine's defaults (notably `max_in_flight` unset: the
run sizes its concurrency from the budget and the build times it learns), with
a journal, as `orchestrator run` uses it. Rate-bound runs three times,
because its wall time varies from run to run; the median and the worst run are
both held against the target.

The baseline is a plain aiohttp comparator written in `benchmarks/_baseline.py`
from the Terraform provider's documented behaviour (10 builds in flight,
polls at 2 s, 5 s, then every 10 s, 429/5xx retried with backoff from 1 s,
POSTs included, 10 tries); it stops at the build's `complete` and does not
poll the VM until `started` as the provider does, which only flatters it.
It runs with the same N as rate-bound, so the comparison is direct; the
speed-up is the ratio of throughputs (VMs per window), which does not depend
on N once the pipeline is full.
"""


async def _run(names: list[str], args: argparse.Namespace) -> list[ScenarioResult]:
    results: list[ScenarioResult] = []
    with tempfile.TemporaryDirectory(prefix="orchestrator-bench-") as tmp:
        sizes = QUICK if args.quick else FULL
        if args.repeat is not None:
            sizes = replace(sizes, real_repeats=args.repeat, budget_repeats=args.repeat)
        ctx = Context(sizes=sizes, workdir=Path(tmp), only_build=args.build, only_n=args.n)
        for name in names:
            started = time.monotonic()
            print(f"running {name} ...", file=sys.stderr, flush=True)
            result = await ALL[name](ctx)
            result.data["scenario_seconds"] = time.monotonic() - started
            print(
                f"  {name} done in {result.data['scenario_seconds']:.1f} s",
                file=sys.stderr,
                flush=True,
            )
            results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="Benchmark the orchestrator."
    )
    parser.add_argument("--quick", action="store_true", help="small N: a smoke run")
    parser.add_argument(
        "names",
        nargs="*",
        metavar="SCENARIO",
        help=f"run only these scenarios ({', '.join(ALL)})",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=list(ALL),
        help="run only this scenario (repeatable)",
    )
    parser.add_argument(
        "--build", type=float, help="rate-bound-real: only the cases with builds of SECONDS"
    )
    parser.add_argument("--n", type=int, help="rate-bound-real: only the cases with N VMs")
    parser.add_argument("--repeat", type=int, help="rate-bound-real, shared-budget: runs per case")
    parser.add_argument("--output", type=Path, help="write the Markdown report here")
    parser.add_argument("--json", type=Path, help="write every figure as JSON here")
    args = parser.parse_args(argv)
    # the engine logs retries as warnings; the table says what matters
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    unknown = sorted(set(args.names) - set(ALL))
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)} (choose from {', '.join(ALL)})")
    chosen = [*args.names, *(args.scenario or [])]
    names = [name for name in ALL if name in chosen] or list(ALL)
    started = time.monotonic()
    results = anyio.run(_run, names, args)
    elapsed = time.monotonic() - started
    print(render_table(results))
    print(f"\n(benchmark took {elapsed:.0f} s)", flush=True)
    output = args.output
    if output is None and not args.quick and not chosen and args.build is None and args.n is None:
        output = DEFAULT_OUTPUT
    if output is not None:
        command = "python -m benchmarks" + (" " + " ".join(argv) if argv else "")
        if argv is None and len(sys.argv) > 1:
            command = "python -m benchmarks " + " ".join(sys.argv[1:])
        text = render_markdown(
            results,
            info=machine(ROOT),
            command=command,
            elapsed=elapsed,
            intro=_INTRO.format(minutes=max(1, round(elapsed / 60))),
        )
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        print(f"wrote {output}")
    if args.json is not None:
        args.json.write_text(
            json.dumps([r.as_json() for r in results], indent=2, default=str), encoding="utf-8"
        )
    return 0 if all(r.correct for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
