"""Block actions: the Stop button, feedback, suggested follow-ups, "View SQL", history paging."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.relay import Question, ThreadRef
from bot.slack.deps import PLATFORM, SlackDeps
from bot.slack.history import HISTORY_MORE_ACTION
from bot.slack.membership import REFUSAL
from bot.slack.listeners.commands import respond_history
from bot.slack.listeners.stopping import MESSAGES, stop_run, tell
from bot.slack.render import (
    FEEDBACK_ACTION, STOP_ACTION, SUGGESTION_ACTION, VIEW_SQL_ACTION, sql_of,
)
from bot.slack.sql_modal import sql_modal

log = logging.getLogger(__name__)

FEEDBACK_VERDICTS = ("good", "bad")  # what the buttons' values carry (storage takes no other)


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
        stored = verdict in FEEDBACK_VERDICTS and run_id and await deps.repo.set_feedback(
            run_id, verdict, user)
        text = ("Thanks — glad it helped." if verdict == "good" else
                "Thanks — noted. Rephrasing the question or adding detail often helps.") if stored \
            else "I could not record that feedback."
        await tell(client, _channel_of(body), user, text, _thread_of(body))

    async def on_history_more(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient,
                              respond: AsyncRespond) -> None:
        await ack()
        channel, _, offset = body["actions"][0].get("value", "").rpartition(":")
        if not (channel and offset.isascii() and offset.isdigit() and len(offset) <= 6):
            return  # not a value this app wrote
        await respond_history(deps, client, respond, team=(body.get("team") or {}).get("id", ""),
                              channel=channel, user=body["user"]["id"], offset=int(offset))

    async def on_suggestion(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        """A suggested follow-up asks that question in the same thread, as the clicking user;
        the thread says who asked what, so it stays readable."""
        await ack()
        thread = _thread_of(body) or (body.get("container") or {}).get("message_ts")
        question = body["actions"][0].get("value", "").strip()
        if not (thread and question):
            return
        user = body["user"]["id"]
        ref = ThreadRef(PLATFORM, (body.get("team") or {}).get("id", ""), _channel_of(body), thread)
        if not deps.membership.may_ask(user_team=body["user"].get("team_id"), home_team=ref.workspace,
                                       home_enterprise=(body.get("enterprise") or {}).get("id")):
            await tell(client, ref.channel, user, REFUSAL, thread)
            return
        # a double click (or Slack redelivering the click) asks once: one button of one message,
        # pressed by one person, is one question
        clicked = (body.get("container") or {}).get("message_ts") or thread
        key = f"slack:suggest:{ref.channel}:{clicked}:{body['actions'][0].get('action_id', '')}:{user}"
        if not await deps.repo.claim_event(key[:255]):
            deps.metrics.duplicates.labels(PLATFORM).inc()
            return
        try:
            await client.chat_postMessage(channel=ref.channel, thread_ts=thread,
                                          text=f"<@{user}> asked: {question}")
        except SlackApiError as exc:
            log.info("could not say who asked the follow-up: %s", exc.response.get("error"))
        await deps.relay.ask(Question(ref=ref, text=question, asker=user,
                                      language_lookup=deps.locales.lookup(client, ref.workspace, user)))

    async def on_view_sql(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        """"View SQL": the whole query of an answer in a modal (read from the stored answer)."""
        await ack()
        run_id, _, part_id = body["actions"][0].get("value", "").partition(":")
        run = await deps.repo.get_run(run_id) if run_id else None
        found = sql_of(run.answer or {}, part_id) if run is not None else None
        user = body["user"]["id"]
        if found is None:
            await tell(client, _channel_of(body), user, "I could not find that SQL any more.",
                       _thread_of(body))
            return
        title, sql = found
        await client.views_open(trigger_id=body["trigger_id"], view=sql_modal(title, sql))

    app.action(STOP_ACTION)(on_stop)
    app.action(re.compile(f"^{SUGGESTION_ACTION}:\\d+$"))(on_suggestion)
    app.action(FEEDBACK_ACTION)(on_feedback)
    app.action(HISTORY_MORE_ACTION)(on_history_more)
    app.action(VIEW_SQL_ACTION)(on_view_sql)
