"""Admission for one platform method in one scope: sliding windows, priorities and holds.

A chat platform publishes its limits as "N calls per window" for a method, per workspace (Slack's
``chat.update``), per channel (``chat.postMessage``) or per conversation (Teams). A
:class:`Limiter` guards one such budget for one key and decides who may call next:

* **Windows.** A grant is allowed only while every window still has room, counted over the
  exact grant times (a sliding log), so the published number is never exceeded in *any*
  window — a token bucket would allow twice the number across a window boundary.
* **Priorities.** Callers that must wait queue by :class:`~bot.delivery.priority.Priority`,
  first come first served within one priority. A final answer therefore never waits behind
  another run's progress edit.
* **Progress never queues.** :meth:`try_progress` either takes a slot now or refuses. It may
  only use a share of each window (the rest is headroom for placeholders and finals) and is
  spread evenly (at most one grant per :attr:`progress_spacing`), so a burst of progress
  cannot spend the budget in the first seconds and stall every final for a minute.
* **Holds.** After a 429, :meth:`hold` stops every grant for the platform's ``Retry-After``.
* **Closed loop.** A grant counts as happening *now* for as long as its call is in flight, and
  from the moment it was answered once the caller says so (:meth:`completed`). The platform
  counted the call somewhere in between, so spacing measured this way can only be wider than the
  platform's: a request that left late (a busy loop, a slow network) cannot make the next one
  arrive too soon. A grant never reported is released after ``IN_FLIGHT_LIMIT``.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Sequence

from bot.delivery.priority import Priority

Clock = Callable[[], float]

IN_FLIGHT_LIMIT = 30.0  # a call not reported after this long no longer counts as in flight


@dataclass(frozen=True)
class Window:
    """At most ``limit`` calls in any ``seconds``-long window."""

    limit: int
    seconds: float

    def __post_init__(self) -> None:
        if self.limit < 1 or self.seconds <= 0:
            raise ValueError("a window needs limit >= 1 and seconds > 0")


class SlotTimeout(Exception):
    """No slot was granted within the caller's wait."""


class Limiter:
    def __init__(self, windows: Sequence[Window], *, progress_share: float = 2 / 3,
                 clock: Clock = time.monotonic) -> None:
        if not windows:
            raise ValueError("a limiter needs at least one window")
        if not 0 < progress_share <= 1:
            raise ValueError("progress_share must be in (0, 1]")
        self.windows = tuple(windows)
        self._progress_limits = tuple(max(1, math.floor(w.limit * progress_share))
                                      for w in self.windows)
        #: the even spacing of progress grants that keeps them inside their share of every window
        self.progress_spacing = max(w.seconds / n for w, n in zip(self.windows, self._progress_limits))
        self._span = max(w.seconds for w in self.windows)
        self._clock = clock
        self._stamps: deque[float] = deque()  # grants, in order (in flight: when granted)
        self._in_flight: list[float] = []  # grants whose calls have not been answered yet
        self._waiters: list[tuple[int, int, asyncio.Future[float]]] = []
        self._order = itertools.count()
        self._held_until = 0.0
        self._last_progress = -math.inf
        self._timer: asyncio.TimerHandle | None = None

    # -- admission -------------------------------------------------------------------------
    async def acquire(self, priority: Priority, *, timeout: float | None = None) -> float:
        """Take a slot, waiting behind callers of the same or a higher priority; return its stamp.

        ``timeout`` bounds the wait (:class:`SlotTimeout`).
        """
        if priority is Priority.PROGRESS:
            raise ValueError("progress never queues: use try_progress()")
        seq = next(self._order)
        now = self._clock()
        if not self._ahead_of(priority, seq) and self.free_at(now) <= now:
            return self._grant()
        if timeout is not None and self.free_at(now) - now > timeout:
            raise SlotTimeout(f"no slot within {timeout:g} s")  # certain now: fail fast
        loop = asyncio.get_running_loop()
        future: asyncio.Future[float] = loop.create_future()
        heapq.heappush(self._waiters, (int(priority), seq, future))
        self._arm()
        try:
            done, _ = await asyncio.wait({future}, timeout=timeout)
        except BaseException:
            if future.done() and not future.cancelled():
                self.completed(future.result())  # granted, but the caller is gone: release it
            future.cancel()
            self._arm()
            raise
        if not done:
            future.cancel()
            self._arm()
            raise SlotTimeout(f"no slot within {timeout:g} s")
        return future.result()

    def try_progress(self) -> float | None:
        """Take a slot for a progress update now (its stamp), or refuse with None: progress is
        dropped, never queued."""
        if any(not f.done() for _, _, f in self._waiters):
            return None
        now = self._clock()
        if self.free_at(now, progress=True) > now:
            return None
        self._last_progress = now
        return self._grant()

    def completed(self, stamp: float) -> None:
        """The call granted at ``stamp`` has been answered (or was never made): count it from now
        on, and no longer as in flight."""
        try:
            self._in_flight.remove(stamp)
        except ValueError:
            return
        stamps = self._stamps
        i = bisect.bisect_left(stamps, stamp)
        if i < len(stamps) and stamps[i] == stamp:
            del stamps[i]
        bisect.insort(stamps, max(stamp, self._clock()))
        self._arm()

    def hold(self, seconds: float) -> None:
        """Grant nothing for ``seconds`` (a 429's ``Retry-After``)."""
        self._held_until = max(self._held_until, self._clock() + max(0.0, seconds))
        self._arm()

    # -- reading -------------------------------------------------------------------------
    def free_at(self, now: float | None = None, *, progress: bool = False) -> float:
        """The earliest time a grant fits every window (``now`` or later)."""
        now = self._clock() if now is None else now
        self._trim(now)
        at = max(now, self._held_until)
        limits = self._progress_limits if progress else tuple(w.limit for w in self.windows)
        if progress:
            at = max(at, self._last_progress + self.progress_spacing)
        stamps: Sequence[float] = self._stamps
        if self._in_flight:  # in flight: as if granted now (bounded by IN_FLIGHT_LIMIT)
            flying = set(self._in_flight)
            stamps = sorted([s for s in self._stamps if s not in flying]
                            + [max(s, min(now, s + IN_FLIGHT_LIMIT)) for s in self._in_flight])
        moved = True
        while moved:
            moved = False
            for window, limit in zip(self.windows, limits):
                inside = len(stamps) - bisect.bisect_right(stamps, at - window.seconds)
                if inside >= limit:
                    # room again once the limit-th most recent grant leaves the window
                    frees = stamps[len(stamps) - limit] + window.seconds
                    if frees > at:
                        at, moved = frees, True
        return at

    @property
    def held_until(self) -> float:
        """When a 429 hold ends (in the limiter's clock); in the past when there is none."""
        return self._held_until

    def ready(self) -> bool:
        """Would a new caller of any priority be granted at once?"""
        now = self._clock()
        return not self.waiting and self.free_at(now) <= now

    def room(self) -> int:
        """How many calls every window would still admit now (0 while a 429 holds the method or
        callers queue): what a caller planning several calls of this method can count on."""
        now = self._clock()
        self._trim(now)
        if self.waiting or self._held_until > now:
            return 0
        stamps = self._stamps
        return max(0, min(w.limit - (len(stamps) - bisect.bisect_right(stamps, now - w.seconds))
                          for w in self.windows))

    @property
    def waiting(self) -> int:
        return sum(1 for _, _, f in self._waiters if not f.done())

    def idle(self) -> bool:
        """Nothing waits and no grant is recent enough to matter: safe to forget."""
        now = self._clock()
        self._trim(now)
        return not self._stamps and not self.waiting and self._held_until <= now

    # -- internals -------------------------------------------------------------------------
    def _ahead_of(self, priority: Priority, seq: int) -> bool:
        return any(not f.done() and (p, s) < (int(priority), seq) for p, s, f in self._waiters)

    def _grant(self) -> float:
        stamp = self._clock()
        while stamp in self._in_flight:  # keep stamps distinct: completed() finds them by value
            stamp = math.nextafter(stamp, math.inf)
        bisect.insort(self._stamps, stamp)
        self._in_flight.append(stamp)
        return stamp

    def _trim(self, now: float) -> None:
        while self._stamps and self._stamps[0] <= now - self._span:
            old = self._stamps.popleft()
            if old in self._in_flight and old + IN_FLIGHT_LIMIT > now:
                bisect.insort(self._stamps, old)  # still in flight: it keeps counting
                break
        self._in_flight = [s for s in self._in_flight if s + IN_FLIGHT_LIMIT > now]

    def _arm(self) -> None:
        """Grant to queued callers whose turn has come; set a timer for the next one."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiters:
            _, _, future = self._waiters[0]
            if future.done():  # timed out or cancelled while waiting
                heapq.heappop(self._waiters)
                continue
            now = self._clock()
            delay = self.free_at(now) - now
            if delay > 0:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(delay, self._arm)
                return
            heapq.heappop(self._waiters)
            future.set_result(self._grant())
