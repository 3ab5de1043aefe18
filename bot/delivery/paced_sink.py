"""The reply lifecycle every chat platform shares.

Progress snapshots are paced through a :class:`~bot.delivery.Coalescer` (latest wins); the
final snapshot never is: pacing is drained first, so no progress edit can land after it, and a
failure to deliver it is logged rather than raised into the relay. At shutdown, ``detach`` stops
the pacing and leaves the reply as it is for the next start. Platforms supply the two edits.
"""

from __future__ import annotations

import abc
import logging

from adapters.answer import Answer
from bot.delivery.budget import RateBudget
from bot.delivery.coalescer import Coalescer

log = logging.getLogger(__name__)


class PacedReplySink(abc.ABC):
    run_id: str

    def __init__(self, *, interval: float, budget: RateBudget | None = None,
                 budget_key: str = "") -> None:
        self._coalescer: Coalescer[Answer] = Coalescer(self._edit_progress, interval=interval,
                                                       budget=budget, budget_key=budget_key)

    def show(self, answer: Answer) -> None:
        self._coalescer.offer(answer)

    async def close(self, answer: Answer) -> None:
        await self._coalescer.drain()
        try:
            await self._deliver_final(answer)
        except Exception:
            log.exception("run %s: the final reply could not be delivered", self.run_id)
        await self._after_final(answer)

    async def detach(self) -> None:
        await self._coalescer.drain()

    @abc.abstractmethod
    async def _edit_progress(self, answer: Answer) -> None:
        """Show a progress snapshot in the placeholder (may raise: the edit is just dropped)."""

    @abc.abstractmethod
    async def _deliver_final(self, answer: Answer) -> None:
        """Deliver the finished answer whole, degrading rather than losing it."""

    async def _after_final(self, answer: Answer) -> None:
        """Platform bookkeeping once the final reply is out (best effort)."""
