"""One reply streamed with Slack's native streaming (``chat.startStream`` → ``appendStream`` →
``stopStream``, shared/reference/slack.md §2.4).

The stream carries the *live* part of a run: the task timeline (``task_display_mode="plan"``,
one ``task_update`` per change) and the answer text as it grows (``markdown_text``). It does
not carry the final answer: the reply sink stops the stream and then replaces the message with
the same Block Kit answer every other path gets (tables, SQL, charts' place, feedback,
follow-ups, long answers over several messages). That keeps one final rendering, with its size
accounting and plainer fallbacks, instead of a second one squeezed into ``stopStream``'s
bottom blocks — at the cost of one ``chat.update`` per streamed answer.

Why not slack_sdk's ``chat_stream()`` helper: it buffers text and decides itself when to call
Slack, and a failed flush keeps its buffer; here every call must go through the workspace's
scheduler at the moment the sink chooses, and a failure must tell the sink to fall back. The
same three Web API methods are called directly, with chunks built by slack_sdk's models.

A stream ends for good (:class:`StreamEnded`) when Slack says ``message_not_in_streaming_state``
(it closes streams after about five minutes, and when the user presses the agent session's
Stop) — the sink then carries on with ``chat.update`` of the same message.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.models.messages.chunk import MarkdownTextChunk

from adapters.answer import Answer, Outcome
from bot.delivery.timeline import timeline
from bot.slack.client import ScheduledWebClient
from bot.slack.timeline import ChunkDiff, plan_title

MARKDOWN_PER_CALL = 12_000  # chat.appendStream's markdown_text limit
_ENDED = {"message_not_in_streaming_state", "message_not_found", "cant_update_message"}


class StreamEnded(Exception):
    """Slack no longer takes chunks for this message; edit it instead."""


class SlackStream:
    def __init__(self, client: ScheduledWebClient, channel: str, thread: str, *,
                 recipient_user: str, recipient_team: str, max_age: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.channel = channel
        self.thread = thread
        self.recipient_user = recipient_user
        self.recipient_team = recipient_team
        self.max_age = max_age
        self.ts: str | None = None
        self.live = False
        self._clock = clock
        self._started = 0.0
        self._diff = ChunkDiff()
        self._text = ""  # the answer text shown so far

    def too_old(self) -> bool:
        """Near Slack's own cut-off: stop it ourselves rather than leave a broken stream."""
        return self.live and self._clock() - self._started >= self.max_age

    async def start(self, answer: Answer) -> str:
        """Open the stream with what is known; returns the message's ts."""
        chunks = self._chunks(answer)
        response = await self.client.chat_startStream(
            channel=self.channel, thread_ts=self.thread, recipient_user_id=self.recipient_user,
            recipient_team_id=self.recipient_team, task_display_mode="plan", chunks=chunks)
        self.ts = str(response["ts"])
        self.live = True
        self._started = self._clock()
        return self.ts

    async def append(self, answer: Answer) -> bool:
        """Send what changed since the last call; False when nothing had."""
        return await self._send(answer, self.client.chat_appendStream)

    def can_finish(self, answer: Answer) -> bool:
        """Whether the stop can carry the rest of the answer's text: the stream is live, young
        enough, and showed a beginning of this very text, the rest fitting one call."""
        text = answer.text
        return (self.live and not self.too_old() and text.startswith(self._text)
                and len(text) - len(self._text) <= MARKDOWN_PER_CALL)

    async def stop(self, answer: Answer, *, session_status: str | None = None,
                   blocks: list[dict[str, Any]] | None = None) -> None:
        """Close the stream with the tasks' last states (the text so far stays);
        ``session_status`` moves the thread's agent session too (``active`` at the end, so its
        native Stop button goes away without an ``agents.sessions.setStatus`` call); ``blocks``
        are shown below the streamed text (the answer's tables, SQL, feedback)."""
        extra: dict[str, Any] = {}
        if session_status:
            extra["session_status"] = session_status
        if blocks:
            extra["blocks"] = blocks
        method = functools.partial(self.client.chat_stopStream, **extra) if extra \
            else self.client.chat_stopStream
        await self._send(answer, method, always=True)  # StreamEnded: Slack had ended it
        self.live = False  # (any other failure leaves it open: the caller may stop it plainly)

    async def _send(self, answer: Answer, method: Any, *, always: bool = False) -> bool:
        if not self.live or self.ts is None:
            raise StreamEnded("the stream is not live")
        saved = self._save()
        chunks = self._chunks(answer)
        if not chunks and not always:
            return False
        try:
            await method(channel=self.channel, ts=self.ts, chunks=chunks)
        except SlackApiError as exc:
            self._restore(saved)
            if exc.response.get("error") in _ENDED:
                self.live = False
                raise StreamEnded(str(exc.response.get("error"))) from exc
            raise
        except BaseException:
            self._restore(saved)
            raise
        return True

    def _chunks(self, answer: Answer) -> list[dict[str, Any]]:
        tasks = timeline(answer)
        chunks = self._diff.chunks(tasks, plan_title(tasks, stopped=answer.outcome is Outcome.STOPPED))
        text = answer.text
        if text.startswith(self._text):  # a rewritten text waits for the final answer
            delta = text[len(self._text):][:MARKDOWN_PER_CALL]
            if delta:
                chunks.append(MarkdownTextChunk(text=delta).to_dict())
                self._text += delta
        return chunks

    def _save(self) -> tuple[Any, ...]:
        d = self._diff
        return dict(d.sent), set(d.detailed), set(d.output), d.title, self._text

    def _restore(self, saved: tuple[Any, ...]) -> None:
        d = self._diff
        d.sent, d.detailed, d.output, d.title, self._text = saved
