"""Measure what the journal costs per write (not a test: no assertions, prints a table).

Run: ``python tests/journal/measure_journal.py [N]`` (default N = 10,000 VMs).

CPU time is the whole process's (event loop plus the writer thread), minus the
same scenario with the journal call replaced by a bare checkpoint, so the figures
are the journal's own cost per write.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import anyio.lowlevel

from orchestrator.engine.state.journal import Durability, Journal


async def _fan_out(n: int, limit: int, call: Callable[[int], Awaitable[None]]) -> None:
    """``n`` calls from concurrent tasks, at most ``limit`` at once (0: one after another)."""
    if limit == 0:
        for i in range(n):
            await call(i)
        return
    limiter = anyio.CapacityLimiter(limit)

    async def one(i: int) -> None:
        async with limiter:
            await call(i)

    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)


async def _scenario(
    directory: Path, n: int, limit: int, durability: Durability
) -> tuple[float, float, int]:
    """(cpu µs/write, wall µs/write, transactions) for ``n`` intents, net of the baseline."""
    path = directory / f"j-{limit}-{durability}"
    path.unlink(missing_ok=True)
    keys = [f"vm-{i:05d}" for i in range(n)]

    async def baseline(i: int) -> None:
        await anyio.lowlevel.checkpoint()

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await _fan_out(n, limit, baseline)
    base_cpu, base_wall = time.process_time() - cpu0, time.perf_counter() - wall0

    async with await Journal.open(path, spec_sha256="m", run_id="m", durability=durability) as j:
        await j.add_pending([(k, k) for k in keys])
        before = j.statistics().transactions

        async def intent(i: int) -> None:
            await j.record_intent(keys[i], attempt=1)

        cpu0, wall0 = time.process_time(), time.perf_counter()
        await _fan_out(n, limit, intent)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        transactions = j.statistics().transactions - before
    return (cpu - base_cpu) / n * 1e6, (wall - base_wall) / n * 1e6, transactions


async def main(n: int, repeat: int = 3) -> None:
    """Print µs per write for each concurrency and durability (best of ``repeat``)."""
    print(f"{n} record_intent calls; net of a no-journal baseline; best of {repeat} runs")
    header = ("concurrency", "durability", "cpu µs/write", "wall µs/write", "txns")
    print("{:>12} {:>10} {:>13} {:>14} {:>6}".format(*header))
    with tempfile.TemporaryDirectory() as tmp:
        for limit in (n, 500, 50, 0):
            for durability in ("process", "intent"):
                runs = [await _scenario(Path(tmp), n, limit, durability) for _ in range(repeat)]
                cpu = min(r[0] for r in runs)
                wall = min(r[1] for r in runs)
                txns = runs[0][2]
                label = "sequential" if limit == 0 else str(limit)
                print(f"{label:>12} {durability:>10} {cpu:13.1f} {wall:14.1f} {txns:6d}")


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
