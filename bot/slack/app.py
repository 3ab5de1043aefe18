"""The Bolt AsyncApp, its scheduled Web API client, the sink factory and the intake."""

from __future__ import annotations

import logging

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler

from bot.config import Settings
from bot.delivery.reply import Timing
from bot.delivery.scheduler import Scheduler
from bot.metrics import Metrics
from bot.slack.client import ScheduledWebClient
from bot.slack.deps import SlackDeps
from bot.slack.first_sign import FirstSign
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


def build_app(settings: Settings, deps: SlackDeps, client: ScheduledWebClient) -> AsyncApp:
    # the intake checks every HTTP request's signature before anything else (bot/slack/intake.py)
    app = AsyncApp(signing_secret=settings.SLACK_SIGNING_SECRET, client=client,
                   process_before_response=False, request_verification_enabled=False,
                   logger=logging.getLogger("slack_bolt"))
    app.use(ScheduledClientMiddleware(client))
    register(app, deps)
    return app


def build_intake(settings: Settings, app: AsyncApp, first_sign: FirstSign) -> EventIntake:
    return EventIntake(app, settings.SLACK_SIGNING_SECRET, workers=settings.SLACK_INTAKE_WORKERS,
                       on_event=first_sign.on_event)


def sink_factory(settings: Settings, client: ScheduledWebClient,
                 first_sign: FirstSign | None = None) -> SlackSinkFactory:
    timing = Timing(progress_interval=settings.SLACK_UPDATE_INTERVAL,
                    final_edit_wait=settings.FINAL_EDIT_WAIT)
    return SlackSinkFactory(client, scheduler=client.scheduler, timing=timing,
                            status_after=settings.SLACK_STATUS_AFTER,
                            max_retries=settings.SLACK_MAX_RETRIES, first_sign=first_sign,
                            streaming=settings.SLACK_STREAMING,
                            stream_max_age=settings.SLACK_STREAM_MAX_AGE,
                            stream_reserve=settings.SLACK_STREAM_RESERVE)
