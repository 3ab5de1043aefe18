"""A typed httpx layer over the Wren AI / Legible ``/api/v1`` endpoints the bot uses.

It knows the wire format — paths, headers, body fields, the three error body shapes
(``{id, code, error, …}``, ``{id, error}``, and the auth/rate-limit ``{error, message}``) and
``Retry-After`` — and nothing about chat answers. Turning failures into words for people is
:mod:`adapters.wren.messages`' job; deciding what to do about them is the adapter's.
"""

from __future__ import annotations

import email.utils
import json
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Literal, Mapping
from urllib.parse import urlsplit

import httpx

from adapters.http import (
    LONG_REQUESTS, ResponseTooLarge, is_event_stream, is_tls_failure, media_type, size_cap_hook,
    too_large_message,
)
from adapters.wren.settings import WrenSettings

ASK_PATH = "/ask"
CHART_PATH = "/generate_vega_chart"
RUN_SQL_PATH = "/run_sql"
STREAM_ASK_PATH = "/stream/ask"

_USER_AGENT = "insightbot/0.1 (+wren adapter)"


# -- errors ---------------------------------------------------------------------------------

class WrenApiError(Exception):
    """Wren answered with an error status. Fields are whatever its body carried.

    ``code`` is the ``GeneralErrorCodes`` value when the body has one (never for 401/403/429,
    whose bodies are ``{error, message}``); ``retry_after`` is in seconds, from the
    ``Retry-After`` header or else the body's ``retryAfterMs``.
    """

    def __init__(self, status: int, *, code: str = "", error: str = "", detail: str = "",
                 body_id: str | None = None, retry_after: float | None = None,
                 reset_at: str | None = None, extra: Mapping[str, Any] | None = None,
                 is_json: bool = True) -> None:
        super().__init__(f"Wren AI HTTP {status} {code}".strip())
        self.status = status
        self.code = code
        self.error = error
        self.detail = detail
        self.body_id = body_id
        self.retry_after = retry_after
        self.reset_at = reset_at
        self.extra = dict(extra or {})
        self.is_json = is_json

    @property
    def is_rate_limit(self) -> bool:
        return self.status == 429


class WrenTransportError(Exception):
    """The request did not get an HTTP answer: a timeout, a refused connection, a failed TLS
    handshake, a reset."""

    def __init__(self, kind: Literal["timeout", "connect", "tls", "network"], host: str,
                 timeout: float | None = None) -> None:
        super().__init__(f"Wren AI {kind} error talking to {host}")
        self.kind = kind
        self.host = host
        self.timeout = timeout


class WrenProtocolError(Exception):
    """A 2xx answer we cannot read (not JSON, not an object, not an event stream, too large).

    ``str(err)`` is a sentence safe to show; ``code`` tells the kinds apart.
    """

    def __init__(self, message: str, *, code: str = "bad_response") -> None:
        super().__init__(message)
        self.code = code


# -- responses ------------------------------------------------------------------------------

def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class AskResponse:
    """``POST /ask`` 200: either ``sql`` + ``summary`` or ``type`` + ``explanation``.

    Strings are as sent: summaries and explanations still carry JSON escapes.
    """

    id: str | None
    thread_id: str | None
    sql: str | None = None
    summary: str | None = None
    type: str | None = None
    explanation: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "AskResponse":
        return cls(id=_opt_str(data, "id"), thread_id=_opt_str(data, "threadId"),
                   sql=_opt_str(data, "sql"), summary=_opt_str(data, "summary"),
                   type=_opt_str(data, "type"), explanation=_opt_str(data, "explanation"))


@dataclass(frozen=True)
class ChartResponse:
    """``POST /generate_vega_chart`` 200. ``vega_spec`` is untrusted and possibly empty."""

    id: str | None
    thread_id: str | None
    vega_spec: Any = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "ChartResponse":
        return cls(id=_opt_str(data, "id"), thread_id=_opt_str(data, "threadId"),
                   vega_spec=data.get("vegaSpec"))


@dataclass(frozen=True)
class RunSqlResponse:
    """``POST /run_sql`` 200: ``records`` (objects keyed by column name) in the order and with the
    types of ``columns`` (``[{name, type}]``). ``total_rows`` counts the rows *returned* (at most
    the request's ``limit``), not the whole result."""

    id: str | None
    thread_id: str | None
    columns: tuple[tuple[str, str], ...]
    records: tuple[dict[str, Any], ...]
    total_rows: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "RunSqlResponse":
        raw_columns = data.get("columns")
        raw_records = data.get("records")
        if not isinstance(raw_columns, list) or not isinstance(raw_records, list):
            raise WrenProtocolError("Wren AI sent a query result without columns or records")
        columns = []
        for column in raw_columns:
            if isinstance(column, Mapping) and column.get("name") not in (None, ""):
                columns.append((str(column["name"]), str(column.get("type") or "")))
            elif isinstance(column, str) and column:
                columns.append((column, ""))
        records = tuple(r for r in raw_records if isinstance(r, dict))
        total = data.get("totalRows")
        return cls(id=_opt_str(data, "id"), thread_id=_opt_str(data, "threadId"),
                   columns=tuple(columns), records=records,
                   total_rows=total if isinstance(total, int) and not isinstance(total, bool) else None)


@dataclass(frozen=True)
class StreamEvent:
    """One ``data:`` event of ``/stream/*``: ``type`` plus the whole decoded object."""

    type: str
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def data(self) -> dict[str, Any]:
        value = self.payload.get("data")
        return value if isinstance(value, dict) else {}


# -- parsing helpers ------------------------------------------------------------------------

def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date; ``None`` if unusable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds)


def error_from_response(status: int, headers: Mapping[str, str], content: bytes) -> WrenApiError:
    """Build a :class:`WrenApiError` from any error response, JSON or not."""
    try:
        body = json.loads(content) if content else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return WrenApiError(status, retry_after=parse_retry_after(headers.get("retry-after")),
                            is_json=False)
    retry_after = parse_retry_after(headers.get("retry-after"))
    if retry_after is None:
        ms = body.get("retryAfterMs")
        if isinstance(ms, (int, float)) and not isinstance(ms, bool) and ms >= 0:
            retry_after = ms / 1000.0
    extra = {k: v for k, v in body.items()
             if k not in {"id", "code", "error", "message", "retryAfterMs", "resetAt"}}
    return WrenApiError(
        status,
        code=_opt_str(body, "code") or "",
        error=_opt_str(body, "error") or "",
        detail=_opt_str(body, "message") or "",
        body_id=_opt_str(body, "id"),
        retry_after=retry_after,
        reset_at=_opt_str(body, "resetAt") or headers.get("x-ratelimit-reset"),
        extra=extra,
    )


def _decode_object(content: bytes) -> dict[str, Any]:
    try:
        body = json.loads(content)
    except ValueError as exc:
        raise WrenProtocolError("Wren AI sent a response that is not JSON") from exc
    if not isinstance(body, dict):
        raise WrenProtocolError("Wren AI sent JSON that is not an object")
    return body


def _parse_sse_block(lines: list[str]) -> StreamEvent | None:
    data = "\n".join(lines)
    if not data.strip():
        return None
    try:
        payload = json.loads(data)
    except ValueError:
        return None  # a torn or foreign line: the stream is best effort by design
    if not isinstance(payload, dict):
        return None
    kind = payload.get("type")
    return StreamEvent(type=kind if isinstance(kind, str) else "", payload=payload)


# -- the client -----------------------------------------------------------------------------

class WrenClient:
    """One pooled httpx client per backend; the key lives only in its default headers."""

    def __init__(self, settings: WrenSettings, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._settings = settings
        headers = {
            "Authorization": f"Bearer {settings.api_key}",
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
        }
        if settings.project_id:
            headers["X-Project-Id"] = str(settings.project_id)
        self.host = urlsplit(settings.api_root).netloc or settings.base_url
        self._http = httpx.AsyncClient(
            base_url=settings.api_root,
            headers=headers,
            timeout=self._timeout(settings.request_timeout),
            transport=transport,
            limits=LONG_REQUESTS,
            event_hooks={"response": [size_cap_hook(settings.max_response_bytes)]},
        )

    def _timeout(self, total: float) -> httpx.Timeout:
        return httpx.Timeout(total, connect=min(self._settings.connect_timeout, total))

    # -- endpoints ---------------------------------------------------------------------------
    async def ask(self, question: str, *, thread_id: str | None = None,
                  language: str | None = None, sample_size: int | None = None) -> AskResponse:
        body = _ask_body(question, thread_id, language, sample_size)
        data = await self._post_json(ASK_PATH, body, self._settings.request_timeout)
        return AskResponse.from_json(data)

    async def generate_vega_chart(self, question: str, sql: str, *, thread_id: str | None = None,
                                  sample_size: int | None = None) -> ChartResponse:
        body: dict[str, Any] = {"question": question, "sql": sql}
        if thread_id:
            body["threadId"] = thread_id
        if sample_size is not None:
            body["sampleSize"] = int(sample_size)
        data = await self._post_json(CHART_PATH, body, self._settings.effective_chart_timeout)
        return ChartResponse.from_json(data)

    async def run_sql(self, sql: str, *, thread_id: str | None = None,
                      limit: int | None = None) -> RunSqlResponse:
        body: dict[str, Any] = {"sql": sql}
        if thread_id:
            body["threadId"] = thread_id
        if limit is not None:
            body["limit"] = int(limit)
        data = await self._post_json(RUN_SQL_PATH, body, self._settings.effective_chart_timeout)
        return RunSqlResponse.from_json(data)

    async def stream_ask(self, question: str, *, thread_id: str | None = None,
                         language: str | None = None,
                         sample_size: int | None = None) -> AsyncIterator[StreamEvent]:
        """Events of ``POST /stream/ask``, parsed by content (no ``event:`` names exist).

        Auth and rate-limit failures arrive as JSON errors before the stream starts and are
        raised as :class:`WrenApiError`; everything else, errors included, comes in-band.
        A 200 that holds no event at all and does not claim to be a stream (an HTML page from a
        proxy, an ``/ask``-style JSON answer) is a :class:`WrenProtocolError`: parsed by content,
        it would read as a stream that ended before the answer.
        """
        body = _ask_body(question, thread_id, language, sample_size)
        try:
            async with self._http.stream(
                "POST", STREAM_ASK_PATH, json=body,
                headers={"Accept": "text/event-stream"},
                timeout=self._timeout(self._settings.request_timeout),
            ) as response:
                if response.status_code >= 400:
                    content = await response.aread()
                    raise error_from_response(response.status_code, response.headers, content)
                events = 0
                block: list[str] = []
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        block.append(line[5:].lstrip(" "))
                    elif not line.strip():
                        event = _parse_sse_block(block)
                        block = []
                        if event is not None:
                            events += 1
                            yield event
                    # other fields (event:, id:, comments) do not occur; ignore them
                event = _parse_sse_block(block)
                if event is not None:
                    events += 1
                    yield event
                if not events and not is_event_stream(response):
                    raise WrenProtocolError("Wren AI did not answer with an event stream "
                                            f"({media_type(response)})")
        except ResponseTooLarge as exc:
            raise self._too_large(exc) from None
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, self._settings.request_timeout) from None

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- plumbing ----------------------------------------------------------------------------
    async def _post_json(self, path: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        try:
            response = await self._http.post(path, json=body, timeout=self._timeout(timeout))
        except ResponseTooLarge as exc:
            raise self._too_large(exc) from None
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, timeout) from None
        if response.status_code >= 400:
            raise error_from_response(response.status_code, response.headers, response.content)
        return _decode_object(response.content)

    def _transport_error(self, exc: httpx.HTTPError, timeout: float) -> WrenTransportError:
        # ``from None`` above: httpx exceptions carry the request, whose headers hold the key.
        if isinstance(exc, httpx.ConnectTimeout):
            return WrenTransportError("connect", self.host, self._settings.connect_timeout)
        if isinstance(exc, httpx.TimeoutException):
            return WrenTransportError("timeout", self.host, timeout)
        if isinstance(exc, httpx.ConnectError):
            return WrenTransportError("tls" if is_tls_failure(exc) else "connect", self.host)
        return WrenTransportError("network", self.host)

    @staticmethod
    def _too_large(exc: ResponseTooLarge) -> WrenProtocolError:
        return WrenProtocolError(too_large_message("Wren AI", exc.limit), code="too_large")


def _ask_body(question: str, thread_id: str | None, language: str | None,
              sample_size: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"question": question}
    if thread_id:
        body["threadId"] = thread_id
    if language:
        body["language"] = language
    if sample_size is not None:
        body["sampleSize"] = int(sample_size)
    return body
