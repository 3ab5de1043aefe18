"""backend.history: chat summaries and chat detail, legacy and v2, against FakeTextQL."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import AsyncIterator

import pytest

from adapters.base import AskRequest, BackendError
from adapters.textql import ChatMessage, TextQLBackend, TextQLSettings
from tests.fakes.textql import HISTORY_CHAT_ID, FakeTextQL


@pytest.fixture
async def fake() -> AsyncIterator[FakeTextQL]:
    async with FakeTextQL() as server:
        yield server


def legacy(fake: FakeTextQL, **overrides: object) -> TextQLBackend:
    return TextQLBackend(TextQLSettings(**{"member_id": fake.member_id, "api_key": fake.api_key,
                                           "base_url": fake.base_url, **overrides}))


async def test_legacy_list_chats_newest_first_and_limited(fake: FakeTextQL) -> None:
    backend = legacy(fake)
    try:
        assert backend.history is not None
        chats = await backend.history.list_chats(limit=1)
        every = await backend.history.list_chats(limit=10)
    finally:
        await backend.aclose()
    assert [c.id for c in chats] == [HISTORY_CHAT_ID]
    assert chats[0].title == "Gabriel searches for the largest store in Virginia"
    assert chats[0].last_activity == datetime(2024, 3, 25, 4, 0, 49, 116000, tzinfo=timezone.utc)
    assert [c.title for c in every][1] == "Analyzing sales data for Q2 2023"
    assert fake.requests_to("/api/ana/chat/summary")[0].headers["Authorization"] == fake.basic_header


async def test_legacy_get_chat(fake: FakeTextQL) -> None:
    backend = legacy(fake)
    try:
        detail = await backend.history.get_chat(HISTORY_CHAT_ID)
    finally:
        await backend.aclose()
    assert detail.id == HISTORY_CHAT_ID
    assert [(m.role, m.text) for m in detail.messages] == [
        ("user", "hi"), ("assistant", "Hello! How can I assist you today?"),
        ("user", "filter this column where the weight of the person is more than 150")]
    assert detail.messages[0] == ChatMessage("user", "hi", datetime(2024, 3, 25, 4, 0, 28, 176000,
                                                                     tzinfo=timezone.utc), "Spencer Hubert")


async def test_history_errors_raise_backend_error(fake: FakeTextQL) -> None:
    backend = legacy(fake)
    try:
        with pytest.raises(BackendError) as missing:
            await backend.history.get_chat("no-such-chat")
        fake.fail_status = 500
        with pytest.raises(BackendError) as broken:
            await backend.history.list_chats(5)
    finally:
        await backend.aclose()
    assert missing.value.status == 404 and missing.value.code == "not_found"
    assert broken.value.status == 500 and "HTTP 500" in broken.value.message


async def test_v2_history(fake: FakeTextQL) -> None:
    backend = TextQLBackend(TextQLSettings(api_key=fake.api_key, base_url=fake.base_url, mode="v2"))
    try:
        async for _ in backend.ask(AskRequest("Revenue by region")):
            pass
        async for _ in backend.ask(AskRequest("Top customers")):
            pass
        chats = await backend.history.list_chats(limit=5)
        detail = await backend.history.get_chat(chats[0].id)
    finally:
        await backend.aclose()
    assert [c.title for c in chats] == ["Top customers", "Revenue by region"]
    assert fake.requests_to("/v2/chats")[0].query == {"limit": "5"}
    assert [m.role for m in detail.messages] == ["user", "assistant"]
    assert detail.messages[0].text == "Top customers"
    # TextQL keeps one assistant message per markdown cell; the turn's reply is all of them
    assert detail.messages[1].text == "Revenue by region: \n\nEMEA leads with 1 200 — APAC follows (900) ✓"
