"""Slack's native status line under a thread ("insightbot is working on it…").

``assistant.threads.setStatus`` (with ``chat:write`` since 2026-03, so it works in channels) shows
progress *without* spending the workspace's ``chat.update`` budget: it has a limit of its own.
The reply sink uses it where edits cannot keep up — while a placeholder waits for the channel's
posting slot, and when progress edits have thinned out because many runs share the budget — so
what the agent is doing stays visible.

Latest text wins: a worker sends the newest wanted status when the thread's status limiter allows
(one change per thread per ``SLACK_STATUS_INTERVAL``). Slack removes a status after two minutes
without a message, so a status still wanted is re-sent before then. Posting a message in the
thread clears it on Slack's side (:meth:`posted`); :meth:`close` clears what is left.
"""

from __future__ import annotations

import asyncio
import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery.priority import Priority, call_options
from bot.delivery.tasks import BackgroundTasks

log = logging.getLogger(__name__)

WORKING = "is working on it…"
REARM_AFTER = 100.0  # Slack drops a status after 120 s without a message
MAX_LOADING_TEXT = 120


class ThreadStatus:
    def __init__(self, client: AsyncWebClient, channel: str, thread_ts: str,
                 tasks: BackgroundTasks, *, rearm_after: float = REARM_AFTER) -> None:
        self._client = client
        self._channel = channel
        self._thread = thread_ts
        self._tasks = tasks
        self._rearm_after = rearm_after
        self._wanted: str | None = None
        self._shown: str | None = None
        self._changed = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._closed = False
        self._broken = False  # the workspace refuses statuses (no scope, not allowed): stop trying

    def show(self, step: str) -> None:
        """Show ``step`` (e.g. "Writing SQL…") under the thread as soon as the limit allows."""
        if self._closed or self._broken:
            return
        self._wanted = (step or "").strip()[:MAX_LOADING_TEXT] or "Working on it…"
        self._changed.set()
        if self._worker is None or self._worker.done():
            self._worker = self._tasks.spawn(self._run(), name=f"status-{self._thread}")

    def posted(self) -> None:
        """The bot posted in the thread, which clears the status on Slack's side."""
        self._shown = None
        self._wanted = None

    async def close(self) -> None:
        """Stop updating; clear a status that may still be shown."""
        self._closed = True
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        if self._shown is not None and not self._broken:
            self._shown = None
            await self._send("", [])

    async def _run(self) -> None:
        while not self._closed:
            try:
                await asyncio.wait_for(self._changed.wait(), self._rearm_after)
            except TimeoutError:
                pass  # re-arm: Slack would drop the status soon
            self._changed.clear()
            wanted = self._wanted
            if wanted is None or self._broken:
                continue
            if await self._send(WORKING, [wanted]):
                self._shown = wanted
            elif not self._broken:  # rate limited: the limiter is held; try again with the newest
                self._changed.set()

    async def _send(self, status: str, loading: list[str]) -> bool:
        try:
            with call_options(Priority.HOUSEKEEPING, retries=1):
                await self._client.assistant_threads_setStatus(
                    channel_id=self._channel, thread_ts=self._thread, status=status,
                    loading_messages=loading or None)
            return True
        except SlackApiError as exc:
            error = exc.response.get("error", "")
            if exc.response.status_code != 429:
                self._broken = True  # e.g. missing_scope: the placeholder still shows progress
            log.debug("status for %s not set: %s", self._thread, error)
            return False
        except Exception as exc:  # network trouble: a status is not worth more than a log line
            log.debug("status for %s not set: %s", self._thread, exc)
            return False
