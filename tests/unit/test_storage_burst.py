"""A burst of 200 questions on the SQLite default never fails (issue #9).

Before the fix, 200 analyses started at once raised ``database is locked`` (a write waited
longer than ``busy_timeout`` for SQLite's lock while other connections of the same process
held or raced for it), failing runs and losing final answers. The simulation is in
``tests/unit/storage_burst.py``; the PostgreSQL twin is in tests/integration.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import storage.engine
from storage import Repository
from tests.unit.storage_burst import assert_all_answered, burst


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/burst.db"


async def test_a_burst_of_200_questions_all_end_answered(db_url: str) -> None:
    """The bot and a second process on one file, 200 questions at once, default settings."""
    bot = await Repository.open(db_url)
    second = await Repository.open(db_url)
    try:
        result = await burst([bot, second])
        await assert_all_answered(bot, result)
    finally:
        await bot.close()
        await second.close()


async def test_a_burst_in_one_process_never_waits_for_the_sqlite_lock(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no busy timeout at all, any write that had to wait for another connection of this
    process fails at once: only one connection of the process may ever write."""
    monkeypatch.setattr(storage.engine, "SQLITE_BUSY_TIMEOUT_MS", 0)
    repo = await Repository.open(db_url)
    try:
        result = await burst([repo])
        await assert_all_answered(repo, result)
    finally:
        await repo.close()


async def test_a_burst_with_the_batched_intake(db_url: str) -> None:
    bot = await Repository.open(db_url)
    second = await Repository.open(db_url)
    try:
        result = await burst([bot, second], intake="record_question")
        await assert_all_answered(bot, result)
    finally:
        await bot.close()
        await second.close()
