"""Shows one run in a Teams conversation on top of the shared reply lifecycle.

What is Teams-specific here: Adaptive Card renderings (``bot/teams/cards.py``), which Bot
Connector status means what (``_translate``), the degrade steps of a final answer (cards with
inline chart images, then cards without images when Teams says the message is too large, then
Markdown text), and retiring a placeholder whose answer had to be posted anew (DELETE, or a PUT
that turns it into a one-line pointer). Every call goes through the conversation's limiter in
the connector, with the lifecycle's priorities.

What the relay stores as the reply's "channel" is the conversation's ``serviceUrl``: with the
thread id (the conversation id) it is all that is needed to update the reply after a restart.

Around the cards: messages with the agent's work are marked AI generated, an answered run's
messages carry Teams' feedback controls, and every message of a final answer is remembered
(:class:`~bot.teams.memory.AnswerPages`) so a vote on any of them finds the run. A result table
that was cut is offered as a CSV file below the answer in personal chats
(:mod:`bot.teams.files`); elsewhere its note says why it cannot be attached.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Callable

from microsoft_agents.activity import Activity

from adapters.answer import Answer, ChartPart, TablePart
from bot.delivery.errors import DeliveryError, Gone, Refused, Rejected, Unavailable
from bot.delivery.priority import Priority
from bot.delivery.reply import ReplyLifecycle, Timing
from bot.delivery.scheduler import Scope
from bot.delivery.tabular import SHOWN_ROWS, to_csv
from bot.delivery.tasks import BackgroundTasks
from bot.relay.thread import ThreadRef
from bot.teams.cards import (
    Files, card_activity, chart_card, has_ai_content, mark_ai_generated, plain_activities,
    render_final, render_progress, summary_text, text_activity, wants_feedback, with_feedback,
)
from bot.teams.connector import ConnectorError, TeamsConnector
from bot.teams.files import MAX_FILE, CsvOffers, consent_activity, is_personal
from bot.teams.images import data_uri, fit_png
from bot.teams.memory import AnswerPages
from bot.teams.stream import StreamTiming
from bot.teams.tables import MAX_COLUMNS
from bot.teams.target import ReplyTarget
from bot.teams.texts import ANSWER_BELOW

if TYPE_CHECKING:
    from bot.teams.streaming_sink import StopRun

log = logging.getLogger(__name__)

Names = Callable[[str], str]

SMALLER_CARDS = 16_000  # card budget for the second try, without images


class TeamsReplySink(ReplyLifecycle[Activity]):
    POST_METHOD = "send"
    EDIT_METHOD = "send"

    def __init__(self, connector: TeamsConnector, target: ReplyTarget | None, ref: ThreadRef, *,
                 tasks: BackgroundTasks, timing: Timing, names: Names,
                 reply_id: str | None = None, run_id: str = "", intro: str = "",
                 pages: AnswerPages | None = None, files: CsvOffers | None = None) -> None:
        key = target.budget_key if target is not None else ref.thread
        super().__init__(scheduler=connector.scheduler, scope=Scope(key), tasks=tasks,
                         timing=timing, reply_id=reply_id, run_id=run_id)
        self.connector = connector
        self.target = target
        self.ref = ref
        self.names = names
        self.intro = intro  # "Ada asked: …" when the question came from a click
        self.pages = pages
        self.files = files
        self._finals: set[int] = set()  # id() of the final answer's messages (every rendering)
        self._csv: dict[str, tuple[TablePart, bytes]] = {}  # cut tables to offer, by part id

    @property
    def channel(self) -> str:
        return self.target.service_url if self.target is not None else ""

    @property
    def personal(self) -> bool:
        if self.target is None:
            return is_personal(None, self.ref.thread)
        return is_personal(self.target.conversation.conversation_type, self.target.conversation_id)

    # -- renderings ----------------------------------------------------------------------
    def _progress_message(self, answer: Answer) -> Activity:
        activity = card_activity(render_progress(answer, self.run_id, intro=self.intro),
                                 summary_text(answer))
        return mark_ai_generated(activity) if has_ai_content(answer) else activity

    def _notice(self, text: str) -> Activity:
        return text_activity(text)

    async def _final_variants(self, answer: Answer) -> list[list[Activity]]:
        summary = summary_text(answer)
        images = await self._images(answer.charts)
        files = await self._table_files(answer)
        kw = {"intro": self.intro, "files": files}
        variants = [[self._final(card_activity(c, summary), answer)
                     for c in render_final(answer, self.run_id, images, self.names, **kw)]]
        if images and any(images.values()):
            variants.append([self._final(card_activity(c, summary), answer) for c in
                             render_final(answer, self.run_id, {}, self.names,
                                          budget=SMALLER_CARDS, **kw)])
        plain = plain_activities(answer, self.run_id, self.names, intro=self.intro, files=files)
        variants.append([self._final(a, answer, marked=True) for a in plain])
        return variants

    def _final(self, activity: Activity, answer: Answer, *, marked: bool = False) -> Activity:
        """A message of the final answer: AI label, feedback controls, remembered when sent."""
        if not marked:
            if has_ai_content(answer):
                mark_ai_generated(activity)
            if wants_feedback(answer):
                with_feedback(activity)
        self._finals.add(id(activity))
        return activity

    async def _table_files(self, answer: Answer) -> dict[str, str]:
        """Per cut table: offered as a CSV below the answer (personal chats), or not possible
        here. The CSV is made now (off the event loop) so the card can say which."""
        self._csv = {}
        rules: dict[str, str] = {}
        for part in answer.parts:
            if not isinstance(part, TablePart):
                continue
            if len(part.rows) <= SHOWN_ROWS and len(part.columns) <= MAX_COLUMNS:
                continue
            if not self.personal:
                rules[part.id] = Files.NOT_HERE
                continue
            if self.files is None:
                continue
            data = await asyncio.to_thread(to_csv, part)
            if len(data) > MAX_FILE:
                rules[part.id] = Files.TOO_LARGE
                continue
            self._csv[part.id] = (part, data)
            rules[part.id] = Files.OFFER
        return rules

    async def _deliver_extras(self, answer: Answer) -> None:
        """The CSV of each cut table, offered below the answer (the user accepts or declines)."""
        if self.files is None or self.target is None:
            return
        for index, (part, data) in enumerate(self._csv.values()):
            file = self.files.offer(self.target.conversation_id, self.run_id, part, index, data=data)
            if file is None:
                continue
            try:
                await self._post_durably(consent_activity(file))
            except Exception as exc:  # the answer is out; a lost offer must not count as a lost answer
                log.warning("run %s: the CSV offer could not be posted: %s", self.run_id, exc)
                self.files.drop(file.token)
        self._csv = {}

    async def _deliver_charts(self, charts: list[ChartPart]) -> None:
        images = await self._images(charts)
        for chart in charts:
            activity = card_activity(chart_card(chart, images.get(chart.id)), chart.title or "Chart")
            await self._post_durably(mark_ai_generated(activity))

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
            message_id = await self.connector.post(target, message, priority=priority, grant=grant)
        except ConnectorError as exc:
            raise _translate(exc) from exc
        self._remember(message_id, message)
        return message_id

    async def _edit(self, message_id: str, message: Activity, *, priority: Priority,
                    wait: float | None = None, retries: int = 3, grant: float | None = None) -> None:
        target = self._require_target()
        try:
            await self.connector.update(target, message_id, message, priority=priority, wait=wait,
                                        retries=retries, grant=grant)
        except ConnectorError as exc:
            raise _translate(exc) from exc
        self._remember(message_id, message)

    def _remember(self, message_id: str, message: Activity) -> None:
        """A message of the final answer: a feedback vote on it counts for this run."""
        if self.pages is not None and message_id and id(message) in self._finals:
            self.pages.remember(self._require_target().conversation_id, message_id, self.run_id)

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
                 restored: Callable[[ThreadRef, str], ReplyTarget],
                 intros: Callable[[ThreadRef], str] = lambda ref: "",
                 pages: AnswerPages | None = None, files: CsvOffers | None = None,
                 streaming: bool = False, stop: "StopRun | None" = None,
                 stream_timing: StreamTiming = StreamTiming()) -> None:
        """``streaming``: new questions in personal chats stream (``TEAMS_STREAMING``); a
        user's Stop on a stream goes to ``stop(run_id, who)``, the card Stop button's path."""
        self.connector = connector
        self.streaming = streaming and stop is not None
        self.stop = stop
        self.stream_timing = stream_timing
        self.timing = timing
        self.names = names
        self.tasks = BackgroundTasks()
        self.pages = pages
        self.files = files
        self._targets = targets
        self._restored = restored
        self._intros = intros

    def for_question(self, ref: ThreadRef, asker: str, *, title: str = "") -> TeamsReplySink:
        target = self._targets(ref)
        kwargs: dict[str, Any] = dict(tasks=self.tasks, timing=self.timing, names=self.names,
                                      intro=self._intros(ref), pages=self.pages, files=self.files)
        if self._streams(target):
            from bot.teams.streaming_sink import TeamsStreamingSink  # it builds on this module
            assert self.stop is not None
            return TeamsStreamingSink(self.connector, target, ref, stop=self.stop, asker=asker,
                                      stream_timing=self.stream_timing, **kwargs)
        return TeamsReplySink(self.connector, target, ref, **kwargs)

    def _streams(self, target: ReplyTarget | None) -> bool:
        """Teams streams in personal chats only; everywhere else the card path."""
        return (self.streaming and target is not None
                and target.conversation.conversation_type == "personal")

    def for_existing_reply(self, ref: ThreadRef, asker: str, reply_channel: str, reply_id: str,
                           run_id: str) -> TeamsReplySink:
        return TeamsReplySink(self.connector, self._restored(ref, reply_channel), ref,
                              tasks=self.tasks, timing=self.timing, names=self.names,
                              reply_id=reply_id, run_id=run_id, pages=self.pages, files=self.files)

    async def aclose(self) -> None:
        await self.tasks.aclose()


def _translate(exc: ConnectorError) -> DeliveryError:
    code = exc.code or str(exc.status or "")
    if exc.status in (400, 413):
        return Rejected(f"Teams refused the message: {exc.status} {exc.code}".strip(), code)
    if exc.status == 404:
        return Gone("the message no longer exists", code)
    # an untrusted serviceUrl stays untrusted: retrying would only delay the refusal
    if exc.status in (401, 403) or exc.code in ("no_service_url", "no_target", "untrusted_service_url"):
        return Refused(f"Teams refused: {exc.status} {exc.code}".strip(), code)
    return Unavailable(f"Teams answered {exc.status} {exc.code}".strip(), code)
