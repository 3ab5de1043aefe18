"""HTTP plumbing shared by the backends: connection limits, a size cap on answers, TLS failures.

Connection limits. A Wren ``/ask`` can take minutes and a TextQL answer streams for as long as the
agent works, so each analysis in flight holds one connection for its whole length. httpx's default
pool (100 connections) would make the 101st analysis of a busy workspace wait, unseen, for another
one to finish. The pool is therefore not capped here — the backend's own rate limit (429, honoured
by the adapters) is what bounds concurrency — while the idle connections kept for reuse stay few.

Size cap. httpx reads a whole body into memory (``.content``, ``.json()``) and splits streams into
lines without any bound, so a backend (or a proxy in front of it) that sends a 10 MB error page or
one endless SSE line would make the bot hold all of it. :func:`size_cap_hook` is a response event
hook that wraps every response's byte stream of a client, so *every* way of reading it — ``aread``,
``aiter_lines``, httpx-sse — stops with :class:`ResponseTooLarge` once ``limit`` bytes came in. A
hook rather than a transport wrapper so that it also covers proxy transports httpx mounts from the
environment. The count is of bytes on the wire: a compressed body may decode to more.
"""

from __future__ import annotations

import ssl
from typing import AsyncIterator, Awaitable, Callable

import httpx

from adapters.base import BackendError

LONG_REQUESTS = httpx.Limits(max_connections=None, max_keepalive_connections=4)

# Larger than any answer the backends legitimately send (a 2,000-row chart spec or a 1,000-row
# result table is well under 2 MB; a long TextQL stream a few MB), small enough to hold for
# every analysis in flight at once.
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024


class ResponseTooLarge(BackendError, httpx.HTTPError):
    """A backend answer passed the size cap; reading stopped there and the connection is dropped.

    Both a :class:`BackendError` (its message is safe to show) and an :class:`httpx.HTTPError`, so
    every place that already survives a broken connection survives this too; adapters that can
    say it better check for it first (see :func:`too_large_message`).
    """

    def __init__(self, limit: int) -> None:
        super().__init__(f"The answer was larger than {size_text(limit)}, so the bot stopped "
                         "reading it.", code="too_large")
        self.limit = limit


def size_text(limit: int) -> str:
    """``8 MB``, ``512 KB``: the cap as people read it (binary units, rounded)."""
    if limit >= 1024 * 1024:
        return f"{limit / (1024 * 1024):g} MB"
    if limit >= 1024:
        return f"{limit // 1024} KB"
    return f"{limit} bytes"


def too_large_message(backend: str, limit: int) -> str:
    """The user-facing sentence for :class:`ResponseTooLarge`, naming the backend."""
    return (f"{backend} sent an answer larger than {size_text(limit)}, so the bot stopped reading "
            "it. Try a narrower question.")


class _CappedStream(httpx.AsyncByteStream):
    """A response body that raises :class:`ResponseTooLarge` past ``limit`` bytes."""

    def __init__(self, inner: httpx.AsyncByteStream, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._inner:
            seen += len(chunk)
            if seen > self._limit:
                raise ResponseTooLarge(self._limit)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


def size_cap_hook(limit: int) -> Callable[[httpx.Response], Awaitable[None]]:
    """A ``response`` event hook capping every body read through the client at ``limit`` bytes.

    httpx runs response hooks once the headers are in and before any of the body is read, for
    ``client.post`` as for ``client.stream``.
    """
    if limit <= 0:
        raise ValueError(f"the response size limit must be positive, not {limit!r}")

    async def cap(response: httpx.Response) -> None:
        if isinstance(response.stream, httpx.AsyncByteStream):
            response.stream = _CappedStream(response.stream, limit)

    return cap


def media_type(response: httpx.Response) -> str:
    """The response's media type alone (``text/html``), fit for a message: never a parameter,
    a body or a URL."""
    value = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return value[:60] or "no content type"


def is_event_stream(response: httpx.Response) -> bool:
    return media_type(response) == "text/event-stream"


def is_tls_failure(exc: BaseException) -> bool:
    """Whether a connection failed in the TLS handshake (an untrusted certificate, or a server
    that does not speak TLS on an ``https`` URL) rather than being refused or unreachable.

    httpx raises a plain :class:`httpx.ConnectError` for both; the :class:`ssl.SSLError` behind it
    is in the exception chain (httpx and httpcore re-raise with ``from``).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
