"""``history``: the asker's recent analyses in this conversation, as one Adaptive Card.

Teams has no private replies in a channel, so the card is an ordinary reply; it lists only the
asker's own questions. Times use the card's ``{{DATE()}}``/``{{TIME()}}`` functions so every
reader sees them in their own time zone.
"""

from __future__ import annotations

from datetime import timezone
from typing import Any

from bot.delivery.textsplit import shorten
from bot.teams.markdown import text_block
from storage.repository import RunRecord

PAGE_SIZE = 10

_STATUS = {"done": "✅ answered", "stopped": "⏹️ stopped", "failed": "❌ failed",
           "running": "⏳ running", "queued": "⌛ waiting"}


def _when(run: RunRecord) -> str:
    stamp = run.created_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{{{{DATE({stamp}, SHORT)}}}} {{{{TIME({stamp})}}}}"


def _duration(run: RunRecord) -> str:
    if run.started_at and run.finished_at:
        return f" · {(run.finished_at - run.started_at).total_seconds():.0f} s"
    return ""


def history_body(runs: list[RunRecord], *, total: int) -> list[dict[str, Any]]:
    if not runs:
        return [text_block("You have not asked me anything in this conversation yet.")]
    header = f"**Your recent analyses here** (latest {len(runs)} of {total}, newest first)"
    body: list[dict[str, Any]] = [text_block(header)]
    for run in runs:
        body.append({"type": "Container", "separator": True, "spacing": "Small", "items": [
            text_block(shorten(run.question, 200)),
            text_block(f"{_when(run)} · {_STATUS.get(run.status, run.status)}{_duration(run)}"
                       f" · reference {run.id}", isSubtle=True, size="Small", spacing="None"),
        ]})
    return body
