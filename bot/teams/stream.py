"""One Teams streamed reply, spoken over the Bot Connector (``shared/reference/teams.md`` §3).

The protocol is small: every chunk is a ``POST`` to the conversation's reply endpoint with one
``streaminfo`` entity. Informative updates (a blue progress line, ≤1,000 characters) and text
chunks (cumulative: each carries the whole text so far) are ``typing`` activities numbered by
``streamSequence`` from 1; the first one has no ``streamId`` and its response id *is* the stream
id, which every later chunk carries. The stream ends with a ``message`` whose entity says
``streamType: final`` (no sequence) — the only chunk that may carry attachments, the AI label and
the feedback loop. Teams allows one stream per chat, about one chunk a second, and cuts a stream
after 2 minutes.

Why not the Agents SDK's ``StreamingResponse`` (1.9.x): it is bound to one ``TurnContext`` held
open for the whole stream, while every outbound call of this service is a short proactive turn
taken through the conversation's rate limiter with retries (:class:`~bot.teams.connector.
TeamsConnector`) — a stream kept outside it would spend the conversation's budget unseen. It also
treats *any* 403 as "the user cancelled", after which it silently drops the final message (our
answer card would be lost), reports the user's Stop only in private attributes, and sleeps a fixed
second after every chunk (tests could not run Teams' clock faster). What we need from it is these
few requests, so they are spoken here, through the same connector, and every Teams answer is
turned into one of three typed outcomes the reply sink acts on:

* :class:`StreamCancelled` — the user pressed Stop (403 ``ContentStreamNotAllowed`` "Content
  stream was cancelled by user."): the run must be stopped on the backend;
* :class:`StreamExpired` — Teams' 2-minute cap (403 "…exceeded streaming time."), or our own
  ``max_age`` reached before Teams says so: carry on with card updates of the same message;
* :class:`StreamRefused` — anything else Teams refuses (no streaming in this conversation,
  another stream in the chat, a completed stream): carry on with card updates too.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from microsoft_agents.activity import Activity, StreamInfo

from bot.delivery.priority import Priority
from bot.delivery.textsplit import shorten
from bot.teams.connector import ConnectorError, TeamsConnector
from bot.teams.target import ReplyTarget

INFORMATIVE_LIMIT = 1_000  # characters of an informative update (Teams: 1 KB / 1,000 characters)
STREAM_TYPE_INFORMATIVE = "informative"
STREAM_TYPE_STREAMING = "streaming"
STREAM_TYPE_FINAL = "final"
CANCELLED_BY_USER = "cancelled by user"  # Teams' message when the user pressed Stop
TIME_EXCEEDED = "exceeded streaming time"  # Teams' message at the 2-minute cap

Sleep = Callable[[float], Awaitable[Any]]


@dataclass(frozen=True)
class StreamTiming:
    """The stream's knobs (Teams' numbers by default; tests shorten them)."""

    interval: float = 1.0  # at least this long between two chunks (Teams: ~1 request a second)
    heartbeat: float = 2.0  # repeat the last chunk after this long idle, so a Stop is seen soon
    max_age: float = 105.0  # end the stream ourselves this long after it began (Teams cuts at 120)


class StreamEnded(Exception):
    """The stream cannot carry more chunks; ``reason`` says why (Teams' message, or ours)."""

    def __init__(self, reason: str, *, status: int | None = None, code: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.code = code


class StreamCancelled(StreamEnded):
    """The user pressed Teams' Stop button on the streamed reply."""


class StreamExpired(StreamEnded):
    """The stream is too old: Teams' 2-minute cap, or our ``max_age`` before it."""


class StreamRefused(StreamEnded):
    """Teams will not stream here (or no more): fall back to ordinary messages."""


def classify(exc: ConnectorError) -> StreamEnded | None:
    """What a failed chunk means for the stream; None: not a stream answer (a server error,
    a 429 that outlived the retries…) — the chunk is lost but the stream may go on."""
    message = (exc.message or "").lower()
    if exc.status == 403:
        if CANCELLED_BY_USER in message:
            return StreamCancelled(exc.message, status=exc.status, code=exc.code)
        if TIME_EXCEEDED in message:
            return StreamExpired(exc.message, status=exc.status, code=exc.code)
        return StreamRefused(exc.message or "content stream is not allowed", status=exc.status,
                             code=exc.code)
    if exc.status in (400, 404, 413):  # "streaming api is not enabled", unknown stream, too large
        return StreamRefused(exc.message or f"{exc.status} {exc.code}", status=exc.status,
                             code=exc.code)
    return None


class TeamsStream:
    """Sends one stream's chunks in order, paced, through the connector's limiter.

    Not safe for concurrent use: the caller sends one chunk at a time (Teams wants each chunk
    sent only after the previous one was answered). Once a chunk ends the stream (a
    :class:`StreamEnded` raised), every later call raises that same outcome.
    """

    def __init__(self, connector: TeamsConnector, target: ReplyTarget, *,
                 timing: StreamTiming = StreamTiming(), sleep: Sleep = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.connector = connector
        self.target = target
        self.timing = timing
        self._sleep = sleep
        self._clock = clock
        self.stream_id: str | None = None
        self.sequence = 0  # of the last chunk sent
        self.started_at: float | None = None
        self.last_sent: float | None = None
        self.ended: StreamEnded | None = None
        self.finished = False  # the final message went out
        self.last_chunk: tuple[str, str] | None = None  # (streamType, text) of the last chunk
        self.text = ""  # the answer text streamed so far

    # -- state ---------------------------------------------------------------------------
    @property
    def open(self) -> bool:
        return self.ended is None and not self.finished

    @property
    def age(self) -> float:
        return 0.0 if self.started_at is None else self._clock() - self.started_at

    @property
    def expiring(self) -> bool:
        """Old enough that it must end now (a final message still fits before Teams' cap)."""
        return self.started_at is not None and self.age >= self.timing.max_age

    def idle(self) -> float:
        return 0.0 if self.last_sent is None else self._clock() - self.last_sent

    # -- chunks --------------------------------------------------------------------------
    async def informative(self, text: str, *, priority: Priority = Priority.PROGRESS,
                          grant: float | None = None) -> str:
        """A progress line (the blue bar). Returns the stream id."""
        text = shorten(" ".join(text.split()), INFORMATIVE_LIMIT)
        return await self._chunk(STREAM_TYPE_INFORMATIVE, text, priority=priority, grant=grant)

    async def append(self, text: str, *, priority: Priority = Priority.PROGRESS) -> str:
        """The answer text so far (cumulative, as Teams requires). Returns the stream id."""
        return await self._chunk(STREAM_TYPE_STREAMING, text, priority=priority)

    async def repeat(self) -> str | None:
        """The last chunk again (a heartbeat: a pressed Stop is only learnt from a chunk's
        answer). None when nothing was sent yet."""
        if self.last_chunk is None:
            return None
        kind, text = self.last_chunk
        return await self._chunk(kind, text, priority=Priority.PROGRESS)

    async def finish(self, message: Activity, *, priority: Priority = Priority.FINAL,
                     wait: float | None = None) -> str:
        """End the stream with ``message`` (its attachments, AI label and feedback loop go on
        this chunk only); the streamed message becomes it. Returns the message id."""
        self._check()
        if self.stream_id is None:
            raise StreamRefused("the stream never started")
        message.entities = [e for e in (message.entities or []) if not _is_stream_info(e)] + [
            StreamInfo(stream_type=STREAM_TYPE_FINAL, stream_id=self.stream_id)]
        message.id = self.stream_id
        await self._pace()
        await self._send(message, priority=priority, wait=wait)
        self.finished = True
        return self.stream_id

    # -- plumbing ------------------------------------------------------------------------
    async def _chunk(self, kind: str, text: str, *, priority: Priority,
                     grant: float | None = None) -> str:
        self._check()
        if self.stream_id is not None:
            await self._pace()
            self._check_age()
        entity = StreamInfo(stream_type=kind, stream_sequence=self.sequence + 1)
        if self.stream_id is not None:
            entity.stream_id = self.stream_id
        activity = Activity(type="typing", text=text, entities=[entity])
        if self.stream_id is not None:
            activity.id = self.stream_id
        response_id = await self._send(activity, priority=priority, grant=grant)
        self.sequence += 1
        if self.stream_id is None:
            self.stream_id = response_id
            self.started_at = self.last_sent
            if not self.stream_id:
                self.ended = StreamRefused("Teams gave the stream no id")
                raise self.ended
        self.last_chunk = (kind, text)
        if kind == STREAM_TYPE_STREAMING:
            self.text = text
        return self.stream_id

    async def _send(self, activity: Activity, *, priority: Priority, wait: float | None = None,
                    grant: float | None = None) -> str:
        try:
            response_id = await self.connector.post(self.target, activity, priority=priority,
                                                    wait=wait, grant=grant)
        except ConnectorError as exc:
            outcome = classify(exc)
            if outcome is None:
                raise
            self.ended = outcome
            raise outcome from exc
        self.last_sent = self._clock()
        return response_id

    async def _pace(self) -> None:
        if self.last_sent is None:
            return
        wait = self.last_sent + self.timing.interval - self._clock()
        if wait > 0:
            await self._sleep(wait)

    def _check(self) -> None:
        if self.ended is not None:
            raise self.ended
        if self.finished:
            raise StreamRefused("the stream has ended")

    def _check_age(self) -> None:
        """Our own limit: no more chunks, but the stream is still open for :meth:`finish`."""
        if self.expiring:
            raise StreamExpired(f"the stream is {self.age:.0f} s old")


def _is_stream_info(entity: Any) -> bool:
    return getattr(entity, "type", None) == "streaminfo"
