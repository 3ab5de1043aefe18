"""The outbound connector against the fake Bot Connector: ids, retries, Retry-After, errors."""

from __future__ import annotations

from typing import AsyncIterator

import pytest
from microsoft_agents.activity import ChannelAccount, ConversationAccount
from microsoft_agents.hosting.aiohttp import CloudAdapter
from microsoft_agents.hosting.core import ClaimsIdentity

from bot.config import Settings
from bot.metrics import Metrics
from bot.teams.auth import auth_configuration, connection_manager
from bot.teams.cards import text_activity
from bot.delivery.scheduler import Scheduler
from bot.teams.connector import ConnectorError, TeamsConnector
from bot.teams.limits import teams_rules
from bot.teams.target import ReplyTarget
from tests.fakes.teams_connector import FakeConnector

CONVERSATION = "19:abc@thread.tacv2;messageid=1700000000000"


@pytest.fixture
async def fake() -> AsyncIterator[FakeConnector]:
    async with FakeConnector(prefix="/emea/") as connector:
        yield connector


class Sleeps:
    """Records the connector's waits and moves a fake clock on by them (no real sleeping)."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.now = 1000.0

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def make(sleeps: Sleeps, retries: int = 3) -> TeamsConnector:
    settings = Settings(_env_file=None, TEAMS_ALLOW_ANONYMOUS=True)
    adapter = CloudAdapter(connection_manager=connection_manager(auth_configuration(settings)))
    scheduler = Scheduler(teams_rules(settings), clock=sleeps.clock)
    return TeamsConnector(adapter, scheduler=scheduler, metrics=Metrics(), max_retries=retries,
                          backoff=0.5, sleep=sleeps, clock=sleeps.clock)


def target(fake: FakeConnector, reply_to: str | None = "1700000000000") -> ReplyTarget:
    return ReplyTarget(service_url=fake.service_url,
                       conversation=ConversationAccount(id=CONVERSATION, tenant_id="t1"),
                       identity=ClaimsIdentity(), bot=ChannelAccount(id="28:bot", name="bot"),
                       user=ChannelAccount(id="29:ada", name="Ada"), reply_to_id=reply_to)


async def test_post_update_delete_keep_the_service_url_prefix(fake: FakeConnector) -> None:
    connector = make(Sleeps())
    message_id = await connector.post(target(fake), text_activity("hello"))
    assert message_id
    await connector.update(target(fake), message_id, text_activity("hello again"))
    await connector.delete(target(fake), message_id)
    paths = [(c.method, c.path) for c in fake.calls]
    assert paths == [
        ("POST", f"/emea/v3/conversations/{CONVERSATION}/activities/1700000000000"),
        ("PUT", f"/emea/v3/conversations/{CONVERSATION}/activities/{message_id}"),
        ("DELETE", f"/emea/v3/conversations/{CONVERSATION}/activities/{message_id}"),
    ]
    assert fake.messages[message_id].text == "hello again" and fake.messages[message_id].deleted
    assert all(c.authorization is None for c in fake.calls)  # anonymous: no token


async def test_without_a_reply_to_id_it_posts_to_the_conversation(fake: FakeConnector) -> None:
    await make(Sleeps()).post(target(fake, reply_to=None), text_activity("hi"))
    assert fake.calls[0].path == f"/emea/v3/conversations/{CONVERSATION}/activities"


async def test_429_waits_for_retry_after_then_succeeds(fake: FakeConnector) -> None:
    sleeps = Sleeps()
    connector = make(sleeps)
    fake.fail_next("POST", 429, retry_after=7, times=2)
    assert await connector.post(target(fake), text_activity("x"))
    assert [c.status for c in fake.calls] == [429, 429, 201]
    assert sleeps.waits.count(7.0) == 2  # Retry-After, once per 429


async def test_transient_errors_back_off_exponentially(fake: FakeConnector) -> None:
    sleeps = Sleeps()
    fake.fail_next("PUT", 502)
    fake.fail_next("PUT", 504)
    fake.fail_next("PUT", 412)
    connector = make(sleeps)
    message_id = await connector.post(target(fake), text_activity("x"))
    await connector.update(target(fake), message_id, text_activity("y"))
    assert [c.status for c in fake.calls_to("PUT")] == [502, 504, 412, 200]
    assert 0.25 <= sleeps.waits[0] <= 0.5 and 0.5 <= sleeps.waits[1] <= 1.0 and 1.0 <= sleeps.waits[2] <= 2.0


async def test_retries_are_bounded_and_errors_carry_teams_code(fake: FakeConnector) -> None:
    connector = make(Sleeps(), retries=1)
    fake.fail_next("POST", 429, retry_after=1, times=2)
    with pytest.raises(ConnectorError) as err:
        await connector.post(target(fake), text_activity("x"))
    assert err.value.status == 429 and err.value.code == "TooManyRequests"
    fake.fail_next("POST", 400, code="BadArgument")
    with pytest.raises(ConnectorError) as err:
        await connector.post(target(fake), text_activity("x"))
    assert err.value.status == 400 and err.value.code == "BadArgument"
    assert len(fake.calls_to("POST")) == 3  # a 400 is not retried


async def test_a_429_holds_the_whole_conversation(fake: FakeConnector) -> None:
    sleeps = Sleeps()
    connector = make(sleeps, retries=0)
    fake.fail_next("POST", 429, retry_after=30)
    with pytest.raises(ConnectorError):
        await connector.post(target(fake), text_activity("x"))
    await connector.post(target(fake), text_activity("y"))  # another run in the same channel
    assert sleeps.waits and 29 <= sleeps.waits[-1] <= 30


async def test_update_of_a_missing_message_is_a_404(fake: FakeConnector) -> None:
    with pytest.raises(ConnectorError) as err:
        await make(Sleeps()).update(target(fake), "nope", text_activity("y"))
    assert err.value.status == 404


async def test_unknown_service_url_fails_cleanly() -> None:
    t = ReplyTarget(service_url="", conversation=ConversationAccount(id="x"), identity=ClaimsIdentity())
    with pytest.raises(ConnectorError):
        await make(Sleeps()).post(t, text_activity("x"))
