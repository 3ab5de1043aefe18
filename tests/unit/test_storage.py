"""storage/ against a real SQLite file: migrations, pragmas, the ledger and the run lifecycle.

Concurrency checks use two Repository instances (two engines, two connection pools) on the
same file, which is what two processes sharing the embedded database look like.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from storage import Repository, create_engine, normalize_url, upgrade, upgrade_sync
from storage.engine import create_sqlite_sync_engine
from storage.migrate import make_config
from storage.models import Base


class StepClock:
    """Each call is one second later: deterministic, strictly increasing timestamps."""

    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    # A missing parent folder on purpose: the engine must create it.
    return f"sqlite+aiosqlite:///{tmp_path}/data/insightbot.db"


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
async def repo(db_url: str, clock: StepClock):
    repository = await Repository.open(db_url, clock=clock)
    yield repository
    await repository.close()


@pytest.fixture
async def repo2(repo: Repository, db_url: str, clock: StepClock):
    """A second, independent Repository on the same file (another 'replica')."""
    repository = await Repository.open(db_url, clock=clock)
    yield repository
    await repository.close()


def _schema_diff(connection: Connection) -> list:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, Base.metadata)


def _head() -> str:
    return ScriptDirectory.from_config(make_config()).get_current_head()


# -- engine and migrations --------------------------------------------------------------------


def test_normalize_url_rewrites_to_async_drivers() -> None:
    assert normalize_url("postgres://u:p@h/db").drivername == "postgresql+asyncpg"
    assert normalize_url("postgresql://u@h:5432/db").drivername == "postgresql+asyncpg"
    assert normalize_url("postgresql+asyncpg://u@h/db").drivername == "postgresql+asyncpg"
    assert normalize_url("sqlite:///./data/x.db").drivername == "sqlite+aiosqlite"
    assert normalize_url("sqlite:///./data/x.db").database == "./data/x.db"
    ssl = normalize_url("postgres://u@h/db?sslmode=require")
    assert dict(ssl.query) == {"ssl": "require"}


async def test_migrations_apply_idempotently_and_match_models(db_url: str, tmp_path: Path) -> None:
    await upgrade(db_url)
    await upgrade(db_url)  # second run is a no-op
    assert (tmp_path / "data" / "insightbot.db").exists()
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
            assert version == _head()
            assert await conn.run_sync(_schema_diff) == []
    finally:
        await engine.dispose()


def test_alembic_cli_path_upgrade_downgrade(tmp_path: Path) -> None:
    """env.py without a passed-in connection (the alembic CLI) creates its own async engine."""
    url = f"sqlite:///{tmp_path}/cli.db"
    config = make_config(url)
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    upgrade_sync(url)
    command.upgrade(config, "head")


async def test_sqlite_connection_settings(repo: Repository, db_url: str) -> None:
    async with repo.engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
        assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1
        assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar_one() == 5000
        assert (await conn.execute(text("PRAGMA synchronous"))).scalar_one() == 1  # NORMAL
    # the blocking engines the repository's threads use get the same settings
    engine = create_sqlite_sync_engine(db_url, connections=1)
    try:
        with engine.connect() as conn:
            settings = [conn.execute(text(f"PRAGMA {name}")).scalar_one()
                        for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")]
            assert settings == ["wal", 1, 5000, 1]
    finally:
        engine.dispose()


def test_a_transaction_holds_the_write_lock_from_its_start(db_url: str) -> None:
    """BEGIN IMMEDIATE: a transaction that reads, then writes, never upgrades a read lock.

    With a deferred BEGIN the read takes a snapshot; another connection then commits, and the
    write fails at once with "database is locked" whatever the busy timeout.
    """
    upgrade_sync(db_url)
    first = create_sqlite_sync_engine(db_url, connections=1)
    second = create_sqlite_sync_engine(db_url, connections=1)
    now = datetime(2025, 1, 1, tzinfo=timezone.utc)
    insert = text("INSERT INTO events (key, created_at) VALUES (:key, :at)")
    other_done = threading.Event()

    def other_writer() -> None:
        with second.begin() as conn:
            conn.execute(insert, {"key": "other", "at": now})
        other_done.set()

    try:
        with first.begin() as conn:
            assert conn.execute(text("SELECT count(*) FROM events")).scalar_one() == 0
            thread = threading.Thread(target=other_writer)
            thread.start()
            assert not other_done.wait(0.3)  # the other writer waits for this transaction
            conn.execute(insert, {"key": "first", "at": now})
        thread.join(5)
        assert other_done.is_set()
        with first.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM events")).scalar_one() == 2
    finally:
        first.dispose()
        second.dispose()


async def test_reads_run_beside_a_writer(repo: Repository, db_url: str) -> None:
    """The repository's reads take no lock: a write transaction held open elsewhere (another
    process, say) does not hold them up."""
    await repo.ensure_conversation("slack", "T1", "C1", "1.1", "wren")
    other = create_sqlite_sync_engine(db_url, connections=1)
    try:
        with other.begin() as conn:
            conn.execute(text("UPDATE conversations SET session_id = 'held'"))
            found = await asyncio.wait_for(repo.get_conversation("slack", "T1", "C1", "1.1"), 1)
            assert found is not None and found.session_id is None  # the last committed state
            assert len(await asyncio.wait_for(repo.running_runs(), 1)) == 0
    finally:
        other.dispose()


async def test_ping(repo: Repository, tmp_path: Path) -> None:
    assert await repo.ping() is True
    broken = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/x.db")
    try:
        assert await Repository(broken).ping() is False
    finally:
        await broken.dispose()


# -- event ledger -----------------------------------------------------------------------------


async def test_claim_event_once(repo: Repository) -> None:
    assert await repo.claim_event("slack:Ev1") is True
    assert await repo.claim_event("slack:Ev1") is False
    assert await repo.claim_event("slack:Ev2") is True
    with pytest.raises(ValueError):
        await repo.claim_event("x" * 256)
    with pytest.raises(ValueError):
        await repo.claim_event("")


async def test_claim_event_concurrently_across_repositories(repo: Repository, repo2: Repository) -> None:
    keys = [f"slack:Ev{i}" for i in range(15)]
    attempts = [r.claim_event(k) for k in keys for r in (repo, repo2, repo, repo2)]
    results = await asyncio.gather(*attempts)
    wins = [sum(results[i * 4:(i + 1) * 4]) for i in range(len(keys))]
    assert wins == [1] * len(keys)


async def test_prune_events(repo: Repository, clock: StepClock) -> None:
    await repo.claim_event("old")
    clock.now += timedelta(hours=2)
    await repo.claim_event("new")
    assert await repo.prune_events(timedelta(hours=1)) == 1
    assert await repo.claim_event("old") is True  # forgotten, so claimable again
    assert await repo.claim_event("new") is False


# -- conversations ----------------------------------------------------------------------------


async def test_ensure_conversation_get_or_create(repo: Repository) -> None:
    assert await repo.get_conversation("slack", "T1", "C1", "1.1") is None
    created = await repo.ensure_conversation("slack", "T1", "C1", "1.1", "wren")
    again = await repo.ensure_conversation("slack", "T1", "C1", "1.1", "textql")
    assert again == created
    assert again.backend == "wren"  # an existing thread keeps its backend
    assert created.created_at.tzinfo == timezone.utc
    other = await repo.ensure_conversation("teams", "T1", "C1", "1.1", "wren")
    assert other.id != created.id

    await repo.set_session(created.id, "sess-1")
    fetched = await repo.get_conversation("slack", "T1", "C1", "1.1")
    assert fetched is not None and fetched.session_id == "sess-1"
    assert fetched.updated_at > created.updated_at
    run = await repo.create_run(fetched, "q", "U1")
    assert run.session_id == "sess-1" and run.backend == "wren"


async def test_ensure_conversation_is_race_safe(repo: Repository, repo2: Repository) -> None:
    calls = [r.ensure_conversation("slack", "T1", "C1", "9.9", "wren") for r in (repo, repo2) * 5]
    results = await asyncio.gather(*calls)
    assert len({c.id for c in results}) == 1
    async with repo.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM conversations"))).scalar_one() == 1


# -- runs -------------------------------------------------------------------------------------


async def test_run_lifecycle(repo: Repository) -> None:
    conv = await repo.ensure_conversation("slack", "T1", "C1", "1.1", "clickzetta")
    run = await repo.create_run(conv, "How many orders?", "U1")
    assert len(run.id) == 12 and run.status == "queued"
    assert (run.platform, run.workspace, run.channel, run.thread) == ("slack", "T1", "C1", "1.1")
    assert run.created_at.tzinfo == timezone.utc and run.finished_at is None and run.active

    started = datetime(2025, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    updated = await repo.update_run(
        run.id, status="running", backend_run_id="cz-1", session_id="s-1",
        reply_channel="C1", reply_ts="1.2", started_at=started, answer={"parts": [{"id": "t"}]},
    )
    assert updated is not None and updated.status == "running"
    assert updated.started_at == started and updated.started_at.tzinfo == timezone.utc
    assert updated.answer == {"parts": [{"id": "t"}]}

    assert await repo.find_run_by_reply("slack", "C1", "1.2") == updated
    assert await repo.find_run_by_reply("teams", "C1", "1.2") is None

    done = await repo.finish_run(run.id, "done", answer={"parts": [{"id": "t", "text": "42 ✓"}]})
    assert done is not None and done.status == "done" and not done.active
    assert done.finished_at is not None and done.answer == {"parts": [{"id": "t", "text": "42 ✓"}]}
    assert done.backend_run_id == "cz-1"  # untouched fields survive
    assert await repo.get_run(run.id) == done


async def test_update_run_validation(repo: Repository) -> None:
    conv = await repo.ensure_conversation("slack", "T1", "C1", "1.1", "wren")
    run = await repo.create_run(conv, "q", "U1")
    with pytest.raises(TypeError):
        await repo.update_run(run.id, question="edited")
    with pytest.raises(ValueError):
        await repo.update_run(run.id, status="exploded")
    with pytest.raises(ValueError):
        await repo.update_run(run.id, started_at=datetime(2025, 1, 1))  # naive
    assert await repo.update_run("nosuchrun", status="running") is None
    assert await repo.update_run(run.id) == run
    cleared = await repo.update_run(run.id, answer=None, error="boom")
    assert cleared is not None and cleared.answer is None and cleared.error == "boom"


async def test_create_run_needs_existing_conversation_and_retries_id_collision(
    repo: Repository, db_url: str
) -> None:
    conv = await repo.ensure_conversation("slack", "T1", "C1", "1.1", "wren")
    first = await repo.create_run(conv, "q1", "U1")
    ids = iter([first.id, "bbbbbbbbbbbb"])
    colliding = Repository(repo.engine, new_id=lambda: next(ids))
    try:
        second = await colliding.create_run(conv, "q2", "U1")
    finally:
        await colliding.close()
    assert second.id == "bbbbbbbbbbbb"

    ghost = type(conv)(**{**conv.__dict__, "id": 999})
    with pytest.raises(IntegrityError):  # foreign keys are enforced
        await repo.create_run(ghost, "q", "U1")


async def test_finish_run_only_once(repo: Repository, repo2: Repository) -> None:
    conv = await repo.ensure_conversation("slack", "T1", "C1", "1.1", "wren")
    run = await repo.create_run(conv, "q", "U1", status="running")
    assert run.started_at is not None
    results = await asyncio.gather(
        repo.finish_run(run.id, "stopped", stopped_by="U2"),
        repo2.finish_run(run.id, "done", answer={"x": 1}),
        repo.finish_run(run.id, "failed", error="late"),
    )
    finished = [r for r in results if r is not None]
    assert len(finished) == 1
    stored = await repo.get_run(run.id)
    assert stored == finished[0]
    assert await repo.finish_run(run.id, "failed", error="again") is None
    assert await repo.finish_run("nosuchrun", "done") is None
    with pytest.raises(ValueError):
        await repo.finish_run(run.id, "running")


async def test_list_and_count_runs(repo: Repository) -> None:
    c1 = await repo.ensure_conversation("slack", "T1", "C1", "1.1", "wren")
    c2 = await repo.ensure_conversation("slack", "T1", "C2", "2.1", "wren")
    other_ws = await repo.ensure_conversation("slack", "T2", "C1", "1.1", "wren")
    made = []
    for i in range(5):
        made.append(await repo.create_run(c1, f"c1-u1-{i}", "U1"))
    await repo.create_run(c1, "c1-u2", "U2")
    await repo.create_run(c2, "c2-u1", "U1")
    await repo.create_run(other_ws, "elsewhere", "U1")

    page1 = await repo.list_runs("slack", "T1", channel="C1", asker="U1", limit=2)
    page2 = await repo.list_runs("slack", "T1", channel="C1", asker="U1", limit=2, offset=2)
    page3 = await repo.list_runs("slack", "T1", channel="C1", asker="U1", limit=2, offset=4)
    assert [r.question for r in page1 + page2 + page3] == [f"c1-u1-{i}" for i in (4, 3, 2, 1, 0)]
    assert await repo.count_runs("slack", "T1", channel="C1", asker="U1") == 5

    everyone = await repo.list_runs("slack", "T1", channel="C1", limit=50)
    assert [r.question for r in everyone][0] == "c1-u2" and len(everyone) == 6
    assert await repo.count_runs("slack", "T1") == 7
    assert {r.question for r in await repo.list_runs("slack", "T1", asker="U1", limit=50)} == {
        *(r.question for r in made), "c2-u1"
    }
    assert await repo.count_runs("teams", "T1") == 0
    with pytest.raises(ValueError):
        await repo.list_runs("slack", "T1", limit=-1)


async def test_running_runs(repo: Repository) -> None:
    c1 = await repo.ensure_conversation("slack", "T1", "C1", "1.1", "wren")
    c2 = await repo.ensure_conversation("teams", "tenant", "19:chan", "a1", "textql")
    queued = await repo.create_run(c1, "a", "U1")
    running = await repo.create_run(c1, "b", "U2", status="running")
    finished = await repo.create_run(c1, "c", "U1", status="running")
    await repo.finish_run(finished.id, "done")
    teams = await repo.create_run(c2, "d", "29:x")

    assert [r.id for r in await repo.running_runs()] == [queued.id, running.id, teams.id]
    assert [r.id for r in await repo.running_runs("slack")] == [queued.id, running.id]
    assert [r.id for r in await repo.running_runs("slack", channel="C1", asker="U1")] == [queued.id]
    assert [r.id for r in await repo.running_runs(workspace="tenant")] == [teams.id]
    assert await repo.running_runs("slack", channel="C9") == []


async def test_feedback(repo: Repository) -> None:
    conv = await repo.ensure_conversation("slack", "T1", "C1", "1.1", "wren")
    run = await repo.create_run(conv, "q", "U1")
    assert await repo.set_feedback(run.id, "good", "U1") is True
    assert await repo.set_feedback(run.id, "bad", "U3") is True  # latest vote wins
    stored = await repo.get_run(run.id)
    assert stored is not None and (stored.feedback, stored.feedback_by) == ("bad", "U3")
    assert await repo.set_feedback("nosuchrun", "good", "U1") is False
    with pytest.raises(ValueError):
        await repo.set_feedback(run.id, "meh", "U1")


async def test_stop_requests_lists_only_unfinished_runs_with_a_requester(repo: Repository) -> None:
    conv = await repo.ensure_conversation("slack", "T1", "C1", "1.0", "wren")
    a = await repo.create_run(conv, "a", "U1", status="running")
    b = await repo.create_run(conv, "b", "U1", status="running")
    c = await repo.create_run(conv, "c", "U1", status="running")
    await repo.update_run(a.id, stopped_by="U2")
    await repo.update_run(c.id, stopped_by="U3")
    await repo.finish_run(c.id, "stopped")
    assert await repo.stop_requests([a.id, b.id, c.id]) == {a.id: "U2"}
    assert await repo.stop_requests([]) == {}


async def test_start_run_allows_one_running_run_per_conversation(repo: Repository, repo2: Repository) -> None:
    from datetime import timedelta

    conv = await repo.ensure_conversation("slack", "T1", "C1", "9.0", "wren")
    other = await repo.ensure_conversation("slack", "T1", "C1", "9.5", "wren")
    first = await repo.create_run(conv, "first", "U1")
    second = await repo.create_run(conv, "second", "U1")
    elsewhere = await repo.create_run(other, "other thread", "U1")
    stale = timedelta(minutes=15)
    assert (await repo.start_run(first.id, stale_after=stale)).status == "running"
    assert await repo2.start_run(second.id, stale_after=stale) is None  # another "replica" waits
    assert await repo2.start_run(elsewhere.id, stale_after=stale) is not None  # other threads don't
    assert await repo.start_run(first.id, stale_after=stale) is None  # already started
    await repo.finish_run(first.id, "done")
    assert (await repo2.start_run(second.id, stale_after=stale)).status == "running"


async def test_a_run_stuck_running_past_the_limit_does_not_block(repo: Repository) -> None:
    from datetime import timedelta

    conv = await repo.ensure_conversation("slack", "T1", "C1", "8.0", "wren")
    dead = await repo.create_run(conv, "orphan", "U1")
    assert await repo.start_run(dead.id, stale_after=timedelta(hours=1)) is not None
    waiting = await repo.create_run(conv, "next", "U1")
    assert await repo.start_run(waiting.id, stale_after=timedelta(hours=1)) is None
    assert await repo.start_run(waiting.id, stale_after=timedelta(seconds=0)) is not None


async def test_a_cancelled_call_still_runs_to_its_end(repo: Repository, db_url: str) -> None:
    """A stop or shutdown may cancel the caller; the write it asked for still happens."""
    conv = await repo.ensure_conversation("slack", "T1", "C1", "7.0", "wren")
    run = await repo.create_run(conv, "q", "U1", status="running")
    other = create_sqlite_sync_engine(db_url, connections=1)
    try:
        with other.begin():  # another process holds the write lock: our writes queue meanwhile
            first = asyncio.create_task(repo.set_feedback(run.id, "good", "U1"))
            call = asyncio.create_task(repo.finish_run(run.id, "stopped", stopped_by="U2"))
            await asyncio.sleep(0.1)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
        await first
        await repo.set_feedback(run.id, "bad", "U1")  # queued behind the cancelled call
    finally:
        other.dispose()
    stored = await repo.get_run(run.id)
    assert stored is not None and (stored.status, stored.stopped_by) == ("stopped", "U2")


async def test_taking_in_a_question_goes_before_other_writes(repo: Repository, db_url: str) -> None:
    """The placeholder waits for the intake write: it must not queue behind a burst of others."""
    conv = await repo.ensure_conversation("slack", "T1", "C1", "7.5", "wren")
    run = await repo.create_run(conv, "q", "U1")
    done: list[str] = []

    async def note(name: str, call) -> None:
        await call
        done.append(name)

    other = create_sqlite_sync_engine(db_url, connections=1)
    try:
        with other.begin():  # hold the writer up while the queue fills
            tasks = [asyncio.create_task(note(f"update {i}", repo.update_run(run.id, reply_ts=str(i))))
                     for i in range(10)]
            await asyncio.sleep(0.1)
            tasks.append(asyncio.create_task(note("claim", repo.claim_event("slack:msg:C1:7.6"))))
            tasks.append(asyncio.create_task(note("record", repo.record_question(
                "slack:msg:C1:7.7", "slack", "T1", "C1", "7.7", "wren", "q", "U1"))))
            await asyncio.sleep(0.1)
        await asyncio.gather(*tasks)
    finally:
        other.dispose()
    # the first update was already waiting for the lock; the intake writes come right after it
    assert done[:3] == ["update 0", "claim", "record"], done


# -- batched intake ---------------------------------------------------------------------------


async def test_record_question_claims_creates_and_queues_in_one_go(repo: Repository) -> None:
    recorded = await repo.record_question("slack:msg:C1:1.1", "slack", "T1", "C1", "1.1", "wren",
                                          "How many orders?", "U1")
    assert recorded is not None
    conv, run = recorded
    assert (conv.platform, conv.workspace, conv.channel, conv.thread, conv.backend, conv.session_id) == (
        "slack", "T1", "C1", "1.1", "wren", None)
    assert await repo.get_conversation("slack", "T1", "C1", "1.1") == conv
    assert run.status == "queued" and run.started_at is None and len(run.id) == 12
    assert (run.conversation_id, run.question, run.asker, run.backend) == (conv.id, "How many orders?", "U1", "wren")
    assert await repo.get_run(run.id) == run
    assert await repo.claim_event("slack:msg:C1:1.1") is False  # the key is taken
    # a follow-up in the same thread joins its conversation
    again = await repo.record_question("slack:msg:C1:1.2", "slack", "T1", "C1", "1.1", "wren", "And?", "U1")
    assert again is not None and again[0] == conv and again[1].id != run.id
    with pytest.raises(ValueError):
        await repo.record_question("", "slack", "T1", "C1", "1.1", "wren", "q", "U1")


async def test_record_question_writes_nothing_for_a_claimed_key(repo: Repository) -> None:
    assert await repo.claim_event("slack:msg:C1:2.1") is True
    assert await repo.record_question("slack:msg:C1:2.1", "slack", "T1", "C1", "2.1", "wren", "q", "U1") is None
    first = await repo.record_question("slack:msg:C1:3.1", "slack", "T1", "C1", "3.1", "wren", "q", "U1")
    assert first is not None
    # a retry of the same event, even one that names another thread, adds nothing anywhere
    assert await repo.record_question("slack:msg:C1:3.1", "slack", "T1", "C1", "3.1", "wren", "q", "U1") is None
    assert await repo.record_question("slack:msg:C1:3.1", "slack", "T1", "C9", "9.9", "wren", "q", "U1") is None
    assert await repo.get_conversation("slack", "T1", "C1", "2.1") is None
    assert await repo.get_conversation("slack", "T1", "C9", "9.9") is None
    assert [r.id for r in await repo.running_runs()] == [first[1].id]


async def test_record_question_keeps_an_existing_conversation(repo: Repository) -> None:
    conv = await repo.ensure_conversation("slack", "T1", "C1", "4.1", "wren")
    await repo.set_session(conv.id, "sess-1")
    recorded = await repo.record_question("slack:msg:C1:4.2", "slack", "T1", "C1", "4.1", "textql", "q", "U2")
    assert recorded is not None
    kept, run = recorded
    assert (kept.id, kept.backend, kept.session_id) == (conv.id, "wren", "sess-1")
    assert (run.backend, run.session_id, run.conversation_id) == ("wren", "sess-1", conv.id)


async def test_record_question_retries_a_taken_run_id(repo: Repository) -> None:
    recorded = await repo.record_question("k1", "slack", "T1", "C1", "5.1", "wren", "q1", "U1")
    assert recorded is not None
    ids = iter([recorded[1].id, "cccccccccccc"])
    colliding = Repository(repo.engine, new_id=lambda: next(ids))
    try:
        second = await colliding.record_question("k2", "slack", "T1", "C1", "5.1", "wren", "q2", "U1")
    finally:
        await colliding.close()
    assert second is not None and second[1].id == "cccccccccccc"
    assert (await repo.get_run(recorded[1].id)).question == "q1"  # the taken id kept its run


async def test_record_question_is_all_or_nothing(repo: Repository) -> None:
    await record_question_is_all_or_nothing(repo)


async def record_question_is_all_or_nothing(repo: Repository) -> None:
    """A failure after the claim and the new conversation takes both back with it (shared with
    the PostgreSQL tests)."""
    taken = await repo.record_question("k0", "slack", "T1", "C1", "8.0", "wren", "q", "U1")
    assert taken is not None
    ids = iter([taken[1].id])  # a colliding id, then none left

    def next_id() -> str:
        for run_id in ids:
            return run_id
        raise RuntimeError("no id today")

    failing = Repository(repo.engine, new_id=next_id)
    try:
        with pytest.raises(RuntimeError):
            await failing.record_question("k-fail", "slack", "T1", "C1", "8.1", "wren", "q", "U1")
    finally:
        await failing.close()
    assert await repo.get_conversation("slack", "T1", "C1", "8.1") is None
    assert await repo.claim_event("k-fail") is True  # the claim was rolled back with the rest


async def test_record_question_concurrently_across_repositories(repo: Repository, repo2: Repository) -> None:
    keys = [f"slack:msg:C1:{i}" for i in range(15)]
    attempts = [r.record_question(k, "slack", "T1", "C1", "6.1", "wren", k, "U1")
                for k in keys for r in (repo, repo2, repo, repo2)]
    results = await asyncio.gather(*attempts)
    wins = [sum(r is not None for r in results[i * 4:(i + 1) * 4]) for i in range(len(keys))]
    assert wins == [1] * len(keys)  # one run per event
    conversations = {r[0].id for r in results if r is not None}
    assert len(conversations) == 1  # every key asked in the same new thread: one conversation
    runs = await repo.running_runs()
    assert sorted(r.question for r in runs) == sorted(keys)


# -- the distributed Slack app's tables --------------------------------------------------------


def _layout(table) -> dict:  # type: ignore[no-untyped-def]
    return {c.name: (type(c.type).__name__, getattr(c.type, "length", None), c.nullable,
                     c.primary_key) for c in table.columns}


def test_slack_sdk_tables_are_declared_as_slack_sdk_builds_them() -> None:
    """The installation and state stores are slack_sdk's own, on tables our migrations create:
    the declarations must be slack_sdk's layout, column for column (a slack_sdk upgrade that
    changes it fails here, asking for a migration)."""
    from sqlalchemy import MetaData
    from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
    from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore

    theirs = MetaData()
    built = [SQLAlchemyInstallationStore.build_installations_table(theirs, "slack_installations"),
             SQLAlchemyInstallationStore.build_bots_table(theirs, "slack_bots"),
             SQLAlchemyOAuthStateStore.build_oauth_states_table(theirs, "slack_oauth_states")]
    for table in built:
        ours = Base.metadata.tables[table.name]
        assert _layout(ours) == _layout(table), table.name
        assert {(i.name, tuple(c.name for c in i.columns)) for i in ours.indexes} == \
            {(i.name, tuple(c.name for c in i.columns)) for i in table.indexes}


async def test_slack_workspaces_are_remembered_and_corrected(repo: Repository) -> None:
    assert await repo.slack_workspaces() == {}
    await repo.remember_slack_workspace("T1", None, False)
    await repo.remember_slack_workspace("T2", "E1", True)
    await repo.remember_slack_workspace("T1", "E1", False)  # later: T1 is in a Grid after all
    assert await repo.slack_workspaces() == {"T1": ("E1", False), "T2": ("E1", True)}
