"""Microsoft Teams as a chat platform of the service, on the Microsoft 365 Agents SDK.

``TeamsIntegration`` owns the SDK's aiohttp ``CloudAdapter`` (mounted by the service at
``POST /api/messages``), the turn handler, the outbound connector and the sink factory the relay
uses for the ``"teams"`` platform. The adapter runs a whole turn inside the HTTP request, so the
turn handler only records work (event ledger, relay) and returns; answers, progress edits and
short replies all go out later through the connector.

The SDK's default turn-error handler would send the exception text to the chat; it is replaced
by one that logs the error under a short reference and tells the user only that reference.
"""

from __future__ import annotations

import logging
import secrets
import warnings

from aiohttp import web
from aiohttp.web_exceptions import NotAppKeyWarning
from microsoft_agents.hosting.aiohttp import CloudAdapter
from microsoft_agents.hosting.core import TurnContext
from pydantic import ValidationError

from bot.config import Settings
from bot.delivery.reply import Timing
from bot.metrics import Metrics
from bot.relay import Relay
from bot.relay.thread import ThreadRef
from bot.teams import guard
from bot.teams.access import TeamsAccess
from bot.teams.agent import TeamsAgent
from bot.teams.auth import (
    auth_configuration, authorize, connection_manager, entra_refusal, outbound_identity,
)
from bot.teams.cards import text_activity
from bot.teams.connector import TeamsConnector, service_url_vouched
from bot.teams.files import CsvOffers
from bot.teams.limits import teams_scheduler
from bot.teams.memory import AnswerPages, NameBook, TargetBook
from bot.teams.replies import Replies
from bot.teams.sink import TeamsSinkFactory
from bot.teams.stream import StreamTiming
from bot.teams.target import ReplyTarget
from bot.teams.texts import TURN_FAILED
from storage.repository import Repository

log = logging.getLogger(__name__)


class TeamsIntegration:
    def __init__(self, settings: Settings, *, relay: Relay, repo: Repository,
                 metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._auth = auth_configuration(settings)
        self.adapter = CloudAdapter(connection_manager=connection_manager(self._auth))
        self.adapter.on_turn_error = self._on_turn_error
        self.connector = TeamsConnector(
            self.adapter, scheduler=teams_scheduler(settings), metrics=metrics,
            max_retries=settings.TEAMS_MAX_RETRIES, backoff=settings.TEAMS_RETRY_BACKOFF)
        self.targets = TargetBook()
        self.names = NameBook()
        self.pages = AnswerPages()  # every message of an answer → its run (feedback votes)
        self.files = CsvOffers()  # CSVs of cut results offered in personal chats
        self.replies = Replies(self.connector)
        self.agent = TeamsAgent(relay=relay, repo=repo, metrics=metrics, replies=self.replies,
                                targets=self.targets, names=self.names,
                                tenant=settings.TEAMS_TENANT_ID or None, pages=self.pages,
                                files=self.files,
                                https_uploads_only=not settings.TEAMS_ALLOW_ANONYMOUS,
                                access=TeamsAccess.from_settings(settings))
        timing = Timing(progress_interval=settings.TEAMS_UPDATE_INTERVAL,
                        final_edit_wait=settings.FINAL_EDIT_WAIT)
        self._factory = TeamsSinkFactory(self.connector, timing=timing, names=self.names,
                                         targets=self.targets.lookup,
                                         restored=self._restored_target,
                                         intros=self.targets.intro, pages=self.pages,
                                         files=self.files, streaming=settings.TEAMS_STREAMING,
                                         stop=self.agent.stop_run,
                                         stream_timing=StreamTiming(
                                             interval=settings.TEAMS_STREAM_INTERVAL,
                                             heartbeat=settings.TEAMS_STREAM_HEARTBEAT,
                                             max_age=settings.TEAMS_STREAM_MAX_AGE))
        if settings.TEAMS_ALLOW_ANONYMOUS:
            log.warning("TEAMS_ALLOW_ANONYMOUS is on: Teams activities without a token are accepted "
                        "and replies go unauthenticated to the serviceUrl they name. Use this only "
                        "with local emulators and tests, never in production.")

    def sink_factory(self) -> TeamsSinkFactory:
        return self._factory

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """``POST /api/messages``: authenticate, check the body at the edge (``guard``: 413,
        400, 415), run the (short) turn, answer 202/200."""
        refused = guard.too_large(request)
        if refused is not None:
            return refused
        identity = await authorize(request, self._auth)
        if isinstance(identity, web.StreamResponse):
            return identity
        try:
            activity = await guard.read_activity(request)
        except guard.Refused as exc:
            return exc.response
        if not service_url_vouched(identity, str(activity.get("serviceUrl") or "")):
            # a genuine token (replayed, say) on an activity naming another server: answering
            # would send our own token there, and asking the backend would be for nothing
            log.warning("teams: refused an activity whose serviceUrl is not the one its token names")
            return web.json_response({"error": "serviceUrl does not match the token"}, status=401)
        with warnings.catch_warnings():  # the SDK reads this plain-string key; no await inside
            warnings.simplefilter("ignore", NotAppKeyWarning)
            request["claims_identity"] = identity
        try:
            response = CloudAdapter._to_aiohttp_response(await self.adapter.process_request(
                guard.CheckedRequest(request, activity), self.agent))
        except ValidationError:
            return web.json_response({"error": "Not a valid activity"}, status=400)
        except ValueError as exc:
            refusal = entra_refusal(exc)
            if refusal is None:
                raise
            # one line, not a traceback per activity; 503 makes Teams deliver it again later
            log.error("teams: Entra refused the bot's own token (%s): check TEAMS_APP_ID, "
                      "TEAMS_APP_PASSWORD and TEAMS_TENANT_ID", refusal)
            return web.json_response({"error": "the bot cannot authenticate to Teams"},
                                     status=503, headers={"Retry-After": "30"})
        return response if response is not None else web.Response(status=202)

    async def close(self) -> None:
        await self.replies.close()
        await self._factory.aclose()

    # -- internals -----------------------------------------------------------------------
    def _restored_target(self, ref: ThreadRef, service_url: str) -> ReplyTarget:
        return ReplyTarget.for_thread(ref, service_url, outbound_identity(self.settings),
                                      app_id=self.settings.TEAMS_APP_ID)

    async def _on_turn_error(self, context: TurnContext, error: Exception) -> None:
        reference = secrets.token_hex(4)
        log.error("teams: turn failed (reference %s)", reference, exc_info=error)
        activity = context.activity
        if activity is None or activity.type != "message":
            return
        try:
            await context.send_activity(text_activity(TURN_FAILED.format(reference=reference)))
        except Exception:
            log.warning("teams: could not tell the user about failure %s", reference, exc_info=True)
