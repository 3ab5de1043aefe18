"""One delivery scheduler per platform: each method's own limit, per workspace, channel or thread.

The rules come from the platform (``bot/slack/limits.py``, ``bot/teams/limits.py``); this class
only knows how to find the :class:`~bot.delivery.limiter.Limiter` that guards a call:

* a rule names the windows and what they are counted per — the workspace (Slack's
  ``chat.update``), the channel (``chat.postMessage``), the thread (a status line) or a Teams
  conversation (which the platform passes as the workspace of the scope);
* methods sharing one budget name the same ``budget`` (Teams counts every send together);
* a method without a rule is not limited here (its 429s are still honoured by the client).

It also counts the live replies per workspace so progress can thin out as they grow: each
message's progress interval is ``live replies × the budget's progress spacing``, which keeps all
live runs together inside the share of the budget progress may use.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Mapping

from bot.delivery.limiter import Limiter, Window
from bot.delivery.priority import Priority


class Per(enum.Enum):
    WORKSPACE = "workspace"
    CHANNEL = "channel"
    THREAD = "thread"


@dataclass(frozen=True)
class Scope:
    """Where a call lands: workspace (or Teams conversation), channel, thread."""

    workspace: str
    channel: str = ""
    thread: str = ""


@dataclass(frozen=True)
class Rule:
    windows: tuple[Window, ...]
    per: Per = Per.WORKSPACE
    budget: str = ""  # methods with the same budget name share one limiter
    # the share progress may use; None: the scheduler's. A method that carries only progress
    # (Slack's chat.appendStream: the final answer goes with another method) takes all of it.
    progress_share: float | None = None

    def key(self, method: str, scope: Scope) -> tuple[str, ...]:
        name = self.budget or method
        if self.per is Per.WORKSPACE:
            return (name, scope.workspace)
        if self.per is Per.CHANNEL:
            return (name, scope.workspace, scope.channel)
        return (name, scope.workspace, scope.channel, scope.thread)


class Scheduler:
    _SWEEP_EVERY = 512  # new limiters between sweeps of idle ones

    def __init__(self, rules: Mapping[str, Rule], *, progress_share: float = 2 / 3,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rules = dict(rules)
        self.progress_share = progress_share
        self._clock = clock
        self._limiters: dict[tuple[str, ...], Limiter] = {}
        self._created = 0
        self._live: Counter[str] = Counter()

    def limiter(self, method: str, scope: Scope) -> Limiter | None:
        rule = self.rules.get(method)
        if rule is None:
            return None
        key = rule.key(method, scope)
        limiter = self._limiters.get(key)
        if limiter is None:
            self._created += 1
            if self._created % self._SWEEP_EVERY == 0:
                self._sweep()
            share = rule.progress_share if rule.progress_share is not None else self.progress_share
            limiter = Limiter(rule.windows, progress_share=share, clock=self._clock)
            self._limiters[key] = limiter
        return limiter

    # -- live replies and progress pacing ----------------------------------------------------
    def enter(self, workspace: str) -> None:
        self._live[workspace] += 1

    def leave(self, workspace: str) -> None:
        self._live[workspace] -= 1
        if self._live[workspace] <= 0:
            del self._live[workspace]

    def live(self, workspace: str) -> int:
        return self._live.get(workspace, 0)

    def progress_interval(self, method: str, scope: Scope, base: float) -> float:
        """Seconds between progress edits of one message, given everything live beside it."""
        limiter = self.limiter(method, scope)
        if limiter is None:
            return base
        return max(base, self.live(scope.workspace) * limiter.progress_spacing)

    def _sweep(self) -> None:
        for key in [k for k, lim in self._limiters.items() if lim.idle()]:
            del self._limiters[key]


async def first_slot(scheduler: Scheduler, methods: list[str], scope: Scope,
                     priority: Priority) -> tuple[str, float | None]:
    """Wait for a slot of whichever method's budget frees first; return that method and the
    slot's grant stamp (pass it on as the call's ``grant``). A method without a rule is free at
    once (no stamp).
    """
    waits: dict[asyncio.Task[float], tuple[str, Limiter]] = {}
    for method in methods:
        limiter = scheduler.limiter(method, scope)
        if limiter is None:
            return method, None
        waits[asyncio.ensure_future(limiter.acquire(priority))] = (method, limiter)
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            if not task.done():
                task.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
    granted = [(methods.index(m), m, lim, t.result()) for t, (m, lim) in waits.items()
               if t.done() and not t.cancelled() and t.exception() is None]
    if not granted:
        raise next(iter(done)).exception() or RuntimeError("no slot")  # type: ignore[misc]
    granted.sort(key=lambda g: g[0])
    for _, _, limiter, stamp in granted[1:]:
        limiter.completed(stamp)  # also granted at the same moment: give it back
    _, method, _, stamp = granted[0]
    return method, stamp
