"""Shows one run in a Teams conversation: placeholder card, paced updates, the finished cards.

Progress updates go through a :class:`~bot.delivery.Coalescer` (one PUT per interval per
message, latest snapshot wins) and the connector's per-conversation budget. The finished reply
never goes through the coalescer: it is sent after pacing has drained, with the full retry
allowance, and degrades step by step — cards without images when Teams says the message is too
large, Markdown text when it refuses the cards, a new message when the placeholder is gone —
so the placeholder never stays on "working".

What the relay stores as the reply's "channel" is the conversation's ``serviceUrl``: with the
thread id (the conversation id) it is all that is needed to update the reply after a restart.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from adapters.answer import Answer
from bot.delivery.paced_sink import PacedReplySink
from bot.relay.thread import ThreadRef
from bot.teams.cards import (
    card_activity, plain_messages, render_final, render_progress, summary_text, text_activity,
)
from bot.teams.connector import ConnectorError, TeamsConnector
from bot.teams.images import data_uri, fit_png
from bot.teams.target import ReplyTarget

log = logging.getLogger(__name__)

Names = Callable[[str], str]

PROGRESS_RETRIES = 1  # a progress edit is not worth a long wait: the next one supersedes it
_TOO_LARGE = {413}
_GONE = {404}


class TeamsReplySink(PacedReplySink):
    def __init__(self, connector: TeamsConnector, target: ReplyTarget | None, ref: ThreadRef, *,
                 interval: float, names: Names, reply_id: str | None = None,
                 run_id: str = "") -> None:
        self.connector = connector
        self.target = target
        self.ref = ref
        self.reply_id = reply_id
        self.run_id = run_id
        self.names = names
        super().__init__(interval=interval)

    # -- ReplySink -----------------------------------------------------------------------
    async def open(self, answer: Answer, *, run_id: str, queued_behind: int = 0) -> tuple[str, str]:
        self.run_id = run_id
        target = self._require_target()
        card = render_progress(answer, run_id)
        self.reply_id = await self.connector.post(target, card_activity(card, summary_text(answer)))
        self._coalescer.mark_sent()
        return target.service_url, self.reply_id

    # -- internals -----------------------------------------------------------------------
    def _require_target(self) -> ReplyTarget:
        if self.target is None:
            raise ConnectorError("post", None, "no_target", "no conversation reference for this thread")
        return self.target

    async def _edit_progress(self, answer: Answer) -> None:
        if self.reply_id is None or self.target is None:
            return
        card = render_progress(answer, self.run_id)
        await self.connector.update(self.target, self.reply_id,
                                    card_activity(card, summary_text(answer)),
                                    retries=PROGRESS_RETRIES)

    async def _deliver_final(self, answer: Answer) -> None:
        target = self._require_target()
        summary = summary_text(answer)
        images = await self._images(answer)
        cards = render_final(answer, self.run_id, images, self.names)
        try:
            await self._send_all(target, [card_activity(c, summary) for c in cards])
            return
        except ConnectorError as exc:
            if exc.status not in _TOO_LARGE and exc.status != 400:
                raise
            log.warning("run %s: Teams refused the answer cards (%s %s); degrading",
                        self.run_id, exc.status, exc.code)
        if images and any(images.values()):
            try:
                cards = render_final(answer, self.run_id, {}, self.names, budget=16_000)
                await self._send_all(target, [card_activity(c, summary) for c in cards])
                return
            except ConnectorError as exc:
                if exc.status not in _TOO_LARGE and exc.status != 400:
                    raise
        texts = plain_messages(answer, self.run_id, self.names)
        await self._send_all(target, [text_activity(t) for t in texts])

    async def _send_all(self, target: ReplyTarget, activities: list) -> None:
        """The first message replaces the placeholder (or is posted when there is none);
        the rest follow as new messages in the same conversation."""
        first, rest = activities[0], activities[1:]
        if self.reply_id:
            try:
                await self.connector.update(target, self.reply_id, first)
            except ConnectorError as exc:
                if exc.status not in _GONE:
                    raise
                log.info("run %s: the placeholder is gone; posting the answer anew", self.run_id)
                self.reply_id = await self.connector.post(target, first)
        else:
            self.reply_id = await self.connector.post(target, first)
        for activity in rest:
            await self.connector.post(target, activity)

    async def _images(self, answer: Answer) -> dict[str, str | None]:
        """Chart PNGs shrunk to Teams' limits as data URIs (Pillow runs off the event loop)."""
        images: dict[str, str | None] = {}
        for chart in answer.charts:
            if chart.png is None:
                continue
            png = await asyncio.to_thread(fit_png, chart.png)
            images[chart.id] = data_uri(png) if png is not None else None
        return images


class TeamsSinkFactory:
    """Builds Teams sinks; the reply target of a new question comes from ``targets``."""

    def __init__(self, connector: TeamsConnector, *, interval: float, names: Names,
                 targets: Callable[[ThreadRef], ReplyTarget | None],
                 restored: Callable[[ThreadRef, str], ReplyTarget]) -> None:
        self.connector = connector
        self.interval = interval
        self.names = names
        self._targets = targets
        self._restored = restored

    def for_question(self, ref: ThreadRef, asker: str) -> TeamsReplySink:
        return TeamsReplySink(self.connector, self._targets(ref), ref, interval=self.interval,
                              names=self.names)

    def for_existing_reply(self, ref: ThreadRef, asker: str, reply_channel: str, reply_id: str,
                           run_id: str) -> TeamsReplySink:
        return TeamsReplySink(self.connector, self._restored(ref, reply_channel), ref,
                              interval=self.interval, names=self.names, reply_id=reply_id,
                              run_id=run_id)
