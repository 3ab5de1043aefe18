"""Answers from Slack kept for a short while, with one lookup in flight per key.

Access checks ask Slack who is in a user group or a channel. Asking on every message would spend
a Tier 2 budget (``usergroups.users.list``: about 20 calls a minute per workspace) on a busy
channel within seconds, and a burst of questions would send the same call many times at once.
So an answer is kept for ``ttl`` seconds, and callers wanting a key already being looked up wait
for that lookup instead of starting their own. A failed lookup is not kept: the next caller asks
again (an access decision must not rest on an error remembered from a minute ago).

The ``ttl`` is the longest a change in Slack (someone removed from a group) takes to show here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MAX_KEYS = 4096  # far more groups and channels than one bot checks; a bound all the same


class LookupFailed(Exception):
    """Slack could not answer a lookup (the message names what and Slack's error); an access
    check resting on it is not passed."""


class Recent(Generic[K, V]):
    def __init__(self, ttl: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._known: dict[K, tuple[V, float]] = {}
        self._pending: dict[K, asyncio.Future[V]] = {}

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The value of ``key``: remembered if fresh, else from ``load`` (shared by concurrent
        callers). ``load``'s exception reaches every caller waiting on it and is not kept."""
        known = self._known.get(key)
        if known is not None and self._clock() - known[1] < self.ttl:
            return known[0]
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._load(key, load))
            pending.add_done_callback(_retrieved)  # (a caller cancelled meanwhile is not told)
            self._pending[key] = pending
        return await asyncio.shield(pending)

    def forget(self, key: K) -> None:
        self._known.pop(key, None)

    async def _load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        try:
            value = await load()
        finally:
            self._pending.pop(key, None)
        if len(self._known) >= MAX_KEYS:
            self._known.clear()
        self._known[key] = (value, self._clock())
        return value


def _retrieved(future: asyncio.Future[object]) -> None:
    if not future.cancelled():
        future.exception()
