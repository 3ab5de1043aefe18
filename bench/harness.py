"""Start the real service against loopback fakes for benchmarks (same parts as the tests)."""

from __future__ import annotations

import contextlib
import tempfile
from typing import Any, AsyncIterator

from aiohttp.test_utils import TestClient, TestServer

from bot.service import Service
from tests.fakes.slack import FakeSlack
from tests.fakes.wren import FakeWren
from tests.integration.conftest import FinishedRuns, SlackBot, fast_settings


@contextlib.asynccontextmanager
async def running_bot(*, slack: FakeSlack | None = None, **overrides: Any) -> AsyncIterator[tuple[SlackBot, FakeWren]]:
    """A service on loopback with a Wren fake; Slack pacing as in production unless overridden."""
    with tempfile.TemporaryDirectory() as tmp:
        async with contextlib.AsyncExitStack() as stack:
            fake_slack = slack or await stack.enter_async_context(
                FakeSlack(post_message_burst=10_000, limits={"chat.update": 10_000}))
            wren = await stack.enter_async_context(FakeWren())
            values = dict(BACKEND="wren", WREN_BASE_URL=wren.base_url, WREN_API_KEY=wren.api_key,
                          SLACK_UPDATE_INTERVAL=1.5, SLACK_UPDATE_BUDGET=10_000, CHART_SCALE=2.0,
                          LOG_LEVEL="WARNING")
            values.update(overrides)
            settings = fast_settings(tmp, fake_slack.base_url, **values)
            service = Service(settings)
            client = TestClient(TestServer(service.web_app()))
            await client.start_server()
            finished = FinishedRuns()
            assert service.relay is not None
            service.relay.on_finish.append(finished)
            try:
                yield SlackBot(client=client, slack=fake_slack, service=service, finished=finished), wren
            finally:
                await client.close()
