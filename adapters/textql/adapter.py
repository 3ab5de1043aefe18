"""TextQLBackend: TextQL Ana behind the :class:`adapters.base.Backend` protocol.

``mode="legacy"`` (the default, per the seed) streams ``GET /api/ana``; it cannot continue a chat,
so follow-ups start new chats (``keeps_context=False``) and there is no stop call: the relay
stops a run by cancelling the task that iterates :meth:`ask`, which closes the HTTP response.
``mode="v2"`` streams ``POST /v2/chats/stream``, continues chats with ``chat_id`` and stops with
``POST /v2/chats/{id}/cancel``; the relay still cancels the task after :meth:`stop`, so stop is
not cooperative in either mode.

Both modes skip a stream event they cannot read (with a warning) and go on. In v2 a stream that
ends without ``done`` is recovered from ``GET /v2/chats/{id}`` (:mod:`adapters.textql.recovery`).

``AskRequest.language`` is not sent: neither ``/api/ana`` (seed 002: query, dataset, useOntology,
ontologyConnectorId, clifford) nor v2's ChatRequest (question, chat_id, model, tools,
connector_ids) has a language or locale parameter.

Two HTTP clients: the API client is bound to ``base_url`` and carries the credentials; image
downloads use a separate client without any (see :mod:`adapters.textql.images`).
"""

from __future__ import annotations

import logging
from typing import AsyncIterator

import httpx

from adapters.answer import Finished, Outcome, Update
from adapters.base import AskRequest, Capabilities
from adapters.http import LONG_REQUESTS, size_cap_hook
from adapters.textql.errors import error_part
from adapters.textql.history import TextQLHistory
from adapters.textql.images import ImageFetcher
from adapters.textql.legacy import LegacyAna
from adapters.textql.settings import TextQLSettings
from adapters.textql.v2 import V2Ana

log = logging.getLogger(__name__)

USER_AGENT = "insightbot-textql/0.1"


class TextQLBackend:
    name = "textql"

    def __init__(self, settings: TextQLSettings, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.capabilities = Capabilities(cooperative_stop=False, resumable=False,
                                         keeps_context=settings.mode == "v2")
        self._client = httpx.AsyncClient(base_url=settings.api_root, auth=settings.http_auth(),
                                         timeout=settings.call_timeout(), transport=transport,
                                         headers={"User-Agent": USER_AGENT}, follow_redirects=False,
                                         limits=LONG_REQUESTS, event_hooks={"response": [
                                             size_cap_hook(settings.max_response_bytes)]})
        self._image_client = httpx.AsyncClient(timeout=httpx.Timeout(settings.image_timeout),
                                               transport=transport, follow_redirects=False,
                                               headers={"User-Agent": USER_AGENT})
        images = ImageFetcher(self._image_client, base_url=settings.api_root, auth=settings.http_auth(),
                              max_bytes=settings.image_max_bytes, timeout=settings.image_timeout,
                              allow_private=settings.allow_private_images)
        self._legacy = LegacyAna(self._client, settings, images)
        self._v2 = V2Ana(self._client, settings, images)
        self.history: TextQLHistory | None = TextQLHistory(self._client, settings)

    def ask(self, request: AskRequest) -> AsyncIterator[Update]:
        if self.settings.mode == "v2":
            return self._v2.ask(request.question, request.session_id)
        if request.session_id:
            log.debug("textql legacy: /api/ana cannot continue a chat; starting a new one")
        return self._legacy.ask(request.question)

    async def stop(self, session_id: str | None, run_id: str | None) -> None:
        """v2: cancel the chat's run. Legacy: nothing to call; the relay's cancellation closes the stream."""
        if self.settings.mode == "v2" and session_id:
            await self._v2.cancel(session_id)

    async def resume(self, session_id: str, run_id: str) -> AsyncIterator[Update]:
        """TextQL runs cannot be re-attached (``resumable=False``); say so rather than hang."""
        yield Finished(Outcome.FAILED, error_part(
            "This TextQL analysis was interrupted by a restart and cannot be resumed.", "not_resumable"))

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._image_client.aclose()
