"""The orchestrator alone in a process, measuring its own CPU time and memory.

Run by the ``overhead`` scenario as ``python -m benchmarks._overhead_child
URL N SCALE [--journal PATH|URL [--fleet NAME]] [--max-in-flight M] [--report PATH] [--floor]``;
prints one JSON object. With ``--floor`` it runs the floor instead of the engine
(``benchmarks._floor``: plain aiohttp, the two requests of each VM), measured
the same way. With ``--report`` it also writes the JSON report there, as
``orchestrator run`` does, and times that apart (``report_seconds``, wall;
``report_cpu_seconds``); the CPU and wall figures of the run stop before it, the
peak memory includes it.
The CPU time is the process's own (``getrusage(RUSAGE_SELF)``, threads
included: the journal writes from one), measured from just before the VM
requests are made to just after the report. Memory is the resident set
sampled every 10 ms over the same span (``ru_maxrss`` alone will not do: importing
the package peaks higher, briefly, than a small run ever does); its peak minus
the resident set at the start is the run's memory.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import anyio
import structlog

from benchmarks._engine import engine_settings, make_requests
from benchmarks._floor import floor_in_flight, run_floor
from orchestrator.engine import Orchestrator
from orchestrator.report import write_report

__all__ = ["main"]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _maxrss_kib() -> int:
    # Linux reports ru_maxrss in KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _rss_kib(statm: int | None = None) -> int:
    """The resident set now (``statm``: an open ``/proc/self/statm``, read again)."""
    try:
        if statm is not None:
            raw = os.pread(statm, 128, 0)
        else:
            with open("/proc/self/statm", "rb") as handle:
                raw = handle.read()
    except OSError:
        return _maxrss_kib()
    return int(raw.split()[1]) * resource.getpagesize() // 1024


class _RssSampler:
    """Samples the resident set in a thread until stopped; keeps the peak."""

    def __init__(self, every: float = 0.01) -> None:
        self.peak_kib = _rss_kib()
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        # the file stays open: the sampler's own cost counts in the CPU measured
        try:
            statm: int | None = os.open("/proc/self/statm", os.O_RDONLY)
        except OSError:
            statm = None
        try:
            while not self._stop.wait(self._every):
                self.peak_kib = max(self.peak_kib, _rss_kib(statm))
        finally:
            if statm is not None:
                os.close(statm)

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, _rss_kib())


async def _floor(args: argparse.Namespace) -> dict[str, object]:
    settings = engine_settings(args.url, args.scale)
    rss_before = _rss_kib()
    cpu_before = _cpu()
    started = time.monotonic()
    with _RssSampler() as sampler:
        requests = make_requests(args.n)
        # the simulator's build lasts 1 simulated second: a client that knows it polls then
        sent = await run_floor(settings, requests, build_seconds=1.0 / args.scale)
        wall = time.monotonic() - started
        cpu = _cpu() - cpu_before
    return {
        "n": args.n,
        "floor": True,
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "rss_before_kib": rss_before,
        "peak_rss_kib": sampler.peak_kib,
        "in_flight_limit": floor_in_flight(),
        "requests": sent["post"] + sent["poll"],
        "sent": dict(sent),
        "outcomes": {"succeeded": sent["complete"], "failed": sent["failed"]},
        "rows": sent["complete"] + sent["failed"],
    }


async def _run(args: argparse.Namespace) -> dict[str, object]:
    settings = engine_settings(args.url, args.scale, max_in_flight=args.max_in_flight)
    rss_before = _rss_kib()
    maxrss_before = _maxrss_kib()
    cpu_before = _cpu()
    started = time.monotonic()
    with _RssSampler() as sampler:
        requests = make_requests(args.n)
        async with Orchestrator(settings) as orch:
            report = await orch.run(requests, journal=args.journal, fleet=args.fleet)
            stats = orch.statistics()
        wall = time.monotonic() - started
        cpu = _cpu() - cpu_before
        report_seconds = report_cpu = None
        if args.report is not None:
            report_started, report_cpu_before = time.monotonic(), _cpu()
            write_report(report, args.report)
            report_seconds = time.monotonic() - report_started
            report_cpu = _cpu() - report_cpu_before
    keys = [vm.key for vm in report.vms]
    return {
        "n": args.n,
        "journal": args.journal is not None,
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "report_seconds": report_seconds,
        "report_cpu_seconds": report_cpu,
        "report_bytes": args.report.stat().st_size if args.report is not None else None,
        "rss_before_kib": rss_before,
        "maxrss_before_kib": maxrss_before,
        "maxrss_kib": _maxrss_kib(),
        "peak_rss_kib": sampler.peak_kib,
        "outcomes": dict(Counter(vm.outcome for vm in report.vms)),
        "rows": len(keys),
        "unique_keys": len(set(keys)),
        "all_keys": set(keys) == {r.key for r in requests},
        "requests": report.summary.requests.total,
        "rate_limited": report.summary.requests.rate_limited,
        "stopped_because": report.stopped_because,
        "in_flight_limit": stats.in_flight_limit if stats is not None else None,
    }


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run once, print the measurements as JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks._overhead_child")
    parser.add_argument("url")
    parser.add_argument("n", type=int)
    parser.add_argument("scale", type=float)
    # a journal's path, or a postgresql:// URL (then --fleet names the fleet)
    parser.add_argument("--journal", default=None)
    parser.add_argument("--fleet", default=None)
    parser.add_argument("--max-in-flight", type=int, default=None)
    parser.add_argument("--report", type=Path, default=None)
    parser.add_argument("--floor", action="store_true", help="run the floor, not the engine")
    args = parser.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    result = anyio.run(_floor if args.floor else _run, args)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
