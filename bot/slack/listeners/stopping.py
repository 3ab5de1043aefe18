"""Stop requests from any Slack route (button, typed word, agent session, slash command)."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.relay import StopResult
from bot.slack.deps import SlackDeps

log = logging.getLogger(__name__)

MESSAGES = {
    StopResult.STOPPING: None,
    StopResult.ALREADY_STOPPING: "That analysis is already stopping.",
    StopResult.ALREADY_FINISHED: "That analysis has already finished — nothing to stop.",
    StopResult.NOT_ALLOWED: "Only the person who asked (or a workspace admin) can stop this analysis.",
    StopResult.NOT_FOUND: "I could not find that analysis.",
}


async def is_workspace_admin(client: AsyncWebClient, user: str) -> bool:
    try:
        info = await client.users_info(user=user)
    except SlackApiError:
        return False
    u = info.get("user") or {}
    return bool(u.get("is_admin") or u.get("is_owner") or u.get("is_primary_owner"))


async def stop_run(deps: SlackDeps, client: AsyncWebClient, run_id: str, user: str) -> StopResult:
    result = await deps.relay.stop(run_id, user)
    if result is StopResult.NOT_ALLOWED and await is_workspace_admin(client, user):
        result = await deps.relay.stop(run_id, user, is_admin=True)
    return result


async def tell(client: AsyncWebClient, channel: str, user: str, text: str,
               thread_ts: str | None = None) -> None:
    try:
        await client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
    except SlackApiError as exc:
        log.info("could not answer %s privately: %s", user, exc.response.get("error"))
