"""Events: @mentions, DMs, thread follow-ups, typed ``stop``, App Home, agent-session stop.

Each message is claimed in the event ledger under ``(channel, ts)`` before anything else, so a
Slack retry, the ``app_mention`` + ``message`` pair one mention produces, and a redelivery after
a restart all lead to one answer.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.relay import Question, ThreadRef
from bot.slack.access import Asker, home_of
from bot.slack.deps import HELP_TEXT, PLATFORM, SlackDeps, is_stop, place_of, strip_mentions
from bot.slack.home import publish_home
from bot.slack.installations import workspace_of
from bot.slack.membership import event_team
from bot.slack.prompts import suggest_prompts
from bot.slack.refusals import refuse_in_thread
from bot.slack.listeners.stopping import MESSAGES, stop_run, tell

log = logging.getLogger(__name__)

_ALLOWED_SUBTYPES = {None, "file_share", "thread_broadcast"}


def register(app: AsyncApp, deps: SlackDeps) -> None:
    async def on_mention(event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext,
                         client: AsyncWebClient) -> None:
        deps.metrics.events.labels(PLATFORM, "app_mention").inc()
        await _handle_message(deps, event, body, context, client)

    async def on_message(event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext,
                         client: AsyncWebClient) -> None:
        if event.get("subtype") not in _ALLOWED_SUBTYPES or event.get("bot_id"):
            return
        if event.get("user") in (None, "USLACKBOT", context.bot_user_id):
            return
        if event.get("channel_type") == "im":
            deps.metrics.events.labels(PLATFORM, "dm").inc()
            await _handle_message(deps, event, body, context, client)
            return
        if context.bot_user_id and f"<@{context.bot_user_id}>" in (event.get("text") or ""):
            return  # the app_mention event for the same message handles it
        thread_ts = event.get("thread_ts")
        if not thread_ts:
            return
        team = _workspace(event, body, context)
        conv = await deps.repo.get_conversation(PLATFORM, team, event["channel"], thread_ts)
        if conv is None:
            return  # a thread the bot is not part of
        deps.metrics.events.labels(PLATFORM, "follow_up").inc()
        await _handle_message(deps, event, body, context, client)

    async def on_home_opened(event: dict[str, Any], body: dict[str, Any],
                             context: AsyncBoltContext, client: AsyncWebClient) -> None:
        tab = event.get("tab", "home")
        team = _workspace(event, body, context)
        if tab == "messages" and event.get("channel"):
            await suggest_prompts(deps, client, team, event["user"], event["channel"])
        if tab != "home":
            return
        await publish_home(deps, client, team, event["user"])

    async def on_agent_session_stopped(event: dict[str, Any], body: dict[str, Any],
                                       context: AsyncBoltContext, client: AsyncWebClient) -> None:
        ref = ThreadRef(PLATFORM, _workspace(event, body, context), event["channel"],
                        event["thread_ts"])
        for run in deps.relay.runs_in_thread(ref):
            await stop_run(deps, client, run.run_id, event.get("user", ""))

    app.event("app_mention")(on_mention)
    app.event("message")(on_message)
    app.event("app_home_opened")(on_home_opened)
    app.event("agent_session_stopped")(on_agent_session_stopped)


def _workspace(event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext) -> str:
    """The workspace of the thread: the installation's (Bolt's ``team_id``), or for an Enterprise
    Grid organisation's installation the workspace the event happened in."""
    return workspace_of(body, context.team_id) or str(event.get("team") or "")


async def _handle_message(deps: SlackDeps, event: dict[str, Any], body: dict[str, Any],
                          context: AsyncBoltContext, client: AsyncWebClient) -> None:
    channel, ts, user = event["channel"], event["ts"], event.get("user", "")
    key = f"slack:msg:{channel}:{ts}"
    thread = event.get("thread_ts") or ts
    ref = ThreadRef(PLATFORM, _workspace(event, body, context), channel, thread)
    text = strip_mentions(event.get("text", ""))
    if text:  # who may ask, and where (bot/slack/access.py): before anything is stored or asked
        home_team, home_enterprise = home_of(context)
        refusal = await deps.access.refusal(client, Asker(
            user=user, channel=channel, user_team=event_team(event), home_team=home_team,
            home_enterprise=home_enterprise))
        if refusal is not None:
            if await deps.repo.claim_event(key):  # (a retry is not refused twice)
                await refuse_in_thread(deps, client, ref, user, refusal)
            return
    if text and not is_stop(text):  # a question: its claim is stored together with the run
        # which backend profile answers here (bot/profiles.py): the thread's, else the routes'
        routing = await deps.relay.route(ref, place_of(ref, event.get("channel_type")))
        if routing.profile is None:
            if await deps.repo.claim_event(key):  # refused privately, once; nothing is stored
                deps.metrics.events.labels(PLATFORM, "unrouted").inc()
                await refuse_in_thread(deps, client, ref, user, routing.refusal or "")
            else:
                deps.metrics.duplicates.labels(PLATFORM).inc()
            return
        question = Question(ref=ref, text=text, asker=user, event_key=key,
                            profile=routing.profile.name,
                            language_lookup=deps.locales.lookup(client, ref.workspace, user))
        if await deps.relay.ask(question) is None:
            deps.metrics.duplicates.labels(PLATFORM).inc()
        return
    if not await deps.repo.claim_event(key):
        deps.metrics.duplicates.labels(PLATFORM).inc()
        return
    if is_stop(text):
        runs = deps.relay.runs_in_thread(ref)
        if not runs:
            await tell(client, channel, user, "Nothing is running in this thread.", thread)
        for run in runs:
            message = MESSAGES[await stop_run(deps, client, run.run_id, user)]
            if message:
                await tell(client, channel, user, message, thread)
        return
    await client.chat_postMessage(channel=channel, thread_ts=thread, text=HELP_TEXT)
