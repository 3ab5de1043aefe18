"""Shows one run in a Teams conversation on top of the shared reply lifecycle.

What is Teams-specific here: Adaptive Card renderings (``bot/teams/cards.py``), which Bot
Connector status means what (``_translate``), the degrade steps of a final answer (cards with
inline chart images, then cards without images when Teams says the message is too large, then
Markdown text), and retiring a placeholder whose answer had to be posted anew (DELETE, or a PUT
that turns it into a one-line pointer). Every call goes through the conversation's limiter in
the connector, with the lifecycle's priorities.

What the relay stores as the reply's "channel" is the conversation's ``serviceUrl``: with the
thread id (the conversation id) it is all that is needed to update the reply after a restart.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from microsoft_agents.activity import Activity

from adapters.answer import Answer, ChartPart
from bot.delivery.errors import DeliveryError, Gone, Refused, Rejected, Unavailable
from bot.delivery.priority import Priority
from bot.delivery.reply import ReplyLifecycle, Timing
from bot.delivery.scheduler import Scope
from bot.delivery.tasks import BackgroundTasks
from bot.relay.thread import ThreadRef
from bot.teams.cards import (
    card_activity, chart_card, plain_messages, render_final, render_progress, summary_text,
    text_activity,
)
from bot.teams.connector import ConnectorError, TeamsConnector
from bot.teams.images import data_uri, fit_png
from bot.teams.target import ReplyTarget
from bot.teams.texts import ANSWER_BELOW

log = logging.getLogger(__name__)

Names = Callable[[str], str]

SMALLER_CARDS = 16_000  # card budget for the second try, without images


class TeamsReplySink(ReplyLifecycle[Activity]):
    POST_METHOD = "send"
    EDIT_METHOD = "send"

    def __init__(self, connector: TeamsConnector, target: ReplyTarget | None, ref: ThreadRef, *,
                 tasks: BackgroundTasks, timing: Timing, names: Names,
                 reply_id: str | None = None, run_id: str = "") -> None:
        key = target.budget_key if target is not None else ref.thread
        super().__init__(scheduler=connector.scheduler, scope=Scope(key), tasks=tasks,
                         timing=timing, reply_id=reply_id, run_id=run_id)
        self.connector = connector
        self.target = target
        self.ref = ref
        self.names = names

    @property
    def channel(self) -> str:
        return self.target.service_url if self.target is not None else ""

    # -- renderings ----------------------------------------------------------------------
    def _progress_message(self, answer: Answer) -> Activity:
        return card_activity(render_progress(answer, self.run_id), summary_text(answer))

    async def _final_variants(self, answer: Answer) -> list[list[Activity]]:
        summary = summary_text(answer)
        images = await self._images(answer.charts)
        variants = [[card_activity(c, summary)
                     for c in render_final(answer, self.run_id, images, self.names)]]
        if images and any(images.values()):
            variants.append([card_activity(c, summary) for c in
                             render_final(answer, self.run_id, {}, self.names,
                                          budget=SMALLER_CARDS)])
        variants.append([text_activity(t) for t in plain_messages(answer, self.run_id, self.names)])
        return variants

    async def _deliver_charts(self, charts: list[ChartPart]) -> None:
        images = await self._images(charts)
        for chart in charts:
            await self._post_durably(card_activity(chart_card(chart, images.get(chart.id)),
                                                   chart.title or "Chart"))

    async def _images(self, charts: list[ChartPart]) -> dict[str, str | None]:
        """Chart PNGs shrunk to Teams' limits as data URIs (Pillow runs off the event loop)."""
        images: dict[str, str | None] = {}
        for chart in charts:
            if chart.png is None:
                continue
            png = await asyncio.to_thread(fit_png, chart.png)
            images[chart.id] = data_uri(png) if png is not None else None
        return images

    # -- primitives ----------------------------------------------------------------------
    def _require_target(self) -> ReplyTarget:
        if self.target is None:
            raise Refused("no conversation reference for this thread", "no_target")
        return self.target

    async def _post(self, message: Activity, *, priority: Priority,
                    grant: float | None = None) -> str:
        target = self._require_target()
        try:
            return await self.connector.post(target, message, priority=priority, grant=grant)
        except ConnectorError as exc:
            raise _translate(exc) from exc

    async def _edit(self, message_id: str, message: Activity, *, priority: Priority,
                    wait: float | None = None, retries: int = 3, grant: float | None = None) -> None:
        target = self._require_target()
        try:
            await self.connector.update(target, message_id, message, priority=priority, wait=wait,
                                        retries=retries, grant=grant)
        except ConnectorError as exc:
            raise _translate(exc) from exc

    async def _retire(self, message_id: str) -> None:
        target = self._require_target()
        try:
            await self.connector.delete(target, message_id, priority=Priority.HOUSEKEEPING)
            return
        except ConnectorError as exc:
            if exc.status == 404:
                return
            log.info("run %s: could not delete the old placeholder (%s); pointing it at the "
                     "answer instead", self.run_id, exc.status)
        try:
            await self._edit(message_id, text_activity(ANSWER_BELOW), priority=Priority.HOUSEKEEPING)
        except Gone:
            return


class TeamsSinkFactory:
    """Builds Teams sinks; the reply target of a new question comes from ``targets``."""

    def __init__(self, connector: TeamsConnector, *, timing: Timing, names: Names,
                 targets: Callable[[ThreadRef], ReplyTarget | None],
                 restored: Callable[[ThreadRef, str], ReplyTarget]) -> None:
        self.connector = connector
        self.timing = timing
        self.names = names
        self.tasks = BackgroundTasks()
        self._targets = targets
        self._restored = restored

    def for_question(self, ref: ThreadRef, asker: str) -> TeamsReplySink:
        return TeamsReplySink(self.connector, self._targets(ref), ref, tasks=self.tasks,
                              timing=self.timing, names=self.names)

    def for_existing_reply(self, ref: ThreadRef, asker: str, reply_channel: str, reply_id: str,
                           run_id: str) -> TeamsReplySink:
        return TeamsReplySink(self.connector, self._restored(ref, reply_channel), ref,
                              tasks=self.tasks, timing=self.timing, names=self.names,
                              reply_id=reply_id, run_id=run_id)

    async def aclose(self) -> None:
        await self.tasks.aclose()


def _translate(exc: ConnectorError) -> DeliveryError:
    code = exc.code or str(exc.status or "")
    if exc.status in (400, 413):
        return Rejected(f"Teams refused the message: {exc.status} {exc.code}".strip(), code)
    if exc.status == 404:
        return Gone("the message no longer exists", code)
    if exc.status in (401, 403) or exc.code in ("no_service_url", "no_target"):
        return Refused(f"Teams refused: {exc.status} {exc.code}".strip(), code)
    return Unavailable(f"Teams answered {exc.status} {exc.code}".strip(), code)
