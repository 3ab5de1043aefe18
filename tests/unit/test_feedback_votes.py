"""Feedback votes on SQLite (storage/repository.py ``vote``, migration 0004): one vote per person
per run, whatever the clicks, replicas or order; the run's own columns keep working."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from storage import Repository, upgrade
from storage.engine import create_engine
from storage.repository import VoteOutcome
from tests.unit.test_storage import clock, db_url, repo, repo2  # noqa: F401  (fixtures)


async def _run(repo: Repository, thread: str = "1.1") -> str:
    conv = await repo.ensure_conversation("slack", "T1", "C1", thread, "wren")
    return (await repo.create_run(conv, "q", "U1")).id


async def test_a_repeated_vote_changes_nothing_and_another_verdict_replaces_ones_own(
        repo: Repository) -> None:
    run = await _run(repo)
    assert await repo.vote(run, "U1", "good") is VoteOutcome.RECORDED
    assert await repo.vote(run, "U1", "good") is VoteOutcome.UNCHANGED
    assert await repo.feedback_counts(run) == {"good": 1, "bad": 0}
    assert await repo.vote(run, "U1", "bad") is VoteOutcome.CHANGED
    assert await repo.feedback_counts(run) == {"good": 0, "bad": 1}
    assert await repo.vote(run, "U2", "good") is VoteOutcome.RECORDED
    assert await repo.feedback_counts(run) == {"good": 1, "bad": 1}


async def test_the_run_shows_the_latest_vote_that_changed_something(repo: Repository) -> None:
    run = await _run(repo)
    await repo.vote(run, "U1", "good")
    await repo.vote(run, "U2", "bad")
    await repo.vote(run, "U1", "good")  # unchanged: the run still shows U2's
    stored = await repo.get_run(run)
    assert stored is not None and (stored.feedback, stored.feedback_by) == ("bad", "U2")


async def test_votes_are_per_run(repo: Repository) -> None:
    first, second = await _run(repo, "1.1"), await _run(repo, "2.2")
    await repo.vote(first, "U1", "good")
    assert await repo.vote(second, "U1", "good") is VoteOutcome.RECORDED
    assert await repo.feedback_counts(first) == await repo.feedback_counts(second) \
        == {"good": 1, "bad": 0}


async def test_no_run_and_no_such_verdict(repo: Repository) -> None:
    assert await repo.vote("nosuchrun", "U1", "good") is VoteOutcome.NO_RUN
    assert await repo.feedback_counts("nosuchrun") == {"good": 0, "bad": 0}
    with pytest.raises(ValueError):
        await repo.vote(await _run(repo), "U1", "meh")


async def test_set_feedback_is_one_vote_per_person_too(repo: Repository) -> None:
    run = await _run(repo)
    for _ in range(3):
        assert await repo.set_feedback(run, "good", "U1") is True
    assert await repo.feedback_counts(run) == {"good": 1, "bad": 0}
    assert await repo.set_feedback("nosuchrun", "good", "U1") is False


async def test_concurrent_clicks_on_two_replicas_leave_one_vote(repo: Repository,  # noqa: F811
                                                                repo2: Repository) -> None:  # noqa: F811
    replica = repo2  # a second Repository on the same file: another replica
    run = await _run(repo)
    outcomes = await asyncio.gather(*(r.vote(run, "U1", "good")
                                      for _ in range(10) for r in (repo, replica)))
    assert outcomes.count(VoteOutcome.RECORDED) == 1
    assert set(outcomes) == {VoteOutcome.RECORDED, VoteOutcome.UNCHANGED}
    assert await replica.feedback_counts(run) == {"good": 1, "bad": 0}


async def test_the_key_refuses_a_second_row_for_one_person(repo: Repository) -> None:
    """The guarantee rests on the table itself, not on the code that writes to it."""
    run = await _run(repo)
    await repo.vote(run, "U1", "good")
    async with repo.engine.begin() as conn:
        with pytest.raises(Exception, match="UNIQUE|PRIMARY|constraint"):
            await conn.execute(text(
                "INSERT INTO feedback_votes (run_id, voter, value, created_at, updated_at) "
                "VALUES (:run, 'U1', 'bad', '2025-01-01', '2025-01-01')"), {"run": run})


async def test_votes_go_with_their_run(repo: Repository) -> None:
    run = await _run(repo)
    await repo.vote(run, "U1", "good")
    async with repo.engine.begin() as conn:
        await conn.execute(text("DELETE FROM runs WHERE id = :run"), {"run": run})
        left = (await conn.execute(text("SELECT count(*) FROM feedback_votes"))).scalar_one()
    assert left == 0


async def test_the_upgrade_keeps_feedback_given_before_it(db_url: str) -> None:
    await upgrade(db_url, "0003")
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO conversations (id, platform, workspace, channel, thread, backend, "
                "created_at, updated_at) VALUES (1, 'slack', 'T1', 'C1', '1.1', 'wren', "
                "'2025-01-01 00:00:00', '2025-01-01 00:00:00')"))
            for run_id, feedback, by in (("r1", "good", "U1"), ("r2", None, None)):
                await conn.execute(text(
                    "INSERT INTO runs (id, conversation_id, platform, workspace, channel, thread, "
                    "question, asker, backend, status, feedback, feedback_by, created_at, "
                    "finished_at) VALUES (:id, 1, 'slack', 'T1', 'C1', '1.1', 'q', 'U1', 'wren', "
                    "'done', :feedback, :by, '2025-01-01 00:00:00', '2025-01-01 00:01:00')"),
                    {"id": run_id, "feedback": feedback, "by": by})
    finally:
        await engine.dispose()
    repo = await Repository.open(db_url)  # upgrades to head
    try:
        assert await repo.feedback_counts("r1") == {"good": 1, "bad": 0}
        assert await repo.feedback_counts("r2") == {"good": 0, "bad": 0}
        assert await repo.vote("r1", "U1", "good") is VoteOutcome.UNCHANGED
    finally:
        await repo.close()
