"""``orchestrator status JOURNAL``: render_status shows runs, counts and the VMs that matter."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from rich.console import Console

from orchestrator.engine.state.journal import (
    Journal,
    JournalEntry,
    JournalSnapshot,
    JournalState,
    RunRecord,
    read_journal,
    render_status,
)

from ._helpers import T0, failed, succeeded


def _entry(key: str, state: JournalState, **fields: object) -> JournalEntry:
    base: dict[str, object] = {
        "key": key,
        "hostname": key,
        "state": state,
        "attempts": 0,
        "task_id": None,
        "build_id": None,
        "vm_id": None,
        "submitted_at": None,
        "last_error": None,
        "result": None,
        "updated_at": T0,
    }
    return JournalEntry(**{**base, **fields})  # type: ignore[arg-type]


def _run(run_id: str, sha: str, *, closed: bool = True) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        spec_sha256=sha,
        started_at=T0,
        pid=4242,
        finished_at=T0 + timedelta(minutes=5) if closed else None,
    )


def _render(snapshot: JournalSnapshot, *, width: int = 200, **kwargs: int | None) -> str:
    console = Console(record=True, width=width, color_system=None)
    render_status(snapshot, console, **kwargs)
    return console.export_text()


def _rows(text: str) -> dict[str, str]:
    """The first line of each VM's row, by hostname."""
    rows = {}
    for line in text.splitlines():
        words = line.split()
        if words and words[0].startswith("web-"):
            rows[words[0]] = line
    return rows


SNAPSHOT = JournalSnapshot(
    path="/var/lib/orchestrator/nightly.journal",
    runs=[_run("run-one", "a" * 64), _run("run-two", "b" * 64, closed=False)],
    entries=[
        _entry("web-01", "finished", attempts=1, result=succeeded("web-01")),
        _entry("web-02", "finished", attempts=2, result=failed("web-02")),
        _entry(
            "web-03",
            "submitted",
            attempts=1,
            task_id="task_cccccccccccccccc",
            build_id="vmbuild_cccccccccccccccc",
            note="building",
        ),
        _entry("web-04", "uncertain", attempts=1, last_error="POST /build: [timeout] after 30s"),
        _entry("web-05", "intent", attempts=1),
        _entry("web-06", "pending"),
        _entry(
            "web-07",
            "finished",
            result=succeeded("web-07").model_copy(
                update={
                    "outcome": "cancelled",
                    "category": "cancelled",
                    "virtual_machine": None,
                    "stopped_because": "deadline",
                }
            ),
        ),
    ],
)


def test_counts_cover_every_state_in_lifecycle_order() -> None:
    """counts() lists all five states, zeros included."""
    assert SNAPSHOT.counts() == {
        "pending": 1,
        "intent": 1,
        "submitted": 1,
        "uncertain": 1,
        "finished": 3,
    }


def test_status_shows_runs_counts_ids_and_errors() -> None:
    """Every VM's state, ids and last error or outcome appear, with the runs above."""
    text = _render(SNAPSHOT)
    assert "/var/lib/orchestrator/nightly.journal" in text
    assert "run-one" in text
    assert "aaaaaaaa" in text
    assert "a" * 9 not in text  # digests are shortened
    assert "never closed (killed, or still running)" in text
    assert "the spec changed between runs" in text
    assert "7 total · 1 pending · 1 intent · 1 submitted · 1 uncertain · 3 finished" in text
    assert "(1 cancelled, 1 failed, 1 succeeded)" in text
    lines = _rows(text)
    expected = {
        "web-01": ["succeeded", "vm_web-01"],
        "web-02": ["failed", "build_failed: disk [template] broke"],
        "web-03": ["submitted", "task_cccccccccccccccc", "vmbuild_cccccccccccccccc", "building"],
        "web-04": ["uncertain", "POST /build: [timeout] after 30s"],  # not eaten as markup
        "web-05": ["intent"],
        "web-06": ["pending"],
        "web-07": ["cancelled", "cancelled: deadline"],
    }
    for hostname, parts in expected.items():
        for part in parts:
            assert part in lines[hostname], (hostname, part)


def test_long_lists_show_what_needs_attention_first() -> None:
    """With a limit, uncertain and in-flight VMs come first and the rest are counted."""
    text = _render(SNAPSHOT, limit=3)
    shown = list(_rows(text))
    assert shown == ["web-04", "web-05", "web-03"]
    assert "… and 4 more VMs not shown (1 cancelled, 1 failed, 1 pending, 1 succeeded)" in text
    assert "not shown" not in _render(SNAPSHOT, limit=None)


def test_a_narrow_console_stacks_the_ids_and_cuts_long_errors() -> None:
    """Below 150 columns the ids share a column, one per line; long texts are cut."""
    long = _entry("web-09", "uncertain", task_id="task_dddddddddddddddd", last_error="x" * 1000)
    snapshot = JournalSnapshot(path="j", runs=[], entries=[SNAPSHOT.entries[2], long])
    text = _render(snapshot, width=80)
    lines = text.splitlines()
    row = next(i for i, line in enumerate(lines) if line.split()[:1] == ["web-03"])
    assert "task_cccccccccccccccc" in lines[row]
    assert "vmbuild_cccccccccccccccc" in lines[row + 1]
    assert all(len(line) <= 80 for line in lines)
    assert text.count("x") < 260
    assert "…" in text


def test_many_runs_are_cut_to_the_latest() -> None:
    """Only the latest runs are listed; the older ones are counted."""
    runs = [_run(f"run-{i:02d}", "c" * 64) for i in range(12)]
    text = _render(JournalSnapshot(path="j", runs=runs, entries=[]))
    assert "run-11" in text
    assert "run-07" in text
    assert "run-06" not in text
    assert "… 7 earlier runs not shown" in text
    assert "0 total" in text


@pytest.mark.anyio
async def test_status_of_a_real_journal(tmp_path: Path) -> None:
    """read_journal + render_status on a journal written by a run."""
    path = tmp_path / "j"
    async with await Journal.open(path, spec_sha256="d" * 64, run_id="live") as journal:
        await journal.add_pending([("db-01", "db-01"), ("db-02", "db-02")])
        await journal.record_intent("db-01", attempt=1)
        await journal.record_finished("db-02", succeeded("db-02"))
    snapshot = await anyio.to_thread.run_sync(read_journal, path)
    text = _render(snapshot)
    assert "live" in text
    assert "2 total · 0 pending · 1 intent · 0 submitted · 0 uncertain · 1 finished" in text
    assert "db-01" in text
    assert "vm_db-02" in text
