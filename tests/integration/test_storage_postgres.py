"""storage/ against PostgreSQL: the guarantees replicas rely on, checked on the real server.

The server comes from ``TEST_DATABASE_URL`` (default: local ``test`` database, trust auth).
Each test session creates a uniquely named database and drops it at the end; when no server
answers within ~2 s the module is skipped with the reason.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from storage import Repository, create_engine, normalize_url, upgrade
from storage.models import Base

DEFAULT_TEST_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
CONNECT_TIMEOUT = 2.0


class StepClock:
    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


async def _admin(url: str, statement: str, timeout: float = CONNECT_TIMEOUT + 1) -> None:
    engine = create_async_engine(
        normalize_url(url), isolation_level="AUTOCOMMIT", connect_args={"timeout": CONNECT_TIMEOUT}
    )
    try:
        async with asyncio.timeout(timeout):
            async with engine.connect() as conn:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def pg_url() -> str:
    configured = os.environ.get("TEST_DATABASE_URL")
    admin_url = configured or DEFAULT_TEST_URL
    name = f"insightbot_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # unreachable server, bad credentials, no CREATEDB right
        reason = f"{type(exc).__name__}: {exc}"
        if configured:  # asked for explicitly: a server that refuses is a failure, not a skip
            pytest.fail(f"PostgreSQL at TEST_DATABASE_URL is not usable: {reason}")
        pytest.skip(f"no PostgreSQL at the default address {DEFAULT_TEST_URL}: {reason}")
    url = normalize_url(admin_url).set(database=name).render_as_string(hide_password=False)
    yield url
    # (ending the sessions of killed replicas can take a while on a busy machine)
    asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', timeout=60))


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
async def repo(pg_url: str, clock: StepClock):
    repository = await Repository.open(pg_url, clock=clock)
    async with repository.engine.begin() as conn:
        await conn.execute(text("TRUNCATE events, runs, conversations RESTART IDENTITY CASCADE"))
    yield repository
    await repository.close()


@pytest.fixture
async def repo2(repo: Repository, pg_url: str, clock: StepClock):
    repository = await Repository.open(pg_url, clock=clock)
    yield repository
    await repository.close()


def _schema_diff(connection: Connection) -> list:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, Base.metadata)


async def test_migrations_idempotent_and_match_models(pg_url: str) -> None:
    await asyncio.gather(upgrade(pg_url), upgrade(pg_url))  # two replicas starting together
    await upgrade(pg_url)
    engine = create_engine(pg_url)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
            assert await conn.run_sync(_schema_diff) == []
    finally:
        await engine.dispose()


async def test_ping(repo: Repository) -> None:
    assert await repo.ping() is True


async def test_claim_event_concurrently_across_repositories(
    repo: Repository, repo2: Repository, clock: StepClock
) -> None:
    keys = [f"slack:Ev{i}" for i in range(15)]
    results = await asyncio.gather(*(r.claim_event(k) for k in keys for r in (repo, repo2, repo, repo2)))
    assert [sum(results[i * 4:(i + 1) * 4]) for i in range(len(keys))] == [1] * len(keys)

    clock.now += timedelta(hours=2)
    await repo.claim_event("fresh")
    assert await repo.prune_events(timedelta(hours=1)) == len(keys)
    assert await repo.claim_event("slack:Ev0") is True
    assert await repo.claim_event("fresh") is False


async def test_ensure_conversation_is_race_safe(repo: Repository, repo2: Repository) -> None:
    calls = [r.ensure_conversation("slack", "T1", "C1", "9.9", "wren") for r in (repo, repo2) * 5]
    results = await asyncio.gather(*calls)
    assert len({c.id for c in results}) == 1
    async with repo.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM conversations"))).scalar_one() == 1
    await repo.set_session(results[0].id, "sess")
    fetched = await repo.get_conversation("slack", "T1", "C1", "9.9")
    assert fetched is not None and fetched.session_id == "sess"


async def test_run_lifecycle_and_finish_once(repo: Repository, repo2: Repository) -> None:
    conv = await repo.ensure_conversation("teams", "tenant", "19:" + "x" * 200, "a1", "textql")
    run = await repo.create_run(conv, "How many orders?", "29:" + "u" * 150)
    started = datetime(2025, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=-5)))
    updated = await repo.update_run(
        run.id, status="running", reply_channel="19:c", reply_ts="m1", started_at=started,
        answer={"parts": [{"id": "p", "text": "ü"}]},
    )
    assert updated is not None and updated.started_at == started
    assert updated.started_at.tzinfo == timezone.utc and updated.created_at.tzinfo == timezone.utc
    assert await repo.find_run_by_reply("teams", "19:c", "m1") == updated
    with pytest.raises(TypeError):
        await repo.update_run(run.id, asker="someone")

    results = await asyncio.gather(
        repo.finish_run(run.id, "stopped", stopped_by="U2"),
        repo2.finish_run(run.id, "done", answer={"x": 1}),
        repo.finish_run(run.id, "failed", error="late"),
    )
    finished = [r for r in results if r is not None]
    assert len(finished) == 1 and finished[0].finished_at is not None
    assert await repo.get_run(run.id) == finished[0]
    assert await repo.finish_run(run.id, "done") is None

    ghost = type(conv)(**{**conv.__dict__, "id": 10_000})
    with pytest.raises(IntegrityError):
        await repo.create_run(ghost, "q", "U1")


async def test_list_count_running_and_feedback(repo: Repository) -> None:
    c1 = await repo.ensure_conversation("slack", "T1", "C1", "1.1", "wren")
    c2 = await repo.ensure_conversation("slack", "T1", "C2", "2.1", "wren")
    for i in range(5):
        await repo.create_run(c1, f"c1-u1-{i}", "U1")
    other = await repo.create_run(c1, "c1-u2", "U2", status="running")
    await repo.create_run(c2, "c2-u1", "U1")

    pages = [await repo.list_runs("slack", "T1", channel="C1", asker="U1", limit=2, offset=o)
             for o in (0, 2, 4)]
    assert [r.question for page in pages for r in page] == [f"c1-u1-{i}" for i in (4, 3, 2, 1, 0)]
    assert await repo.count_runs("slack", "T1", channel="C1", asker="U1") == 5
    assert await repo.count_runs("slack", "T1") == 7

    assert len(await repo.running_runs("slack")) == 7
    assert [r.id for r in await repo.running_runs("slack", channel="C1", asker="U2")] == [other.id]
    await repo.finish_run(other.id, "done")
    assert await repo.running_runs("slack", asker="U2") == []

    assert await repo.set_feedback(other.id, "good", "U2") is True
    assert await repo.set_feedback("nosuchrun", "good", "U2") is False
    stored = await repo.get_run(other.id)
    assert stored is not None and (stored.feedback, stored.feedback_by) == ("good", "U2")


async def test_record_question_once_per_event_and_one_conversation_per_thread(
    repo: Repository, repo2: Repository
) -> None:
    keys = [f"slack:msg:C1:{i}" for i in range(15)]
    attempts = [r.record_question(k, "slack", "T1", "C1", "7.1", "wren", k, "U1")
                for k in keys for r in (repo, repo2, repo, repo2)]
    results = await asyncio.gather(*attempts)
    wins = [sum(r is not None for r in results[i * 4:(i + 1) * 4]) for i in range(len(keys))]
    assert wins == [1] * len(keys)  # concurrent callers for one key: exactly one run
    assert len({r[0].id for r in results if r is not None}) == 1
    assert sorted(r.question for r in await repo.running_runs()) == sorted(keys)
    # a duplicate, even naming another thread, writes nothing
    assert await repo.record_question(keys[0], "slack", "T1", "C9", "9.9", "wren", "q", "U1") is None
    assert await repo.get_conversation("slack", "T1", "C9", "9.9") is None
    assert await repo.count_runs("slack", "T1") == len(keys)
    assert await repo.claim_event(keys[0]) is False


async def test_record_question_keeps_an_existing_conversation_and_retries_a_taken_id(
    repo: Repository,
) -> None:
    conv = await repo.ensure_conversation("teams", "tenant", "19:c", "a1", "wren")
    await repo.set_session(conv.id, "sess-1")
    recorded = await repo.record_question("teams:a1:m1", "teams", "tenant", "19:c", "a1", "textql", "q", "29:u")
    assert recorded is not None
    kept, run = recorded
    assert (kept.id, kept.backend, kept.session_id) == (conv.id, "wren", "sess-1")
    assert (run.backend, run.session_id, run.status) == ("wren", "sess-1", "queued")
    # an id collision inside the transaction must not abort it (PostgreSQL would, on an error)
    ids = iter([run.id, "dddddddddddd"])
    colliding = Repository(repo.engine, new_id=lambda: next(ids))
    second = await colliding.record_question("teams:a1:m2", "teams", "tenant", "19:c", "a1", "wren", "q2", "29:u")
    assert second is not None and second[1].id == "dddddddddddd"
    assert (await repo.get_run(run.id)).question == "q"


async def test_record_question_is_all_or_nothing(repo: Repository) -> None:
    from tests.unit.test_storage import record_question_is_all_or_nothing

    await record_question_is_all_or_nothing(repo)


async def test_a_burst_of_200_questions_all_end_answered(repo: Repository, repo2: Repository) -> None:
    """The SQLite burst of tests/unit/test_storage_burst.py, on two replicas sharing PostgreSQL."""
    from tests.unit.storage_burst import assert_all_answered, burst

    result = await burst([repo, repo2])
    await assert_all_answered(repo, result)
