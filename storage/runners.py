"""How the repository's units of work reach the database.

A unit of work is a plain function of a (blocking) SQLAlchemy :class:`Connection`. A runner
executes it, as one transaction (:meth:`write`) or as standalone reads (:meth:`read`):

* :class:`ThreadRunner` (SQLite files) runs it in a worker thread on the stdlib ``sqlite3``
  driver. Writes go to one thread with one connection, so this process's write transactions
  queue instead of contending for the lock, and each runs from ``BEGIN IMMEDIATE`` to
  ``COMMIT`` inside one thread hop. Through aiosqlite every statement cost four hops between
  the event loop and the connection's thread (cursor, execute, fetch, close) with the write
  lock held across all of them, so the busier the loop, the longer everyone else waited
  (bench/README.md, "Storage under a burst"). The queue is first come, first served, except
  that *urgent* work — taking in a question, whose placeholder the user is waiting for — goes
  first. Reads get a few threads of their own; under WAL they never wait for the writer.
* :class:`AsyncRunner` (PostgreSQL, and an in-memory SQLite database, which exists only in its
  engine's one connection) runs it on the async engine through ``run_sync``: the same statements
  and transactions as before.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.engine import create_sqlite_sync_engine, normalize_url

T = TypeVar("T")
Work = Callable[[Connection], T]

# Reader threads (and connections) for SQLite. Reads are short and mostly Python work under the
# GIL: in the 200-question burst 1, 2, 4 and 8 readers made no difference beyond noise (2 cores);
# a few let slower reads (history pages) overlap their time inside SQLite.
SQLITE_READERS = 4


class AsyncRunner:
    """Units of work on an :class:`AsyncEngine`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def write(self, work: Work[T], *, urgent: bool = False) -> T:  # noqa: ARG002 - no queue
        async with self.engine.begin() as conn:
            return await conn.run_sync(work)

    async def read(self, work: Work[T]) -> T:
        async with self.engine.connect() as conn:
            return await conn.run_sync(work)

    async def close(self) -> None:
        await self.engine.dispose()


class ThreadRunner:
    """Units of work in worker threads on a SQLite file: one writer, ``readers`` readers.

    Threads and connections are made on first use and released by :meth:`close`; a runner used
    again after :meth:`close` starts afresh.
    """

    def __init__(self, url: Any, *, readers: int = SQLITE_READERS) -> None:
        self.url = normalize_url(url)
        self.readers = readers
        self._lock = threading.Lock()
        self._parts: tuple[_Writer, Engine, ThreadPoolExecutor] | None = None

    def _get(self) -> tuple[_Writer, Engine, ThreadPoolExecutor]:
        with self._lock:
            if self._parts is None:
                self._parts = (
                    _Writer(create_sqlite_sync_engine(self.url, connections=1)),
                    create_sqlite_sync_engine(self.url, connections=self.readers, read_only=True),
                    ThreadPoolExecutor(self.readers, thread_name_prefix="sqlite-reader"),
                )
            return self._parts

    async def write(self, work: Work[T], *, urgent: bool = False) -> T:
        writer, _, _ = self._get()
        return await asyncio.wrap_future(writer.submit(work, urgent=urgent))

    async def read(self, work: Work[T]) -> T:
        _, reader, threads = self._get()
        return await asyncio.get_running_loop().run_in_executor(threads, _standalone, reader, work)

    async def close(self) -> None:
        """Let queued work finish, then close the connections and end the threads."""
        with self._lock:
            parts, self._parts = self._parts, None
        if parts is not None:
            await asyncio.to_thread(_shut, *parts)


class _Writer:
    """One thread with the one writer connection, running units of work as transactions.

    Urgent work first, otherwise first come, first served. A daemon thread: a repository
    never closed must not keep the interpreter from exiting (SQLite survives a cut-off
    transaction; it is rolled back at the next open).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: queue.PriorityQueue[tuple[int, int, Future[Any] | None, Work[Any] | None]] = (
            queue.PriorityQueue())
        self._order = itertools.count()
        self._thread = threading.Thread(target=self._serve, name="sqlite-writer", daemon=True)
        self._thread.start()

    def submit(self, work: Work[T], *, urgent: bool) -> Future[T]:
        future: Future[T] = Future()
        self._queue.put((0 if urgent else 1, next(self._order), future, work))
        return future

    def shutdown(self) -> None:
        """Finish everything queued before this call, then end the thread."""
        self._queue.put((2, next(self._order), None, None))
        self._thread.join()

    def _serve(self) -> None:
        while True:
            _, _, future, work = self._queue.get()
            if future is None or work is None:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(_in_transaction(self.engine, work))
            except BaseException as exc:  # handed to the awaiting task
                future.set_exception(exc)


def _in_transaction(engine: Engine, work: Work[T]) -> T:
    with engine.begin() as conn:  # BEGIN IMMEDIATE … COMMIT (ROLLBACK if work raises)
        return work(conn)


def _standalone(engine: Engine, work: Work[T]) -> T:
    with engine.connect() as conn:  # READ_ONLY: no transaction, each statement on its own
        return work(conn)


def _shut(writer: _Writer, reader: Engine, read_threads: ThreadPoolExecutor) -> None:
    writer.shutdown()
    read_threads.shutdown(wait=True)
    reader.dispose()
    writer.engine.dispose()
