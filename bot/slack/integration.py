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

from bot.config import Settings
from bot.metrics import Metrics
from bot.relay import Relay
from bot.slack.app import build_app, build_client, build_intake, sink_factory
from bot.slack.access import SlackAccess
from bot.slack.deps import SlackDeps
from bot.slack.first_sign import FirstSign
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
        access = SlackAccess.from_settings(settings)
        deps = SlackDeps(relay=relay, repo=repo, metrics=metrics,
                         prompt_examples=list(settings.SLACK_SUGGESTED_PROMPTS),
                         membership=access.membership, access=access)
        self.app = build_app(settings, deps, self.client)
        self.sinks = sink_factory(settings, self.client)
        self.first_sign = FirstSign(self.client, self.sinks.tasks)
        self.sinks.first_sign = self.first_sign
        self.intake = build_intake(settings, self.app, self.first_sign)
        self._socket: AckFirstSocketModeHandler | None = None

    async def handle(self, request: web.Request) -> web.Response:
        return await self.intake.handle_http(request)

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
        await self._session.close()
