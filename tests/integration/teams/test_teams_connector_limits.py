"""The fake Bot Connector's rate limits (Teams' per-bot, per-thread numbers), on a driven clock,
and the bot's limiter staying under them.

Teams (shared/reference/teams.md §3.3, ``bots/how-to/rate-limit``): 7 sends per second, 8 per
2 s, 60 per 30 s and 1,800 per hour, per bot per conversation; past that 429 with
``Retry-After``. Posts, updates and deletes count alike.
"""

from __future__ import annotations

from typing import Any, AsyncIterator

import aiohttp
import pytest

from bot.config import Settings
from bot.teams.limits import teams_rules
from tests.fakes.entra import SigningKey
from tests.fakes.teams_connector import RATE_LIMITS, FakeConnector

CONV = "a:1pL6-personal-chat-with-ada"
OTHER = "19:3f2c6a1e9b0d4c7a@thread.v2"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def connector(clock: Clock) -> AsyncIterator[FakeConnector]:
    async with FakeConnector(clock=clock) as fake:
        yield fake


async def send(http: aiohttp.ClientSession, fake: FakeConnector, conversation: str = CONV,
               headers: dict[str, str] | None = None) -> tuple[int, str | None]:
    url = f"{fake.service_url}v3/conversations/{conversation}/activities"
    async with http.post(url, json={"type": "message", "text": "hi"}, headers=headers) as resp:
        await resp.read()
        return resp.status, resp.headers.get("Retry-After")


async def test_seven_a_second_then_429_with_retry_after(connector: FakeConnector,
                                                        clock: Clock) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(7):
            assert (await send(http, connector))[0] == 201
        status, retry = await send(http, connector)
        assert status == 429 and retry is not None and float(retry) == pytest.approx(1.0)
        assert (await send(http, connector, OTHER))[0] == 201  # another thread: its own budget
        clock.now += 1.0
        assert (await send(http, connector))[0] == 201  # the 8th of 2 s
        status, retry = await send(http, connector)  # the 9th within 2 s
        assert status == 429 and float(retry or 0) == pytest.approx(1.0)
        # 60 per 30 s: past the short windows, then under them, counting the long one
        clock.now += 2.0
        for _ in range(52):
            clock.now += 0.3
            assert (await send(http, connector))[0] == 201
        clock.now += 0.3
        status, retry = await send(http, connector)
        assert status == 429 and 0 < float(retry or 0) <= 30
        assert [c.status for c in connector.calls].count(429) == 3


async def test_limits_are_per_bot(clock: Clock) -> None:
    """Two bots in one thread each get Teams' per-bot budget (told apart by their token)."""
    def token(app: str) -> dict[str, str]:
        key = SigningKey("k")
        return {"Authorization": "Bearer " + key.sign({"appid": app, "aud": "x"})}

    async with FakeConnector(clock=clock) as fake, aiohttp.ClientSession() as http:
        for _ in range(7):
            assert (await send(http, fake, headers=token("bot-a")))[0] == 201
        assert (await send(http, fake, headers=token("bot-a")))[0] == 429
        assert (await send(http, fake, headers=token("bot-b")))[0] == 201


def test_the_bots_limiter_stays_under_teams_published_limits() -> None:
    """Every window of the bot's Teams budget is under Teams' number for that window, also when
    the per-30 s budget is configured too high."""
    for budget in (50, 59, 60, 500):
        settings = Settings(_env_file=None, SLACK_BOT_TOKEN=None, SLACK_SIGNING_SECRET=None,
                            TEAMS_ALLOW_ANONYMOUS=True, TEAMS_UPDATE_BUDGET=budget)
        windows = {w.seconds: w.limit for w in teams_rules(settings)["send"].windows}
        for limit, seconds in RATE_LIMITS:
            assert windows[seconds] < limit, (budget, seconds)


async def test_a_hand_clock_also_ages_streams(clock: Clock) -> None:
    """The clock drives Teams' 2-minute stream cap too."""
    async with FakeConnector(clock=clock) as fake, aiohttp.ClientSession() as http:
        url = f"{fake.service_url}v3/conversations/{CONV}/activities"
        first: dict[str, Any] = {"type": "typing", "text": "Working",
                                 "entities": [{"type": "streaminfo", "streamType": "informative",
                                               "streamSequence": 1}]}
        async with http.post(url, json=first) as resp:
            stream_id = (await resp.json())["id"]
        clock.now += 121
        chunk = {"type": "typing", "text": "Working more",
                 "entities": [{"type": "streaminfo", "streamType": "informative",
                               "streamSequence": 2, "streamId": stream_id}]}
        async with http.post(url, json=chunk) as resp:
            assert resp.status == 403
            assert "exceeded streaming time" in (await resp.json())["error"]["message"]
