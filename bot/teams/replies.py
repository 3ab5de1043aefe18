"""Short replies (help, history, stop notices) sent after the inbound request has returned.

The Bot Connector wants ``/api/messages`` answered within seconds or it redelivers the
activity, and a throttled reply can wait out a ``Retry-After``; so a handler never sends while
the request is open. It hands the reply to :class:`Replies`, which sends it in a background task
(strongly referenced — asyncio keeps only weak ones) and waits for stragglers at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Coroutine

from microsoft_agents.activity import Activity

from bot.teams.connector import TeamsConnector
from bot.teams.target import ReplyTarget

log = logging.getLogger(__name__)


class Replies:
    def __init__(self, connector: TeamsConnector, *, close_timeout: float = 5.0) -> None:
        self._connector = connector
        self._tasks: set[asyncio.Task[None]] = set()
        self._close_timeout = close_timeout

    def send(self, target: ReplyTarget, activity: Activity) -> None:
        self.run(self.deliver(target, activity), name="teams-reply")

    def delete(self, target: ReplyTarget, activity_id: str) -> None:
        self.run(self.deliver_delete(target, activity_id), name="teams-delete")

    def run(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        """Run ``work`` after the request returned (kept referenced, awaited at shutdown)."""
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def deliver(self, target: ReplyTarget, activity: Activity) -> None:
        try:
            await self._connector.post(target, activity)
        except Exception:
            log.warning("a Teams reply could not be delivered", exc_info=True)

    async def deliver_delete(self, target: ReplyTarget, activity_id: str) -> None:
        try:
            await self._connector.delete(target, activity_id)
        except Exception:
            log.info("a Teams message could not be deleted", exc_info=True)

    async def close(self) -> None:
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=self._close_timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
