"""Whether one more reply may stream in a workspace.

``chat.startStream`` and ``chat.stopStream`` are Tier 2 — about 20 calls a minute per
workspace, each. A stream that could start but not be stopped in time would leave a spinning
message behind until Slack's own cut-off, so a reply streams only while the start budget has
room beyond ``reserve`` *and* the stop budget has room for every stream already live plus this
one, beyond ``reserve``. Otherwise it takes the placeholder path (``chat.postMessage`` and
``chat.update``), which looks the same apart from the live text.
"""

from __future__ import annotations

from collections import Counter

from bot.delivery.scheduler import Scheduler, Scope


class StreamBudget:
    def __init__(self, scheduler: Scheduler, *, reserve: int) -> None:
        self.scheduler = scheduler
        self.reserve = reserve
        self._live: Counter[str] = Counter()  # workspace → streams started and not yet ended

    def try_enter(self, scope: Scope) -> bool:
        """Claim a stream for ``scope``'s workspace if both budgets allow it."""
        start = self.scheduler.limiter("chat.startStream", scope)
        stop = self.scheduler.limiter("chat.stopStream", scope)
        live = self._live[scope.workspace]
        if start is not None and start.room() <= self.reserve:
            return False
        if stop is not None and stop.room() - live <= self.reserve:
            return False
        self._live[scope.workspace] += 1
        return True

    def leave(self, workspace: str) -> None:
        if self._live[workspace] > 0:
            self._live[workspace] -= 1

    def live(self, workspace: str) -> int:
        return self._live[workspace]
