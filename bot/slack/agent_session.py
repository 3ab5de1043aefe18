"""Slack's agent session for a thread: ``processing`` while a run works, ``active`` after.

While a session is ``processing`` Slack shows its native Stop button (``agent_session_stopped``
comes back when it is pressed). The call is Tier 3, shared by every run in the workspace, so the
state is latest-wins: a worker sends the newest wanted status when the budget allows, under the
housekeeping priority, and a run that finishes before its ``processing`` went out sends nothing
at all. Best effort: apps not declared as agents get an error, and the Stop button in the reply
still works for them; after such a refusal the workspace is not asked again for an hour
(:class:`Refusals`), so a busy workspace does not spend a Tier 3 call per run on it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery.priority import Priority, call_options
from bot.delivery.tasks import BackgroundTasks

log = logging.getLogger(__name__)

ASK_AGAIN_AFTER = 3600.0


class Refusals:
    """Workspaces that refused agent sessions lately."""

    def __init__(self, ask_again_after: float = ASK_AGAIN_AFTER) -> None:
        self._after = ask_again_after
        self._until: dict[str, float] = {}

    def refused(self, workspace: str) -> bool:
        return self._until.get(workspace, 0.0) > time.monotonic()

    def record(self, workspace: str) -> None:
        self._until[workspace] = time.monotonic() + self._after


class AgentSession:
    def __init__(self, client: AsyncWebClient, workspace: str, channel: str, thread_ts: str,
                 tasks: BackgroundTasks, refusals: Refusals, *, title: str = "",
                 initiator: str = "") -> None:
        self._client = client
        self._workspace = workspace
        self._refusals = refusals
        self._channel = channel
        self._thread = thread_ts
        self._tasks = tasks
        self._wanted: str | None = None
        self._sent: str | None = None
        self._worker: asyncio.Task[None] | None = None
        self._disabled = False
        self._title = _title(title)  # sent once, with the call that opens the session
        self._initiator = initiator

    @property
    def opened(self) -> bool:
        """The session was moved to ``processing`` (so it must be moved out of it again)."""
        return self._sent is not None

    def settled(self, status: str) -> None:
        """``status`` reached Slack another way (``chat.stopStream``'s ``session_status``)."""
        self._sent = status
        if self._wanted is None or self._wanted == status:
            self._wanted = status

    def want(self, status: str) -> None:
        if self._disabled or (self._sent is None and self._refusals.refused(self._workspace)):
            return
        self._wanted = status
        if self._worker is None or self._worker.done():
            self._worker = self._tasks.spawn(self._run(), name=f"agent-session-{self._thread}")

    async def _run(self) -> None:
        while self._wanted != self._sent and not self._disabled:
            wanted = self._wanted
            if self._sent is None and wanted == "active":
                return  # no session was ever opened: nothing to move out of processing
            try:
                opening = {"title": self._title or None,
                           "initiator_user_id": self._initiator or None} if self._sent is None else {}
                with call_options(Priority.HOUSEKEEPING, retries=1):
                    await self._client.agents_sessions_setStatus(
                        channel_id=self._channel, thread_ts=self._thread, status=wanted, **opening)
            except SlackApiError as exc:
                if exc.response.status_code == 429:
                    continue  # the limiter holds the method for Retry-After; try the newest again
                log.debug("agent session %s not set: %s", wanted, exc.response.get("error"))
                self._refusals.record(self._workspace)
                self._disabled = True
                return
            except Exception as exc:  # noqa: BLE001 - never let session bookkeeping break a reply
                log.debug("agent session %s not set: %s", wanted, exc)
                self._disabled = True
                return
            self._sent = wanted


def _title(question: str) -> str:
    """A session title from the question that opened the thread: one line, 1-200 characters."""
    line = " ".join(question.split())
    return line if len(line) <= 200 else line[:199] + "…"
