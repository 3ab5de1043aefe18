"""Assembles the service: storage, backend, charts, relay, and the chat platforms.

``Service`` is what ``insightbot serve`` runs and what the integration tests start: it owns
start-up (migrations, resuming unfinished runs, Socket Mode) and shutdown, and builds the
aiohttp application with the contract's endpoints.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from aiohttp import web

from adapters.base import Backend
from bot.charts import ChartRenderer
from bot.config import Settings
from bot.profiles import build_profiles
from bot.loop_lag import LoopLagMonitor
from bot.metrics import Metrics
from bot.relay import Relay
from bot.routing import RoutingConfig
from storage.repository import Repository

log = logging.getLogger(__name__)


class Service:
    def __init__(self, settings: Settings, *, backend: Backend | None = None,
                 routing: RoutingConfig | None = None) -> None:
        """``routing``: the checked ROUTES_FILE (read from settings when not given); ``backend``:
        an object standing in for the single backend of a set-up without one (tests)."""
        settings.check_platforms()
        self.settings = settings
        self.metrics = Metrics()
        self.profiles = build_profiles(settings, routing=routing, backend=backend)
        self.backend = self.profiles.primary.backend
        self.charts = ChartRenderer(width=settings.CHART_WIDTH, height=settings.CHART_HEIGHT,
                                    scale=settings.CHART_SCALE, workers=settings.CHART_WORKERS)
        self.repo: Repository | None = None
        self.relay: Relay | None = None
        self.slack = None  # bot.slack.SlackIntegration when Slack is configured
        self.teams = None  # bot.teams.TeamsIntegration when Teams is configured
        self._pruner: asyncio.Task[None] | None = None
        self._lag: asyncio.Task[None] | None = None
        self._chart_warmup: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.repo = await Repository.open(self.settings.DATABASE_URL, migrate=True)
        self.relay = Relay(self.repo, self.profiles, charts=self.charts,
                           chart_wait=self.settings.CHART_WAIT,
                           run_timeout=self.settings.RUN_TIMEOUT, stop_grace=self.settings.STOP_GRACE,
                           stop_poll_interval=self.settings.STOP_POLL_INTERVAL, metrics=self.metrics,
                           lease=self.settings.RUN_LEASE)
        if self.settings.slack_enabled:
            from bot.slack.deps import PLATFORM
            from bot.slack.integration import SlackIntegration

            self.slack = SlackIntegration(self.settings, relay=self.relay, repo=self.repo,
                                          metrics=self.metrics)
            await self.slack.start()
            self.relay.register_platform(PLATFORM, self.slack.sinks)
        if self.settings.teams_enabled:
            from bot.teams import TeamsIntegration

            self.teams = TeamsIntegration(self.settings, relay=self.relay, repo=self.repo,
                                          metrics=self.metrics)
            self.relay.register_platform("teams", self.teams.sink_factory())
        self._pruner = asyncio.create_task(self._prune_ledger(), name="ledger-pruner")
        self._lag = asyncio.create_task(LoopLagMonitor(self.metrics).run(), name="loop-lag")
        # Chart workers start in the background: start-up does not wait for their ~1 s.
        self._chart_warmup = asyncio.create_task(self.charts.start(), name="chart-warmup")
        resumed = await self.relay.resume_unfinished()
        if resumed:
            log.info("picked up %d unfinished analyses from before the restart", resumed)
        if self.settings.SLACK_APP_TOKEN and self.slack is not None:
            await self.slack.connect_socket_mode(self.settings.SLACK_APP_TOKEN)

    async def _prune_ledger(self) -> None:
        """Forget handled-event keys after a week: Slack and Teams redeliver within minutes."""
        assert self.repo is not None
        while True:
            try:
                removed = await self.repo.prune_events(timedelta(days=7))
                if removed:
                    log.info("event ledger: %d old entries removed", removed)
            except Exception:
                log.warning("event ledger pruning failed", exc_info=True)
            await asyncio.sleep(3600)

    async def close(self) -> None:
        for task in (self._pruner, self._lag):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self.slack is not None:
            await self.slack.close_intake()
        if self.teams is not None:
            await self.teams.close()
        if self.relay is not None:
            await self.relay.close()
        if self.slack is not None:
            await self.slack.close()
        await self.profiles.aclose()
        if self._chart_warmup is not None:
            self._chart_warmup.cancel()
            await asyncio.gather(self._chart_warmup, return_exceptions=True)
        await self.charts.aclose()
        if self.repo is not None:
            await self.repo.close()

    # -- HTTP ----------------------------------------------------------------------------
    def web_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_post("/slack/events", self._slack_events)
        app.router.add_get("/slack/install", self._slack_install)
        app.router.add_get("/slack/oauth_redirect", self._slack_oauth_redirect)
        app.router.add_post("/api/messages", self._teams_messages)

        async def on_startup(_: web.Application) -> None:
            await self.start()

        async def on_cleanup(_: web.Application) -> None:
            await self.close()

        app.on_startup.append(on_startup)
        app.on_cleanup.append(on_cleanup)
        return app

    async def _healthz(self, _: web.Request) -> web.Response:
        ok = self.repo is not None and await self.repo.ping()
        return web.json_response({"status": "ok" if ok else "unavailable"}, status=200 if ok else 503)

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(),
                            headers={"Content-Type": self.metrics.content_type})

    async def _slack_events(self, request: web.Request) -> web.Response:
        if self.slack is None:
            return web.json_response({"error": "Slack is not configured"}, status=404)
        return await self.slack.handle(request)

    async def _slack_install(self, request: web.Request) -> web.Response:
        if self.slack is None:
            return web.json_response({"error": "Slack is not configured"}, status=404)
        return await self.slack.handle_install(request)

    async def _slack_oauth_redirect(self, request: web.Request) -> web.Response:
        if self.slack is None:
            return web.json_response({"error": "Slack is not configured"}, status=404)
        return await self.slack.handle_oauth_redirect(request)

    async def _teams_messages(self, request: web.Request) -> web.StreamResponse:
        if self.teams is None:
            return web.json_response({"error": "Teams is not configured"}, status=404)
        return await self.teams.handle(request)
