"""The Bolt AsyncApp, its scheduled Web API client, the sink factory and the intake.

Two ways to be a Slack app: one workspace with a static bot token (``SLACK_BOT_TOKEN``, the
default), or the distributed app installed into many workspaces through Slack's OAuth flow
(``SLACK_CLIENT_ID``/``SLACK_CLIENT_SECRET``, ``bot/slack/installations.py``), where Bolt's
authorize finds each request's token in the installation store.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler

from bot.config import Settings
from bot.delivery.reply import Timing
from bot.delivery.scheduler import Scheduler
from bot.metrics import Metrics
from bot.slack.client import ScheduledWebClient
from bot.slack.deps import SlackDeps
from bot.slack.first_sign import FirstSign
from bot.slack.installations import BOT_SCOPES, SerializedAuthorize, SlackInstallations
from bot.slack.intake import EventIntake
from bot.slack.limits import slack_scheduler
from bot.slack.listeners import register
from bot.slack.middleware import ScheduledClientMiddleware
from bot.slack.sinks import SlackSinkFactory

log = logging.getLogger(__name__)


def build_client(settings: Settings, metrics: Metrics, scheduler: Scheduler | None = None,
                 session: aiohttp.ClientSession | None = None) -> ScheduledWebClient:
    """One Web API client for the workspace; every call is admitted by its scheduler.

    429s are handled by the client itself (limiter hold + retry), not by slack_sdk's
    ``AsyncRateLimitErrorRetryHandler``, which would sleep inside a final answer's call.
    """
    return ScheduledWebClient(token=settings.SLACK_BOT_TOKEN, base_url=settings.SLACK_API_URL,
                              timeout=30, session=session,
                              retry_handlers=[AsyncConnectionErrorRetryHandler()],
                              scheduler=scheduler or slack_scheduler(settings), metrics=metrics)


def build_app(settings: Settings, deps: SlackDeps, client: ScheduledWebClient,
              installations: SlackInstallations | None = None) -> AsyncApp:
    # the intake checks every HTTP request's signature before anything else (bot/slack/intake.py)
    common: dict[str, Any] = dict(
        signing_secret=settings.SLACK_SIGNING_SECRET, client=client, process_before_response=False,
        request_verification_enabled=False, logger=logging.getLogger("slack_bolt"))
    if installations is None:
        with _without_oauth_environment():
            app = AsyncApp(**common)
    else:
        app = AsyncApp(**common, installation_store=installations.store,
                       installation_store_bot_only=True,
                       authorize=_authorize(settings, installations, client),
                       oauth_settings=_oauth_settings(settings, installations))
        # app_uninstalled / tokens_revoked: Bolt deletes the installation (and its bot token)
        app.enable_token_revocation_listeners()
    app.use(ScheduledClientMiddleware(client, installations))
    register(app, deps)
    return app


def _oauth_settings(settings: Settings, installations: SlackInstallations) -> AsyncOAuthSettings:
    """Bolt's OAuth flow on the contract's paths: ``GET /slack/install`` redirects to Slack's
    consent page with a one-time ``state`` (also set as a cookie in the installer's browser),
    and ``GET /slack/oauth_redirect`` checks both and exchanges the code for the installation."""
    assert settings.SLACK_CLIENT_ID and settings.SLACK_CLIENT_SECRET
    return AsyncOAuthSettings(
        client_id=settings.SLACK_CLIENT_ID, client_secret=settings.SLACK_CLIENT_SECRET,
        scopes=list(BOT_SCOPES), user_scopes=[], redirect_uri=settings.SLACK_REDIRECT_URI,
        install_path="/slack/install", redirect_uri_path="/slack/oauth_redirect",
        install_page_rendering_enabled=False, installation_store=installations.store,
        installation_store_bot_only=True,
        token_rotation_expiration_minutes=settings.SLACK_TOKEN_ROTATION_MINUTES,
        state_store=installations.state_store, logger=logging.getLogger("slack_bolt"))


def _authorize(settings: Settings, installations: SlackInstallations,
               client: ScheduledWebClient) -> SerializedAuthorize:
    # cache_enabled: one auth.test per token, not per request (a refreshed token is a new one;
    # an uninstalled workspace has no token left to find, so nothing is served from the cache)
    return SerializedAuthorize(
        installations, logger=logging.getLogger("slack_bolt"),
        client_id=settings.SLACK_CLIENT_ID, client_secret=settings.SLACK_CLIENT_SECRET,
        token_rotation_expiration_minutes=settings.SLACK_TOKEN_ROTATION_MINUTES,
        cache_enabled=True, client=client)


@contextlib.contextmanager
def _without_oauth_environment() -> Iterator[None]:
    """Bolt's AsyncApp turns itself into an OAuth app (file-based stores, no static token) when
    it finds ``SLACK_CLIENT_ID`` and ``SLACK_CLIENT_SECRET`` in the environment. The
    single-workspace app stays one: the two are hidden while it is built."""
    saved = {name: os.environ.pop(name) for name in ("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET")
             if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


EventHook = Callable[[dict[str, Any]], None]


def build_intake(settings: Settings, app: AsyncApp, first_sign: FirstSign,
                 installations: SlackInstallations | None = None) -> EventIntake:
    on_event: EventHook = first_sign.on_event
    if installations is not None:
        def learn_first(payload: dict[str, Any]) -> None:
            # before the first sign, which already writes to the event's workspace
            installations.learn(payload)
            first_sign.on_event(payload)
        on_event = learn_first
    return EventIntake(app, settings.SLACK_SIGNING_SECRET, workers=settings.SLACK_INTAKE_WORKERS,
                       on_event=on_event)


def sink_factory(settings: Settings, client: ScheduledWebClient,
                 first_sign: FirstSign | None = None,
                 recipient_team: Callable[[str], str] | None = None) -> SlackSinkFactory:
    timing = Timing(progress_interval=settings.SLACK_UPDATE_INTERVAL,
                    final_edit_wait=settings.FINAL_EDIT_WAIT)
    return SlackSinkFactory(client, scheduler=client.scheduler, timing=timing,
                            status_after=settings.SLACK_STATUS_AFTER,
                            max_retries=settings.SLACK_MAX_RETRIES, first_sign=first_sign,
                            streaming=settings.SLACK_STREAMING,
                            stream_max_age=settings.SLACK_STREAM_MAX_AGE,
                            stream_reserve=settings.SLACK_STREAM_RESERVE,
                            recipient_team=recipient_team)
