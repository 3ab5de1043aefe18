"""The registry of live runs, and one-run-per-thread ordering.

Everything here is in-process state: it holds strong references to the run tasks (asyncio keeps
only weak ones), lets ``stop`` find a run by id or by thread, and queues follow-ups behind the
run that is still answering in the same thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from adapters.answer import Answer
from bot.profiles import Profile
from bot.relay.drawings import Drawings
from bot.relay.sink import ReplySink
from bot.relay.thread import ThreadRef

log = logging.getLogger(__name__)


@dataclass
class LiveRun:
    run_id: str
    ref: ThreadRef
    asker: str
    question: str
    sink: ReplySink
    profile: Profile | None = None  # the backend profile it runs on (None: not known yet / gone)
    language: str | None = None
    language_lookup: asyncio.Task[str | None] | None = None  # see Question.language_lookup
    answer: Answer = field(default_factory=Answer)
    task: asyncio.Task[None] | None = None
    consumer: asyncio.Task[None] | None = None  # the backend iteration, cancelled by stop
    placing: asyncio.Task[None] | None = None  # records where the placeholder landed
    drawings: Drawings | None = None  # the run's charts, drawn in the background
    finishing: bool = False  # the final answer is being stored and delivered
    started_at: float | None = None  # monotonic, when the backend was first asked
    stop_requested_by: str | None = None
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    given_up: bool = False  # another replica took it over (its lease ran out here)

    async def asker_language(self) -> str | None:
        """The asker's language: given with the question, or what its lookup found (the
        lookup bounds its own wait; a failed one means no language, never a failed run)."""
        if self.language is None and self.language_lookup is not None:
            try:
                self.language = await self.language_lookup
            except Exception:  # noqa: BLE001 - a language is a nicety
                log.debug("run %s: no language for the asker", self.run_id, exc_info=True)
            self.language_lookup = None
        return self.language

    @property
    def running(self) -> bool:
        return self.started_at is not None

    def elapsed(self) -> float:
        return 0.0 if self.started_at is None else time.monotonic() - self.started_at


class LiveRuns:
    """Live runs by id, and a FIFO lock per thread."""

    def __init__(self) -> None:
        self._runs: dict[str, LiveRun] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiters: dict[str, int] = {}

    def add(self, run: LiveRun) -> None:
        self._runs[run.run_id] = run

    def remove(self, run_id: str) -> None:
        self._runs.pop(run_id, None)

    def get(self, run_id: str) -> LiveRun | None:
        return self._runs.get(run_id)

    def all(self) -> list[LiveRun]:
        return list(self._runs.values())

    def in_thread(self, ref: ThreadRef) -> list[LiveRun]:
        return [r for r in self._runs.values() if r.ref == ref]

    def busy_ahead(self, ref: ThreadRef) -> int:
        """How many runs of this thread are ahead of a newcomer (running or queued)."""
        return self._waiters.get(ref.key, 0)

    async def turn(self, ref: ThreadRef, stop: asyncio.Event) -> "_Turn | None":
        """Wait for this thread's turn; ``None`` if ``stop`` was set while waiting.

        asyncio.Lock wakes waiters in FIFO order, which is the order questions arrived.
        """
        lock = self._locks.setdefault(ref.key, asyncio.Lock())
        self._waiters[ref.key] = self._waiters.get(ref.key, 0) + 1
        acquire = asyncio.ensure_future(lock.acquire())
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({acquire, stopped}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            acquire.cancel()
            stopped.cancel()
            self._leave(ref, lock, acquired=acquire.done() and not acquire.cancelled())
            raise
        stopped.cancel()
        if acquire.done() and not acquire.cancelled() and not stop.is_set():
            return _Turn(self, ref, lock)
        if acquire.done() and not acquire.cancelled():
            self._leave(ref, lock, acquired=True)
        else:
            acquire.cancel()
            self._leave(ref, lock, acquired=False)
        return None

    def _leave(self, ref: ThreadRef, lock: asyncio.Lock, *, acquired: bool) -> None:
        if acquired:
            lock.release()
        left = self._waiters.get(ref.key, 1) - 1
        if left <= 0:
            self._waiters.pop(ref.key, None)
            if not lock.locked():
                self._locks.pop(ref.key, None)
        else:
            self._waiters[ref.key] = left


class _Turn:
    def __init__(self, owner: LiveRuns, ref: ThreadRef, lock: asyncio.Lock) -> None:
        self._owner, self._ref, self._lock = owner, ref, lock

    def release(self) -> None:
        self._owner._leave(self._ref, self._lock, acquired=True)
