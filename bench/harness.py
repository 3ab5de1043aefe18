"""Start the real service against loopback fakes for benchmarks (same parts as the tests).

``running_bot_with(backend)`` starts the fake Slack, the fake of the chosen backend (Wren,
ClickZetta or TextQL) and the real ``Service`` pointed at both, with production Slack pacing
(``SLACK_UPDATE_INTERVAL=1.5``) unless the benchmark overrides it. A benchmark may pass its own
(not yet started) fake, e.g. a subclass that timestamps what it sends — the fakes in
``tests/fakes`` are shared with the tests and are not edited for benchmarks.

The per-workspace ``chat.update`` budget is lifted (``SLACK_UPDATE_BUDGET=10_000``), and so is
the per-channel posting pace (``SLACK_POST_INTERVAL=0.01``, and the fake's burst), so that
back-to-back benchmark rounds in one channel measure the pipeline and the per-message pacing,
not budgets exhausted by earlier rounds. ``bench/slack_load.py`` is the benchmark that runs
under Slack's real limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from typing import Any, AsyncIterator, Callable

from aiohttp.test_utils import TestClient, TestServer

from bot.service import Service
from tests.fakes.clickzetta import FakeClickZetta
from tests.fakes.slack import FakeSlack
from tests.fakes.textql import FakeTextQL
from tests.fakes.wren import FakeWren
from tests.integration.conftest import FinishedRuns, SlackBot, fast_settings

log = logging.getLogger(__name__)


def _wren_settings(fake: FakeWren) -> dict[str, Any]:
    return dict(BACKEND="wren", WREN_BASE_URL=fake.base_url, WREN_API_KEY=fake.api_key)


def _clickzetta_settings(fake: FakeClickZetta) -> dict[str, Any]:
    ident = fake.identity()
    return dict(BACKEND="clickzetta", CLICKZETTA_BASE_URL=ident["base_url"],
                CLICKZETTA_APP_SECRET_KEY=ident["app_secret_key"],
                CLICKZETTA_TENANT_ID=str(ident["tenant_id"]), CLICKZETTA_USER_ID=str(ident["user_id"]),
                CLICKZETTA_DOMAIN_ID=str(ident["domain_id"]))


def _textql_settings(fake: FakeTextQL) -> dict[str, Any]:
    return dict(BACKEND="textql", TEXTQL_BASE_URL=fake.base_url, TEXTQL_MEMBER_ID=fake.member_id,
                TEXTQL_API_KEY=fake.api_key, TEXTQL_MODE="legacy")


# backend name → (fake factory, settings that point the service at a started fake)
BACKENDS: dict[str, tuple[Callable[[], Any], Callable[[Any], dict[str, Any]]]] = {
    "wren": (FakeWren, _wren_settings),
    "clickzetta": (FakeClickZetta, _clickzetta_settings),
    "textql": (FakeTextQL, _textql_settings),
}

PRODUCTION_PACING: dict[str, Any] = dict(SLACK_UPDATE_INTERVAL=1.5, SLACK_UPDATE_BUDGET=10_000,
                                         CHART_WORKERS=1, CHART_WAIT=30.0,
                                         SLACK_BUDGET_WINDOW=60.0, SLACK_POST_INTERVAL=0.01,
                                         SLACK_STATUS_INTERVAL=1.0, SLACK_STATUS_AFTER=3.0,
                                         CHART_SCALE=2.0, RUN_TIMEOUT=900.0, LOG_LEVEL="WARNING")


@contextlib.asynccontextmanager
async def running_bot_with(backend: str = "wren", *, slack: FakeSlack | None = None, fake: Any = None,
                           **overrides: Any) -> AsyncIterator[tuple[SlackBot, Any]]:
    """A service on loopback with the fake of ``backend``; yields ``(bot, fake)``.

    ``fake``: an unstarted instance of the backend's fake (or a subclass) to use instead of a
    default one. ``overrides``: settings, applied last (e.g. ``CLICKZETTA_POLL_INTERVAL=0.05``).
    """
    make_fake, settings_for = BACKENDS[backend]
    with tempfile.TemporaryDirectory() as tmp:
        async with contextlib.AsyncExitStack() as stack:
            fake_slack = slack or await stack.enter_async_context(
                FakeSlack(post_message_burst=10_000, limits={"chat.update": 10_000}))
            backend_fake = await stack.enter_async_context(fake if fake is not None else make_fake())
            values = {**PRODUCTION_PACING, **settings_for(backend_fake), **overrides}
            settings = fast_settings(tmp, fake_slack.base_url, **values)
            service = Service(settings)
            client = TestClient(TestServer(service.web_app()))
            await client.start_server()
            finished = FinishedRuns()
            assert service.relay is not None
            service.relay.on_finish.append(finished)
            try:
                yield SlackBot(client=client, slack=fake_slack, service=service, finished=finished), backend_fake
            finally:
                await client.close()
                await _reap_leftover_tasks()


@contextlib.asynccontextmanager
async def running_bot(*, slack: FakeSlack | None = None, **overrides: Any) -> AsyncIterator[tuple[SlackBot, FakeWren]]:
    """A service on loopback with a Wren fake; Slack pacing as in production unless overridden."""
    async with running_bot_with("wren", slack=slack, **overrides) as (bot, wren):
        yield bot, wren


async def _reap_leftover_tasks() -> None:
    """Cancel tasks the service left behind at shutdown, and say how many there were.

    Runs cancelled by ``Relay.close`` (the held analyses of the load and memory benchmarks) leave
    their sinks' coalescer workers waiting forever; without this, asyncio prints "Task was
    destroyed but it is pending!" once per run when the loop ends. Counted, not hidden.
    """
    current = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() if t is not current and not t.done()
            and t.get_name() == "coalescer"]
    for task in left:
        task.cancel()
    await asyncio.gather(*left, return_exceptions=True)
    if left:
        log.warning("bench: %d coalescer task(s) were still pending after the service shut down", len(left))


# -- helpers shared by the benchmarks ------------------------------------------------------------
def stats(values: list[float], *, unit: float = 1000.0, suffix: str = "ms") -> dict[str, float]:
    """n, p50, p95, p99, max of ``values`` (seconds), shown in ``suffix`` (×``unit``)."""
    values = sorted(values)
    if not values:
        return {"n": 0}
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    return {"n": len(values), f"p50_{suffix}": pick(0.5) * unit, f"p95_{suffix}": pick(0.95) * unit,
            f"p99_{suffix}": pick(0.99) * unit, f"max_{suffix}": values[-1] * unit}


def counts(values: list[int]) -> dict[str, float]:
    """min / mean / max of small counts (edits, polls)."""
    return {"n": len(values), "min": min(values), "mean": sum(values) / len(values), "max": max(values)}


def reply_updates(bot: SlackBot, thread_ts: str, channel: str | None = None) -> list[Any]:
    """Every ``chat.update`` of the bot's (first) reply in ``thread_ts``, in arrival order."""
    kw = {"channel": channel} if channel else {}
    reply = bot.bot_replies(thread_ts, **kw)[0]
    return [c for c in bot.slack.calls_to("chat.update") if c.args.get("ts") == reply.ts]


def is_final(call: Any) -> bool:
    """The final edit of an answered run is the one carrying the feedback buttons."""
    return "feedback" in str(call.args.get("blocks"))


def report(results: dict[str, Any]) -> str:
    lines = []
    for name, values in results.items():
        shown = ", ".join(f"{k}={_num(v)}" for k, v in values.items())
        lines.append(f"{name}: {shown}")
    return "\n".join(lines)


def _num(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.1f}" if abs(v) >= 1 or v == 0 else f"{v:.3g}"
    return str(v)
