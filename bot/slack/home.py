"""The App Home tab: a short how-to and the caller's recent analyses across channels."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.deps import HELP_TEXT, PLATFORM, SlackDeps
from bot.slack.history import run_lines

log = logging.getLogger(__name__)


async def publish_home(deps: SlackDeps, client: AsyncWebClient, team: str, user: str) -> None:
    runs = await deps.repo.list_runs(PLATFORM, team, asker=user, limit=15)
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "insightbot"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": HELP_TEXT}},
        {"type": "divider"},
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Your recent analyses*"}},
    ]
    if runs:
        blocks += await run_lines(client, runs, with_channel=True)
    else:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn",
                       "text": "Nothing yet — mention me in a channel or send me a DM."}]})
    try:
        await client.views_publish(user_id=user, view={"type": "home", "blocks": blocks[:100]})
    except SlackApiError as exc:
        log.warning("App Home not published: %s", exc.response.get("error"))
