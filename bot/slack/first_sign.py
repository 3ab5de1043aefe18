"""The first sign of life for a new question: a status line under its thread, from intake.

A question's placeholder needs the event ledger, the conversation and the run stored first, and
then its channel's posting slot (one message per second per channel): in a burst of a few hundred
questions that takes seconds. A status line (``assistant.threads.setStatus``) needs none of that
and has a limit of its own, so intake shows "is working on it…" as soon as an event is
acknowledged, for events that are plainly questions to the bot: a mention, or a person's direct
message, that is not ``stop``. Slack's own guidance for AI apps is the same ("acknowledge
instantly"). Harmless when the event turns out to be a duplicate: setting the same status twice
changes nothing, and the bot's next message in the thread clears it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.delivery.priority import Priority, call_options
from bot.delivery.tasks import BackgroundTasks
from bot.slack.client import ScheduledWebClient
from bot.slack.deps import is_stop, strip_mentions
from bot.slack.installations import workspace_of
from bot.slack.status import WORKING

log = logging.getLogger(__name__)

REMEMBER = 120.0  # Slack clears a status after two minutes anyway
QUESTION_RECEIVED = "Reading your question…"


class FirstSign:
    def __init__(self, client: ScheduledWebClient, tasks: BackgroundTasks) -> None:
        self._client = client
        self._tasks = tasks
        self._shown: dict[tuple[str, str, str], float] = {}

    def on_event(self, payload: dict[str, Any]) -> None:
        """Called by intake for each acknowledged Events API payload, before it is handled."""
        event = payload.get("event") or {}
        if not _is_question(event):
            return
        team = workspace_of(payload)  # the thread's workspace, as the listeners will name it
        channel = str(event.get("channel") or "")
        thread = str(event.get("thread_ts") or event.get("ts") or "")
        if not channel or not thread:
            return
        self._forget_old()
        self._shown[(team, channel, thread)] = time.monotonic()
        self._tasks.spawn(self._show(team, channel, thread), name=f"first-sign-{thread}")

    def shown(self, team: str, channel: str, thread: str) -> bool:
        """Did intake show a status under this thread recently?"""
        at = self._shown.get((team, channel, thread))
        return at is not None and time.monotonic() - at < REMEMBER

    async def _show(self, team: str, channel: str, thread: str) -> None:
        try:
            with call_options(Priority.ACK, retries=0):
                await self._client.for_workspace(team).assistant_threads_setStatus(
                    channel_id=channel, thread_ts=thread, status=WORKING,
                    loading_messages=[QUESTION_RECEIVED])
        except SlackApiError as exc:  # no scope, not allowed: the placeholder follows anyway
            log.debug("first status for %s not set: %s", thread, exc.response.get("error"))
        except Exception as exc:  # network trouble: not worth more than a log line
            log.debug("first status for %s not set: %s", thread, exc)

    def _forget_old(self) -> None:
        if len(self._shown) < 4096:
            return
        cutoff = time.monotonic() - REMEMBER
        self._shown = {k: t for k, t in self._shown.items() if t >= cutoff}


def _is_question(event: dict[str, Any]) -> bool:
    kind = event.get("type")
    if kind == "app_mention":
        pass
    elif kind == "message" and event.get("channel_type") == "im":
        if event.get("bot_id") or event.get("subtype") not in (None, "file_share"):
            return False
    else:
        return False
    text = strip_mentions(str(event.get("text") or ""))
    return bool(text) and not is_stop(text)
