"""Latest-snapshot-wins pacing for one message's progress.

A run produces snapshots much faster than a chat platform accepts edits. The coalescer keeps only
the newest snapshot and offers it to ``send`` once the message's interval has passed. ``send``
answers whether the edit went out: a platform whose budget has no slot for progress just says
no, and the coalescer tries again a little later with whatever is newest then — intermediate
snapshots are skipped, never queued, so a busy platform makes edits rarer, not later.

``interval`` may be a callable: the scheduler lengthens it as more runs share the budget.
``drain`` waits for an edit in flight and stops the pacing so the caller can send the final state
last — after it, nothing else is sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, Generic, TypeVar

S = TypeVar("S")
log = logging.getLogger(__name__)

Interval = float | Callable[[], float]


class Coalescer(Generic[S]):
    def __init__(self, send: Callable[[S], Awaitable[bool | None]], *, interval: Interval,
                 retry: Interval | None = None) -> None:
        self._send = send
        self._interval = interval
        self._retry = retry if retry is not None else interval
        self._latest: S | None = None
        self._dirty = asyncio.Event()
        self._closed = False
        self._last_sent = 0.0
        self._worker: asyncio.Task[None] | None = None
        self._sending: asyncio.Future[None] | None = None
        self.sent = 0
        self.skipped = 0
        self.refused = 0

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
        next_try = 0.0
        while not self._closed:
            await self._dirty.wait()
            wait = max(self._last_sent + _seconds(self._interval), next_try) - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if self._closed:
                return
            self._dirty.clear()
            state = self._latest
            loop = asyncio.get_running_loop()
            self._sending = loop.create_future()
            went = True
            try:
                went = (await self._send(state)) is not False  # type: ignore[arg-type]
            except Exception as exc:  # an intermediate edit is not worth failing the run for
                log.warning("progress edit dropped: %s", exc)
            finally:
                self._sending.set_result(None)
                self._sending = None
            if went:
                self.sent += 1
                self._last_sent = time.monotonic()
                next_try = 0.0
            else:  # no slot for progress now: keep the newest snapshot and try again later
                self.refused += 1
                if not self._dirty.is_set():
                    self._dirty.set()
                next_try = time.monotonic() + _seconds(self._retry)

    async def drain(self) -> None:
        """Stop pacing; wait for an edit already on the wire so the final one lands last."""
        self._closed = True
        sending = self._sending
        if sending is not None:
            await asyncio.shield(sending)
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)


def _seconds(value: Interval) -> float:
    return value() if callable(value) else value
