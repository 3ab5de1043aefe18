"""Block actions: the Stop button, feedback, suggested follow-ups and history paging."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.relay import Question, ThreadRef
from bot.slack.deps import PLATFORM, SlackDeps
from bot.slack.history import HISTORY_MORE_ACTION
from bot.slack.listeners.commands import respond_history
from bot.slack.listeners.stopping import MESSAGES, stop_run, tell
from bot.slack.render import FEEDBACK_ACTION, STOP_ACTION, SUGGESTION_ACTION


def _channel_of(body: dict[str, Any]) -> str:
    return (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id", "")


def _thread_of(body: dict[str, Any]) -> str | None:
    container = body.get("container") or {}
    return container.get("thread_ts") or (body.get("message") or {}).get("thread_ts")


def register(app: AsyncApp, deps: SlackDeps) -> None:
    async def on_stop(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient,
                      respond: AsyncRespond) -> None:
        await ack()
        user = body["user"]["id"]
        run_id = body["actions"][0]["value"]
        result = await stop_run(deps, client, run_id, user)
        message = MESSAGES[result]
        if message:
            await tell(client, _channel_of(body), user, message, _thread_of(body))

    async def on_feedback(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        user = body["user"]["id"]
        value = body["actions"][0].get("value", "")
        verdict, _, run_id = value.partition(":")
        stored = run_id and await deps.repo.set_feedback(run_id, verdict, user)
        text = ("Thanks — glad it helped." if verdict == "good" else
                "Thanks — noted. Rephrasing the question or adding detail often helps.") if stored \
            else "I could not record that feedback."
        await tell(client, _channel_of(body), user, text, _thread_of(body))

    async def on_history_more(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient,
                              respond: AsyncRespond) -> None:
        await ack()
        channel, _, offset = body["actions"][0]["value"].rpartition(":")
        await respond_history(deps, client, respond, team=(body.get("team") or {}).get("id", ""),
                              channel=channel, user=body["user"]["id"], offset=int(offset or 0))

    async def on_suggestion(ack: AsyncAck, body: dict[str, Any]) -> None:
        """A suggested follow-up asks that question in the same thread, as the clicking user."""
        await ack()
        thread = _thread_of(body) or (body.get("container") or {}).get("message_ts")
        question = body["actions"][0].get("value", "").strip()
        if not (thread and question):
            return
        ref = ThreadRef(PLATFORM, (body.get("team") or {}).get("id", ""), _channel_of(body), thread)
        await deps.relay.ask(Question(ref=ref, text=question, asker=body["user"]["id"]))

    app.action(STOP_ACTION)(on_stop)
    app.action(re.compile(f"^{SUGGESTION_ACTION}:\\d+$"))(on_suggestion)
    app.action(FEEDBACK_ACTION)(on_feedback)
    app.action(HISTORY_MORE_ACTION)(on_history_more)
