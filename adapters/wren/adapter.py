"""WrenBackend: the Wren AI / Legible ``osk-`` API behind the :class:`adapters.base.Backend` protocol.

One question is one ``POST /api/v1/ask`` (SQL + summary, or an explanation for a non-SQL
question), followed — for SQL answers — by ``POST /api/v1/generate_vega_chart``. The chart is a
bonus: if it fails the answer still stands, with a quiet note. With ``streaming`` on, the same
answer comes from ``/api/v1/stream/ask`` and the agent's stages show up as steps while it works.

Wren v1 has no stop call. The relay stops a run by cancelling the task that iterates
:meth:`WrenBackend.ask`, which closes the HTTP request; the server-side work runs on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Generic, TypeVar

import httpx

from adapters.answer import (
    ChartPart, ErrorPart, Finished, Outcome, PartUpsert, SessionAssigned, SqlPart, StatusPart,
    TextPart, Update,
)
from adapters.base import AskRequest, Capabilities
from adapters.text import unescape_literal
from adapters.wren import messages
from adapters.wren.client import (
    ChartResponse, WrenApiError, WrenClient, WrenProtocolError, WrenTransportError,
)
from adapters.wren.settings import WrenSettings

log = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[Any]]

STATUS_ID = "status"
SQL_ID = "sql"
SUMMARY_ID = "summary"
EXPLANATION_ID = "explanation"
CHART_ID = "chart"
ERROR_ID = "error"

NON_SQL_TYPES = frozenset({"NON_SQL_QUERY", "EXPLANATION"})  # code says the first, docs the second


@dataclass(frozen=True)
class _Result(Generic[T]):
    """The value of a call made inside a generator that also yields status updates."""

    value: T


def _status(text: str) -> PartUpsert:
    return PartUpsert(StatusPart(STATUS_ID, text))


def chart_title(spec: dict[str, Any]) -> str:
    """Vega-Lite titles are a string or ``{"text": str | [str, …]}``."""
    title = spec.get("title")
    if isinstance(title, dict):
        title = title.get("text")
    if isinstance(title, list):
        title = " ".join(str(t) for t in title)
    return title.strip() if isinstance(title, str) else ""


def is_drawable(spec: Any) -> bool:
    """Wren can answer 200 with an empty LLM schema: a spec with no ``mark``/``encoding``."""
    return (isinstance(spec, dict) and bool(spec.get("mark"))
            and isinstance(spec.get("encoding"), dict) and bool(spec["encoding"]))


class WrenBackend:
    """Runs questions against one Wren AI project. Stateless apart from the pooled HTTP client."""

    name = "wren"
    capabilities = Capabilities(cooperative_stop=False, resumable=False, keeps_context=True)

    def __init__(self, settings: WrenSettings, *,
                 transport: httpx.AsyncBaseTransport | None = None,
                 sleep: Sleep = asyncio.sleep) -> None:
        self.settings = settings
        self._client = WrenClient(settings, transport=transport)
        self._sleep = sleep  # injectable so rate-limit tests need not wait

    # -- Backend protocol ---------------------------------------------------------------------
    async def ask(self, request: AskRequest) -> AsyncIterator[Update]:
        """Yield the answer's updates; always ends with one ``Finished``.

        Only :class:`asyncio.CancelledError` (a stop) escapes; any other failure becomes a
        ``Finished(FAILED, ErrorPart)``.
        """
        run = self._ask_streaming(request) if self.settings.streaming else self._ask_once(request)
        finished = False
        try:
            async for update in run:
                finished = finished or isinstance(update, Finished)
                yield update
                if finished:
                    return
        except Exception:  # noqa: BLE001 - the protocol promises a Finished, not an exception
            log.exception("wren: unexpected failure while answering")
            if not finished:
                yield Finished(Outcome.FAILED, ErrorPart(
                    ERROR_ID, "Something went wrong while talking to Wren AI.", code="internal"))
        finally:
            await run.aclose()

    async def stop(self, session_id: str | None, run_id: str | None) -> None:
        """Nothing to call: Wren v1 has no stop. Cancelling ``ask``'s task closes the request."""
        return None

    def resume(self, session_id: str, run_id: str) -> AsyncIterator[Update]:
        raise NotImplementedError("Wren AI runs cannot be resumed: /ask is one request")

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- request/response ---------------------------------------------------------------------
    async def _ask_once(self, request: AskRequest) -> AsyncIterator[Update]:
        asking = "Asking Wren AI…"
        yield _status(asking)
        try:
            response = None
            calls = self._rate_limited(lambda: self._client.ask(
                request.question, thread_id=request.session_id,
                language=request.language or self.settings.language,
                sample_size=self.settings.ask_sample_size), asking)
            async with contextlib.aclosing(calls):
                async for item in calls:
                    if isinstance(item, _Result):
                        response = item.value
                    else:
                        yield item
        except (WrenApiError, WrenTransportError, WrenProtocolError) as err:
            yield self._failed(err)
            return
        assert response is not None

        thread_id = response.thread_id or request.session_id
        if thread_id:
            yield SessionAssigned(session_id=thread_id, run_id=response.id)

        if response.sql:
            yield PartUpsert(SqlPart(SQL_ID, response.sql))
            summary = unescape_literal(response.summary)
            if summary.strip():
                yield PartUpsert(TextPart(SUMMARY_ID, summary))
            async for update in self._chart(request.question, response.sql, thread_id):
                yield update
            yield Finished(Outcome.DONE)
            return

        explanation = unescape_literal(response.explanation)
        if explanation.strip():
            yield PartUpsert(TextPart(EXPLANATION_ID, explanation))
            yield Finished(Outcome.DONE)
            return

        yield Finished(Outcome.FAILED, ErrorPart(
            ERROR_ID,
            "Wren AI returned neither a query nor an explanation for this question. "
            "Try rephrasing it.",
            code="empty_answer"))

    # -- streaming ----------------------------------------------------------------------------
    async def _ask_streaming(self, request: AskRequest) -> AsyncIterator[Update]:
        from adapters.wren.stream import StreamFolder  # local: only needed in streaming mode

        asking = "Asking Wren AI…"
        yield _status(asking)
        folder = StreamFolder(request.session_id)
        attempt = 0
        while True:
            stream = self._client.stream_ask(
                request.question, thread_id=request.session_id,
                language=request.language or self.settings.language,
                sample_size=self.settings.ask_sample_size)
            try:
                async with contextlib.aclosing(stream):
                    async for event in stream:
                        for update in folder.feed(event):
                            yield update
                        if folder.stopped:
                            break
                break
            except WrenApiError as err:
                wait = self._retry_wait(err, attempt)
                if wait is None or folder.started:
                    yield self._failed(err)
                    return
                attempt += 1
                yield _status(self._waiting_text(wait))
                await self._sleep(wait)
                yield _status(asking)
            except (WrenTransportError, WrenProtocolError) as err:
                if folder.has_answer:
                    break  # the stream broke after the answer: keep what we have
                yield self._failed(err)
                return

        if folder.error is not None:
            yield self._failed(folder.error)
            return
        if folder.sql:
            async for update in self._chart(request.question, folder.sql, folder.thread_id):
                yield update
            yield Finished(Outcome.DONE)
            return
        if folder.has_answer:
            yield Finished(Outcome.DONE)
            return
        yield Finished(Outcome.FAILED, ErrorPart(
            ERROR_ID,
            "Wren AI ended the answer early without a query or an explanation. Please try again.",
            code="empty_answer"))

    # -- chart --------------------------------------------------------------------------------
    async def _chart(self, question: str, sql: str, thread_id: str | None) -> AsyncIterator[Update]:
        """Yield exactly one chart part: a spec, or a note saying why there is none."""
        drawing = "Drawing a chart…"
        yield _status(drawing)
        try:
            chart: ChartResponse | None = None
            calls = self._rate_limited(lambda: self._client.generate_vega_chart(
                question, sql, thread_id=thread_id,
                sample_size=self.settings.chart_sample_size), drawing)
            async with contextlib.aclosing(calls):
                async for item in calls:
                    if isinstance(item, _Result):
                        chart = item.value
                    else:
                        yield item
        except (WrenApiError, WrenTransportError, WrenProtocolError) as err:
            log.info("wren: no chart (%s)", messages.error_code(err))
            yield PartUpsert(ChartPart(CHART_ID, note=messages.chart_note(err, self.settings.api_key)))
            return
        assert chart is not None
        spec = chart.vega_spec
        if not is_drawable(spec):
            yield PartUpsert(ChartPart(
                CHART_ID, note="No chart this time: Wren AI returned an empty chart design."))
            return
        yield PartUpsert(ChartPart(CHART_ID, title=chart_title(spec), vega_spec=spec))

    # -- rate limits and failures -------------------------------------------------------------
    def _retry_wait(self, err: WrenApiError, attempt: int) -> float | None:
        """Seconds to wait before retrying a 429, or ``None`` if we should give up now."""
        if not err.is_rate_limit or err.retry_after is None:
            return None
        if attempt >= self.settings.max_rate_limit_retries:
            return None
        if err.retry_after > self.settings.max_rate_limit_wait:
            return None
        return err.retry_after

    @staticmethod
    def _waiting_text(wait: float) -> str:
        return f"Wren AI is rate limiting us; retrying in {max(1, round(wait))} s…"

    async def _rate_limited(self, call: Callable[[], Awaitable[T]],
                            status_text: str) -> AsyncIterator[PartUpsert | _Result[T]]:
        """Make ``call``; on a short enough 429, say so, wait ``Retry-After`` and try again."""
        attempt = 0
        while True:
            try:
                value = await call()
            except WrenApiError as err:
                wait = self._retry_wait(err, attempt)
                if wait is None:
                    raise
                attempt += 1
                yield _status(self._waiting_text(wait))
                await self._sleep(wait)
                yield _status(status_text)
                continue
            yield _Result(value)
            return

    def _failed(self, err: Exception) -> Finished:
        if isinstance(err, WrenApiError):
            message = messages.api_error_message(err, self.settings.api_key)
            log.warning("wren: HTTP %s %s", err.status, err.code or "-")
        elif isinstance(err, WrenTransportError):
            message = messages.transport_message(err)
            log.warning("wren: %s error talking to %s", err.kind, err.host)
        elif isinstance(err, WrenProtocolError):
            message = str(err) + "."
            log.warning("wren: unreadable response: %s", err)
        else:  # pragma: no cover - callers pass the three kinds above
            message = "Something went wrong while talking to Wren AI."
        return Finished(Outcome.FAILED, ErrorPart(ERROR_ID, message, code=messages.error_code(err)))
