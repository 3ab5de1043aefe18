"""Slack as a chat platform of the service: the Bolt app, its scheduled client, intake and sinks.

``SlackIntegration`` is to Slack what ``bot.teams.TeamsIntegration`` is to Teams: the service
builds it when Slack is configured, mounts :meth:`handle` at ``POST /slack/events``, registers
:attr:`sinks` with the relay, and closes it at shutdown (acknowledged events are handed over
first, so none is lost to a deploy).
"""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request

from bot.config import Settings
from bot.metrics import Metrics
from bot.relay import Relay
from bot.slack.app import build_app, build_client, build_intake, sink_factory
from bot.slack.access import SlackAccess
from bot.slack.deps import SlackDeps
from bot.slack.first_sign import FirstSign
from bot.slack.installations import SlackInstallations
from bot.slack.intake import AckFirstSocketModeHandler
from storage.repository import Repository

log = logging.getLogger(__name__)


class SlackIntegration:
    def __init__(self, settings: Settings, *, relay: Relay, repo: Repository,
                 metrics: Metrics) -> None:
        self.settings = settings
        # one HTTP session for every Web API call: without it slack_sdk opens (and closes) a new
        # connection — a TLS handshake with Slack — for each call
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        self.client = build_client(settings, metrics, session=self._session)
        self.installations: SlackInstallations | None = None
        if settings.slack_oauth:
            assert settings.SLACK_CLIENT_ID and settings.SLACK_CLIENT_SECRET
            self.installations = SlackInstallations(
                client_id=settings.SLACK_CLIENT_ID, client_secret=settings.SLACK_CLIENT_SECRET,
                engine=repo.engine, repo=repo, client=self.client,
                rotation_minutes=settings.SLACK_TOKEN_ROTATION_MINUTES)
            self.client.tokens = self.installations  # each workspace's siblings: its own token
            log.info("Slack: distributed app, installed into workspaces at /slack/install")
        elif settings.SLACK_CLIENT_ID:
            log.warning("SLACK_CLIENT_ID is ignored while SLACK_BOT_TOKEN is set: the bot serves "
                        "that token's workspace, and /slack/install is off")
        access = SlackAccess.from_settings(settings)
        deps = SlackDeps(relay=relay, repo=repo, metrics=metrics,
                         prompt_examples=list(settings.SLACK_SUGGESTED_PROMPTS),
                         membership=access.membership, access=access)
        self.app = build_app(settings, deps, self.client, self.installations)
        self.sinks = sink_factory(settings, self.client, recipient_team=(
            self.installations.recipient_team if self.installations is not None else None))
        self.first_sign = FirstSign(self.client, self.sinks.tasks)
        self.sinks.first_sign = self.first_sign
        self.intake = build_intake(settings, self.app, self.first_sign, self.installations)
        self._socket: AckFirstSocketModeHandler | None = None

    async def start(self) -> None:
        if self.installations is not None:
            await self.installations.start()

    async def handle(self, request: web.Request) -> web.Response:
        return await self.intake.handle_http(request)

    # -- the OAuth install (distributed app only) -------------------------------------------
    async def handle_install(self, request: web.Request) -> web.Response:
        """``GET /slack/install``: to Slack's consent page, with a one-time state."""
        flow = self.app.oauth_flow
        if flow is None:
            return _no_install()
        response = await flow.handle_installation(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    async def handle_oauth_redirect(self, request: web.Request) -> web.Response:
        """``GET /slack/oauth_redirect``: Slack sends the installer back with a code."""
        flow = self.app.oauth_flow
        if flow is None:
            return _no_install()
        response = await flow.handle_callback(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    async def connect_socket_mode(self, app_token: str) -> None:
        self._socket = AckFirstSocketModeHandler(
            self.app, app_token, self.intake,
            ping_interval=self.settings.SLACK_SOCKET_PING_INTERVAL)
        await self._socket.connect_async()
        log.info("Slack Socket Mode connected")

    async def close_intake(self) -> None:
        """Stop taking events; hand over the ones already acknowledged."""
        if self._socket is not None:
            await self._socket.close_async()
        await self.intake.aclose()

    async def close(self) -> None:
        await self.sinks.aclose()
        if self.installations is not None:
            await self.installations.aclose()
        await self._session.close()


def _no_install() -> web.Response:
    return web.json_response({"error": "the Slack OAuth install is not configured "
                                       "(SLACK_CLIENT_ID and SLACK_CLIENT_SECRET, without "
                                       "SLACK_BOT_TOKEN)"}, status=404)
