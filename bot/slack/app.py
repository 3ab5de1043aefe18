"""The Bolt AsyncApp, its Web API client, and the aiohttp route for ``POST /slack/events``."""

from __future__ import annotations

import logging

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler, AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.delivery import RateBudget
from bot.slack.deps import SlackDeps
from bot.slack.listeners import register
from bot.slack.sink import SlackSinkFactory

log = logging.getLogger(__name__)


def build_client(settings: Settings) -> AsyncWebClient:
    """One Web API client: 429s are retried after ``Retry-After`` (slack_sdk does not by default)."""
    client = AsyncWebClient(token=settings.SLACK_BOT_TOKEN, base_url=settings.SLACK_API_URL,
                            timeout=30)
    client.retry_handlers = [AsyncConnectionErrorRetryHandler(),
                             AsyncRateLimitErrorRetryHandler(max_retry_count=settings.SLACK_MAX_RETRIES)]
    return client


def build_app(settings: Settings, deps: SlackDeps, client: AsyncWebClient) -> AsyncApp:
    app = AsyncApp(signing_secret=settings.SLACK_SIGNING_SECRET,
                   client=client, process_before_response=False,
                   logger=logging.getLogger("slack_bolt"))
    register(app, deps)
    return app


def sink_factory(settings: Settings, deps: SlackDeps, client: AsyncWebClient) -> SlackSinkFactory:
    budget = RateBudget(settings.SLACK_UPDATE_BUDGET, settings.SLACK_BUDGET_WINDOW)
    return SlackSinkFactory(client, budget=budget, interval=settings.SLACK_UPDATE_INTERVAL,
                            metrics=deps.metrics)


def events_route(app: AsyncApp):
    """The aiohttp handler: Bolt verifies the signature (401 on failure) and acks at once."""

    async def handle(request: web.Request) -> web.Response:
        bolt_request = await to_bolt_request(request)
        bolt_response = await app.async_dispatch(bolt_request)
        return await to_aiohttp_response(bolt_response)

    return handle
