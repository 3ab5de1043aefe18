"""A Teams reply that streams in a personal chat, and becomes today's card reply when it cannot.

Why a subclass of :class:`~bot.teams.sink.TeamsReplySink`: every fallback of a stream *is* the
card reply — the streamed message is an ordinary message once the stream is over, so the card
path edits it (PUT) exactly as it edits a placeholder, and the final answer's renderings, size
degrades, feedback bookkeeping and CSV offers stay in one place. This class only decides what
goes out while the stream is open:

* instead of the placeholder card, the stream's first chunk — an informative update — whose id
  is the reply's id (the relay records it as usual);
* while the run works, an informative update for each new step or status line (in order, one a
  pacing interval), then the answer text as cumulative text chunks; when nothing new happened
  for a while, the last chunk again (a *heartbeat*: Teams tells a bot about the user's Stop only
  in the answer to its next chunk);
* the final answer's first message (the card with table, chart and SQL toggle, the AI label and
  the feedback loop) as the stream's final message.

What ends the stream early, and what follows:

* the user's Stop (403 "cancelled by user") → the run is stopped through the same path as the
  card's Stop button (``stop(run_id, asker)``: in a personal chat only the asker can press it),
  and the reply carries on as a card ("Stopping…", then "Stopped by …");
* the stream's age (``StreamTiming.max_age``, ours, before Teams' 2-minute cap) → the stream is
  finished with the progress card (Stop button included) and the card path takes over;
* Teams' cap (403 "exceeded streaming time"), or a refusal (no streaming here, another stream in
  the chat) → the card path takes over, editing the streamed message (or posting a placeholder
  when no stream ever started).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from microsoft_agents.activity import Activity

from adapters.answer import Answer, StatusPart, TextPart
from bot.delivery.errors import DeliveryError
from bot.delivery.limiter import SlotTimeout
from bot.delivery.priority import Priority
from bot.delivery.reply import Receipt
from bot.delivery.timeline import timeline
from bot.teams.connector import ConnectorError
from bot.teams.sink import TeamsReplySink
from bot.teams.stream import (
    StreamCancelled, StreamEnded, StreamExpired, StreamRefused, StreamTiming, TeamsStream,
)

log = logging.getLogger(__name__)

StopRun = Callable[[str, str], Awaitable[Any]]  # (run id, who) → the card Stop button's path
STARTING = "Working on it…"
INFORMATIVE_LIMIT = 1000  # characters of one informative update (Teams)


class TeamsStreamingSink(TeamsReplySink):
    def __init__(self, *args: Any, stop: StopRun, asker: str,
                 stream_timing: StreamTiming = StreamTiming(), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        assert self.target is not None, "a stream needs the conversation's reply target"
        self.stream = TeamsStream(self.connector, self.target, timing=stream_timing)
        self.streaming = True  # False once the card path has taken over (or never streamed)
        self.ended: StreamEnded | None = None  # why the stream ended early, if it did
        self._stop = stop
        self._asker = asker
        self._announced: list[str] = []  # informative lines sent, in order
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one chunk at a time
        self._pump: asyncio.Task[None] | None = None
        self._stop_task: asyncio.Task[Any] | None = None

    # -- the ReplySink protocol --------------------------------------------------------------
    async def open(self, answer: Answer, *, run_id: str, queued_behind: int = 0) -> None:
        if queued_behind > 0:  # another run's stream holds the chat: Teams allows one at a time
            self.streaming = False
        await super().open(answer, run_id=run_id, queued_behind=queued_behind)

    async def detach(self) -> None:
        await self._halt()
        await super().detach()

    # -- placeholder: the stream's first chunk ------------------------------------------------
    async def _place(self) -> None:  # type: ignore[override]
        if not self.streaming:
            await super()._place()
            return
        try:
            async with self._lock:
                line = (self._pending(self._latest or Answer()) or [STARTING])[0]
                self.reply_id = await self.stream.informative(line, priority=Priority.PLACEHOLDER)
                self._announced.append(line)
            self._coalescer.mark_sent()
        except asyncio.CancelledError:
            raise
        except (StreamEnded, ConnectorError, DeliveryError, SlotTimeout) as exc:
            log.info("run %s: no stream here (%s); posting a placeholder card", self.run_id, exc)
            self.streaming = False
            self.ended = exc if isinstance(exc, StreamEnded) else None
            await super()._place()
            return
        self._pump = asyncio.create_task(self._run_pump(), name=f"teams-stream-{self.run_id}")

    # -- progress: chunks while streaming, card edits after ---------------------------------
    def _on_progress(self, answer: Answer) -> None:
        if self.streaming:
            self._wake.set()

    async def _progress(self, answer: Answer) -> bool:  # type: ignore[override]
        if self.streaming:
            return True  # the pump shows it
        return await super()._progress(answer)

    async def _run_pump(self) -> None:
        """Send what is new (or a heartbeat) until the stream ends or the answer is ready."""
        while self.streaming:
            try:
                await asyncio.wait_for(self._wake.wait(), self.stream.timing.heartbeat)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                async with self._lock:
                    if not self.streaming:
                        return
                    await self._next_chunk()
            except StreamCancelled as exc:
                await self._user_stopped(exc)
                return
            except StreamEnded as exc:
                await self._fall_back(exc)
                return
            except (ConnectorError, SlotTimeout) as exc:  # a chunk lost; the stream goes on
                log.info("run %s: a stream chunk was not sent: %s", self.run_id, exc)
                self._wake.set()
                await asyncio.sleep(self.stream.timing.interval)
            except Exception:
                log.exception("run %s: streaming failed; carrying on with cards", self.run_id)
                await self._fall_back(StreamRefused("internal error"))
                return

    async def _next_chunk(self) -> None:
        answer = self._latest or Answer()
        text = stream_text(answer)
        pending = [] if self.stream.text else self._pending(answer)
        if pending:
            await self.stream.informative(pending[0])
            self._announced.append(pending[0])
            if len(pending) > 1 or text:
                self._wake.set()
        elif text and text != self.stream.text:
            if not text.startswith(self.stream.text):  # Teams wants each chunk to extend the last
                raise StreamExpired("the answer text was rewritten")
            await self.stream.append(text)
        elif self.stream.idle() >= self.stream.timing.heartbeat:
            await self.stream.repeat()

    def _pending(self, answer: Answer) -> list[str]:
        """Informative lines not shown yet, in order: the status line, then each task of the
        agent's timeline (bot/delivery/timeline.py: Wren's stages, ClickZetta's items, TextQL's
        blocks — the same tasks Slack shows)."""
        lines = [p.text for p in answer.parts if isinstance(p, StatusPart) and p.text.strip()]
        lines += [task.title[:INFORMATIVE_LIMIT] for task in timeline(answer)]
        return [line for line in dict.fromkeys(lines) if line not in self._announced]

    async def _user_stopped(self, exc: StreamCancelled) -> None:
        """Teams' Stop button: stop the run as the card's Stop button does, then go on as a
        card (the relay's "Stopping…" and the stopped answer edit the streamed message)."""
        log.info("run %s: the user stopped the stream", self.run_id)
        self.ended = exc
        self.streaming = False
        self._stop_task = asyncio.create_task(self._stop_run(), name=f"stream-stop-{self.run_id}")

    async def _stop_run(self) -> None:
        try:
            await self._stop(self.run_id, self._asker)
        except Exception:
            log.exception("run %s: the stream's Stop could not stop the run", self.run_id)

    async def _fall_back(self, exc: StreamEnded) -> None:
        """Carry on with card updates of the same message; a stream we end ourselves is first
        finished with the progress card, so Teams stops showing it as streaming."""
        log.info("run %s: streaming ends (%s); carrying on with card updates", self.run_id, exc)
        self.ended = exc
        self.streaming = False
        if self.stream.open and self.stream.stream_id:
            try:
                await self._format_sql(self._latest or Answer())
                async with self._lock:
                    await self.stream.finish(self._progress_message(self._latest or Answer()),
                                             priority=Priority.FINAL,
                                             wait=self._timing.final_edit_wait)
                self._coalescer.mark_sent()
            except (StreamEnded, ConnectorError, SlotTimeout) as error:
                log.info("run %s: the stream could not be finished (%s)", self.run_id, error)
        if self._latest is not None:
            self._coalescer.offer(self._latest)

    async def _halt(self) -> None:
        """Stop sending chunks (the final message goes next, or nothing: shutdown)."""
        pump, self._pump = self._pump, None
        if pump is None or pump is asyncio.current_task():
            return
        if not pump.done():
            async with self._lock:  # a chunk on the wire finishes first
                pass
            pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)

    # -- final: the stream's final message ---------------------------------------------------
    async def _deliver_first(self, message: Activity, *, plainest: bool = False) -> Receipt:
        if self._placing is not None and not self._placing.done():
            await asyncio.shield(self._placing)
        await self._halt()
        if self.streaming and self.stream.open and self.stream.stream_id:
            self.streaming = False
            try:
                async with self._lock:
                    stream_id = await self.stream.finish(
                        message, wait=self._timing.final_edit_wait + self._timing.final_edit_timeout)
                self.reply_id = stream_id
                self._remember(stream_id, message)
                return Receipt(self.channel, stream_id)
            except (StreamEnded, ConnectorError, SlotTimeout) as exc:
                log.info("run %s: the answer could not end the stream (%s); sending it as a "
                         "card", self.run_id, exc)
                self.ended = self.ended or (exc if isinstance(exc, StreamEnded) else None)
                message.entities = [e for e in (message.entities or [])
                                    if getattr(e, "type", None) != "streaminfo"]
                message.id = None
        self.streaming = False
        return await super()._deliver_first(message, plainest=plainest)


def stream_text(answer: Answer) -> str:
    """The answer's text as it streams: its text parts, in order."""
    return "\n\n".join(p.markdown.strip() for p in answer.parts
                       if isinstance(p, TextPart) and p.markdown.strip())
