"""Latest-snapshot-wins pacing for one message.

A run produces snapshots much faster than a chat platform accepts edits. The coalescer keeps only
the newest snapshot and sends it when the message's minimum interval has passed and the
workspace budget has a slot; intermediate snapshots are skipped, never queued, so a slow or
rate-limited platform makes edits rarer, not later. ``drain`` waits for an edit in flight and
stops the pacing so the caller can send the final state last — after it, nothing else is sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, Generic, TypeVar

from bot.delivery.budget import RateBudget

S = TypeVar("S")
log = logging.getLogger(__name__)


class Coalescer(Generic[S]):
    def __init__(self, send: Callable[[S], Awaitable[None]], *, interval: float,
                 budget: RateBudget | None = None, budget_key: str = "") -> None:
        self._send = send
        self._interval = interval
        self._budget = budget
        self._budget_key = budget_key
        self._latest: S | None = None
        self._dirty = asyncio.Event()
        self._closed = False
        self._last_sent = 0.0
        self._worker: asyncio.Task[None] | None = None
        self._sending: asyncio.Future[None] | None = None
        self.sent = 0
        self.skipped = 0

    def offer(self, state: S) -> None:
        if self._closed:
            return
        if self._latest is not None and self._dirty.is_set():
            self.skipped += 1
        self._latest = state
        self._dirty.set()
        if self._worker is None:
            self._worker = asyncio.create_task(self._run(), name="coalescer")

    def mark_sent(self) -> None:
        """Count an edit made outside the coalescer (the placeholder post) for pacing."""
        self._last_sent = time.monotonic()

    async def _run(self) -> None:
        while not self._closed:
            await self._dirty.wait()
            wait = self._last_sent + self._interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if self._budget is not None:
                await self._budget.acquire(self._budget_key)
            if self._closed:
                return
            self._dirty.clear()
            state = self._latest
            loop = asyncio.get_running_loop()
            self._sending = loop.create_future()
            try:
                await self._send(state)  # type: ignore[arg-type]
                self.sent += 1
            except Exception as exc:  # an intermediate edit is not worth failing the run for
                log.warning("progress edit dropped: %s", exc)
            finally:
                self._last_sent = time.monotonic()
                self._sending.set_result(None)
                self._sending = None

    async def drain(self) -> None:
        """Stop pacing; wait for an edit already on the wire so the final one lands last."""
        self._closed = True
        sending = self._sending
        if sending is not None:
            await asyncio.shield(sending)
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
