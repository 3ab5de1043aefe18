"""WrenBackend: the Wren AI / Legible ``osk-`` API behind the :class:`adapters.base.Backend` protocol.

One question is one ``POST /api/v1/ask`` (SQL + summary, or an explanation for a non-SQL
question), followed — for SQL answers — by ``POST /api/v1/run_sql`` for the result table and
``POST /api/v1/generate_vega_chart`` for the chart. Table and chart are bonuses: if they fail the
answer still stands (the chart with a quiet note). With ``streaming`` on, the same answer comes
from ``/api/v1/stream/ask`` and the agent's stages show up as steps while it works; a server
without that route (404) is asked through ``/ask`` instead, from then on.

Why ``/run_sql`` for the table rather than the chart's inline ``data.values``: ``/ask`` returns
no rows, and the chart's rows are JSON objects — no column types, and no reliable column order
(JavaScript moves integer-like keys such as ``"2021"`` to the front). ``/run_sql`` returns
``columns`` (name and engine type, in the query's order) next to the records, costs no LLM call,
and answers even when no chart can be drawn. Its ``totalRows`` counts the rows it returned, so
the table's ``total`` is known only when fewer rows than the limit came back. When ``/run_sql``
fails, the chart's ``data.values`` (if any) still make a table, without types.

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
    ChartPart, Column, ErrorPart, Finished, Outcome, PartUpsert, SessionAssigned, SqlPart,
    StatusPart, TablePart, TextPart, Update,
)
from adapters.base import AskRequest, Capabilities
from adapters.text import fix_surrogates, unescape_literal
from adapters.wren import messages
from adapters.wren.client import (
    ChartResponse, RunSqlResponse, WrenApiError, WrenClient, WrenProtocolError, WrenTransportError,
)
from adapters.wren.language import wren_language
from adapters.wren.settings import WrenSettings

log = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[Any]]

STATUS_ID = "status"
SQL_ID = "sql"
SUMMARY_ID = "summary"
EXPLANATION_ID = "explanation"
CHART_ID = "chart"
TABLE_ID = "table"
ERROR_ID = "error"

NON_SQL_TYPES = frozenset({"NON_SQL_QUERY", "EXPLANATION"})  # code says the first, docs the second
# Answers to /stream/ask meaning "this server has no such route" (an older deployment, a proxy
# that only forwards some paths): the question was not taken, so /ask may be asked instead.
NO_STREAM_ROUTE = frozenset({404, 405, 501})


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


def _cell(value: Any) -> Any:
    return fix_surrogates(value) if isinstance(value, str) else value


def table_from_result(result: RunSqlResponse, limit: int) -> TablePart | None:
    """The result table of ``/run_sql``: its ``columns`` give order and types."""
    columns = list(result.columns)
    if not columns and result.records:
        columns = [(str(name), "") for name in result.records[0]]
    if not columns:
        return None
    rows = tuple(tuple(_cell(record.get(name)) for name, _ in columns) for record in result.records)
    total = len(rows) if len(rows) < limit else None  # a full page may have more behind it
    return TablePart(TABLE_ID, tuple(Column(fix_surrogates(n), t) for n, t in columns), rows, total)


def table_from_spec(spec: Any, limit: int, sample_size: int) -> TablePart | None:
    """A table from a chart's inline ``data.values`` (column order as first seen; no types)."""
    data = spec.get("data") if isinstance(spec, dict) else None
    values = data.get("values") if isinstance(data, dict) else None
    if not isinstance(values, list):
        return None
    records = [v for v in values if isinstance(v, dict)]
    if not records:
        return None
    names: dict[str, None] = {}
    for record in records:
        for name in record:
            names.setdefault(str(name), None)
    rows = tuple(tuple(_cell(record.get(name)) for name in names) for record in records[:limit])
    total = len(records) if len(records) < sample_size else None
    return TablePart(TABLE_ID, tuple(Column(fix_surrogates(n)) for n in names), rows, total)


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
        self._stream_route = True  # until the server answers /stream/ask with "no such route"

    # -- Backend protocol ---------------------------------------------------------------------
    async def ask(self, request: AskRequest) -> AsyncIterator[Update]:
        """Yield the answer's updates; always ends with one ``Finished``.

        Only :class:`asyncio.CancelledError` (a stop) escapes; any other failure becomes a
        ``Finished(FAILED, ErrorPart)``.
        """
        streaming = self.settings.streaming and self._stream_route
        run = self._ask_streaming(request) if streaming else self._ask_once(request)
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

    def _language(self, request: AskRequest) -> str | None:
        """Wren's name for the asker's language, else for the operator's default, else none
        (the project's language applies)."""
        return wren_language(request.language) or wren_language(self.settings.language)

    # -- request/response ---------------------------------------------------------------------
    async def _ask_once(self, request: AskRequest) -> AsyncIterator[Update]:
        asking = "Asking Wren AI…"
        yield _status(asking)
        try:
            response = None
            calls = self._rate_limited(lambda: self._client.ask(
                request.question, thread_id=request.session_id,
                language=self._language(request),
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
            sql = fix_surrogates(response.sql)
            yield PartUpsert(SqlPart(SQL_ID, sql))
            summary = unescape_literal(response.summary)
            if summary.strip():
                yield PartUpsert(TextPart(SUMMARY_ID, summary))
            async for update in self._results(request.question, sql, thread_id):
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
                language=self._language(request),
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
                if err.status in NO_STREAM_ROUTE and not folder.started:
                    log.warning("wren: the server answered HTTP %s to /stream/ask; asking through "
                                "/ask from now on (no live steps)", err.status)
                    self._stream_route = False
                    async for update in self._ask_once(request):
                        yield update
                    return
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
            async for update in self._results(request.question, folder.sql, folder.thread_id):
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

    # -- table and chart ----------------------------------------------------------------------
    async def _results(self, question: str, sql: str, thread_id: str | None) -> AsyncIterator[Update]:
        """The result table (``/run_sql``), then the chart; the chart's rows stand in for a
        table ``/run_sql`` could not give."""
        limit = self.settings.table_rows
        table: TablePart | None = None
        if limit > 0:
            async for item in self._table(sql, thread_id, limit):
                if isinstance(item, _Result):
                    table = item.value
                else:
                    yield item
            if table is not None:
                yield PartUpsert(table)
        spec: Any = None
        async for item in self._chart(question, sql, thread_id):
            if isinstance(item, _Result):
                spec = item.value
            else:
                yield item
        if limit > 0 and table is None:
            fallback = table_from_spec(spec, limit, self.settings.chart_sample_size)
            if fallback is not None:
                yield PartUpsert(fallback)

    async def _table(self, sql: str, thread_id: str | None,
                     limit: int) -> AsyncIterator[PartUpsert | _Result[TablePart | None]]:
        fetching = "Fetching the result rows…"
        yield _status(fetching)
        result: RunSqlResponse | None = None
        try:
            calls = self._rate_limited(lambda: self._client.run_sql(
                sql, thread_id=thread_id, limit=limit), fetching)
            async with contextlib.aclosing(calls):
                async for item in calls:
                    if isinstance(item, _Result):
                        result = item.value
                    else:
                        yield item
        except (WrenApiError, WrenTransportError, WrenProtocolError) as err:
            log.info("wren: no result table from /run_sql (%s)", messages.error_code(err))
        yield _Result(table_from_result(result, limit) if result is not None else None)

    async def _chart(self, question: str, sql: str,
                     thread_id: str | None) -> AsyncIterator[Update | _Result[Any]]:
        """Yield exactly one chart part: a spec, or a note saying why there is none; then the
        spec as a ``_Result`` (``None`` without one)."""
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
            yield _Result(None)
            return
        assert chart is not None
        spec = chart.vega_spec
        if not is_drawable(spec):
            yield PartUpsert(ChartPart(
                CHART_ID, note="No chart this time: Wren AI returned an empty chart design."))
        else:
            yield PartUpsert(ChartPart(CHART_ID, title=chart_title(spec), vega_spec=spec))
        yield _Result(spec)

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
            message = str(err)
            message += "" if message.endswith((".", "!", "?")) else "."
            log.warning("wren: unreadable response: %s", err)
        else:  # pragma: no cover - callers pass the three kinds above
            message = "Something went wrong while talking to Wren AI."
        return Finished(Outcome.FAILED, ErrorPart(ERROR_ID, message, code=messages.error_code(err)))
