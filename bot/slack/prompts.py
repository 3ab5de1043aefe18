"""Suggested prompts when someone opens the app's Messages tab (Slack's agent view).

The manifest's ``suggested_prompts`` are static and the same for everyone. When the Messages
tab opens (``app_home_opened`` with ``tab: messages``), the bot offers up to four prompts of its
own: the operator's examples (``SLACK_SUGGESTED_PROMPTS``), then the questions this person asked
lately that were answered — their own data domain, and nobody else's questions (those may come
from channels this person cannot read). ``thread_ts`` is left out on purpose: in the agent view
Slack silently ignores a call that carries it (shared/reference/slack.md §2.1).
"""

from __future__ import annotations

import logging
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery.textsplit import shorten
from bot.slack.deps import PLATFORM, SlackDeps

log = logging.getLogger(__name__)

MAX_PROMPTS = 4  # Slack's limit
TITLE_CHARS = 40


def prompts_from(examples: list[str], recent: list[str]) -> list[dict[str, str]]:
    """Up to four prompts: examples first, then recent questions, each question once."""
    seen: set[str] = set()
    prompts: list[dict[str, str]] = []
    for question in [*examples, *recent]:
        text = " ".join(question.split())
        if not text or text.casefold() in seen:
            continue
        seen.add(text.casefold())
        prompts.append({"title": shorten(text, TITLE_CHARS), "message": text})
        if len(prompts) == MAX_PROMPTS:
            break
    return prompts


async def suggest_prompts(deps: SlackDeps, client: AsyncWebClient, team: str, user: str,
                          channel: str) -> None:
    runs = await deps.repo.list_runs(PLATFORM, team, asker=user, limit=20)
    recent = [run.question for run in runs if run.status == "done"]
    prompts = prompts_from(deps.prompt_examples, recent)
    if not prompts:
        return  # the manifest's static prompts stay
    try:
        await client.assistant_threads_setSuggestedPrompts(channel_id=channel, prompts=prompts,
                                                           title="Ask about your data")
    except SlackApiError as exc:
        log.info("suggested prompts not set: %s", exc.response.get("error"))


