"""Slash commands. They cannot be used inside threads, so they work per channel and user.

``/insight-stop`` and ``/insight-history`` first ask the access rules (:mod:`bot.slack.access`)
whether the caller may use the bot in this channel — someone from another organisation in a
Slack Connect channel, outside the allowed channels or user groups — and answer a refusal as the
command's ephemeral response.

``/insight-routes`` shows the backend profiles and the routes (``ROUTES_FILE``) privately: to a
workspace admin the whole set-up, to anyone else which profile answers in this channel and which
profiles exist. Profile names, backend kinds and chat ids only — never a URL or a key.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery.textsplit import shorten
from bot.slack.access import Asker, home_of
from bot.relay import ThreadRef
from bot.slack.deps import PLATFORM, SlackDeps, place_of
from bot.slack.history import PAGE_SIZE, backend_chat_blocks, history_blocks, history_fallback
from bot.slack.listeners.stopping import MESSAGES, is_workspace_admin, stop_run
from bot.slack.render import STOP_ACTION


def register(app: AsyncApp, deps: SlackDeps) -> None:
    async def refused(command: dict[str, Any], context: AsyncBoltContext, respond: AsyncRespond,
                      client: AsyncWebClient) -> bool:
        """Tell the caller privately if they may not use the bot here; True when refused.
        The command names the caller's own team (``team_id``, Grid ``enterprise_id``)."""
        home_team, home_enterprise = home_of(context)
        refusal = await deps.access.refusal(client, Asker(
            user=command["user_id"], channel=command["channel_id"],
            user_team=command.get("team_id") or None, home_team=home_team,
            home_enterprise=home_enterprise, user_enterprise=command.get("enterprise_id") or None))
        if refusal is not None:
            await respond(response_type="ephemeral", text=refusal)
        return refusal is not None

    async def insight_stop(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond,
                           client: AsyncWebClient, context: AsyncBoltContext) -> None:
        await ack()
        if await refused(command, context, respond, client):
            return
        user, channel = command["user_id"], command["channel_id"]
        runs = [r for r in deps.relay.live.all()
                if r.ref.platform == PLATFORM and r.ref.channel == channel and r.asker == user]
        if not runs:
            await respond(response_type="ephemeral",
                          text="You have no running analyses in this channel.")
            return
        if len(runs) == 1:
            result = await stop_run(deps, client, runs[0].run_id, user)
            text = MESSAGES[result] or f"Stopping: _{shorten(runs[0].question, 120)}_"
            await respond(response_type="ephemeral", text=text)
            return
        blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn",
                                         "text": f"You have {len(runs)} analyses running here. Which one?"}}]
        for run in runs:
            blocks.append({"type": "section",
                           "text": {"type": "mrkdwn", "text": shorten(run.question, 200)},
                           "accessory": {"type": "button", "action_id": STOP_ACTION, "style": "danger",
                                         "value": run.run_id,
                                         "text": {"type": "plain_text", "text": "Stop"}}})
        await respond(response_type="ephemeral", text="Choose the analysis to stop", blocks=blocks[:50])

    async def insight_history(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond,
                              client: AsyncWebClient, context: AsyncBoltContext) -> None:
        await ack()
        if await refused(command, context, respond, client):
            return
        await respond_history(deps, client, respond, team=command.get("team_id", ""),
                              channel=command["channel_id"], user=command["user_id"], offset=0)

    async def insight_routes(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond,
                             client: AsyncWebClient, context: AsyncBoltContext) -> None:
        await ack()
        deps.metrics.events.labels(PLATFORM, "routes").inc()
        team, _ = home_of(context)
        channel = command["channel_id"]
        place = place_of(ThreadRef(PLATFORM, team, channel, ""))
        profiles = deps.relay.profiles
        if await is_workspace_admin(client, command["user_id"]):
            text = profiles.describe(place)
        else:
            profile, _ = profiles.route(place)
            here = (f"Questions here go to `{profile.name}` ({profile.label})." if profile
                    else "Questions here are not answered: no profile is routed to this channel.")
            text = "\n".join([here, "Backend profiles:", *profiles.listing(),
                              "A workspace admin sees the routes with `/insight-routes` too."])
        await respond(response_type="ephemeral", text=text)

    app.command("/insight-stop")(insight_stop)
    app.command("/insight-history")(insight_history)
    app.command("/insight-routes")(insight_routes)


async def respond_history(deps: SlackDeps, client: AsyncWebClient, respond: AsyncRespond, *,
                          team: str, channel: str, user: str, offset: int) -> None:
    runs = await deps.repo.list_runs(PLATFORM, team, channel=channel, asker=user,
                                     limit=PAGE_SIZE, offset=offset)
    total = await deps.repo.count_runs(PLATFORM, team, channel=channel, asker=user)
    blocks = await history_blocks(client, runs, total=total, offset=offset, channel=channel)
    profiles = deps.relay.profiles
    if profiles.implicit:
        blocks += await backend_chat_blocks(profiles.primary.backend, runs)
    else:  # each profile's backend finds its own chats among the runs
        kinds = {r.backend for r in runs}
        for profile in profiles.all():
            if profile.kind in kinds:
                blocks += await backend_chat_blocks(profile.backend, runs)
    await respond(response_type="ephemeral", text=history_fallback(runs), blocks=blocks[:50],
                  replace_original=offset > 0)
