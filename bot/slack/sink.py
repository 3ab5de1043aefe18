"""Shows one run in a Slack thread on top of the shared reply lifecycle (bot/delivery/reply.py).

What is Slack-specific here: Block Kit renderings (``bot/slack/render.py``), which Web API error
means what (``_translate``), retiring a placeholder with whichever of ``chat.delete`` and
``chat.update`` has budget first, uploading charts and long SQL after the answer, and two kinds
of progress that cost no ``chat.update`` budget — the thread's status line (``status.py``) while
edits are sparse, and the agent session (``agent_session.py``) that gives Slack's native Stop.
A streamed reply (``streaming_sink.py``) builds on this one; ``sinks.py`` picks which.
Every call goes through the workspace's scheduler via :class:`~bot.slack.client.ScheduledWebClient`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError

from adapters.answer import Answer, ChartPart, StepPart
from bot.delivery.errors import DeliveryError, Gone, Refused, Rejected, Unavailable
from bot.delivery.priority import Priority, call_options
from bot.delivery.reply import Receipt, ReplyLifecycle, Timing
from bot.delivery.scheduler import Scheduler, Scope, first_slot
from bot.delivery.tasks import BackgroundTasks
from bot.relay.thread import ThreadRef
from bot.slack.agent_session import AgentSession, Refusals
from bot.slack.client import ScheduledWebClient
from bot.slack.first_sign import FirstSign
from bot.slack.render import (
    Attachment, FinalReply, SlackMessage, chart_attachments, charts_drawing, plain_fallback,
    render_final, render_progress, retired_pointer,
)
from bot.slack.plan_support import PlanSupport, has_plan
from bot.slack.table_styles import TableStyles
from bot.slack.tables import TableStyle
from bot.slack.status import ThreadStatus

log = logging.getLogger(__name__)

_REJECTED = {"msg_too_long", "msg_blocks_too_long", "invalid_blocks", "invalid_arguments",
             "too_many_attachments", "invalid_blocks_format", "no_text"}
_REFUSED = {"channel_not_found", "not_in_channel", "is_archived", "cant_update_message",
            "cant_delete_message", "restricted_action", "not_authed", "invalid_auth",
            "account_inactive", "token_revoked", "token_expired", "missing_scope",
            "ekm_access_denied", "team_access_not_granted", "no_permission"}


class SlackReplySink(ReplyLifecycle[SlackMessage]):
    POST_METHOD = "chat.postMessage"
    EDIT_METHOD = "chat.update"

    def __init__(self, client: ScheduledWebClient, ref: ThreadRef, *, scheduler: Scheduler,
                 tasks: BackgroundTasks, timing: Timing, status_after: float,
                 max_retries: int = 3, first_sign: FirstSign | None = None,
                 refusals: Refusals | None = None, table_styles: TableStyles | None = None,
                 plan_support: PlanSupport | None = None,
                 reply_ts: str | None = None, run_id: str = "",
                 session: dict[str, str] | None = None) -> None:
        super().__init__(scheduler=scheduler, scope=Scope(ref.workspace, ref.channel, ref.thread),
                         tasks=tasks, timing=timing, reply_id=reply_ts, run_id=run_id)
        self.client = client.for_workspace(ref.workspace)
        self.ref = ref
        self.status_after = status_after
        self.max_retries = max_retries
        self.first_sign = first_sign
        self.status = ThreadStatus(self.client, ref.channel, ref.thread, tasks)
        self.session = AgentSession(self.client, ref.workspace, ref.channel, ref.thread, tasks,
                                    refusals or Refusals(), **(session or {}))
        self.table_styles = table_styles or TableStyles()
        self.plan_support = plan_support or PlanSupport()
        self._replies: list[_Variant] = []
        self._reply: FinalReply | None = None
        self._held: SlackMessage | None = None  # the trailer, waiting for charts still drawing

    @property
    def channel(self) -> str:
        return self.ref.channel

    # -- hooks ---------------------------------------------------------------------------
    def _on_open(self, answer: Answer, *, waiting: bool) -> None:
        shown = self.first_sign is not None and self.first_sign.shown(
            self.ref.workspace, self.ref.channel, self.ref.thread)
        if waiting and not shown:  # the channel's posting slot is taken: say we are on it
            self.status.show(_step_text(answer))
        self.session.want("processing")

    def _on_progress(self, answer: Answer) -> None:
        placeholder_waiting = self._placing is not None and not self._placing.done()
        if placeholder_waiting or self._interval() >= self.status_after:
            self.status.show(_step_text(answer))

    async def _after_final(self, answer: Answer, receipt: Receipt | None) -> None:
        self._tasks.spawn(self.status.close(), name=f"status-clear-{self.run_id}")
        self.session.want("active")

    async def _deliver_extras(self, answer: Answer) -> None:
        """The answer's files go right after it (its chart beside it, the CSV of a long result),
        then the trailer: how the run ended, follow-ups and the feedback buttons."""
        reply = self._reply
        if reply is None:
            return
        for attachment in reply.attachments:
            await self._upload(attachment)
        if reply.trailer is not None and charts_drawing(answer):
            self._held = reply.trailer  # posted once the charts are in (see _deliver_charts)
        elif reply.trailer is not None:
            await self._post_durably(reply.trailer)

    async def _deliver_charts(self, charts: list[ChartPart]) -> None:
        held, self._held = self._held, None
        try:
            for attachment in chart_attachments(charts, first=len(self._delivered_charts()) + 1):
                await self._upload(attachment)
        finally:
            if held is not None:
                await self._post_durably(held)

    def _delivered_charts(self) -> list[Attachment]:
        reply = self._reply
        return [a for a in reply.attachments if a.filename.startswith("chart-")] if reply else []

    # -- the timeline as a plan block, unless the workspace refuses it ---------------------
    async def _post_placeholder(self, answer: Answer, *, grant: float | None) -> str:
        message = self._progress_message(answer)
        try:
            return await self._post(message, priority=Priority.PLACEHOLDER, grant=grant)
        except Rejected as exc:
            if not self._plan_refused(message, exc):
                raise
            return await self._post(self._progress_message(answer), priority=Priority.PLACEHOLDER)

    async def _progress(self, answer: Answer) -> bool:
        try:
            return await super()._progress(answer)
        except Rejected as exc:
            if self._plan_refused(self._progress_message(answer), exc):
                return False  # shown again soon, with the timeline as a line
            raise

    def _plan_refused(self, message: SlackMessage, exc: Rejected) -> bool:
        """Whether Slack refused ``message`` for its plan block (the error names the block, or
        names none); if so, remember it for the workspace."""
        plans = [i for i, b in enumerate(message.blocks) if b.get("type") == "plan"]
        if not plans or not self.plan_support.takes_plans(self.ref.workspace):
            return False
        detail = str(exc)
        named = [i for i in plans if f"/blocks/{i}" in detail]
        if named or "json-pointer" not in detail:
            log.info("run %s: this workspace refuses plan blocks; showing the timeline as a line",
                     self.run_id)
            self.plan_support.refused(self.ref.workspace)
            return True
        return False

    # -- renderings ----------------------------------------------------------------------
    def _notice(self, text: str) -> SlackMessage:
        return SlackMessage(text=text, blocks=[])

    def _progress_message(self, answer: Answer) -> SlackMessage:
        return render_progress(answer, self.run_id,
                               plans=self.plan_support.takes_plans(self.ref.workspace))

    async def _final_variants(self, answer: Answer) -> list[list[SlackMessage]]:
        """Rich renderings from the workspace's best table style down to monospace tables, then
        plain text (which still gets the files). When the first carries the timeline as a
        ``plan`` block, the same rendering with the timeline as a line comes next."""
        self._replies = []
        style: TableStyle | None = self.table_styles.best(self.ref.workspace)
        plans = self.plan_support.takes_plans(self.ref.workspace)
        while style is not None:
            reply = render_final(answer, self.run_id, style, plans=plans)
            self._replies.append(_Variant(style, plans, reply))
            if plans and any(has_plan(m.blocks) for m in reply.messages):
                plans = False
                continue  # the same style again, without the plan block
            plans = False
            style = style.plainer()
        files = self._replies[-1].reply.attachments if self._replies else []
        self._replies.append(_Variant(None, False, FinalReply(plain_fallback(answer, self.run_id), files)))
        return [variant.reply.messages for variant in self._replies]

    def _chose_variant(self, index: int) -> None:
        chosen = self._replies[index]
        self._reply = chosen.reply
        if index == 0 or chosen.style is None:
            return
        refused = self._replies[index - 1]
        if refused.plans and not chosen.plans and refused.style is chosen.style:
            self.plan_support.refused(self.ref.workspace)  # the plan block was the trouble
        elif refused.style is not None and any(b.get("type") == refused.style.value
                                               for m in refused.reply.messages for b in m.blocks):
            self.table_styles.refused(self.ref.workspace, refused.style)  # remember it here

    # -- primitives ----------------------------------------------------------------------
    async def _post(self, message: SlackMessage, *, priority: Priority,
                    grant: float | None = None) -> str:
        with call_options(priority, grant=grant, retries=self.max_retries):
            try:
                response = await self.client.chat_postMessage(
                    channel=self.ref.channel, thread_ts=self.ref.thread, text=message.text,
                    blocks=message.blocks)
            except (SlackApiError, SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
                raise _translate(exc) from exc
        self.status.posted()
        return str(response["ts"])

    async def _edit(self, message_id: str, message: SlackMessage, *, priority: Priority,
                    wait: float | None = None, retries: int = 3, grant: float | None = None) -> None:
        with call_options(priority, wait=wait, retries=retries, grant=grant):
            try:
                await self.client.chat_update(channel=self.ref.channel, ts=message_id,
                                              text=message.text, blocks=message.blocks)
            except (SlackApiError, SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
                raise _translate(exc) from exc

    async def _retire(self, message_id: str) -> None:
        """Delete the old placeholder, or turn it into a pointer — whichever budget frees first."""
        method, grant = await first_slot(self._scheduler, ["chat.delete", "chat.update"],
                                         self.scope, Priority.HOUSEKEEPING)
        if method == "chat.delete":
            try:
                with call_options(Priority.HOUSEKEEPING, grant=grant):
                    await self.client.chat_delete(channel=self.ref.channel, ts=message_id)
                return
            except SlackApiError as exc:
                if exc.response.get("error") == "message_not_found":
                    return
                log.info("run %s: could not delete the old placeholder (%s); pointing it at the "
                         "answer instead", self.run_id, exc.response.get("error"))
        pointer = retired_pointer()
        try:
            await self._edit(message_id, pointer, priority=Priority.HOUSEKEEPING,
                             grant=grant if method == "chat.update" else None)
        except Gone:
            return

    async def _upload(self, attachment: Attachment) -> None:
        try:
            with call_options(Priority.FINAL, retries=self.max_retries):
                await self.client.files_upload_v2(
                    channel=self.ref.channel, thread_ts=self.ref.thread, file=attachment.content,
                    filename=attachment.filename, title=attachment.title,
                    alt_txt=attachment.alt_text or None)
        except SlackApiError as exc:
            log.warning("run %s: upload of %s failed: %s", self.run_id, attachment.filename,
                        exc.response.get("error"))
            note = SlackMessage(text=f":warning: I could not upload {attachment.title} "
                                     f"({exc.response.get('error')}). Reference: {self.run_id}")
            try:
                await self._post(note, priority=Priority.FINAL)
            except DeliveryError:
                log.warning("run %s: could not say that the upload failed", self.run_id)


@dataclass(frozen=True)
class _Variant:
    """One rendering of the final answer: its table style (None: plain text) and whether it
    shows the timeline as a ``plan`` block."""

    style: TableStyle | None
    plans: bool
    reply: FinalReply


def _translate(exc: BaseException) -> DeliveryError:
    if isinstance(exc, SlackApiError):
        error = str(exc.response.get("error", "") or "")
        if error in _REJECTED:
            details = "; ".join(str(m) for m in (exc.response.get("response_metadata") or {})
                                .get("messages", []))
            return Rejected(f"Slack refused the message: {error}{' — ' + details if details else ''}",
                            error)
        if error == "message_not_found":
            return Gone("the message no longer exists", error)
        if error in _REFUSED:
            return Refused(f"Slack refused: {error}", error)
        return Unavailable(f"Slack answered {exc.response.status_code} {error}".strip(), error)
    return Unavailable(f"{type(exc).__name__}: {exc}", "network")


def _step_text(answer: Answer) -> str:
    """What the agent is doing now, in a few words, for the status line."""
    if answer.status and answer.status.text:
        return answer.status.text
    steps = [p for p in answer.parts if isinstance(p, StepPart)]
    return steps[-1].title if steps else "Working on it…"

