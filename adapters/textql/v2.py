"""The v2 REST surface: ``POST /v2/chats/stream`` (ask, continue) and ``POST /v2/chats/{id}/cancel``.

The stream (backends.md §2.3) has ``data:`` lines only, each a JSON object with a ``type``:
``metadata`` (``chat_id``: the session), ``text`` (a delta to append), ``cell`` (a step, sent when
it starts and again when it ends), ``asset``, and ``done`` (``status`` completed|failed, ``error``).
The official SDK reads it one ``data:`` line at a time, and the reference warns that a JSON object
may come per line without blank-line separators, so :func:`data_events` yields a payload as soon as
a ``data:`` line parses on its own and otherwise joins lines up to the blank line, as SSE does.

Text deltas between two steps form one text part (``text:0``, ``text:1``, …) so that narrative,
SQL and charts keep the order in which Ana produced them.

An event whose data is not JSON is skipped with a warning (one damaged event must not end an
analysis whose later events arrive intact), and a stream that ends without ``done`` is recovered
through ``GET /v2/chats/{id}`` (:class:`V2Ana`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any, AsyncIterator
from urllib.parse import quote

import httpx

from adapters.answer import (
    ErrorPart, Finished, Outcome, PartUpsert, SessionAssigned, StatusPart, TextPart, Update,
)
from adapters.http import ResponseTooLarge, is_event_stream, media_type
from adapters.textql.blocks import STATUS_ID
from adapters.textql.cells import asset_ref, translate_cell
from adapters.textql.errors import error_part, http_error, incomplete, not_a_stream, transport_error
from adapters.textql.images import ImageFetcher
from adapters.textql.legacy import read_capped
from adapters.textql.recovery import RecoveredTurn, answer_turn
from adapters.textql.settings import TextQLSettings
from adapters.textql.tracker import PartTracker

log = logging.getLogger(__name__)

_NEWLINE = re.compile(r"\r\n|\r|\n")


def _fresh_event(line: str) -> dict[str, Any] | None:
    """``line`` as a whole v2 event on its own (a JSON object with a ``type``), else None."""
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) and isinstance(value.get("type"), str) else None


def _skipped(reason: str, size: int) -> None:
    log.warning("textql: skipped a v2 stream event that is %s (%d bytes)", reason, size)


def _may_close(value: str) -> bool:
    """Whether a ``data:`` line could be the last of a JSON object or array."""
    return value.rstrip().endswith(("}", "]"))


def _cannot_mend(exc: Exception, data: str) -> bool:
    """Whether ``data`` is invalid before its end. Lines join with newlines, which JSON allows
    only between tokens, so no later line can mend such an event (unlike one merely cut short)."""
    return not isinstance(exc, json.JSONDecodeError) or exc.pos < len(data.rstrip())


_MAX_JOIN_ATTEMPTS = 16  # parses of one multi-line event before only its blank line may end it


class _DataLines:
    """SSE ``data:`` payloads from lines; see the module docstring for why not plain SSE.

    An event whose data is not JSON is skipped with a warning: as soon as it is invalid before
    its end (its later lines are dropped unread), at the blank line that ends it, or — on a
    stream without blank lines — as soon as a line arrives that is a whole event on its own. (A
    JSON event split over several ``data:`` lines never has such a line inside it: compact JSON
    has no newlines, and pretty-printed JSON puts no whole object on one line.)

    The work stays linear in the stream's length (re-parsing every pending line on every new one
    took seconds, on the event loop, for 100 KB of junk lines): a multi-line event is re-parsed
    only at a line that could close it, at most ``_MAX_JOIN_ATTEMPTS`` times.
    """

    def __init__(self) -> None:
        self._pending: list[str] = []
        self._attempts = 0
        self._hopeless = False  # the current event can no longer become JSON

    def feed(self, line: str) -> Any | None:
        if line == "":
            return self.flush()
        if line.startswith(":"):
            return None  # comment / keep-alive
        name, _, value = line.partition(":")
        if name != "data":
            return None  # event:, id:, retry: carry nothing for v2
        value = value[1:] if value.startswith(" ") else value
        if self._hopeless:  # drop the rest of a skipped event, up to the next whole one
            fresh = _fresh_event(value) if _may_close(value) else None
            self._hopeless = fresh is None
            return fresh
        self._pending.append(value)
        if len(self._pending) > 1:
            if not _may_close(value):
                return None  # wait for more lines (or the blank line)
            if self._attempts >= _MAX_JOIN_ATTEMPTS:
                return self._fresh_instead(value)
            self._attempts += 1
        data = "\n".join(self._pending)
        try:
            payload = json.loads(data)
        except (ValueError, RecursionError) as exc:
            if len(self._pending) > 1 and (fresh := self._fresh_instead(value)) is not None:
                return fresh
            if _cannot_mend(exc, data):
                _skipped("not valid JSON", len(data))
                self._reset()
                self._hopeless = True
            return None  # cut short: wait for more lines (or the blank line)
        self._reset()
        return payload

    def flush(self) -> Any | None:
        self._hopeless = False
        if not self._pending:
            return None
        data = "\n".join(self._pending)
        self._reset()
        try:
            return json.loads(data)
        except (ValueError, RecursionError):
            _skipped("not valid JSON", len(data))
            return None

    def _fresh_instead(self, value: str) -> dict[str, Any] | None:
        """The last line as a whole event of its own, the lines before it skipped; else None."""
        fresh = _fresh_event(value)
        if fresh is not None:
            _skipped("not valid JSON", sum(len(p) + 1 for p in self._pending[:-1]) - 1)
            self._reset()
        return fresh

    def _reset(self) -> None:
        self._pending = []
        self._attempts = 0


async def data_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """JSON objects from a v2 stream, robust to any chunking (``\\r\\n`` split included).

    Only each new chunk is split, and a line's pieces are joined once it ends: re-splitting the
    whole unfinished line on every chunk made one long line cost quadratic time, on the event
    loop (seconds for a few MB).
    """
    lines = _DataLines()
    pending: list[str] = []  # pieces of the line not ended yet
    skip_lf = False
    async for text in response.aiter_text():
        if skip_lf and text.startswith("\n"):
            text = text[1:]
        skip_lf = False
        if text.endswith("\r"):  # a line ended; a "\n" may follow in the next chunk
            text, skip_lf = text[:-1] + "\n", True
        *complete, rest = _NEWLINE.split(text)
        if complete:
            complete[0] = "".join(pending) + complete[0]
            pending = []
        if rest:
            pending.append(rest)
        for line in complete:
            payload = lines.feed(line)
            if isinstance(payload, dict):
                yield payload
            elif payload is not None:
                _skipped(f"a JSON {type(payload).__name__}, not an object", len(line))
    buffer = "".join(pending)
    for payload in (lines.feed(buffer) if buffer else None, lines.flush()):
        if isinstance(payload, dict):
            yield payload
        elif payload is not None:
            _skipped(f"a JSON {type(payload).__name__}, not an object", 0)


class _Run:
    """One question's stream: its chat, whether TextQL started it, and the text shown so far."""

    def __init__(self, chat_id: str | None, tracker: PartTracker) -> None:
        self.chat_id = chat_id
        self.tracker = tracker
        self.started = False  # this run's metadata event arrived: TextQL has the question
        self.finished = False
        self.texts: list[str] = []  # streamed text segments; segment i is part ``text:i``
        self.text_open = False

    def append_text(self, delta: str) -> Update:
        if not self.text_open:
            self.texts.append("")
            self.text_open = True
        self.texts[-1] += delta
        return PartUpsert(TextPart(f"text:{len(self.texts) - 1}", self.texts[-1]))

    def recovered_texts(self, texts: tuple[str, ...]) -> list[Update]:
        """The chat's texts in place of the streamed ones (a cut stream showed only a prefix).

        Assistant messages and streamed segments are both the answer's markdown cells in order,
        so message i replaces segment i. A streamed segment left over (TextQL joined cells into
        fewer messages) is blanked when the recovered text already holds it, kept otherwise.
        """
        updates: list[Update] = []
        for i, text in enumerate(texts):
            if i >= len(self.texts) or self.texts[i] != text:
                updates.append(PartUpsert(TextPart(f"text:{i}", text)))
        whole = "\n".join(texts)
        for i in range(len(texts), len(self.texts)):
            if self.texts[i].strip() and self.texts[i].strip() in whole:
                updates.append(PartUpsert(TextPart(f"text:{i}", "")))
        return updates


class V2Ana:
    """Asks, continues and cancels chats over v2 REST with Bearer auth.

    A stream that ends without ``done`` — cleanly, broken, or silent past ``stream_idle_timeout``
    — once TextQL has started the run (its ``metadata`` event arrived) is recovered through
    ``GET /v2/chats/{id}`` (see :mod:`adapters.textql.recovery`): the chat's answer to this question
    replaces the streamed text, its assets are added, and the run ends ``done``. If that fails
    too, the run ends ``failed`` with an error saying both what broke and why recovery failed.
    """

    def __init__(self, client: httpx.AsyncClient, settings: TextQLSettings, images: ImageFetcher) -> None:
        self._cancels: set[asyncio.Task[bool]] = set()  # cancel calls of abandoned streams
        self._cancelled: set[str] = set()  # chats whose current run was already cancelled
        self._client = client
        self._settings = settings
        self._images = images

    def body(self, question: str, chat_id: str | None) -> dict[str, Any]:
        """The ChatRequest. Never sends ``model``: it is rejected together with ``chat_id``.

        ChatRequest has no language or locale field (archived v2 OpenAPI; the official SDK sends
        none either), so the asker's language is not sent: Ana answers as she sees fit.
        """
        body: dict[str, Any] = {"question": question, "tools": self._settings.v2_tools()}
        if chat_id:
            body["chat_id"] = chat_id
        return body

    async def ask(self, question: str, chat_id: str | None) -> AsyncIterator[Update]:
        settings = self._settings
        run = _Run(chat_id, PartTracker(self._images, settings.max_images))
        if chat_id:
            self._cancelled.discard(chat_id)  # a new run in this chat may be cancelled again
        foreign = ""  # the media type of a 200 that was no event stream at all
        try:
            try:
                async with self._client.stream("POST", "/v2/chats/stream",
                                               json=self.body(question, chat_id),
                                               headers={"Accept": "text/event-stream"},
                                               timeout=settings.stream_timeout()) as response:
                    if not response.is_success:
                        run.finished = True
                        yield Finished(Outcome.FAILED, http_error(response.status_code,
                                                                  await read_capped(response)))
                        return
                    events = 0
                    async for event in data_events(response):
                        events += 1
                        async for update in self._event(run, event):
                            yield update
                        if run.finished:
                            return
                    if not events and not is_event_stream(response):  # an HTML page, a JSON answer
                        foreign = media_type(response)
            except httpx.HTTPError as exc:
                log.info("textql: v2 stream failed: %s", type(exc).__name__)
                failure = transport_error(exc, idle_timeout=settings.stream_idle_timeout)
            else:
                failure = not_a_stream(foreign) if foreign else incomplete()
            if run.started and run.chat_id:
                async for update in self._recover(run, question, failure):
                    yield update
            else:
                run.finished = True
                yield Finished(Outcome.FAILED, failure)
        except (asyncio.CancelledError, GeneratorExit):
            # abandoned mid-answer (a stop): closing our stream does not stop TextQL's run,
            # so cancel it there too — even when the relay has not seen the chat id yet
            if run.chat_id and not run.finished:
                task = asyncio.get_running_loop().create_task(self.cancel(run.chat_id))
                self._cancels.add(task)
                task.add_done_callback(self._cancels.discard)
            raise

    async def _event(self, run: _Run, event: dict[str, Any]) -> AsyncIterator[Update]:
        """The updates one stream event brings; ``done`` sets ``run.finished``."""
        kind = event.get("type")
        if kind == "metadata":
            if isinstance(event.get("chat_id"), str) and event["chat_id"]:
                run.chat_id, run.started = event["chat_id"], True
                run_id = event.get("id")
                yield SessionAssigned(event["chat_id"], run_id=str(run_id) if run_id else None)
        elif kind == "text":
            delta = event.get("text")
            if isinstance(delta, str) and delta:
                yield run.append_text(delta)
        elif kind == "cell" and isinstance(event.get("cell"), dict):
            run.text_open = False
            view = translate_cell(event["cell"])
            if not view.known:
                log.info("textql: unknown cell type %r shown as progress", event["cell"].get("type"))
            for update in run.tracker.upserts(view.parts):
                yield update
            async for update in run.tracker.fetch(view.images):
                yield update
        elif kind == "asset" and isinstance(event.get("asset"), dict):
            run.text_open = False
            async for update in self._asset(run, event["asset"]):
                yield update
        elif kind == "done":
            run.finished = True
            yield self._finished(event)
        else:
            log.debug("textql: v2 event %r ignored", kind)

    @staticmethod
    async def _asset(run: _Run, asset: dict[str, Any]) -> AsyncIterator[Update]:
        ref, note = asset_ref(asset)
        for update in run.tracker.upserts([note] if note else []):
            yield update
        async for update in run.tracker.fetch([ref] if ref else []):
            yield update

    async def _recover(self, run: _Run, question: str, failure: ErrorPart) -> AsyncIterator[Update]:
        """Finish a stream that ended without ``done`` from ``GET /v2/chats/{id}``."""
        assert run.chat_id is not None
        yield PartUpsert(StatusPart(STATUS_ID, "The answer stream ended early; fetching Ana's answer "
                                               "from TextQL…"))
        turn, why = await self._fetch_turn(run.chat_id, question)
        if turn is None:
            log.info("textql: stream ended early (%s) and the chat gave no answer: %s", failure.code, why)
            run.finished = True
            yield Finished(Outcome.FAILED, error_part(
                f"{failure.message} Ana's answer could not be fetched afterwards either: {why}.",
                failure.code))
            return
        log.info("textql: stream ended early (%s); answer recovered from the chat", failure.code)
        for update in run.recovered_texts(turn.texts):
            yield update
        for asset in turn.assets:
            ref, note = asset_ref(asset)
            part_id = ref.part_id if ref is not None else note.id if note is not None else None
            if part_id is not None and run.tracker.seen(part_id):
                continue  # already shown from the stream (its URL is signed anew on every fetch)
            async for update in self._asset(run, asset):
                yield update
        run.finished = True
        yield Finished(Outcome.DONE)

    async def _fetch_turn(self, chat_id: str, question: str) -> tuple[RecoveredTurn | None, str]:
        """This question's answer in the chat, or None and why not (a phrase for the user)."""
        try:
            response = await self._client.get(f"/v2/chats/{quote(chat_id, safe='')}",
                                              timeout=self._settings.call_timeout())
        except httpx.HTTPError as exc:
            log.info("textql: reading the chat failed: %s", type(exc).__name__)
            return None, ("the chat was too large to read" if isinstance(exc, ResponseTooLarge)
                          else "could not reach TextQL")
        if not response.is_success:
            return None, f"TextQL answered HTTP {response.status_code}"
        try:
            data = response.json()
        except ValueError:
            return None, "TextQL's reply could not be read"
        turn = answer_turn(data, question)
        if turn is None:
            return None, "the chat has no answer to this question yet"
        return turn, ""

    @staticmethod
    def _finished(event: dict[str, Any]) -> Finished:
        status = str(event.get("status") or "completed")
        if status == "completed":
            return Finished(Outcome.DONE)
        if status in ("cancelled", "canceled"):
            return Finished(Outcome.STOPPED)
        message = event.get("error") if isinstance(event.get("error"), str) else ""
        return Finished(Outcome.FAILED, error_part(
            message.strip() or "Ana could not finish the answer.", "execution_failed"))

    async def cancel(self, chat_id: str) -> bool:
        """``POST /v2/chats/{id}/cancel``: best effort, never raises. True if TextQL cancelled.

        A stop both abandons the stream and calls the backend's stop; the run is cancelled once.
        """
        if chat_id in self._cancelled:
            return True
        self._cancelled.add(chat_id)
        try:
            response = await self._client.post(f"/v2/chats/{quote(chat_id, safe='')}/cancel",
                                               timeout=self._settings.call_timeout())
        except httpx.HTTPError as exc:
            log.info("textql: cancel failed: %s", type(exc).__name__)
            return False
        if not response.is_success:
            log.info("textql: cancel answered HTTP %s", response.status_code)
            return False
        try:
            return bool(response.json().get("cancelled"))
        except (ValueError, AttributeError):
            return False
