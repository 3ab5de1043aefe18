"""Shows one run in a Slack thread: placeholder, paced edits, and the final reply.

Progress edits go through a :class:`~bot.delivery.Coalescer` and the workspace's ``chat.update``
budget; 429s are retried by slack_sdk's ``AsyncRateLimitErrorRetryHandler`` (which honours
``Retry-After``). The final reply never goes through the coalescer: it is sent after pacing has
drained, retried on rate limits, and degrades to plain text if Slack rejects its blocks, so the
placeholder can never stay on "working".
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.answer import Answer
from bot.delivery import RateBudget
from bot.delivery.paced_sink import PacedReplySink
from bot.metrics import Metrics
from bot.relay.thread import ThreadRef
from bot.slack.render import (
    Attachment, SlackMessage, plain_fallback, render_final, render_progress,
)

log = logging.getLogger(__name__)

_REJECTED = {"msg_too_long", "msg_blocks_too_long", "invalid_blocks", "invalid_arguments",
             "too_many_attachments", "invalid_blocks_format"}


class SlackReplySink(PacedReplySink):
    def __init__(self, client: AsyncWebClient, ref: ThreadRef, *, budget: RateBudget,
                 interval: float, metrics: Metrics, reply_ts: str | None = None,
                 run_id: str = "", final_attempts: int = 4) -> None:
        self.client = client
        self.ref = ref
        self.channel = ref.channel
        self.thread_ts = ref.thread
        self.reply_ts = reply_ts
        self.run_id = run_id
        self.metrics = metrics
        self.final_attempts = final_attempts
        self._budget = budget
        super().__init__(interval=interval, budget=budget, budget_key=ref.workspace)

    # -- ReplySink -----------------------------------------------------------------------
    async def open(self, answer: Answer, *, run_id: str, queued_behind: int = 0) -> tuple[str, str]:
        self.run_id = run_id
        msg = render_progress(answer, run_id)
        resp = await self._call("chat_postMessage", channel=self.channel, thread_ts=self.thread_ts,
                                text=msg.text, blocks=msg.blocks)
        self.reply_ts = resp["ts"]
        self._coalescer.mark_sent()
        await self._agent_session("processing")
        return self.channel, self.reply_ts

    async def _after_final(self, answer: Answer) -> None:
        await self._agent_session("active")

    async def _agent_session(self, status: str) -> None:
        """Mirror the run in Slack's agent session so its native Stop button works.

        Best effort: apps not declared as agents get an error here, and the Stop button in the
        reply still works for them.
        """
        try:
            await self._call("agents_sessions_setStatus", channel_id=self.channel,
                             thread_ts=self.thread_ts, status=status)
        except Exception as exc:  # noqa: BLE001 - never let session bookkeeping break a reply
            log.debug("agent session %s not set: %s", status, exc)

    # -- internals -----------------------------------------------------------------------
    async def _edit_progress(self, answer: Answer) -> None:
        if self.reply_ts is None:
            return
        msg = render_progress(answer, self.run_id)
        await self._call("chat_update", channel=self.channel, ts=self.reply_ts, text=msg.text,
                         blocks=msg.blocks)

    async def _deliver_final(self, answer: Answer) -> None:
        reply = render_final(answer, self.run_id)
        try:
            await self._send_messages(reply.messages)
        except SlackApiError as exc:
            if exc.response.get("error") not in _REJECTED:
                raise
            log.warning("run %s: Slack rejected the final blocks (%s); sending plain text",
                        self.run_id, exc.response.get("error"))
            plain = plain_fallback(answer, self.run_id)
            try:
                await self._send_messages(plain)
            except SlackApiError as again:
                # the placeholder itself cannot be edited: post the answer as new replies
                log.warning("run %s: placeholder not editable (%s); posting the answer anew",
                            self.run_id, again.response.get("error"))
                stale, self.reply_ts = self.reply_ts, None
                if stale is not None:  # never leave a "working…" placeholder behind
                    try:
                        await self._call("chat_delete", channel=self.channel, ts=stale)
                    except SlackApiError:
                        pass
                await self._send_messages(plain)
        for attachment in reply.attachments:
            await self._upload(attachment)

    async def _send_messages(self, messages: list[SlackMessage]) -> None:
        first, rest = messages[0], messages[1:]
        if self.reply_ts is not None:
            await self._final_call("chat_update", channel=self.channel, ts=self.reply_ts,
                                   text=first.text, blocks=first.blocks)
        else:
            resp = await self._final_call("chat_postMessage", channel=self.channel,
                                          thread_ts=self.thread_ts, text=first.text,
                                          blocks=first.blocks)
            self.reply_ts = resp["ts"]
        for msg in rest:
            await self._final_call("chat_postMessage", channel=self.channel,
                                   thread_ts=self.thread_ts, text=msg.text, blocks=msg.blocks)

    async def _upload(self, attachment: Attachment) -> None:
        try:
            await self._final_call("files_upload_v2", channel=self.channel, thread_ts=self.thread_ts,
                                   file=attachment.content, filename=attachment.filename,
                                   title=attachment.title, alt_txt=attachment.alt_text or None)
        except SlackApiError as exc:
            log.warning("run %s: upload of %s failed: %s", self.run_id, attachment.filename,
                        exc.response.get("error"))
            await self._call("chat_postMessage", channel=self.channel, thread_ts=self.thread_ts,
                             text=f":warning: I could not upload {attachment.title} "
                                  f"({exc.response.get('error')}). Reference: {self.run_id}")

    async def _final_call(self, method: str, **kwargs: Any) -> Any:
        """Like ``_call`` but keeps trying through rate limits: the final state is never dropped."""
        for attempt in range(1, self.final_attempts + 1):
            if method == "chat_update":
                await self._budget.acquire(self.ref.workspace)
            try:
                return await self._call(method, **kwargs)
            except SlackApiError as exc:
                if exc.response.status_code != 429 or attempt == self.final_attempts:
                    raise
                delay = float(exc.response.headers.get("Retry-After", "1") or 1)
                self._budget.penalise(self.ref.workspace, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _call(self, method: str, **kwargs: Any) -> Any:
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        try:
            resp = await getattr(self.client, method)(**kwargs)
        except SlackApiError as exc:
            self.metrics.platform_calls.labels("slack", method, exc.response.get("error", "error")).inc()
            raise
        self.metrics.platform_calls.labels("slack", method, "ok").inc()
        return resp


class SlackSinkFactory:
    """Builds Slack sinks sharing one client, one per-workspace edit budget and pacing."""

    def __init__(self, client: AsyncWebClient, *, budget: RateBudget, interval: float,
                 metrics: Metrics) -> None:
        self.client = client
        self.budget = budget
        self.interval = interval
        self.metrics = metrics

    def for_question(self, ref: ThreadRef, asker: str) -> SlackReplySink:
        return SlackReplySink(self.client, ref, budget=self.budget, interval=self.interval,
                              metrics=self.metrics)

    def for_existing_reply(self, ref: ThreadRef, asker: str, reply_channel: str, reply_id: str,
                           run_id: str) -> SlackReplySink:
        return SlackReplySink(self.client, ref, budget=self.budget, interval=self.interval,
                              metrics=self.metrics, reply_ts=reply_id, run_id=run_id)
