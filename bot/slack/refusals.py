"""Saying no in Slack: privately, and without leaving a sign that the bot is at work.

A refused person is told in an ephemeral message only they see (:func:`bot.slack.listeners.
stopping.tell`). Intake may already have shown "is working on it…" under their message (the
first sign, :mod:`bot.slack.first_sign`, goes out before the event is handled), which the whole
channel sees and which would stay for two minutes; it is cleared, unless another run of the
thread is live and owns that status line.
"""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery.priority import Priority, call_options
from bot.relay import ThreadRef
from bot.slack.deps import SlackDeps
from bot.slack.listeners.stopping import tell

log = logging.getLogger(__name__)


async def refuse_in_thread(deps: SlackDeps, client: AsyncWebClient, ref: ThreadRef, user: str,
                           text: str) -> None:
    await tell(client, ref.channel, user, text, ref.thread)
    if deps.relay.runs_in_thread(ref):
        return
    try:
        with call_options(Priority.ACK, retries=0):
            await client.assistant_threads_setStatus(channel_id=ref.channel, thread_ts=ref.thread,
                                                     status="")
    except SlackApiError as exc:  # no assistant scope, or nothing to clear
        log.debug("status under %s not cleared: %s", ref.thread, exc.response.get("error"))
    except Exception as exc:  # network trouble: the status ends by itself within two minutes
        log.debug("status under %s not cleared: %s", ref.thread, exc)
