"""Feedback votes on PostgreSQL: one vote per person per run when clicks race on several
replicas, each in its own transaction on its own connection.

The server comes from ``TEST_DATABASE_URL`` (default: local ``test`` database, trust auth), as in
test_storage_postgres.py; without a server the module is skipped with the reason.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from storage import Repository, normalize_url
from storage.repository import VoteOutcome

DEFAULT_TEST_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
CONNECT_TIMEOUT = 2.0


async def _admin(url: str, statement: str) -> None:
    engine = create_async_engine(normalize_url(url), isolation_level="AUTOCOMMIT",
                                 connect_args={"timeout": CONNECT_TIMEOUT})
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT + 1):
            async with engine.connect() as conn:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def pg_url() -> str:
    configured = os.environ.get("TEST_DATABASE_URL")
    admin_url = configured or DEFAULT_TEST_URL
    name = f"insightbot_votes_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # unreachable server, bad credentials, no CREATEDB right
        reason = f"{type(exc).__name__}: {exc}"
        if configured:
            pytest.fail(f"PostgreSQL at TEST_DATABASE_URL is not usable: {reason}")
        pytest.skip(f"no PostgreSQL at the default address {DEFAULT_TEST_URL}: {reason}")
    url = normalize_url(admin_url).set(database=name).render_as_string(hide_password=False)
    yield url
    asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def repo(pg_url: str):
    repository = await Repository.open(pg_url)
    async with repository.engine.begin() as conn:
        await conn.execute(text("TRUNCATE events, runs, conversations RESTART IDENTITY CASCADE"))
    yield repository
    await repository.close()


@pytest.fixture
async def replica(repo: Repository, pg_url: str):
    repository = await Repository.open(pg_url)
    yield repository
    await repository.close()


async def _run(repo: Repository) -> str:
    conv = await repo.ensure_conversation("slack", "T1", "C1", "1.1", "wren")
    return (await repo.create_run(conv, "q", "U1")).id


async def test_vote_outcomes_and_counts(repo: Repository) -> None:
    run = await _run(repo)
    assert await repo.vote(run, "U1", "good") is VoteOutcome.RECORDED
    assert await repo.vote(run, "U1", "good") is VoteOutcome.UNCHANGED
    assert await repo.vote(run, "U2", "good") is VoteOutcome.RECORDED
    assert await repo.vote(run, "U1", "bad") is VoteOutcome.CHANGED
    assert await repo.feedback_counts(run) == {"good": 1, "bad": 1}
    assert await repo.vote("nosuchrun", "U1", "good") is VoteOutcome.NO_RUN
    stored = await repo.get_run(run)
    assert stored is not None and (stored.feedback, stored.feedback_by) == ("bad", "U1")


async def test_racing_clicks_on_two_replicas_leave_one_vote(repo: Repository,
                                                            replica: Repository) -> None:
    run = await _run(repo)
    outcomes = await asyncio.gather(*(r.vote(run, voter, "good") for _ in range(8)
                                      for r in (repo, replica) for voter in ("U1", "U2")))
    assert outcomes.count(VoteOutcome.RECORDED) == 2  # one per person
    assert await replica.feedback_counts(run) == {"good": 2, "bad": 0}


async def test_votes_are_deleted_with_their_run(repo: Repository) -> None:
    run = await _run(repo)
    await repo.vote(run, "U1", "good")
    async with repo.engine.begin() as conn:
        await conn.execute(text("DELETE FROM runs WHERE id = :run"), {"run": run})
        assert (await conn.execute(text("SELECT count(*) FROM feedback_votes"))).scalar_one() == 0
