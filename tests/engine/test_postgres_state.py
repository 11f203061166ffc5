"""A fleet's state in PostgreSQL: the file's guarantees, a real server, the engine unchanged.

Every test has a database of its own on the session's real PostgreSQL server
(``pg_url``); the tests that must hold for both backends are parametrized
elsewhere (the fault matrix, kill-and-resume, resume).
"""

from __future__ import annotations

import dataclasses
import functools

import anyio
import psycopg
import pytest

from orchestrator.engine import Orchestrator, ProvisionEvent
from orchestrator.engine.state._pg import holder_name, lock_key, lock_key_parts
from orchestrator.engine.state.journal import FleetClaim, Journal, read_journal
from orchestrator.engine.state.location import PostgresState, redact
from orchestrator.errors import JournalError, NoJournal
from orchestrator.simulator import SimulatorConfig, run_simulator
from tests.conftest import PgServer
from tests.pg_cluster import restart

from .conftest import SCALE, assert_exactly_once, created_hostnames, settings_for, vms
from .test_fleet_state import READINGS, another_tools_vm, standing

pytestmark = pytest.mark.anyio

CLAIM = FleetClaim(named="web", legacy="spec")


def _sim() -> SimulatorConfig:
    return SimulatorConfig(time_scale=SCALE, seed=7)


def _row_state(url: str, key: str) -> str | None:
    """A row's state as another connection sees it (what is committed)."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT state FROM orchestrator.rows WHERE key = %s", (key,)).fetchone()
    return None if row is None else str(row[0])


async def test_an_intent_is_committed_and_synced_before_record_intent_returns(
    pg_url: str,
) -> None:
    """When record_intent returns, another connection sees the intent: only then may the
    POST go out. Its transaction was committed with synchronous_commit on."""
    async with await Journal.open(pg_url, spec_sha256="s", run_id="r1", fleet=CLAIM) as journal:
        await journal.add_pending([("a", "a.example")])
        await journal.record_intent("a", attempt=1)
        seen = await anyio.to_thread.run_sync(_row_state, pg_url, "a")
        stats = journal.statistics()
    assert seen == "intent"
    assert stats.synced_transactions >= 1


async def test_writes_awaited_together_share_transactions(pg_url: str) -> None:
    """Group commit: 200 intents recorded at once take far fewer than 200 transactions."""
    keys = [f"vm-{i:03d}" for i in range(200)]
    async with await Journal.open(pg_url, spec_sha256="s", run_id="r1", fleet=CLAIM) as journal:
        await journal.add_pending([(k, k) for k in keys])
        async with anyio.create_task_group() as tg:
            for key in keys:
                tg.start_soon(functools.partial(journal.record_intent, key, attempt=1))
        stats = journal.statistics()
    snapshot = await anyio.to_thread.run_sync(lambda: read_journal(pg_url, fleet="web"))
    assert {e.state for e in snapshot.entries} == {"intent"}
    assert stats.writes == 201
    assert stats.transactions < stats.writes / 4
    assert stats.largest_batch > 1


async def test_a_second_open_of_the_fleet_is_refused_naming_the_holder(pg_url: str) -> None:
    """One operation of a fleet at a time, from anywhere: the refusal names host, pid, run
    and since when. Another fleet of the same database is not held up."""
    async with await Journal.open(pg_url, spec_sha256="s", run_id="holder", fleet=CLAIM):
        with pytest.raises(JournalError) as refused:
            await Journal.open(pg_url, spec_sha256="s", run_id="second", fleet=CLAIM)
        other = FleetClaim(named="db", legacy="spec")
        async with await Journal.open(pg_url, spec_sha256="s", run_id="r3", fleet=other):
            pass
    text = str(refused.value)
    for part in ("fleet 'web'", "host ", "pid ", "run holder", "since 20"):
        assert part in text, text
    # released with the journal: the next run takes it
    async with await Journal.open(pg_url, spec_sha256="s", run_id="third", fleet=CLAIM):
        pass


async def test_the_lock_is_an_advisory_lock_of_the_writers_connection(pg_url: str) -> None:
    """While a journal is open, the server holds the fleet's advisory lock for its
    connection; after close, nobody does (PostgreSQL drops it with the connection)."""

    def held() -> int:
        key = lock_key("web")
        with psycopg.connect(pg_url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                " AND classid::bigint = %s AND objid::bigint = %s",
                lock_key_parts(key),
            ).fetchone()
        assert row is not None
        return int(row[0])

    async with await Journal.open(pg_url, spec_sha256="s", run_id="r1", fleet=CLAIM):
        during = await anyio.to_thread.run_sync(held)
    after = await anyio.to_thread.run_sync(held)
    assert (during, after) == (1, 0)


async def test_a_fleet_without_a_name_is_refused_before_anything_is_sent(pg_url: str) -> None:
    """A PostgreSQL state keeps fleets by name: an unnamed one is refused, nothing sent."""
    async with run_simulator(_sim()) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            with pytest.raises(JournalError, match="name it"):
                await orch.run(vms(2), journal=pg_url)
        assert sim.state.snapshot()["requests"]["total"] == 0


async def test_a_journal_of_another_api_is_refused_unless_rebound(pg_url: str) -> None:
    """As for the file: a fleet's journal written against one API is refused for another."""
    other = FleetClaim(named="web", legacy="spec")
    async with await Journal.open(
        pg_url, spec_sha256="s", run_id="r1", fleet=other, api_url="https://a.example/core/v1/"
    ):
        pass
    with pytest.raises(JournalError, match=r"against the API at https://a\.example"):
        await Journal.open(
            pg_url, spec_sha256="s", run_id="r2", fleet=other, api_url="https://b.example/"
        )
    async with await Journal.open(
        pg_url, spec_sha256="s", run_id="r3", fleet=other, api_url="https://b.example/", rebind=True
    ):
        pass


async def test_a_schema_of_a_newer_orchestrator_is_left_untouched(pg_url: str) -> None:
    """A database whose state a newer orchestrator wrote is refused, not rewritten."""
    async with await Journal.open(pg_url, spec_sha256="s", run_id="r1", fleet=CLAIM):
        pass

    def bump() -> None:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("UPDATE orchestrator.meta SET value = '99' WHERE name = 'schema_version'")

    await anyio.to_thread.run_sync(bump)
    with pytest.raises(JournalError, match="schema 99"):
        await Journal.open(pg_url, spec_sha256="s", run_id="r2", fleet=CLAIM)
    with pytest.raises(JournalError, match="schema 99"):
        read_journal(pg_url, fleet="web")


async def test_reading_a_fleet_the_database_does_not_hold_says_so(pg_url: str) -> None:
    """No such fleet (or no state at all yet): NoJournal, naming the fleet. Naming no
    fleet: the error lists the fleets the database keeps."""
    with pytest.raises(NoJournal, match="no journal of fleet 'web'"):
        await anyio.to_thread.run_sync(lambda: read_journal(pg_url, fleet="web"))
    with pytest.raises(JournalError, match="It keeps no fleet yet"):
        await anyio.to_thread.run_sync(read_journal, pg_url)
    for name in ("web", "db"):
        claim = FleetClaim(named=name, legacy="spec")
        async with await Journal.open(pg_url, spec_sha256="s", run_id=name, fleet=claim):
            pass
    with pytest.raises(JournalError, match="It keeps: db, web"):
        await anyio.to_thread.run_sync(read_journal, pg_url)


async def test_the_same_fleet_in_two_databases_is_two_fleets_states(
    postgres_cluster: PgServer, pg_url: str
) -> None:
    """The URL names the database: the state of fleet web in one is not in another."""
    async with await Journal.open(pg_url, spec_sha256="s", run_id="r1", fleet=CLAIM) as journal:
        await journal.add_pending([("a", "a.example")])
    with pytest.raises(NoJournal):
        read_journal(postgres_cluster.url, fleet="web-not-there")
    assert [e.key for e in read_journal(pg_url, fleet="web").entries] == ["a"]


def test_no_password_is_ever_shown() -> None:
    """The URL's password (in the user part or the query) is never in str, repr or errors."""
    state = PostgresState("postgresql://me:s3cr%21t@db.example:5433/fleet?password=other")
    for text in (str(state), repr(state), redact(state.url)):
        assert "s3cr" not in text
        assert "other" not in text
        assert "me@db.example:5433/fleet" in text


async def test_a_database_restarted_mid_run_stops_submitting_and_a_rerun_finishes(
    postgres_cluster: PgServer, pg_url: str
) -> None:
    """The server restarts while builds are in flight: the run's connection (and lock) is
    gone, so it submits nothing more, follows what it sent, and says why it stopped. The
    same run again finishes the fleet: every VM exactly once."""
    if postgres_cluster.restartable is None:
        pytest.skip("this server is not ours to restart")
    requests = vms(12)
    three = anyio.Event()
    submitted: list[str] = []

    def hook(event: ProvisionEvent) -> None:
        if event.kind == "submitted":
            submitted.append(event.key)
            if len(submitted) == 3:
                three.set()

    # builds of 2 real seconds, 4 at a time: the restart lands while the first wave builds
    config = dataclasses.replace(_sim(), build_seconds=800.0, build_spread=0.0)
    async with run_simulator(config) as sim:
        settings = settings_for(sim, max_in_flight=4, build_timeout_seconds=8000.0)

        async def restart_after_three() -> None:
            await three.wait()
            await anyio.to_thread.run_sync(restart, postgres_cluster.restartable)

        async with Orchestrator(settings, hooks=[hook]) as orch:
            async with anyio.create_task_group() as tg:
                tg.start_soon(restart_after_three)
                first = await orch.run(requests, journal=pg_url, fleet="web")
        assert first.interrupted
        assert first.stopped_because is not None
        assert "journal_failed" in first.stopped_because
        assert "lock, is gone" in first.stopped_because
        assert len(submitted) < len(requests), "the run went on submitting"
        assert redact(pg_url) in first.stopped_because
        async with Orchestrator(settings) as orch:
            second = await orch.run(requests, journal=pg_url, fleet="web")
        assert not second.interrupted
        assert_exactly_once(second, requests, sim)
        assert sorted(created_hostnames(sim)) == sorted(r.key for r in requests)


async def test_a_role_without_create_uses_a_schema_made_by_another(pg_url: str) -> None:
    """The role that runs fleets needs CREATE on the database only if the schema is not
    there yet: with DML rights on it, it opens, writes and reads."""
    async with await Journal.open(pg_url, spec_sha256="s", run_id="owner", fleet=CLAIM):
        pass
    database = pg_url.rsplit("/", 1)[1]

    def grant() -> None:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DROP ROLE IF EXISTS fleet_runner")
            conn.execute("CREATE ROLE fleet_runner LOGIN PASSWORD 'runner-pw'")
            conn.execute("GRANT USAGE ON SCHEMA orchestrator TO fleet_runner")
            conn.execute(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA orchestrator"
                " TO fleet_runner"
            )
            conn.execute("GRANT USAGE ON ALL SEQUENCES IN SCHEMA orchestrator TO fleet_runner")

    def drop() -> None:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DROP OWNED BY fleet_runner")
            conn.execute("DROP ROLE fleet_runner")

    await anyio.to_thread.run_sync(grant)
    try:
        host = pg_url.split("@", 1)[1].rsplit("/", 1)[0]
        limited = f"postgresql://fleet_runner:runner-pw@{host}/{database}"
        async with await Journal.open(
            limited, spec_sha256="s", run_id="runner", fleet=CLAIM
        ) as journal:
            await journal.add_pending([("a", "a.example")])
            await journal.record_intent("a", attempt=1)
        snapshot = await anyio.to_thread.run_sync(lambda: read_journal(limited, fleet="web"))
    finally:
        await anyio.to_thread.run_sync(drop)
    assert [(e.key, e.state) for e in snapshot.entries] == [("a", "intent")]
    assert [r.run_id for r in snapshot.runs] == ["owner", "runner"]


@pytest.mark.parametrize("api", ["default", "pessimistic-faulted"])
async def test_destroy_of_a_database_kept_fleet_deletes_only_its_own(pg_url: str, api: str) -> None:
    """Fleet web, kept in PostgreSQL, on an API that copies annotations and on one that
    does not (its POSTs faulted after acting): destroy deletes the VMs web built, never
    web-004 (no annotations) nor web-005 (another fleet's), however often it runs; a
    destroy of fleet bob (same database, same hostnames) deletes nothing at all."""
    requests = vms(5, prefix="web")
    config = READINGS[api]()
    async with run_simulator(config) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            built = await orch.run(requests[:3], journal=pg_url, fleet="web")
        another_tools_vm(sim, "web-004")
        another_tools_vm(sim, "web-005", fleet="other")
        async with Orchestrator(settings_for(sim)) as orch:
            bobs = await orch.destroy(requests, journal=pg_url, fleet="bob", purge=True)
        untouched = standing(sim)
        reports = []
        for purge in (False, True):
            async with Orchestrator(settings_for(sim)) as orch:
                reports.append(
                    await orch.destroy(requests, journal=pg_url, fleet="web", purge=purge)
                )
        left = standing(sim)
    assert built.summary.succeeded == 3
    assert untouched == {f"web-00{i}" for i in range(1, 6)}
    assert {vm.reason for vm in bobs.vms} <= {"not_ours", "absent"}
    for report in reports:
        by_key = {vm.key: vm for vm in report.vms}
        assert (by_key["web-004"].outcome, by_key["web-004"].reason) == ("failed", "not_ours")
        assert (by_key["web-005"].outcome, by_key["web-005"].reason) == ("failed", "not_ours")
    assert left == {"web-004", "web-005"}


async def test_a_holder_that_has_not_written_its_row_yet_is_still_named(pg_url: str) -> None:
    """The lock is taken before the holder's row is written (and an older run's row may
    still be there): the refusal names the session that holds the lock, from its
    connection's name, never the older run."""
    async with await Journal.open(pg_url, spec_sha256="s", run_id="older", fleet=CLAIM):
        pass

    def hold() -> psycopg.Connection[tuple[object, ...]]:
        conn = psycopg.connect(
            pg_url, autocommit=True, application_name=holder_name("rawrun", "hostx", 42)
        )
        conn.execute("SELECT pg_advisory_lock(%s)", (lock_key("web"),))
        conn.execute(
            "INSERT INTO orchestrator.holders (fleet, host, pid, run_id, since)"
            " VALUES ('web', 'old-host', 1, 'older', '2026-01-01') ON CONFLICT (fleet)"
            " DO UPDATE SET run_id = 'older', host = 'old-host'"
        )
        return conn

    held = await anyio.to_thread.run_sync(hold)
    try:
        with pytest.raises(JournalError) as refused:
            await Journal.open(pg_url, spec_sha256="s", run_id="second", fleet=CLAIM)
    finally:
        await anyio.to_thread.run_sync(held.close)
    text = str(refused.value)
    assert "host hostx, pid 42, run rawrun, since 20" in text, text
    assert "older" not in text


async def test_destroy_while_a_run_of_the_fleet_holds_its_state_is_refused(pg_url: str) -> None:
    """A destroy started (from anywhere) while a run of the same fleet holds its state is
    refused naming that run, and deletes nothing; once the run is gone it deletes the
    fleet's VMs."""
    requests = vms(3, prefix="web")
    async with run_simulator(_sim()) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            await orch.run(requests, journal=pg_url, fleet="web")
        claim = FleetClaim(named="web", legacy="spec")
        async with await Journal.open(pg_url, spec_sha256="s", run_id="running", fleet=claim):
            async with Orchestrator(settings_for(sim)) as orch:
                with pytest.raises(JournalError, match="run running"):
                    await orch.destroy(requests, journal=pg_url, fleet="web", purge=True)
            during = standing(sim)
        async with Orchestrator(settings_for(sim)) as orch:
            gone = await orch.destroy(requests, journal=pg_url, fleet="web")
        after = standing(sim)
    assert during == {"web-001", "web-002", "web-003"}
    assert {vm.reason for vm in gone.vms} == {"deleted"}
    assert after == set()
