"""The "View SQL" modal: the whole query behind an answer's collapsed SQL.

An answer shows the first lines of its SQL so the SQL never pushes the answer out of the
message; the button opens this modal (``views.open``, with the click's trigger id) with all of
it, read back from the run's stored answer. A modal holds 100 blocks of up to 3,000 characters:
about 290,000 characters of SQL, which is more than any agent writes.
"""

from __future__ import annotations

from typing import Any

from bot.delivery.sqlformat import readable_sql
from bot.delivery.textsplit import shorten
from bot.slack.blocks import code, context, mrkdwn_escape, sections

MODAL_BLOCKS = 100


def sql_modal(title: str, sql: str) -> dict[str, Any]:
    head = sections(f"*{mrkdwn_escape(shorten(title, 200))}*") if title else []
    body = code(readable_sql(sql))
    if len(head) + len(body) > MODAL_BLOCKS:
        body = body[:MODAL_BLOCKS - len(head) - 1] + [
            context("The query goes on beyond what a Slack modal can hold.")]
    return {"type": "modal", "title": {"type": "plain_text", "text": "SQL"},
            "close": {"type": "plain_text", "text": "Close"}, "blocks": head + body}
