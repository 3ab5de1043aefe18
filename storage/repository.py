"""The repository: every query the service makes, and the only code that writes SQL.

Several replicas may share one database, so anything that must happen once (claiming an
event, creating a thread's conversation, finishing a run) is decided by the database in a
single statement — a unique key or a conditional UPDATE — never by a read-then-write in
Python. Statements are Core statements on the mapped tables and results come back as frozen
records (:mod:`storage.records`).

On SQLite each write transaction starts with its write statement (no read before it), so a
second writer waits on ``busy_timeout`` instead of failing on a stale read snapshot.
"""

from __future__ import annotations

import asyncio
import functools
import json
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from sqlalchemy import Row, Select, Table, and_, delete, exists, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.dml import Insert

from storage.engine import DEFAULT_URL, create_engine
from storage.migrate import upgrade
from storage.models import EVENT_KEY_MAX, Conversation, Event, Run
from storage.records import (
    ACTIVE_STATUSES,
    FEEDBACK_VALUES,
    FINAL_STATUSES,
    RUNNING,
    STATUSES,
    ConversationRecord,
    RunRecord,
)

__all__ = ["ConversationRecord", "Repository", "RunRecord", "new_run_id", "utc_now"]

_conversations: Table = Conversation.__table__  # type: ignore[assignment]
_runs: Table = Run.__table__  # type: ignore[assignment]
_events: Table = Event.__table__  # type: ignore[assignment]

_UPDATABLE_RUN_FIELDS = frozenset({
    "status", "backend_run_id", "session_id", "reply_channel", "reply_ts", "error", "answer",
    "stopped_by", "started_at", "finished_at",
})
_RUN_ID_ATTEMPTS = 3


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def new_run_id() -> str:
    """12 hex characters: short enough to read out to support, random enough not to collide."""
    return secrets.token_hex(6)


T = TypeVar("T")


def _whole(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Run a database operation to its end even when the caller is cancelled.

    A stop or a shutdown cancels tasks at any ``await``; an operation cut off inside the driver
    leaves its connection checked out mid-transaction (SQLite then reports "database is locked"
    to the next writer, and aiosqlite's clean-up can hang the event loop's shutdown). Each call
    runs in its own task, shielded; the caller still sees the cancellation at once, and
    :meth:`Repository.close` waits for operations in flight before disposing the engine.
    """

    @functools.wraps(method)
    async def wrapper(self: "Repository", *args: Any, **kwargs: Any) -> T:
        task = asyncio.ensure_future(method(self, *args, **kwargs))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return await asyncio.shield(task)

    return wrapper


class Repository:
    """Async data access for conversations, runs and the event ledger.

    ``clock`` and ``new_id`` are injectable so tests get deterministic timestamps and ids;
    ``ping_timeout`` bounds the health check when the database does not answer.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Callable[[], datetime] = utc_now,
        new_id: Callable[[], str] = new_run_id,
        ping_timeout: float = 5.0,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._new_id = new_id
        self._ping_timeout = ping_timeout
        self._inflight: set[asyncio.Future[Any]] = set()

    @classmethod
    async def open(cls, url: str = DEFAULT_URL, *, migrate: bool = True, **options: Any) -> Repository:
        """Create the engine for ``url`` and, unless ``migrate`` is false, upgrade the schema."""
        engine = create_engine(url)
        try:
            if migrate:
                await upgrade(engine)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine, **options)

    async def close(self) -> None:
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=10)
        await self._engine.dispose()

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def ping(self) -> bool:
        """True when the database answers ``SELECT 1`` within ``ping_timeout``."""
        try:
            await asyncio.wait_for(self._select_one(), self._ping_timeout)
        except Exception:
            return False
        return True

    @_whole
    async def _select_one(self) -> None:
        async with self._engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    # -- event ledger -------------------------------------------------------------------------

    @_whole
    async def claim_event(self, key: str) -> bool:
        """Record ``key``; True for the one caller (in any replica) that recorded it first."""
        if not key or len(key) > EVENT_KEY_MAX:
            raise ValueError(f"event key must be 1..{EVENT_KEY_MAX} characters")
        stmt = self._insert_ignoring_conflicts(_events).values(key=key, created_at=self._clock())
        try:
            async with self._engine.begin() as conn:
                row = (await conn.execute(stmt.returning(_events.c.key))).first()
        except IntegrityError:
            return False
        return row is not None

    @_whole
    async def prune_events(self, older_than: timedelta) -> int:
        """Forget ledger entries older than ``older_than``; returns how many were removed."""
        cutoff = self._clock() - older_than
        async with self._engine.begin() as conn:
            result = await conn.execute(delete(_events).where(_events.c.created_at < cutoff))
        return max(result.rowcount, 0)

    # -- conversations ------------------------------------------------------------------------

    @_whole
    async def get_conversation(
        self, platform: str, workspace: str, channel: str, thread: str
    ) -> ConversationRecord | None:
        stmt = select(_conversations).where(
            _conversations.c.platform == platform,
            _conversations.c.workspace == workspace,
            _conversations.c.channel == channel,
            _conversations.c.thread == thread,
        )
        row = await self._first(stmt)
        return None if row is None else _conversation(row)

    @_whole
    async def ensure_conversation(
        self, platform: str, workspace: str, channel: str, thread: str, backend: str
    ) -> ConversationRecord:
        """Get the thread's conversation, creating it if needed.

        Race-safe: concurrent callers all get the one row the unique key lets through. An
        existing conversation keeps its original ``backend`` (its session lives there).
        """
        existing = await self.get_conversation(platform, workspace, channel, thread)
        if existing is not None:
            return existing
        now = self._clock()
        stmt = self._insert_ignoring_conflicts(_conversations).values(
            platform=platform, workspace=workspace, channel=channel, thread=thread,
            backend=backend, session_id=None, created_at=now, updated_at=now,
        )
        try:
            async with self._engine.begin() as conn:
                row = (await conn.execute(stmt.returning(*_conversations.c))).first()
        except IntegrityError:
            row = None
        if row is not None:
            return _conversation(row)
        winner = await self.get_conversation(platform, workspace, channel, thread)
        if winner is None:  # only if someone deleted it in between
            raise RuntimeError("conversation disappeared while being created")
        return winner

    @_whole
    async def set_session(self, conversation_id: int, session_id: str | None) -> None:
        stmt = (
            update(_conversations)
            .where(_conversations.c.id == conversation_id)
            .values(session_id=session_id, updated_at=self._clock())
        )
        async with self._engine.begin() as conn:
            await conn.execute(stmt)

    # -- runs ---------------------------------------------------------------------------------

    @_whole
    async def create_run(
        self, conversation: ConversationRecord, question: str, asker: str, *, status: str = "queued"
    ) -> RunRecord:
        """Insert a run for ``conversation`` with a fresh reference id."""
        _check_status(status)
        now = self._clock()
        values: dict[str, Any] = {
            "conversation_id": conversation.id,
            "platform": conversation.platform,
            "workspace": conversation.workspace,
            "channel": conversation.channel,
            "thread": conversation.thread,
            "question": question,
            "asker": asker,
            "backend": conversation.backend,
            "session_id": conversation.session_id,
            "status": status,
            "created_at": now,
            "started_at": now if status == RUNNING else None,
            "finished_at": now if status in FINAL_STATUSES else None,
        }
        for attempt in range(1, _RUN_ID_ATTEMPTS + 1):
            run_id = self._new_id()
            stmt = insert(_runs).values(id=run_id, **values).returning(*_runs.c)
            try:
                async with self._engine.begin() as conn:
                    return _run((await conn.execute(stmt)).one())
            except IntegrityError:
                # Retry only an id collision; anything else (no such conversation) is real.
                if attempt == _RUN_ID_ATTEMPTS or await self.get_run(run_id) is None:
                    raise
        raise AssertionError("unreachable")

    @_whole
    async def update_run(self, run_id: str, **fields: Any) -> RunRecord | None:
        """Set some of a run's mutable fields; None when there is no such run.

        ``answer`` is a JSON-serialisable mapping (or None). Prefer :meth:`finish_run` to end a
        run: it is the only path that refuses to finish a run twice.
        """
        unknown = set(fields) - _UPDATABLE_RUN_FIELDS
        if unknown:
            raise TypeError(f"update_run() got unexpected field(s): {', '.join(sorted(unknown))}")
        if "status" in fields:
            _check_status(fields["status"])
        for name in ("started_at", "finished_at"):
            _check_aware(name, fields.get(name))
        if "answer" in fields:
            fields["answer"] = _encode_answer(fields["answer"])
        if not fields:
            return await self.get_run(run_id)
        stmt = update(_runs).where(_runs.c.id == run_id).values(**fields).returning(*_runs.c)
        async with self._engine.begin() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else _run(row)

    @_whole
    async def start_run(self, run_id: str, *, stale_after: timedelta) -> RunRecord | None:
        """Move a queued run to running if no other run of its conversation is running.

        This is "one question at a time per thread" across replicas: the conversation row is
        locked (``FOR UPDATE`` on PostgreSQL; SQLite serialises writers anyway) while the check
        and the update happen, so two replicas cannot both start a run in the same thread.
        A run that has been "running" for longer than ``stale_after`` (its replica died and
        nobody resumed it) does not block. Returns the started run, or None to wait and retry.
        """
        now = self._clock()
        other = _runs.alias("other")
        blocking = select(other.c.id).where(
            other.c.conversation_id == _runs.c.conversation_id, other.c.id != _runs.c.id,
            other.c.status == "running", other.c.started_at > now - stale_after)
        stmt = (update(_runs)
                .where(_runs.c.id == run_id, _runs.c.status == "queued", ~exists(blocking))
                .values(status="running", started_at=now)
                .returning(*_runs.c))
        async with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # without this two replicas could each see the other's run still queued
                conversation = select(_runs.c.conversation_id).where(_runs.c.id == run_id).scalar_subquery()
                await conn.execute(select(_conversations.c.id)
                                   .where(_conversations.c.id == conversation).with_for_update())
            # one statement: SQLite takes the write lock before it reads, so no stale snapshot
            row = (await conn.execute(stmt)).first()
        return None if row is None else _run(row)

    @_whole
    async def finish_run(
        self,
        run_id: str,
        status: str,
        *,
        error: str | None = None,
        answer: Mapping[str, Any] | None = None,
        stopped_by: str | None = None,
    ) -> RunRecord | None:
        """Move a queued/running run to ``status`` (done, stopped or failed) exactly once.

        Returns the finished run, or None when the run does not exist or was already finished
        (by this or another replica). Fields left as None keep their stored values.
        """
        if status not in FINAL_STATUSES:
            raise ValueError(f"finish status must be one of {FINAL_STATUSES}, not {status!r}")
        values: dict[str, Any] = {"status": status, "finished_at": self._clock()}
        if error is not None:
            values["error"] = error
        if answer is not None:
            values["answer"] = _encode_answer(answer)
        if stopped_by is not None:
            values["stopped_by"] = stopped_by
        stmt = (
            update(_runs)
            .where(_runs.c.id == run_id, _runs.c.status.in_(ACTIVE_STATUSES))
            .values(**values)
            .returning(*_runs.c)
        )
        async with self._engine.begin() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else _run(row)

    @_whole
    async def get_run(self, run_id: str) -> RunRecord | None:
        row = await self._first(select(_runs).where(_runs.c.id == run_id))
        return None if row is None else _run(row)

    @_whole
    async def find_run_by_reply(
        self, platform: str, reply_channel: str, reply_ts: str
    ) -> RunRecord | None:
        """The run whose reply is the platform message (``reply_channel``, ``reply_ts``)."""
        stmt = (
            select(_runs)
            .where(
                _runs.c.platform == platform,
                _runs.c.reply_channel == reply_channel,
                _runs.c.reply_ts == reply_ts,
            )
            .order_by(_runs.c.created_at.desc(), _runs.c.id.desc())
            .limit(1)
        )
        row = await self._first(stmt)
        return None if row is None else _run(row)

    @_whole
    async def list_runs(
        self,
        platform: str,
        workspace: str,
        *,
        channel: str | None = None,
        asker: str | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[RunRecord]:
        """Runs of a workspace (optionally one channel and/or one asker), newest first."""
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        stmt = (
            select(_runs)
            .where(_history_filter(platform, workspace, channel, asker))
            .order_by(_runs.c.created_at.desc(), _runs.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return [_run(row) for row in await self._all(stmt)]

    @_whole
    async def count_runs(
        self,
        platform: str,
        workspace: str,
        *,
        channel: str | None = None,
        asker: str | None = None,
    ) -> int:
        stmt = (
            select(func.count())
            .select_from(_runs)
            .where(_history_filter(platform, workspace, channel, asker))
        )
        async with self._engine.connect() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    @_whole
    async def running_runs(
        self,
        platform: str | None = None,
        *,
        workspace: str | None = None,
        channel: str | None = None,
        asker: str | None = None,
    ) -> list[RunRecord]:
        """Runs not yet finished (queued or running), oldest first; filters are optional."""
        conditions = [_runs.c.status.in_(ACTIVE_STATUSES)]
        for column, value in (
            (_runs.c.platform, platform),
            (_runs.c.workspace, workspace),
            (_runs.c.channel, channel),
            (_runs.c.asker, asker),
        ):
            if value is not None:
                conditions.append(column == value)
        stmt = select(_runs).where(*conditions).order_by(_runs.c.created_at, _runs.c.id)
        return [_run(row) for row in await self._all(stmt)]

    @_whole
    async def stop_requests(self, run_ids: list[str]) -> dict[str, str]:
        """Who asked to stop which of these unfinished runs (``run_id → user``).

        A stop pressed on one replica for a run that another replica is executing is written
        to ``stopped_by``; the owning replica polls this and stops the run itself.
        """
        if not run_ids:
            return {}
        stmt = select(_runs.c.id, _runs.c.stopped_by).where(
            _runs.c.id.in_(run_ids), _runs.c.stopped_by.is_not(None),
            _runs.c.status.in_(ACTIVE_STATUSES))
        return {row.id: row.stopped_by for row in await self._all(stmt)}

    @_whole
    async def set_feedback(self, run_id: str, value: str, user: str) -> bool:
        """Record ``user``'s verdict ("good"/"bad") on a run; the latest vote wins.

        Returns False when there is no such run.
        """
        if value not in FEEDBACK_VALUES:
            raise ValueError(f"feedback must be one of {FEEDBACK_VALUES}, not {value!r}")
        stmt = (
            update(_runs)
            .where(_runs.c.id == run_id)
            .values(feedback=value, feedback_by=user)
            .returning(_runs.c.id)
        )
        async with self._engine.begin() as conn:
            return (await conn.execute(stmt)).first() is not None

    # -- helpers ------------------------------------------------------------------------------

    def _insert_ignoring_conflicts(self, table: Table) -> Insert:
        """INSERT that skips a duplicate key silently (no error in the server's log).

        Other dialects fall back to a plain INSERT whose duplicate raises IntegrityError,
        which callers treat the same way.
        """
        dialect = self._engine.dialect.name
        if dialect == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing()
        if dialect == "sqlite":
            return sqlite.insert(table).on_conflict_do_nothing()
        return insert(table)

    async def _first(self, stmt: Select[Any]) -> Row[Any] | None:
        async with self._engine.connect() as conn:
            return (await conn.execute(stmt)).first()

    async def _all(self, stmt: Select[Any]) -> list[Row[Any]]:
        async with self._engine.connect() as conn:
            return list((await conn.execute(stmt)).all())


def _history_filter(platform: str, workspace: str, channel: str | None, asker: str | None) -> Any:
    conditions = [_runs.c.platform == platform, _runs.c.workspace == workspace]
    if channel is not None:
        conditions.append(_runs.c.channel == channel)
    if asker is not None:
        conditions.append(_runs.c.asker == asker)
    return and_(*conditions)


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, not {status!r}")


def _check_aware(name: str, value: Any) -> None:
    if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
        raise ValueError(f"{name} must be a timezone-aware datetime")


def _encode_answer(answer: Mapping[str, Any] | None) -> str | None:
    if answer is None:
        return None
    if not isinstance(answer, Mapping):
        raise TypeError("answer must be a mapping (the final answer snapshot as a dict)")
    return json.dumps(dict(answer), ensure_ascii=False, separators=(",", ":"))


def _conversation(row: Row[Any]) -> ConversationRecord:
    return ConversationRecord(**row._mapping)


def _run(row: Row[Any]) -> RunRecord:
    data = dict(row._mapping)
    if data["answer"] is not None:
        data["answer"] = json.loads(data["answer"])
    return RunRecord(**data)
