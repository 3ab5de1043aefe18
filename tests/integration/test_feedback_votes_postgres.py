"""Feedback votes on PostgreSQL: one vote per person per run when clicks race on several
replicas, each in its own transaction on its own connection.

The server comes from ``TEST_DATABASE_URL`` (default: local ``test`` database, trust auth), as in
test_storage_postgres.py; without a server the module is skipped with the reason.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from storage import Repository
from storage.repository import VoteOutcome
from tests.integration.test_storage_postgres import pg_url  # noqa: F401  (fixture)

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
