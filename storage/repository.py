"""The repository: every query the service makes, and the only code that writes SQL.

Several replicas may share one database, so anything that must happen once (claiming an
event, creating a thread's conversation, finishing a run) is decided by the database in a
single statement — a unique key or a conditional UPDATE — never by a read-then-write in
Python. Statements are Core statements on the mapped tables and results come back as frozen
records (:mod:`storage.records`). The statements of the per-question path are built once, with
bound parameters: building one (and its cache key) cost more than running it on SQLite.

Each operation is a unit of work — a function of a SQLAlchemy connection — handed to a runner
(:mod:`storage.runners`) as one write transaction or as reads. On SQLite the runner executes it
in a worker thread: writes one at a time on a single connection, each transaction from
``BEGIN IMMEDIATE`` to ``COMMIT`` in one go, reads on a pool of their own; a writer in another
process is waited for through ``busy_timeout``. On PostgreSQL it runs on the async engine.

:meth:`Repository.record_question` takes in a question (ledger claim, conversation, queued run)
in one transaction: one write instead of three on the way to the placeholder.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import json
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from sqlalchemy import (
    Row, Select, Table, and_, bindparam, delete, exists, func, insert, or_, select, text, update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.dml import Insert

from storage.engine import DEFAULT_URL, create_engine, is_sqlite_memory
from storage.migrate import upgrade
from storage.models import EVENT_KEY_MAX, Conversation, Event, FeedbackVote, Run, SlackWorkspace
from storage.records import (
    ACTIVE_STATUSES,
    FEEDBACK_VALUES,
    FINAL_STATUSES,
    QUEUED,
    RUNNING,
    STATUSES,
    ConversationRecord,
    RunRecord,
)
from storage.runners import AsyncRunner, ThreadRunner

__all__ = ["ConversationRecord", "Repository", "RunRecord", "VoteOutcome", "new_run_id", "utc_now"]

_conversations: Table = Conversation.__table__  # type: ignore[assignment]
_runs: Table = Run.__table__  # type: ignore[assignment]
_events: Table = Event.__table__  # type: ignore[assignment]
_votes: Table = FeedbackVote.__table__  # type: ignore[assignment]
_slack_workspaces: Table = SlackWorkspace.__table__  # type: ignore[assignment]

# -- statements built once; the values come as parameters ----------------------------------
_FIND_CONVERSATION = select(_conversations).where(
    _conversations.c.platform == bindparam("platform"),
    _conversations.c.workspace == bindparam("workspace"),
    _conversations.c.channel == bindparam("channel"),
    _conversations.c.thread == bindparam("thread"),
)
# SET gets the columns named by the parameters besides the WHERE's own
_UPDATE_CONVERSATION = update(_conversations).where(_conversations.c.id == bindparam("conversation_id"))
# a conversation from before profiles (NULL) takes the profile its thread is now routed to; its
# session goes on only on a backend of the same kind
_ADOPT_PROFILE = (update(_conversations)
                  .where(_conversations.c.id == bindparam("conversation_id"),
                         _conversations.c.profile.is_(None))
                  .values(profile=bindparam("new_profile"), backend=bindparam("new_backend"),
                          session_id=bindparam("new_session"), updated_at=bindparam("now"))
                  .returning(*_conversations.c))
_GET_RUN = select(_runs).where(_runs.c.id == bindparam("run_id"))
_INSERT_RUN = insert(_runs).returning(*_runs.c)
# what a replica must still do something about: run it, or deliver its stored answer
_UNFINISHED_OR_UNDELIVERED = or_(
    _runs.c.status.in_(ACTIVE_STATUSES),
    and_(_runs.c.status.in_(FINAL_STATUSES), _runs.c.delivered_at.is_(None)))
_UPDATE_RUN = update(_runs).where(_runs.c.id == bindparam("run_id")).returning(*_runs.c)
_FINISH_RUN = (update(_runs)
               .where(_runs.c.id == bindparam("run_id"), _runs.c.status.in_(ACTIVE_STATUSES))
               .returning(*_runs.c))
_other = _runs.alias("other")
_START_RUN = (
    update(_runs)
    .where(_runs.c.id == bindparam("run_id"), _runs.c.status == QUEUED,
           ~exists(select(_other.c.id).where(
               _other.c.conversation_id == _runs.c.conversation_id, _other.c.id != _runs.c.id,
               _other.c.status == RUNNING, _other.c.started_at > bindparam("stale_before"))))
    .values(status=RUNNING, started_at=bindparam("now"))
    .returning(*_runs.c)
)
_LOCK_CONVERSATION_OF_RUN = (
    select(_conversations.c.id)
    .where(_conversations.c.id == select(_runs.c.conversation_id)
           .where(_runs.c.id == bindparam("run_id")).scalar_subquery())
    .with_for_update()
)
_STOP_REQUESTS = select(_runs.c.id, _runs.c.stopped_by).where(
    _runs.c.id.in_(bindparam("run_ids", expanding=True)), _runs.c.stopped_by.is_not(None),
    _runs.c.status.in_(ACTIVE_STATUSES))

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
    leaves its connection checked out mid-transaction (the next writer then waits on its lock,
    and a driver's clean-up can hang the event loop's shutdown). Each call runs in its own task,
    shielded; the caller still sees the cancellation at once, and :meth:`Repository.close`
    waits for operations in flight before closing the connections. (SQLite's worker threads
    finish a unit of work regardless; the task also keeps "started means done" for callers.)
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

    ``engine`` is the database: PostgreSQL is used through it; for a SQLite file it names the
    file, which the repository reaches through its own worker threads (:class:`ThreadRunner`).
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
        self._dialect = engine.dialect.name
        self._runner: AsyncRunner | ThreadRunner = (
            ThreadRunner(engine.url) if _on_threads(engine) else AsyncRunner(engine))
        self._clock = clock
        self._new_id = new_id
        self._ping_timeout = ping_timeout
        self._inflight: set[asyncio.Future[Any]] = set()
        self._claim = self._insert_ignoring_conflicts(_events).returning(_events.c.key)
        self._create_conversation = (self._insert_ignoring_conflicts(_conversations)
                                     .returning(*_conversations.c))
        # record_question: an id collision skips the insert instead of failing the transaction
        self._insert_run_unless_taken = self._insert_ignoring_conflicts(_runs).returning(*_runs.c)

    @classmethod
    async def open(cls, url: str = DEFAULT_URL, *, migrate: bool = True, **options: Any) -> Repository:
        """Create the engine for ``url`` and, unless ``migrate`` is false, upgrade the schema."""
        engine = create_engine(url)
        try:
            if migrate:
                await upgrade(engine)
            if _on_threads(engine):
                await engine.dispose()  # its connection served the migration; queries use threads
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine, **options)

    async def close(self) -> None:
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=10)
        await self._runner.close()
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
        await self._runner.read(lambda conn: conn.execute(text("SELECT 1")).scalar_one())

    # -- event ledger -------------------------------------------------------------------------

    @_whole
    async def claim_event(self, key: str) -> bool:
        """Record ``key``; True for the one caller (in any replica) that recorded it first."""
        _check_event_key(key)
        params = {"key": key, "created_at": self._clock()}
        try:
            row = await self._runner.write(_first_of(self._claim, params), urgent=True)
        except IntegrityError:
            return False
        return row is not None

    @_whole
    async def prune_events(self, older_than: timedelta) -> int:
        """Forget ledger entries older than ``older_than``; returns how many were removed."""
        stmt = delete(_events).where(_events.c.created_at < self._clock() - older_than)
        return await self._runner.write(lambda conn: max(conn.execute(stmt).rowcount, 0))

    # -- conversations ------------------------------------------------------------------------

    @_whole
    async def get_conversation(
        self, platform: str, workspace: str, channel: str, thread: str
    ) -> ConversationRecord | None:
        params = _thread(platform, workspace, channel, thread)
        row = await self._runner.read(_first_of(_FIND_CONVERSATION, params))
        return None if row is None else _conversation(row)

    @_whole
    async def ensure_conversation(
        self, platform: str, workspace: str, channel: str, thread: str, backend: str,
        *, profile: str | None = None,
    ) -> ConversationRecord:
        """Get the thread's conversation, creating it if needed.

        Race-safe: concurrent callers all get the one row the unique key lets through. An
        existing conversation keeps its original ``backend`` and ``profile`` (its session lives
        there) — except one from before profiles (no profile), which adopts ``profile``.
        """
        existing = await self.get_conversation(platform, workspace, channel, thread)
        if existing is not None:
            if profile is not None and existing.profile is None:
                now = self._clock()
                return await self._runner.write(
                    lambda conn: _adopt(conn, existing, profile, backend, now), urgent=True)
            return existing
        now = self._clock()
        params = {**_thread(platform, workspace, channel, thread), "backend": backend,
                  "session_id": None, "created_at": now, "updated_at": now, "profile": profile}
        try:
            row = await self._runner.write(_first_of(self._create_conversation, params), urgent=True)
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
        params = {"conversation_id": conversation_id, "session_id": session_id,
                  "updated_at": self._clock()}
        await self._runner.write(_execute(_UPDATE_CONVERSATION, params))

    # -- runs ---------------------------------------------------------------------------------

    @_whole
    async def create_run(
        self, conversation: ConversationRecord, question: str, asker: str, *, status: str = QUEUED,
        owner: str | None = None, lease: timedelta | None = None,
    ) -> RunRecord:
        """Insert a run for ``conversation`` with a fresh reference id; ``owner`` holds it for
        ``lease`` (see :meth:`claim_orphans`)."""
        _check_status(status)
        now = self._clock()
        values = _run_values(conversation, question, asker, status, now, owner=owner,
                             lease_until=now + lease if owner and lease else None)
        for attempt in range(1, _RUN_ID_ATTEMPTS + 1):
            run_id = self._new_id()
            params = {"id": run_id, **values}
            try:
                return _run(await self._runner.write(
                    lambda conn: conn.execute(_INSERT_RUN, params).one(), urgent=True))
            except IntegrityError:
                # Retry only an id collision; anything else (no such conversation) is real.
                if attempt == _RUN_ID_ATTEMPTS or await self.get_run(run_id) is None:
                    raise
        raise AssertionError("unreachable")

    @_whole
    async def record_question(
        self,
        event_key: str,
        platform: str,
        workspace: str,
        channel: str,
        thread: str,
        backend: str,
        question: str,
        asker: str,
        *,
        owner: str | None = None,
        lease: timedelta | None = None,
        profile: str | None = None,
    ) -> tuple[ConversationRecord, RunRecord] | None:
        """Take in a question in one transaction: :meth:`claim_event`, :meth:`ensure_conversation`
        and :meth:`create_run` (a ``queued`` run), with their semantics.

        Returns the thread's conversation and the new run, or None — having written nothing —
        when ``event_key`` was claimed before (a retry or a duplicate delivery, in this replica
        or another). Race-safe across replicas: of concurrent callers with one key exactly one
        gets a run (the others wait on the key's unique index for its transaction, then find
        the key taken); concurrent first questions of one thread share the one conversation its
        unique key lets through. An existing conversation keeps its ``backend``, ``profile``
        and session, and the run inherits them; one from before profiles (no profile) adopts
        ``profile`` (and ``backend``; its session only when the backend is of the same kind).
        """
        _check_event_key(event_key)
        now = self._clock()
        thread_params = _thread(platform, workspace, channel, thread)
        first_id = self._new_id()  # further ids (after a collision) are drawn in the transaction

        def work(conn: Connection) -> tuple[ConversationRecord, RunRecord] | None:
            if conn.execute(self._claim, {"key": event_key, "created_at": now}).first() is None:
                return None  # taken: the insert did nothing, so this transaction wrote nothing
            row = conn.execute(_FIND_CONVERSATION, thread_params).first()
            if row is None:
                # PostgreSQL: a concurrent first question of this thread makes the insert wait
                # for its transaction and then do nothing; the next statement sees that row.
                row = (conn.execute(self._create_conversation, {
                    **thread_params, "backend": backend, "session_id": None,
                    "created_at": now, "updated_at": now, "profile": profile}).first()
                    or conn.execute(_FIND_CONVERSATION, thread_params).one())
            conversation = _conversation(row)
            if profile is not None and conversation.profile is None:
                conversation = _adopt(conn, conversation, profile, backend, now)
            values = _run_values(conversation, question, asker, QUEUED, now, owner=owner,
                                 lease_until=now + lease if owner and lease else None)
            for attempt in range(_RUN_ID_ATTEMPTS):
                run_id = first_id if attempt == 0 else self._new_id()
                run = conn.execute(self._insert_run_unless_taken, {"id": run_id, **values}).first()
                if run is not None:
                    return conversation, _run(run)
            raise RuntimeError(f"no free run id in {_RUN_ID_ATTEMPTS} attempts")

        return await self._runner.write(work, urgent=True)

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
        row = await self._runner.write(_first_of(_UPDATE_RUN, {"run_id": run_id, **fields}))
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
        params = {"run_id": run_id, "now": now, "stale_before": now - stale_after}

        def work(conn: Connection) -> Row[Any] | None:
            if conn.dialect.name == "postgresql":
                # without this two replicas could each see the other's run still queued
                conn.execute(_LOCK_CONVERSATION_OF_RUN, {"run_id": run_id})
            # SQLite: BEGIN IMMEDIATE took the write lock before this reads, so no stale snapshot
            return conn.execute(_START_RUN, params).first()

        row = await self._runner.write(work)
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
        params: dict[str, Any] = {"run_id": run_id, "status": status, "finished_at": self._clock()}
        if error is not None:
            params["error"] = error
        if answer is not None:
            params["answer"] = _encode_answer(answer)
        if stopped_by is not None:
            params["stopped_by"] = stopped_by
        row = await self._runner.write(_first_of(_FINISH_RUN, params))
        return None if row is None else _run(row)

    @_whole
    async def mark_delivered(self, run_id: str) -> None:
        """The platform took the run's final reply: nobody delivers it again.

        :meth:`finish_run` stores the answer before it is shown; until this is called the run
        keeps its lease, and a replica that finds the lease run out delivers the stored answer.
        """
        stmt = update(_runs).where(_runs.c.id == run_id).values(delivered_at=self._clock())
        await self._runner.write(lambda conn: conn.execute(stmt))

    @_whole
    async def get_run(self, run_id: str) -> RunRecord | None:
        row = await self._runner.read(_first_of(_GET_RUN, {"run_id": run_id}))
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
        row = await self._runner.read(_first_of(stmt))
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
        return [_run(row) for row in await self._runner.read(_all_of(stmt))]

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
        return await self._runner.read(lambda conn: int(conn.execute(stmt).scalar_one()))

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
        return [_run(row) for row in await self._runner.read(_all_of(stmt))]

    # -- run ownership ------------------------------------------------------------------------
    @_whole
    async def claim_orphans(self, owner: str, lease: timedelta, *,
                            platforms: list[str] | None = None) -> list[RunRecord]:
        """Take for ``owner``, until ``lease`` from now, the unfinished runs nobody holds: their
        lease ran out (the replica executing them died), was released (it shut down cleanly),
        or they never had one (rows from before run ownership). Oldest first. A finished run
        whose answer was stored but not marked delivered counts too: its replica died between
        storing and showing the answer (see :meth:`mark_delivered`).

        Race-safe across replicas: one UPDATE whose condition PostgreSQL re-checks on a row
        another transaction just claimed (READ COMMITTED), so each run goes to one claimant;
        SQLite has a single writer. ``platforms``: only runs of these chat platforms (a replica
        takes no run it could not reply to).
        """
        now = self._clock()
        conditions = [_UNFINISHED_OR_UNDELIVERED,
                      or_(_runs.c.lease_until.is_(None), _runs.c.lease_until < now)]
        if platforms is not None:
            conditions.append(_runs.c.platform.in_(platforms))
        stmt = (update(_runs)
                .where(*conditions)
                .values(owner=owner, lease_until=now + lease)
                .returning(*_runs.c))
        rows = await self._runner.write(lambda conn: conn.execute(stmt).all())
        return sorted((_run(row) for row in rows), key=lambda r: (r.created_at, r.id))

    @_whole
    async def renew_leases(self, owner: str, run_ids: list[str], lease: timedelta) -> set[str]:
        """Extend ``owner``'s lease on these runs; return those it still holds (a run missing
        from the answer was taken over after its lease ran out; finished runs still count as
        held — nobody takes those)."""
        if not run_ids:
            return set()
        now = self._clock()
        stmt = (update(_runs)
                .where(_runs.c.id.in_(run_ids), _runs.c.owner == owner)
                .values(lease_until=now + lease)
                .returning(_runs.c.id))
        rows = await self._runner.write(lambda conn: conn.execute(stmt).all())
        return {row[0] for row in rows}

    @_whole
    async def release_leases(self, owner: str, run_ids: list[str]) -> int:
        """Give these runs up (a clean shutdown): the next replica to look takes them at once,
        not a lease period later."""
        if not run_ids:
            return 0
        stmt = (update(_runs)
                .where(_runs.c.id.in_(run_ids), _runs.c.owner == owner, _UNFINISHED_OR_UNDELIVERED)
                .values(owner=None, lease_until=None))
        return int(await self._runner.write(lambda conn: conn.execute(stmt).rowcount))

    @_whole
    async def stop_requests(self, run_ids: list[str]) -> dict[str, str]:
        """Who asked to stop which of these unfinished runs (``run_id → user``).

        A stop pressed on one replica for a run that another replica is executing is written
        to ``stopped_by``; the owning replica polls this and stops the run itself.
        """
        if not run_ids:
            return {}
        rows = await self._runner.read(_all_of(_STOP_REQUESTS, {"run_ids": list(run_ids)}))
        return {row.id: row.stopped_by for row in rows}

    @_whole
    async def set_feedback(self, run_id: str, value: str, user: str) -> bool:
        """Record ``user``'s verdict ("good"/"bad") on a run: one vote per person (:meth:`vote`);
        the run's ``feedback``/``feedback_by`` show the latest vote that changed something.

        Returns False when there is no such run.
        """
        return await self.vote(run_id, user, value) is not VoteOutcome.NO_RUN

    # -- helpers ------------------------------------------------------------------------------

    def _insert_ignoring_conflicts(self, table: Table) -> Insert:
        """INSERT that skips a duplicate key silently (no error in the server's log).

        Other dialects fall back to a plain INSERT whose duplicate raises IntegrityError,
        which callers treat the same way.
        """
        if self._dialect == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing()
        if self._dialect == "sqlite":
            return sqlite.insert(table).on_conflict_do_nothing()
        return insert(table)

    # -- feedback votes -----------------------------------------------------------------------

    @_whole
    async def vote(self, run_id: str, voter: str, value: str) -> "VoteOutcome":
        """Record ``voter``'s verdict ("good"/"bad") on a run: one vote per person per run.

        The same verdict again (a double click, a redelivered click, one click reaching two
        replicas) changes nothing: ``UNCHANGED``. The other verdict replaces that person's own
        vote: ``CHANGED`` — people correct a misclick, and a count still counts each person
        once. The run's ``feedback``/``feedback_by`` take every new or changed vote, for the
        readers that show one verdict. The key (run, voter) decides, in the database, so
        concurrent clicks on several replicas leave one row.
        """
        if value not in FEEDBACK_VALUES:
            raise ValueError(f"feedback must be one of {FEEDBACK_VALUES}, not {value!r}")
        params = {"vote_run": run_id, "vote_voter": voter, "new_value": value, "now": self._clock()}
        insert_vote = self._insert_ignoring_conflicts(_votes).values(
            run_id=bindparam("vote_run"), voter=bindparam("vote_voter"),
            value=bindparam("new_value"), created_at=bindparam("now"),
            updated_at=bindparam("now")).returning(_votes.c.run_id)

        def work(conn: Connection) -> VoteOutcome:
            if conn.execute(_RUN_EXISTS, params).first() is None:
                return VoteOutcome.NO_RUN
            if conn.execute(insert_vote, params).first() is not None:
                outcome = VoteOutcome.RECORDED
            elif conn.execute(_CHANGE_VOTE, params).first() is not None:
                outcome = VoteOutcome.CHANGED
            else:
                return VoteOutcome.UNCHANGED
            conn.execute(_SHOW_VOTE_ON_RUN, params)
            return outcome

        return await self._runner.write(work)

    @_whole
    async def feedback_counts(self, run_id: str) -> dict[str, int]:
        """How many people voted each verdict on a run (``{"good": n, "bad": m}``)."""
        stmt = (select(_votes.c.value, func.count()).where(_votes.c.run_id == run_id)
                .group_by(_votes.c.value))
        rows = await self._runner.read(_all_of(stmt))
        counts = dict.fromkeys(FEEDBACK_VALUES, 0)
        counts.update({row[0]: int(row[1]) for row in rows})
        return counts

    # -- Slack workspaces of the distributed app ------------------------------------------------

    @_whole
    async def slack_workspaces(self) -> dict[str, tuple[str | None, bool]]:
        """Every workspace remembered: ``team id → (enterprise id, installed org-wide)``."""
        rows = await self._runner.read(_all_of(select(_slack_workspaces)))
        return {row.team_id: (row.enterprise_id, bool(row.org_install)) for row in rows}

    @_whole
    async def remember_slack_workspace(self, team_id: str, enterprise_id: str | None,
                                       org_install: bool) -> None:
        """Record (or correct) where a workspace's installation is: its Enterprise Grid and
        whether it is the organisation's. The last writer wins; every replica writes what
        Slack told it."""
        values = {"team_id": team_id, "enterprise_id": enterprise_id,
                  "org_install": org_install, "updated_at": self._clock()}
        dialect = postgresql if self._dialect == "postgresql" else sqlite
        stmt = dialect.insert(_slack_workspaces).values(**values).on_conflict_do_update(
            index_elements=[_slack_workspaces.c.team_id],
            set_={k: v for k, v in values.items() if k != "team_id"})
        await self._runner.write(_execute(stmt))


def _on_threads(engine: AsyncEngine) -> bool:
    """A SQLite file: reached through worker threads (an in-memory one lives in its engine)."""
    return engine.dialect.name == "sqlite" and not is_sqlite_memory(engine.url)


def _execute(stmt: Any, params: Mapping[str, Any] | None = None) -> Callable[[Connection], None]:
    """Unit of work: run ``stmt``, return nothing."""
    def work(conn: Connection) -> None:
        conn.execute(stmt, params)
    return work


def _first_of(stmt: Any, params: Mapping[str, Any] | None = None) -> Callable[[Connection], Row[Any] | None]:
    """Unit of work: run ``stmt`` and return its first row (None if it returned none)."""
    return lambda conn: conn.execute(stmt, params).first()


def _all_of(stmt: Select[Any], params: Mapping[str, Any] | None = None) -> Callable[[Connection], list[Row[Any]]]:
    return lambda conn: list(conn.execute(stmt, params).all())


def _thread(platform: str, workspace: str, channel: str, thread: str) -> dict[str, str]:
    return {"platform": platform, "workspace": workspace, "channel": channel, "thread": thread}


def _run_values(
    conversation: ConversationRecord, question: str, asker: str, status: str, now: datetime,
    *, owner: str | None = None, lease_until: datetime | None = None,
) -> dict[str, Any]:
    """A new run's columns but ``id``; thread, backend and session come from ``conversation``."""
    return {
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
        "owner": owner,
        "lease_until": lease_until,
        "created_at": now,
        "started_at": now if status == RUNNING else None,
        "finished_at": now if status in FINAL_STATUSES else None,
    }


def _history_filter(platform: str, workspace: str, channel: str | None, asker: str | None) -> Any:
    conditions = [_runs.c.platform == platform, _runs.c.workspace == workspace]
    if channel is not None:
        conditions.append(_runs.c.channel == channel)
    if asker is not None:
        conditions.append(_runs.c.asker == asker)
    return and_(*conditions)


def _check_event_key(key: str) -> None:
    if not key or len(key) > EVENT_KEY_MAX:
        raise ValueError(f"event key must be 1..{EVENT_KEY_MAX} characters")


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


def _adopt(conn: Connection, conversation: ConversationRecord, profile: str, backend: str,
           now: datetime) -> ConversationRecord:
    """Give a conversation from before profiles the profile its thread is routed to now."""
    row = conn.execute(_ADOPT_PROFILE, {
        "conversation_id": conversation.id, "new_profile": profile, "new_backend": backend,
        "new_session": conversation.session_id if conversation.backend == backend else None,
        "now": now}).first()
    if row is None:  # another transaction gave it a profile first: that one holds
        row = conn.execute(_FIND_CONVERSATION, _thread(
            conversation.platform, conversation.workspace, conversation.channel,
            conversation.thread)).one()
    return _conversation(row)


def _conversation(row: Row[Any]) -> ConversationRecord:
    return ConversationRecord(**row._mapping)


def _run(row: Row[Any]) -> RunRecord:
    data = dict(row._mapping)
    if data["answer"] is not None:
        data["answer"] = json.loads(data["answer"])
    return RunRecord(**data)


class VoteOutcome(str, enum.Enum):
    """What :meth:`Repository.vote` did."""

    RECORDED = "recorded"  # the person's first vote on the run
    CHANGED = "changed"  # they had voted the other verdict; their vote is now this one
    UNCHANGED = "unchanged"  # they had voted this already: nothing changed
    NO_RUN = "no_run"  # there is no such run


_RUN_EXISTS = select(_runs.c.id).where(_runs.c.id == bindparam("vote_run"))
_CHANGE_VOTE = (update(_votes)
                .where(_votes.c.run_id == bindparam("vote_run"),
                       _votes.c.voter == bindparam("vote_voter"),
                       _votes.c.value != bindparam("new_value"))
                .values(value=bindparam("new_value"), updated_at=bindparam("now"))
                .returning(_votes.c.run_id))
_SHOW_VOTE_ON_RUN = (update(_runs).where(_runs.c.id == bindparam("vote_run"))
                     .values(feedback=bindparam("new_value"), feedback_by=bindparam("vote_voter")))
