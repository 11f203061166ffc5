"""One group commit of many intents, 201s and results: each row as its own writes leave it.

A group is made by holding the writer (its ``gate``) while the writes queue:
what it commits must be what the writes one by one, in their order, would leave.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from orchestrator.engine.state.journal import Journal

from ._helpers import T0, failed, succeeded
from .conftest import JournalAt

pytestmark = pytest.mark.anyio


Write = Callable[[], Coroutine[Any, Any, None]]


async def _in_one_group(journal: Journal, writes: list[Write]) -> None:
    """Queue ``writes`` in this order while the writer is held; they commit as one group."""
    before = journal.statistics().transactions
    journal._writer.gate.clear()  # the writer takes the first write, then stalls
    async with anyio.create_task_group() as tg:
        for write in writes:
            tg.start_soon(write)
            await wait_all_tasks_blocked()  # queued, in this order
        assert journal.statistics().queued == len(writes)
        journal._writer.gate.set()
    assert journal.statistics().transactions - before == 1


async def test_a_group_of_every_kind_commits_each_row_as_written(journal_at: JournalAt) -> None:
    """150 intents, 201s and results in one group: every row as its own write says."""
    keys = [f"web-{i:03d}" for i in range(150)]
    intents, submits, finishes = keys[:50], keys[50:100], keys[100:]
    async with await journal_at.open(spec_sha256="s", run_id="r") as journal:
        await journal.add_pending([(k, k) for k in keys])
        journal.describe({k: {"package": f"rock-{i}"} for i, k in enumerate(intents)})
        writes: list[Write] = []
        for i in range(50):
            intent, submit, finish = intents[i], submits[i], finishes[i]
            writes.append(partial(journal.record_intent, intent, attempt=i + 1))
            writes.append(
                partial(
                    journal.record_submitted,
                    submit,
                    task_id=f"task_{submit}",
                    build_id=f"build_{submit}",
                    submitted_at=T0,
                )
            )
            result = succeeded(finish) if i % 2 else failed(finish, attempts=3)
            writes.append(partial(journal.record_finished, finish, result))
        await _in_one_group(journal, writes)
        entries = await journal.entries()
    for i, key in enumerate(intents):
        entry = entries[key]
        assert (entry.state, entry.attempts, entry.result) == ("intent", i + 1, None)
        assert entry.built_with == {"package": f"rock-{i}"}
    for key in submits:
        entry = entries[key]
        assert (entry.state, entry.task_id, entry.build_id) == (
            "submitted",
            f"task_{key}",
            f"build_{key}",
        )
        assert entry.submitted_at == T0
    for i, key in enumerate(finishes):
        entry = entries[key]
        expected = succeeded(key) if i % 2 else failed(key, attempts=3)
        assert (entry.state, entry.result) == ("finished", expected)
        assert entry.attempts == expected.attempts
        assert entry.vm_id == (f"vm_{key}" if i % 2 else None)


async def test_writes_of_one_key_in_one_group_keep_their_order(journal_at: JournalAt) -> None:
    """A key written twice in a group ends as its later write says, whichever kinds they are."""
    async with await journal_at.open(spec_sha256="s", run_id="r") as journal:
        await journal.add_pending([("web-a", "web-a"), ("web-b", "web-b"), ("web-c", "web-c")])
        await _in_one_group(
            journal,
            [
                lambda: journal.record_intent("web-a", attempt=1),
                lambda: journal.record_intent("web-c", attempt=1),
                lambda: journal.record_finished("web-a", succeeded("web-a")),
                lambda: journal.record_finished("web-b", failed("web-b")),
                lambda: journal.record_intent("web-b", attempt=2),
                lambda: journal.record_submitted(
                    "web-c", task_id="task_c", build_id=None, submitted_at=T0
                ),
            ],
        )
        entries = await journal.entries()
    a, b, c = entries["web-a"], entries["web-b"], entries["web-c"]
    assert (a.state, a.result) == ("finished", succeeded("web-a"))
    # a new attempt after a result starts clean
    assert (b.state, b.attempts, b.result, b.task_id) == ("intent", 2, None, None)
    assert (c.state, c.attempts, c.task_id, c.build_id) == ("submitted", 1, "task_c", None)
