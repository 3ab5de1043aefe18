"""The legacy ``GET /api/ana`` stream: named SSE events → answer updates.

The stream (seed 002): ``chatId``, ``userMsgId``, ``assistantMsgId``, then ``block`` events (a block
re-sent with the same id replaces the earlier version) and finally ``message`` = ``"done"``.
httpx-sse reassembles events split across network chunks and drops comments/keep-alives; event
names are stripped because the seed itself shows ``event: block `` with a trailing space.

ErrorBlock policy: an ``ErrorBlock`` is shown at once as an error part. Ana may recover and go on
(the error then stays visible as a failed step and the run ends ``done``); if the ErrorBlock is
the last block when the stream ends (with or without ``done``), the run ends ``failed`` with it.

A ``block`` event whose data is not a JSON object is skipped with a warning: Ana re-sends a
growing block with the same id, and later blocks are complete on their own, so one damaged event
must not end an analysis whose later blocks arrive intact.

Every fault ends in exactly one ``Finished(FAILED, ErrorPart)``: HTTP errors, a stream that ends
without ``done``, and silence longer than ``stream_idle_timeout``
(httpx's read timeout, which applies to each read of the stream). Cancelling the task that
iterates :meth:`LegacyAna.ask` closes the HTTP response, which ends the request on the server.
"""

from __future__ import annotations

import json
import logging
from typing import Any, AsyncIterator

import httpx
from httpx_sse import SSEError, aconnect_sse

from adapters.answer import ErrorPart, Finished, Outcome, SessionAssigned, Update
from adapters.textql.blocks import BlockError, decode_block, translate_block
from adapters.textql.errors import error_part, http_error, incomplete, transport_error
from adapters.textql.images import ImageFetcher
from adapters.textql.settings import TextQLSettings
from adapters.textql.tracker import PartTracker

log = logging.getLogger(__name__)

_MAX_ERROR_BODY = 64 * 1024


async def read_capped(response: httpx.Response, limit: int = _MAX_ERROR_BODY) -> bytes:
    """At most ``limit`` bytes of a (streamed) response body: enough for an error message."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


def scalar(data: str) -> str:
    """A JSON scalar event payload (``"nahar-alpha-…"``, ``33894``) as a string."""
    try:
        value = json.loads(data)
    except ValueError:
        return data.strip().strip('"')
    return value if isinstance(value, str) else json.dumps(value)


def _unnamed(data: str) -> str:
    """What a ``message`` event really is (SSE gives that name to events without ``event:``).

    The seed always names its events; a server that left the names off would still be
    understood: a tagged JSON object is a block, anything else a message (``"done"``), and an
    empty one (httpx-sse emits those after an ``id:`` field) nothing.
    """
    if data.lstrip().startswith("{"):
        try:
            value = json.loads(data)
        except ValueError:
            return "block"  # let the block decoder report it
        if isinstance(value, dict) and "tag" in value:
            return "block"
    return "message" if data else ""


class BlockRun:
    """The blocks of one answer: what was shown, unknown tags logged, whether the last was an error."""

    def __init__(self, settings: TextQLSettings, images: ImageFetcher) -> None:
        self._settings = settings
        self._tracker = PartTracker(images, settings.max_images)
        self._unknown: set[str] = set()
        self._anonymous = 0
        self.last_error: ErrorPart | None = None  # the latest block, when it is an ErrorBlock

    async def updates(self, block: dict[str, Any]) -> AsyncIterator[Update]:
        """The updates one (version of a) block brings: changed parts, then fetched images."""
        if not block.get("id"):
            self._anonymous += 1  # an id-less block (the seed's ErrorBlock) is its own part
        view = translate_block(block, fallback_id=f"block:{self._anonymous}")
        if not view.known and view.tag not in self._unknown:
            self._unknown.add(view.tag)
            log.warning("textql: unknown block or result in %s (shown as progress)", view.tag)
        self.last_error = view.error
        for update in self._tracker.upserts(view.parts):
            yield update
        async for update in self._tracker.fetch(view.images):
            yield update


class LegacyAna:
    """One ``GET /api/ana`` per question. Holds nothing between questions."""

    def __init__(self, client: httpx.AsyncClient, settings: TextQLSettings, images: ImageFetcher) -> None:
        self._client = client
        self._settings = settings
        self._images = images

    def params(self, question: str) -> dict[str, str]:
        s = self._settings
        params = {"query": question}
        if s.dataset:
            params["dataset"] = s.dataset
        if s.use_ontology:
            params["useOntology"] = "true"
            params["ontologyConnectorId"] = str(s.ontology_connector_id)
        if s.clifford_param is not None:
            params["clifford"] = s.clifford_param
        return params

    async def ask(self, question: str) -> AsyncIterator[Update]:
        run = BlockRun(self._settings, self._images)
        chat_id: str | None = None
        try:
            async with aconnect_sse(self._client, "GET", "/api/ana", params=self.params(question),
                                    timeout=self._settings.stream_timeout()) as source:
                response = source.response
                if not response.is_success:
                    yield Finished(Outcome.FAILED, http_error(response.status_code,
                                                              await read_capped(response)))
                    return
                async for event in source.aiter_sse():
                    name = event.event.strip()
                    if name == "message":  # also what httpx-sse calls an event without a name
                        name = _unnamed(event.data)
                    if name == "chatId":
                        chat_id = scalar(event.data) or None
                        if chat_id:
                            yield SessionAssigned(chat_id)
                    elif name == "assistantMsgId":
                        if chat_id:
                            yield SessionAssigned(chat_id, run_id=scalar(event.data))
                    elif name == "block":
                        try:
                            block = decode_block(event.data)
                        except BlockError as exc:  # one bad event: skip it, the next may be fine
                            log.warning("textql: skipped an unreadable block event (%s, %d bytes)",
                                        exc, len(event.data))
                            continue
                        async for update in run.updates(block):
                            yield update
                    elif name == "message":
                        if scalar(event.data) == "done":
                            if run.last_error is not None:
                                yield Finished(Outcome.FAILED, run.last_error)
                            else:
                                yield Finished(Outcome.DONE)
                            return
                        log.info("textql: message event other than done ignored")
                    elif name not in ("userMsgId", ""):
                        log.debug("textql: event %r ignored", name)
        except SSEError:
            yield Finished(Outcome.FAILED, error_part(
                "TextQL did not answer with an event stream.", "bad_response"))
            return
        except httpx.HTTPError as exc:
            log.info("textql: stream failed: %s", type(exc).__name__)
            yield Finished(Outcome.FAILED, transport_error(
                exc, idle_timeout=self._settings.stream_idle_timeout))
            return
        yield Finished(Outcome.FAILED, run.last_error or incomplete())
