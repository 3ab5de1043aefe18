"""Block actions: the Stop button, feedback, suggested follow-ups, "View SQL", history paging.

A suggested follow-up is a question, so it passes the access rules (:mod:`bot.slack.access`)
like a typed one; a feedback vote counts only from the people of the conversation
(:mod:`bot.slack.voters`), once per person (``Repository.vote``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.relay import Question, ThreadRef
from bot.slack.access import Asker, home_of
from bot.slack.deps import PLATFORM, SlackDeps, place_of
from bot.slack.history import HISTORY_MORE_ACTION
from bot.slack.listeners.commands import respond_history
from bot.slack.listeners.stopping import MESSAGES, stop_run, tell
from bot.slack.render import (
    FEEDBACK_ACTION, STOP_ACTION, SUGGESTION_ACTION, VIEW_SQL_ACTION, sql_of,
)
from bot.slack.sql_modal import sql_modal
from storage.repository import VoteOutcome

log = logging.getLogger(__name__)

FEEDBACK_VERDICTS = ("good", "bad")  # what the buttons' values carry (storage takes no other)
FEEDBACK_THANKS = {"good": "Thanks — glad it helped.",
                   "bad": "Thanks — noted. Rephrasing the question or adding detail often helps."}
FEEDBACK_CHANGED = {"good": "Thanks — your rating of this answer is now 👍.",
                    "bad": "Thanks — your rating of this answer is now 👎."}
FEEDBACK_AGAIN = "You have already rated this answer that way — each person's rating counts once."
FEEDBACK_LOST = "I could not record that feedback."


def _team_of(body: dict[str, Any], context: AsyncBoltContext) -> str:
    """The workspace of the click: the payload's team (an Enterprise Grid organisation's
    installation may send none; then Bolt's, which is the clicker's)."""
    return (body.get("team") or {}).get("id") or context.team_id or ""


def _channel_of(body: dict[str, Any]) -> str:
    return (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id", "")


def _thread_of(body: dict[str, Any]) -> str | None:
    container = body.get("container") or {}
    return container.get("thread_ts") or (body.get("message") or {}).get("thread_ts")


def _asker_of(body: dict[str, Any], context: AsyncBoltContext) -> Asker:
    """Who clicked, where: the click names the clicker's own team (``user.team_id``)."""
    home_team, home_enterprise = home_of(context)
    return Asker(user=body["user"]["id"], channel=_channel_of(body),
                 user_team=body["user"].get("team_id") or None, home_team=home_team,
                 home_enterprise=home_enterprise)


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

    async def on_feedback(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient,
                          context: AsyncBoltContext) -> None:
        """A 👍/👎: counted once per person, and only from the people of the conversation.
        The run must be one answered in the channel clicked in (a button names its run)."""
        await ack()
        user, channel, thread = body["user"]["id"], _channel_of(body), _thread_of(body)
        verdict, _, run_id = body["actions"][0].get("value", "").partition(":")
        run = await deps.repo.get_run(run_id) if verdict in FEEDBACK_VERDICTS and run_id else None
        if run is None or run.platform != PLATFORM or run.channel != channel:
            await tell(client, channel, user, FEEDBACK_LOST, thread)
            return
        refusal = await deps.voters.refusal(client, run, _asker_of(body, context))
        if refusal is not None:
            await tell(client, channel, user, refusal, thread)
            return
        outcome = await deps.repo.vote(run.id, user, verdict)
        text = {VoteOutcome.RECORDED: FEEDBACK_THANKS[verdict],
                VoteOutcome.CHANGED: FEEDBACK_CHANGED[verdict],
                VoteOutcome.UNCHANGED: FEEDBACK_AGAIN}.get(outcome, FEEDBACK_LOST)
        await tell(client, channel, user, text, thread)

    async def on_history_more(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient,
                              respond: AsyncRespond, context: AsyncBoltContext) -> None:
        await ack()
        channel, _, offset = body["actions"][0].get("value", "").rpartition(":")
        if not (channel and offset.isascii() and offset.isdigit() and len(offset) <= 6):
            return  # not a value this app wrote
        refusal = await deps.access.refusal(client, replace(_asker_of(body, context), channel=channel))
        if refusal is not None:  # as /insight-history would answer now
            await respond(response_type="ephemeral", text=refusal, replace_original=False)
            return
        await respond_history(deps, client, respond, team=_team_of(body, context),
                              channel=channel, user=body["user"]["id"], offset=int(offset))

    async def on_suggestion(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient,
                            context: AsyncBoltContext) -> None:
        """A suggested follow-up asks that question in the same thread, as the clicking user;
        the thread says who asked what, so it stays readable."""
        await ack()
        thread = _thread_of(body) or (body.get("container") or {}).get("message_ts")
        question = body["actions"][0].get("value", "").strip()
        if not (thread and question):
            return
        user = body["user"]["id"]
        ref = ThreadRef(PLATFORM, _team_of(body, context), _channel_of(body), thread)
        refusal = await deps.access.refusal(client, _asker_of(body, context))
        if refusal is not None:
            await tell(client, ref.channel, user, refusal, thread)
            return
        routing = await deps.relay.route(ref, place_of(ref))  # the thread's own profile
        if routing.profile is None:
            await tell(client, ref.channel, user, routing.refusal or "", thread)
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
                                      profile=routing.profile.name,
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
