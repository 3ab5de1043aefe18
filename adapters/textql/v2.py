"""The v2 REST surface: ``POST /v2/chats/stream`` (ask, continue) and ``POST /v2/chats/{id}/cancel``.

The stream (backends.md §2.3) has ``data:`` lines only, each a JSON object with a ``type``:
``metadata`` (``chat_id``: the session), ``text`` (a delta to append), ``cell`` (a step, sent when
it starts and again when it ends), ``asset``, and ``done`` (``status`` completed|failed, ``error``).
The official SDK reads it one ``data:`` line at a time, and the reference warns that a JSON object
may come per line without blank-line separators, so :func:`data_events` yields a payload as soon as
a ``data:`` line parses on its own and otherwise joins lines up to the blank line, as SSE does.

Text deltas between two steps form one text part (``text:0``, ``text:1``, …) so that narrative,
SQL and charts keep the order in which Ana produced them.
"""

from __future__ import annotations

import asyncio

import json
import logging
import re
from typing import Any, AsyncIterator
from urllib.parse import quote

import httpx

from adapters.answer import Finished, Outcome, PartUpsert, SessionAssigned, TextPart, Update
from adapters.textql.blocks import BlockError
from adapters.textql.cells import asset_ref, translate_cell
from adapters.textql.errors import error_part, http_error, incomplete, transport_error
from adapters.textql.images import ImageFetcher
from adapters.textql.legacy import read_capped
from adapters.textql.settings import TextQLSettings
from adapters.textql.tracker import PartTracker

log = logging.getLogger(__name__)

_NEWLINE = re.compile(r"\r\n|\r|\n")


class _DataLines:
    """SSE ``data:`` payloads from lines; see the module docstring for why not plain SSE."""

    def __init__(self) -> None:
        self._pending: list[str] = []

    def feed(self, line: str) -> Any | None:
        if line == "":
            return self.flush()
        if line.startswith(":"):
            return None  # comment / keep-alive
        name, _, value = line.partition(":")
        if name != "data":
            return None  # event:, id:, retry: carry nothing for v2
        value = value[1:] if value.startswith(" ") else value
        self._pending.append(value)
        try:
            payload = json.loads("\n".join(self._pending))
        except ValueError:
            return None  # wait for more lines (or the blank line)
        self._pending.clear()
        return payload

    def flush(self) -> Any | None:
        if not self._pending:
            return None
        data, self._pending = "\n".join(self._pending), []
        try:
            return json.loads(data)
        except ValueError as exc:
            raise BlockError(f"stream event is not valid JSON ({exc.msg})") from None


async def data_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """JSON objects from a v2 stream, robust to any chunking (``\\r\\n`` split included)."""
    lines = _DataLines()
    buffer = ""
    skip_lf = False
    async for text in response.aiter_text():
        if skip_lf and text.startswith("\n"):
            text = text[1:]
        skip_lf = False
        buffer += text
        if buffer.endswith("\r"):  # a line ended; a "\n" may follow in the next chunk
            buffer, skip_lf = buffer[:-1] + "\n", True
        *complete, buffer = _NEWLINE.split(buffer)
        for line in complete:
            payload = lines.feed(line)
            if isinstance(payload, dict):
                yield payload
    for payload in (lines.feed(buffer) if buffer else None, lines.flush()):
        if isinstance(payload, dict):
            yield payload


class V2Ana:
    """Asks, continues and cancels chats over v2 REST with Bearer auth."""

    def __init__(self, client: httpx.AsyncClient, settings: TextQLSettings, images: ImageFetcher) -> None:
        self._cancels: set[asyncio.Task[bool]] = set()  # cancel calls of abandoned streams
        self._cancelled: set[str] = set()  # chats whose current run was already cancelled
        self._client = client
        self._settings = settings
        self._images = images

    def body(self, question: str, chat_id: str | None) -> dict[str, Any]:
        """The ChatRequest. Never sends ``model``: it is rejected together with ``chat_id``."""
        body: dict[str, Any] = {"question": question, "tools": self._settings.v2_tools()}
        if chat_id:
            body["chat_id"] = chat_id
        return body

    async def ask(self, question: str, chat_id: str | None) -> AsyncIterator[Update]:
        settings = self._settings
        tracker = PartTracker(self._images, settings.max_images)
        segment, text, text_open = 0, "", False
        current_chat, done = chat_id, False
        if chat_id:
            self._cancelled.discard(chat_id)  # a new run in this chat may be cancelled again
        try:
            async with self._client.stream("POST", "/v2/chats/stream", json=self.body(question, chat_id),
                                           headers={"Accept": "text/event-stream"},
                                           timeout=settings.stream_timeout()) as response:
                if not response.is_success:
                    yield Finished(Outcome.FAILED, http_error(response.status_code,
                                                              await read_capped(response)))
                    return
                async for event in data_events(response):
                    kind = event.get("type")
                    if kind == "metadata":
                        if isinstance(event.get("chat_id"), str) and event["chat_id"]:
                            current_chat = event["chat_id"]
                            run_id = event.get("id")
                            yield SessionAssigned(event["chat_id"],
                                                  run_id=str(run_id) if run_id else None)
                    elif kind == "text":
                        delta = event.get("text")
                        if isinstance(delta, str) and delta:
                            if not text_open:
                                segment, text, text_open = segment + (1 if text else 0), "", True
                            text += delta
                            yield PartUpsert(TextPart(f"text:{segment}", text))
                    elif kind == "cell" and isinstance(event.get("cell"), dict):
                        text_open = False
                        view = translate_cell(event["cell"], settings.table_preview_rows)
                        if not view.known:
                            log.info("textql: unknown cell type %r shown as progress",
                                     event["cell"].get("type"))
                        for update in tracker.upserts(view.parts):
                            yield update
                        async for update in tracker.fetch(view.images):
                            yield update
                    elif kind == "asset" and isinstance(event.get("asset"), dict):
                        text_open = False
                        ref, note = asset_ref(event["asset"])
                        for update in tracker.upserts([note] if note else []):
                            yield update
                        async for update in tracker.fetch([ref] if ref else []):
                            yield update
                    elif kind == "done":
                        done = True
                        yield self._finished(event)
                        return
                    else:
                        log.debug("textql: v2 event %r ignored", kind)
        except (asyncio.CancelledError, GeneratorExit):
            # abandoned mid-answer (a stop): closing our stream does not stop TextQL's run,
            # so cancel it there too — even when the relay has not seen the chat id yet
            if current_chat and not done:
                task = asyncio.get_running_loop().create_task(self.cancel(current_chat))
                self._cancels.add(task)
                task.add_done_callback(self._cancels.discard)
            raise
        except BlockError as exc:
            log.warning("textql: unreadable v2 event (%s)", exc)
            yield Finished(Outcome.FAILED, error_part(
                "TextQL sent part of the answer in a form that could not be read.", "bad_block"))
            return
        except httpx.HTTPError as exc:
            log.info("textql: v2 stream failed: %s", type(exc).__name__)
            yield Finished(Outcome.FAILED, transport_error(exc, idle_timeout=settings.stream_idle_timeout))
            return
        yield Finished(Outcome.FAILED, incomplete())

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
