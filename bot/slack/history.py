"""The caller's recent analyses as Block Kit: used by /insight-history and the App Home tab."""

from __future__ import annotations

from datetime import timezone
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery.textsplit import shorten
from bot.relay.backend_history import backend_chats
from storage.repository import RunRecord

PAGE_SIZE = 10
NO_QUESTION = "_(no question text)_"
CHAT_ID_LIMIT = 80  # a backend's chat id as shown; ten of them must fit one 3,000-character section
HISTORY_MORE_ACTION = "history_more"

_STATUS = {"done": ":white_check_mark: answered", "stopped": ":black_square_for_stop: stopped",
           "failed": ":x: failed", "running": ":hourglass_flowing_sand: running",
           "queued": ":hourglass: waiting"}


def _duration(run: RunRecord) -> str:
    if run.started_at and run.finished_at:
        return f"{(run.finished_at - run.started_at).total_seconds():.0f} s"
    return "—"


def _when(run: RunRecord) -> str:
    ts = int(run.created_at.replace(tzinfo=run.created_at.tzinfo or timezone.utc).timestamp())
    fallback = run.created_at.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{ts}^{{date_short_pretty}} {{time}}|{fallback}>"


async def permalink(client: AsyncWebClient, run: RunRecord) -> str | None:
    if not (run.reply_channel and run.reply_ts):
        return None
    try:
        resp = await client.chat_getPermalink(channel=run.reply_channel, message_ts=run.reply_ts)
        return resp.get("permalink")
    except SlackApiError:
        return None


async def run_lines(client: AsyncWebClient, runs: list[RunRecord], *, with_channel: bool) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for run in runs:
        link = await permalink(client, run)
        question = shorten(run.question, 120).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        question = question or NO_QUESTION  # Slack refuses a section with empty text
        title = f"<{link}|{question}>" if link else question
        where = f" · <#{run.channel}>" if with_channel and not run.channel.startswith("D") else ""
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": title}})
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text":
            f"{_when(run)} · {_STATUS.get(run.status, run.status)} · {_duration(run)}{where}"}]})
    return blocks


async def history_blocks(client: AsyncWebClient, runs: list[RunRecord], *, total: int, offset: int,
                         channel: str) -> list[dict[str, Any]]:
    if not runs:
        return [{"type": "section", "text": {"type": "mrkdwn",
                 "text": "You have not asked me anything in this conversation yet."}}]
    header = f"*Your recent analyses here* ({offset + 1}–{offset + len(runs)} of {total}, newest first)"
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": header}}]
    blocks += await run_lines(client, runs, with_channel=False)
    if offset + len(runs) < total:
        blocks.append({"type": "actions", "elements": [{
            "type": "button", "action_id": HISTORY_MORE_ACTION, "text": {"type": "plain_text", "text": "Older"},
            "value": f"{channel}:{offset + PAGE_SIZE}"}]})
    return blocks


def history_fallback(runs: list[RunRecord]) -> str:
    return "\n".join(f"{r.created_at:%Y-%m-%d %H:%M} {r.status}: {shorten(r.question, 80)}" for r in runs) \
        or "No analyses yet."


_BACKEND_LABEL = {"textql": "TextQL", "clickzetta": "ClickZetta", "wren": "Wren AI"}


async def backend_chat_blocks(backend: Any, runs: list[RunRecord]) -> list[dict[str, Any]]:
    """The backend's own chats behind these runs (TextQL keeps them), when it has any."""
    chats, problem = await backend_chats(backend, (r.session_id for r in runs))
    label = _BACKEND_LABEL.get(getattr(backend, "name", ""), "backend")
    if problem:
        return [{"type": "context", "elements": [{"type": "mrkdwn",
                 "text": f"{label} chat history is unavailable: {shorten(problem, 200)}"}]}]
    if not chats:
        return []
    lines = [f"• {shorten(c.title, 100) or c.id}"
             + (f" — last active {c.last_activity:%Y-%m-%d %H:%M} UTC" if c.last_activity else "")
             + f" (chat `{shorten(c.id, CHAT_ID_LIMIT)}`)" for c in chats[:10]]
    return [{"type": "divider"},
            {"type": "section", "text": {"type": "mrkdwn",
             "text": f"*{label} chats behind these answers*\n" + "\n".join(lines)}}]
