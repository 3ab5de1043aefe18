"""A Slack reply streamed natively (``bot/slack/stream.py``), on the placeholder reply's rails.

Why a subclass of :class:`~bot.slack.sink.SlackReplySink`: every fallback of a stream *is* the
placeholder reply — a stream Slack ended, one too old, one the Tier 2 budget cannot cover, an
answer that cannot end the stream — so the placeholder sink's edits, renderings, size
fallbacks, uploads and trailer stay in one place. This class decides only what the stream
carries and when the message leaves it:

* the reply opens as a stream when the workspace's Tier 2 budget allows (``StreamBudget``),
  else as the placeholder;
* progress goes out as ``chat.appendStream`` (only what changed) while the stream lives;
* the first rendering of the final answer tried is the stream's end (``chat.stopStream`` with
  the blocks below the streamed text, ``render_stream_final``); when there is none, or Slack
  refuses it, the stream is stopped and the message replaced like a placeholder.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError

from adapters.answer import Answer
from bot.delivery.errors import Rejected
from bot.delivery.limiter import SlotTimeout
from bot.delivery.priority import Priority, call_options
from bot.delivery.reply import Receipt
from bot.slack.render import FinalReply, SlackMessage, render_stream_final
from bot.slack.sink import SlackReplySink
from bot.slack.stream import SlackStream, StreamEnded
from bot.slack.stream_budget import StreamBudget

log = logging.getLogger(__name__)

APPEND_METHOD = "chat.appendStream"


class SlackStreamingSink(SlackReplySink):
    def __init__(self, *args: Any, stream: SlackStream, stream_budget: StreamBudget,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stream = stream
        self.stream_budget = stream_budget
        self._streaming = False  # holding a place in the stream budget
        self._native: FinalReply | None = None  # the answer as the end of its stream
        self._final: Answer | None = None

    def _on_progress(self, answer: Answer) -> None:
        if self.stream.live:
            return  # the stream itself shows the step
        super()._on_progress(answer)

    # -- pacing: appends have their own budget ----------------------------------------------
    def _interval(self) -> float:
        """While streaming, progress is paced by ``chat.appendStream``'s budget (Tier 4) shared
        by the workspace's live streams — not by ``chat.update``'s, which every live reply
        shares and which a stream does not use (10 live replies made that 20 s between steps)."""
        if not self.stream.live:
            return super()._interval()
        limiter = self._scheduler.limiter(APPEND_METHOD, self.scope)
        base = self._timing.progress_interval
        if limiter is None:
            return base
        return max(base, self.stream_budget.live(self.ref.workspace) * limiter.progress_spacing)

    def _retry_interval(self) -> float:
        if not self.stream.live:
            return super()._retry_interval()
        limiter = self._scheduler.limiter(APPEND_METHOD, self.scope)
        spacing = limiter.progress_spacing if limiter is not None else self._timing.progress_interval
        return min(self._interval(), spacing)

    async def _post_placeholder(self, answer: Answer, *, grant: float | None) -> str:
        """Stream the reply when streaming is on and the workspace's Tier 2 budget allows it;
        otherwise (or if Slack refuses the stream) post the placeholder."""
        if self.stream_budget.try_enter(self.scope):
            self._streaming = True
            posts = self._scheduler.limiter(self.POST_METHOD, self.scope)
            try:
                with call_options(Priority.PLACEHOLDER, retries=0, wait=self._timing.final_edit_wait):
                    ts = await self.stream.start(answer)
                self.status.posted()
                return ts
            except (SlackApiError, SlackClientError, aiohttp.ClientError, TimeoutError,
                    SlotTimeout) as exc:
                log.info("run %s: could not start a stream (%s); posting a placeholder",
                         self.run_id, exc)
                self._leave_stream()
            finally:
                if posts is not None and grant is not None:
                    posts.completed(grant)  # the stream message took the channel's turn
                    grant = None
        return await super()._post_placeholder(answer, grant=grant)

    async def _progress(self, answer: Answer) -> bool:
        if self._placing is not None and not self._placing.done():
            return True
        stream = self.stream
        if stream.live:
            if stream.too_old():
                await self._end_stream(answer)  # then chat.update, as without a stream
            else:
                try:
                    with call_options(Priority.PROGRESS, retries=0):
                        await stream.append(answer)
                    return True
                except SlotTimeout:
                    return False  # the append budget is spent: try again later
                except StreamEnded:
                    log.info("run %s: Slack ended the stream; editing the message instead",
                             self.run_id)
                    self._leave_stream()
                except (SlackApiError, SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
                    log.info("run %s: a stream append failed: %s", self.run_id, exc)
                    return False
        return await super()._progress(answer)

    async def _deliver(self, answer: Answer) -> Receipt:
        """A live stream is finished natively when the answer allows it (the first rendering
        tried is then ``chat.stopStream`` with the blocks below the streamed text); otherwise
        it is stopped first and the message replaced like a placeholder."""
        self._final = answer  # (_final_variants decides, and stops the stream if not)
        return await super()._deliver(answer)

    async def _finish_stream(self, message: SlackMessage) -> None:
        """The answer's first message as the end of its stream. Any failure is a refusal, so
        the next rendering replaces the message instead — after the stream was stopped."""
        stream, answer = self.stream, self._final
        assert answer is not None
        status = "active" if self.session.opened else None
        try:
            with call_options(Priority.FINAL, retries=1, wait=self._timing.final_edit_wait):
                await stream.stop(answer, session_status=status, blocks=message.blocks)
        except (StreamEnded, SlackApiError, SlackClientError, aiohttp.ClientError, TimeoutError,
                SlotTimeout) as exc:
            log.info("run %s: the stream could not carry the answer (%s); replacing the message",
                     self.run_id, exc)
            await self._end_stream(answer)
            raise Rejected(f"the stream could not carry the answer: {exc}", "stream") from exc
        if status is not None:
            self.session.settled(status)
        self._leave_stream()

    async def detach(self) -> None:
        await super().detach()
        if self._latest is not None:
            await self._end_stream(self._latest)

    async def _end_stream(self, answer: Answer) -> None:
        """Stop a live stream (its tasks in their last states), so the message can be edited.
        Best effort: a stream Slack already ended, or a spent budget, leaves the edit path to
        cope (a refused edit is posted anew and the old message retired)."""
        stream = self.stream
        if not stream.live:
            self._leave_stream()
            return
        # at the end of a run the stop also moves an opened agent session out of "processing"
        status = "active" if answer.outcome.finished and self.session.opened else None
        try:
            with call_options(Priority.FINAL, retries=1, wait=self._timing.final_edit_wait):
                await stream.stop(answer, session_status=status)
            if status is not None:
                self.session.settled(status)
        except StreamEnded:
            pass
        except (SlackApiError, SlackClientError, aiohttp.ClientError, TimeoutError,
                SlotTimeout) as exc:
            log.info("run %s: could not stop the stream: %s", self.run_id, exc)
        finally:
            self._leave_stream()

    def _leave_stream(self) -> None:
        if self._streaming and self.stream_budget is not None:
            self._streaming = False
            self.stream_budget.leave(self.ref.workspace)

    # -- final: the stream's end, or the placeholder's renderings ---------------------------
    async def _final_variants(self, answer: Answer) -> list[list[SlackMessage]]:
        self._native = None
        if self.stream.can_finish(answer):
            self._native = render_stream_final(answer, self.run_id,
                                               self.table_styles.best(self.ref.workspace))
        if self._native is None:
            await self._end_stream(answer)  # the message is replaced: it must stop streaming
        variants = await super()._final_variants(answer)
        return ([self._native.messages] if self._native is not None else []) + variants

    def _chose_variant(self, index: int) -> None:
        if self._native is not None:
            if index == 0:
                self._reply = self._native
                return
            index -= 1  # (a refused stream end says nothing about the workspace's tables)
        super()._chose_variant(index)

    async def _edit(self, message_id: str, message: SlackMessage, *, priority: Priority,
                    wait: float | None = None, retries: int = 3, grant: float | None = None) -> None:
        if message.finishes_stream:
            await self._finish_stream(message)
            return
        await super()._edit(message_id, message, priority=priority, wait=wait, retries=retries,
                            grant=grant)
