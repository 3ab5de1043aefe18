"""Teams harness: the real service on loopback, driven by Teams-shaped activities.

``teams_bot`` starts the fake Bot Connector and the backend's fake, builds the real ``Service``
(Teams in anonymous mode, no Slack, SQLite in a temporary folder) and serves it on 127.0.0.1.
Tests post activities to ``/api/messages`` exactly as the Bot Connector would — with a
``serviceUrl`` pointing at the fake, path prefix included — and assert on what the fake
connector received. Runs are awaited through the relay's ``on_finish`` callbacks.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.config import Settings
from bot.service import Service
from tests.fakes.teams_connector import FakeConnector, TeamsMessage
from tests.integration.conftest import TIME_SCALE, FinishedRuns
from tests.integration.backends import BackendHarness

TENANT = "72f988bf-0000-4000-8000-000000000001"
BOT = {"id": "28:00000000-0000-0000-0000-0000000b0701", "name": "insightbot"}
PERSONAL = "a:1pL6-personal-chat-with-ada"
GROUP = "19:3f2c6a1e9b0d4c7a@thread.v2"
CHANNEL = "19:general-3f2c6a1e9b0d@thread.tacv2"
TEAM = "19:team-3f2c6a1e9b0d@thread.tacv2"


@dataclass(frozen=True)
class Person:
    teams_id: str
    aad: str
    name: str

    def account(self) -> dict[str, str]:
        return {"id": self.teams_id, "name": self.name, "aadObjectId": self.aad}


ADA = Person("29:1ada-teams-id", "aad-0000-ada", "Ada Lovelace")
BOB = Person("29:1bob-teams-id", "aad-0000-bob", "Bob Babbage")


def teams_settings(tmp_path: Any, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/teams.db",
        SLACK_BOT_TOKEN=None, SLACK_SIGNING_SECRET=None, SLACK_APP_TOKEN=None,
        TEAMS_ALLOW_ANONYMOUS=True, TEAMS_UPDATE_INTERVAL=0.05, TEAMS_RETRY_BACKOFF=0.01,
        TEAMS_BUDGET_WINDOW=30 * TIME_SCALE,
        RUN_TIMEOUT=20.0, STOP_GRACE=2.0, CHART_SCALE=1.0, CHART_WAIT=30.0,
        CHART_WORKERS=0,  # charts in-process: a worker process costs ~1 s to start per service
        TEAMS_STREAMING=False,  # these tests are about the card path; streaming tests turn it on
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)


@dataclass
class TeamsBot:
    client: TestClient
    connector: FakeConnector
    service: Service
    finished: FinishedRuns
    backend: BackendHarness | None = None
    _ids: Any = field(default_factory=lambda: itertools.count(1_700_000_000_001))

    # -- sending activities ---------------------------------------------------------------
    def next_id(self) -> str:
        return str(next(self._ids))

    def activity(self, text: str, conversation_id: str, conversation_type: str, *,
                 user: Person = ADA, mention: bool = False, value: dict[str, Any] | None = None,
                 reply_to_id: str | None = None, activity_id: str | None = None,
                 locale: str = "en-US") -> dict[str, Any]:
        entities: list[dict[str, Any]] = [{"type": "clientInfo", "locale": locale, "country": "US",
                                           "platform": "Web", "timezone": "Europe/London"}]
        if mention:
            text = f"<at>{BOT['name']}</at> {text}"
            entities.append({"type": "mention", "text": f"<at>{BOT['name']}</at>", "mentioned": BOT})
        channel_data: dict[str, Any] = {"tenant": {"id": TENANT}}
        if conversation_type == "channel":
            channel_data.update(team={"id": TEAM}, channel={"id": CHANNEL})
        conversation: dict[str, Any] = {"id": conversation_id, "conversationType": conversation_type,
                                        "tenantId": TENANT}
        if conversation_type != "personal":
            conversation["isGroup"] = True
        activity: dict[str, Any] = {
            "type": "message", "id": activity_id or self.next_id(), "channelId": "msteams",
            "serviceUrl": self.connector.service_url, "timestamp": "2026-09-01T10:00:00.000Z",
            "text": text, "textFormat": "plain", "locale": locale,
            "from": user.account(), "recipient": BOT, "conversation": conversation,
            "channelData": channel_data, "entities": entities,
        }
        if value is not None:
            activity["value"] = value
        if reply_to_id:
            activity["replyToId"] = reply_to_id
        return activity

    async def send(self, activity: dict[str, Any], *, expect: int = 202,
                   headers: dict[str, str] | None = None) -> Any:
        resp = await self.client.post("/api/messages", json=activity, headers=headers)
        assert resp.status == expect, await resp.text()
        return resp

    async def personal(self, text: str, *, user: Person = ADA,
                       conversation: str = PERSONAL) -> dict[str, Any]:
        activity = self.activity(text, conversation, "personal", user=user)
        await self.send(activity)
        return activity

    async def group(self, text: str, *, user: Person = ADA) -> dict[str, Any]:
        activity = self.activity(text, GROUP, "groupChat", user=user, mention=True)
        await self.send(activity)
        return activity

    async def channel(self, text: str, *, root: str | None = None, user: Person = ADA) -> dict[str, Any]:
        """A mention in the channel: a new post (``root`` None) or a reply in ``root``'s thread."""
        activity_id = self.next_id()
        conversation = f"{CHANNEL};messageid={root or activity_id}"
        activity = self.activity(text, conversation, "channel", user=user, mention=True,
                                 activity_id=activity_id)
        await self.send(activity)
        return activity

    async def press(self, message: TeamsMessage, data: dict[str, Any], *,
                    user: Person = ADA) -> dict[str, Any]:
        """An Action.Submit on ``message``: a message activity with ``value`` and no text."""
        activity = self.activity("", message.conversation_id, kind_of(message.conversation_id),
                                 user=user, value=data, reply_to_id=message.id)
        await self.send(activity)
        return activity

    async def invoke(self, name: str, value: dict[str, Any], message: TeamsMessage, *,
                     user: Person = ADA, expect: int = 200) -> tuple[dict[str, Any], bytes]:
        """An invoke about ``message`` (Teams sets ``replyToId`` to it), as the Bot Connector
        sends it; returns the activity and the raw body of the synchronous answer."""
        activity = self.activity("", message.conversation_id, kind_of(message.conversation_id),
                                 user=user, value=value, reply_to_id=message.id)
        activity.update(type="invoke", name=name)
        activity.pop("text", None)
        activity.pop("textFormat", None)
        resp = await self.send(activity, expect=expect)
        return activity, await resp.read()

    async def vote(self, message: TeamsMessage, reaction: str, *, user: Person = ADA,
                   text: str = "", expect: int = 200) -> bytes:
        """A 👍/👎 from Teams' feedback controls on ``message`` (``message/submitAction``)."""
        value = {"actionName": "feedback",
                 "actionValue": {"reaction": reaction, "feedback": json.dumps({"feedbackText": text})}}
        _, body = await self.invoke("message/submitAction", value, message, user=user, expect=expect)
        return body

    # -- reading what Teams got -----------------------------------------------------------
    def replies(self, conversation_id: str) -> list[TeamsMessage]:
        return self.connector.in_conversation(conversation_id)

    async def wait_replies(self, conversation_id: str, count: int = 1,
                           predicate: Callable[[list[TeamsMessage]], bool] | None = None,
                           ) -> list[TeamsMessage]:
        def ready() -> bool:
            found = self.replies(conversation_id)
            return len(found) >= count and (predicate is None or predicate(found))

        await self.connector.wait_for(ready)
        return self.replies(conversation_id)

    async def wait_finished(self, thread: str, count: int = 1, timeout: float = 10.0) -> list[Any]:
        await self.finished.wait_for(lambda: len(self.finished.of_thread(thread)) >= count, timeout)
        return self.finished.of_thread(thread)


@pytest.fixture
async def fake_connector() -> AsyncIterator[FakeConnector]:
    async with FakeConnector(prefix="/teams/amer/", time_scale=TIME_SCALE) as fake:
        yield fake
    assert not fake.violations, fake.violations  # what Teams would drop without an error


StartTeams = Callable[..., Any]


@pytest.fixture
async def start_teams(tmp_path: Any, fake_connector: FakeConnector) -> AsyncIterator[StartTeams]:
    """``await start_teams(**settings)`` → a running TeamsBot; all are closed at the end."""
    started: list[TestClient] = []

    async def start(backend: BackendHarness | None = None, *, own: Any = None,
                    **overrides: Any) -> TeamsBot:
        """``own``: a backend object of our own protocol (tests/integration/own_backend.py)."""
        values = {**(backend.settings() if backend else {}), **overrides}
        if own is not None:  # the configured backend is never used: any valid one will do
            values = {"BACKEND": "wren", "WREN_BASE_URL": "http://unused",
                      "WREN_API_KEY": "psk-unused", **values}
        service = Service(teams_settings(tmp_path, **values), backend=own)
        client = TestClient(TestServer(service.web_app()))
        await client.start_server()
        started.append(client)
        finished = FinishedRuns()
        assert service.relay is not None and service.teams is not None
        service.relay.on_finish.append(finished)
        return TeamsBot(client=client, connector=fake_connector, service=service,
                        finished=finished, backend=backend)

    yield start
    for client in reversed(started):
        await client.close()


@pytest.fixture
async def teams_bot(start_teams: StartTeams, backend: BackendHarness) -> TeamsBot:
    return await start_teams(backend)


def kind_of(conversation_id: str) -> str:
    """The conversationType Teams would send for one of the harness's conversations."""
    if conversation_id.startswith("a:"):
        return "personal"
    return "channel" if conversation_id.startswith(CHANNEL) else "groupChat"


# -- card helpers ---------------------------------------------------------------------------
def walk(node: Any) -> list[dict[str, Any]]:
    """Every dict inside a card, depth first."""
    found: list[dict[str, Any]] = []

    def visit(value: Any) -> None:
        if isinstance(value, dict):
            found.append(value)
            for v in value.values():
                visit(v)
        elif isinstance(value, list):
            for v in value:
                visit(v)

    visit(node)
    return found


def card_text(card: dict[str, Any] | None) -> str:
    """All human-visible text of a card (TextBlocks, code, action titles)."""
    out = []
    for node in walk(card or {}):
        for key in ("text", "codeSnippet", "title"):
            if isinstance(node.get(key), str):
                out.append(node[key])
    return "\n".join(out)


def actions_of(card: dict[str, Any] | None, kind: str) -> list[dict[str, Any]]:
    return [n for n in walk(card or {}) if n.get("type") == kind]


def stop_buttons(card: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [a for a in actions_of(card, "Action.Submit") if (a.get("data") or {}).get("action") == "stop"]


def suggestion_buttons(card: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [a for a in actions_of(card, "Action.Submit") if (a.get("data") or {}).get("action") == "ask"]
