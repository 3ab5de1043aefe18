"""Per-key sliding-window budgets, shared by every run of a workspace.

Slack's ``chat.update`` is Tier 3: about 50 calls a minute per workspace *and app*, shared by all
concurrent runs. Each run pacing itself is not enough when ten analyses run at once, so every
edit first takes a slot from the workspace's budget; when the budget is spent the caller waits
(and its coalescer keeps only the latest snapshot meanwhile).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Callable


class RateBudget:
    def __init__(self, per_window: int, window: float = 60.0, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if per_window < 1:
            raise ValueError("per_window must be at least 1")
        self.per_window = per_window
        self.window = window
        self._clock = clock
        self._stamps: dict[str, deque[float]] = {}
        self._blocked_until: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _trim(self, key: str, now: float) -> deque[float]:
        stamps = self._stamps.setdefault(key, deque())
        while stamps and now - stamps[0] >= self.window:
            stamps.popleft()
        return stamps

    def wait_time(self, key: str) -> float:
        """Seconds until a slot frees up for ``key`` (0 when one is free now)."""
        now = self._clock()
        blocked = max(0.0, self._blocked_until.get(key, 0.0) - now)
        stamps = self._trim(key, now)
        if len(stamps) < self.per_window:
            return blocked
        return max(blocked, stamps[0] + self.window - now)

    async def acquire(self, key: str) -> None:
        """Take one slot for ``key``, waiting (in arrival order) until one is free."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            while (delay := self.wait_time(key)) > 0:
                await asyncio.sleep(delay)
            self._stamps[key].append(self._clock())

    def penalise(self, key: str, seconds: float) -> None:
        """After a 429, hold every caller for ``key`` for ``seconds`` (Slack's Retry-After)."""
        until = self._clock() + seconds
        self._blocked_until[key] = max(self._blocked_until.get(key, 0.0), until)
