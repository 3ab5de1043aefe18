"""One adapter per backend, so platform scenarios (Slack and Teams) run against each backend.

A harness knows how to configure the service for its fake backend and how to make that fake do
what a scenario needs (hold a run open, fail, answer at length, show it was cancelled). Adding a
backend is a new class here plus its name in ``BACKENDS`` (and a fixture for its fake).
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from tests.fakes.clickzetta import FakeClickZetta
from tests.fakes.textql import FakeTextQL, data_only
from tests.fakes.wren import ASK, FakeWren


class BackendHarness(Protocol):
    name: str
    draws_charts: bool
    resumable: bool
    answer_marker: str  # text the default answer always contains
    renders_vega: bool  # its charts are Vega-Lite specs that we render (at CHART_SCALE)  # a run survives a restart of the service (polled backends)

    def settings(self) -> dict[str, Any]: ...

    def hold(self) -> asyncio.Event:
        """The next question stays unanswered until the event is set."""
        ...

    async def wait_asked(self, count: int = 1) -> None: ...

    def questions(self) -> list[str]:
        """The questions the backend received, in order."""
        ...

    def sessions_sent(self) -> list[str | None]:
        """The backend session each question continued (None for a new one)."""
        ...

    def fail_next(self) -> str:
        """Make the next question fail visibly; returns text the user must see."""
        ...

    def answer_next(self, text: str) -> None:
        """Make the next answer's text ``text``."""
        ...

    async def wait_cancelled(self) -> None:
        """Return once the backend saw the held question cancelled (its own way)."""
        ...


class WrenHarness:
    name = "wren"
    answer_marker = "São Paulo"
    draws_charts = True
    renders_vega = True
    resumable = False

    def __init__(self, fake: FakeWren) -> None:
        self.fake = fake

    def settings(self) -> dict[str, Any]:
        return dict(BACKEND="wren", WREN_BASE_URL=self.fake.base_url, WREN_API_KEY=self.fake.api_key,
                    WREN_PROJECT_ID="7")

    def hold(self) -> asyncio.Event:
        return self.fake.hold_ask()

    async def wait_asked(self, count: int = 1) -> None:
        await self.fake.wait_for_request(ASK, count)

    def questions(self) -> list[str]:
        return [r.json["question"] for r in self.fake.requests_to(ASK)]

    def sessions_sent(self) -> list[str | None]:
        return [r.json.get("threadId") or None for r in self.fake.requests_to(ASK)]

    def fail_next(self) -> str:
        self.fake.script_ask_error(code="NO_RELEVANT_DATA")
        return "find the exact data"

    def answer_next(self, text: str) -> None:
        self.fake.script_ask(summary=text)

    async def wait_cancelled(self) -> None:
        await self.fake.wait_for_cancel()  # Wren v1 has no stop call: the request is abandoned


class _Release:
    """What ``hold()`` returns for fakes that pause by a knob rather than an event."""

    def __init__(self, release: Any) -> None:
        self._release = release

    def set(self) -> None:
        self._release()


class ClickZettaHarness:
    name = "clickzetta"
    answer_marker = "Chaoyang District"
    renders_vega = False  # only with CLICKZETTA_WAREHOUSE_URL, which this harness does not set
    draws_charts = False  # its charts need a warehouse (CLICKZETTA_WAREHOUSE_URL)
    resumable = True

    def __init__(self, fake: FakeClickZetta) -> None:
        self.fake = fake

    def settings(self) -> dict[str, Any]:
        ident = self.fake.identity()
        return dict(BACKEND="clickzetta", CLICKZETTA_BASE_URL=ident["base_url"],
                    CLICKZETTA_APP_SECRET_KEY=ident["app_secret_key"],
                    CLICKZETTA_TENANT_ID=str(ident["tenant_id"]), CLICKZETTA_USER_ID=str(ident["user_id"]),
                    CLICKZETTA_DOMAIN_ID=str(ident["domain_id"]), CLICKZETTA_POLL_INTERVAL=0.01)

    def hold(self) -> Any:
        self.fake.hold(at_step=1)
        return _Release(self.fake.release)

    async def wait_asked(self, count: int = 1) -> None:
        await self.fake.wait_for_request("query", count)

    def questions(self) -> list[str]:
        return [r.body["msg"] for r in self.fake.requests_to("query")]

    def sessions_sent(self) -> list[str | None]:
        # ClickZetta needs a session before the first question: a follow-up reuses it, a new
        # thread creates another one (one safe_new per conversation)
        seen: list[int] = []
        out: list[str | None] = []
        for r in self.fake.requests_to("query"):
            sid = r.body["sessionId"]
            out.append(str(sid) if sid in seen else None)
            seen.append(sid)
        return out

    def fail_next(self) -> str:
        self.fake.fail("query", "http_500")
        return "ClickZetta"

    def answer_next(self, text: str) -> None:
        self.fake.script = [
            {"id": "9001", "dataType": "summary", "message": "Analysis complete",
             "modelRes": {"code": 200, "data": {"dataType": "summary", "summaryData": text}}},
            {"id": "9002", "dataType": "finish", "message": "Analysis complete"},
        ]

    async def wait_cancelled(self) -> None:
        await self.fake.wait_for_request("stop")  # text2insight/stop


class TextQLHarness:
    """TextQL in v2 mode: the mode that keeps a chat's context across follow-ups."""

    name = "textql"
    answer_marker = "EMEA leads"
    renders_vega = False  # images come as PNG assets from TextQL
    draws_charts = True  # the Python cell's image asset
    resumable = False

    def __init__(self, fake: FakeTextQL) -> None:
        self.fake = fake

    def settings(self) -> dict[str, Any]:
        return dict(BACKEND="textql", TEXTQL_BASE_URL=self.fake.base_url, TEXTQL_MODE="v2",
                    TEXTQL_MEMBER_ID=self.fake.member_id, TEXTQL_API_KEY=self.fake.api_key,
                    TEXTQL_STREAM_IDLE_TIMEOUT=5.0)

    def hold(self) -> asyncio.Event:
        self.fake.hold_after = 1
        self.fake.release.clear()
        return self.fake.release

    async def wait_asked(self, count: int = 1) -> None:
        await self.fake.wait_for_request("/v2/chats/stream", count)

    def questions(self) -> list[str]:
        return [r.json["question"] for r in self.fake.requests_to("/v2/chats/stream")]

    def sessions_sent(self) -> list[str | None]:
        return [r.json.get("chat_id") or None for r in self.fake.requests_to("/v2/chats/stream")]

    def fail_next(self) -> str:
        self.fake.fail_once.append(500)
        return "TextQL"

    def answer_next(self, text: str) -> None:
        self.fake.v2_script = [
            data_only({"type": "metadata", "id": "m1", "created_at": "2026-01-05T10:00:00Z",
                       "model": "default", "chat_id": "00000000-0000-4000-8000-000000000001",
                       "is_continuation": False}),
            data_only({"type": "text", "text": text}),
            data_only({"type": "done", "status": "completed"}),
        ]

    async def wait_cancelled(self) -> None:
        latest_chat = list(self.fake.chats)[-1]
        await self.fake.wait_for_request(f"/v2/chats/{latest_chat}/cancel")  # cancelled on TextQL
        await self.fake.stream_closed.wait()  # and our stream closed


BACKENDS = ["wren", "clickzetta", "textql"]
FAKE_FIXTURES = {"wren": ("fake_wren", WrenHarness),
                 "clickzetta": ("fake_clickzetta", ClickZettaHarness),
                 "textql": ("fake_textql", TextQLHarness)}
