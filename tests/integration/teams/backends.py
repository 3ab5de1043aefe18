"""One adapter per backend, so every Teams scenario runs against each backend by parametrize.

A harness knows how to configure the service for its fake backend and how to make that fake do
what a scenario needs (hold a run open, fail, answer at length). Adding ClickZetta or TextQL is
a new class here plus its name in ``BACKENDS`` (and a fixture for its fake).
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from tests.fakes.wren import ASK, FakeWren


class BackendHarness(Protocol):
    name: str
    draws_charts: bool
    resumable: bool  # a run survives a restart of the service (polled backends)

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


class WrenHarness:
    name = "wren"
    draws_charts = True
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


BACKENDS = ["wren"]
FAKE_FIXTURES = {"wren": ("fake_wren", WrenHarness)}
