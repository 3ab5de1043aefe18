"""v2: a stream that ends without ``done`` is recovered through ``GET /v2/chats/{id}``.

backends.md §2.8: "A stream can end without done (200 s stream timeout, network). Then fetch
GET /v2/chats/{id} … to recover the final answer." The fake keeps what Ana produced for each
question (the whole script, whatever reached the client) in the archived spec's GetChatResponse
shape, so a recovered answer can be compared with the one an intact stream gives.

The default v2 script, by index: 0 metadata, 1 text, 2–3 SQL cell (started, finished),
4–5 Python cell, 6 image asset, 7–8 text, 9 done.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator

import pytest

from adapters.answer import Answer, Finished, Outcome, PartUpsert, StatusPart, TablePart, TextPart
from adapters.base import AskRequest
from adapters.textql import TextQLBackend, TextQLSettings
from tests.fakes.textql import FakeTextQL, data_only

FINAL = "EMEA leads with 1 200 — APAC follows (900) ✓"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTextQL]:
    async with FakeTextQL() as server:
        yield server


@contextlib.asynccontextmanager
async def backend_for(fake: FakeTextQL, **overrides: Any) -> AsyncIterator[TextQLBackend]:
    options: dict[str, Any] = dict(api_key=fake.api_key, base_url=fake.base_url, mode="v2",
                                   stream_idle_timeout=3.0, connect_timeout=2.0, image_timeout=2.0)
    options.update(overrides)
    backend = TextQLBackend(TextQLSettings(**options))
    try:
        yield backend
    finally:
        await backend.aclose()


async def ask(fake: FakeTextQL, question: str = "Revenue by region", session_id: str | None = None,
              **overrides: Any) -> list[Any]:
    async with backend_for(fake, **overrides) as backend:
        return [u async for u in backend.ask(AskRequest(question, session_id=session_id))]


def fold(updates: list[Any]) -> Answer:
    answer = Answer()
    for update in updates:
        answer = answer.apply(update)
    return answer


def finished(updates: list[Any]) -> Finished:
    assert isinstance(updates[-1], Finished)
    assert sum(isinstance(u, Finished) for u in updates) == 1
    return updates[-1]


def chat_gets(fake: FakeTextQL) -> list[Any]:
    return [r for r in fake.requests if r.method == "GET" and r.path.startswith("/v2/chats/")]


def texts(answer: Answer) -> list[str]:
    return [p.markdown for p in answer.parts if isinstance(p, TextPart) and p.markdown]


async def intact_answer(fake: FakeTextQL) -> Answer:
    async with FakeTextQL() as other:
        return fold(await ask(other))


@pytest.mark.parametrize("knob,value", [("end_without_done", True), ("cut_after", 8), ("cut_after", 7),
                                        ("break_after", 8)],
                         ids=["no-done", "cut-mid-text", "cut-before-text", "connection-dropped"])
async def test_a_stream_without_done_is_recovered_from_the_chat(fake: FakeTextQL, knob: str, value: Any) -> None:
    setattr(fake, knob, value)
    updates = await ask(fake)
    answer = fold(updates)
    assert finished(updates).outcome is Outcome.DONE and not answer.errors
    assert texts(answer) == ["Revenue by region: ", FINAL]  # each segment once, complete
    assert texts(answer) == texts(await intact_answer(fake))
    assert any(isinstance(p, TablePart) for p in answer.parts)  # what the stream brought stays
    [get] = chat_gets(fake)
    assert get.path == f"/v2/chats/{answer.session_id}"
    assert get.headers["Authorization"] == f"Bearer {fake.api_key}"
    assert PartUpsert(StatusPart("status", "The answer stream ended early; fetching Ana's answer "
                                           "from TextQL…")) in updates


async def test_recovered_answer_brings_the_assets_the_stream_never_sent(fake: FakeTextQL) -> None:
    fake.cut_after = 6  # before the image asset
    answer = fold(await ask(fake))
    assert answer.outcome is Outcome.DONE
    [chart] = answer.charts
    assert chart.png == fake.images["chart.png"].data
    assert [r.query for r in fake.requests_to("/images/chart.png")] == [{"sig": "1"}]  # signed anew


async def test_an_image_already_shown_is_not_fetched_again(fake: FakeTextQL) -> None:
    fake.cut_after = 7  # after the image asset
    answer = fold(await ask(fake))
    assert answer.outcome is Outcome.DONE and len(answer.charts) == 1
    assert len(fake.requests_to("/images/chart.png")) == 1  # the recovered URL is newly signed


async def test_a_silent_stream_is_recovered_too(fake: FakeTextQL) -> None:
    fake.silent_after = 8
    updates = await asyncio.wait_for(ask(fake, stream_idle_timeout=0.3), 5)
    assert finished(updates).outcome is Outcome.DONE and texts(fold(updates))[-1] == FINAL


async def test_a_follow_up_recovers_its_own_answer_not_the_previous_one(fake: FakeTextQL) -> None:
    first = fold(await ask(fake, "Revenue by region"))
    chat = first.session_id
    fake.v2_script = [data_only({"type": "metadata", "id": "m2", "chat_id": chat, "is_continuation": True}),
                      data_only({"type": "text", "text": "By month: March "}),
                      data_only({"type": "text", "text": "was the best month."}),
                      data_only({"type": "done", "status": "completed"})]
    fake.cut_after = 2
    updates = await ask(fake, "And by month?", session_id=chat)
    assert finished(updates).outcome is Outcome.DONE
    assert texts(fold(updates)) == ["By month: March was the best month."]


@pytest.mark.parametrize("knob,value,why", [
    ("get_chat_status", 500, "HTTP 500"),
    ("get_chat_status", 404, "HTTP 404"),
    ("answer_pending", True, "no answer to this question yet"),
], ids=["chat-read-fails", "chat-gone", "answer-not-there-yet"])
async def test_failed_recovery_ends_with_a_visible_error(fake: FakeTextQL, knob: str, value: Any, why: str) -> None:
    fake.cut_after = 8
    setattr(fake, knob, value)
    updates = await ask(fake)
    end = finished(updates)
    assert end.outcome is Outcome.FAILED and end.error is not None
    assert end.error.code == "incomplete_stream" and end.error.id == "error"
    assert "ended the answer stream" in end.error.message and why in end.error.message
    answer = fold(updates)
    assert texts(answer) == ["Revenue by region: ", "EMEA leads with 1 200 — "]  # what arrived stays
    assert len(chat_gets(fake)) == 1


async def test_an_unreachable_chat_fails_visibly(fake: FakeTextQL) -> None:
    fake.cut_after = 8
    async with backend_for(fake) as backend:
        updates: list[Any] = []
        async for update in backend.ask(AskRequest("q")):
            updates.append(update)
            if isinstance(update, PartUpsert) and isinstance(update.part, StatusPart) \
                    and "fetching Ana's answer" in update.part.text:
                await fake.close()  # TextQL goes away between the cut and the fetch
    end = finished(updates)
    assert end.outcome is Outcome.FAILED and end.error.code == "incomplete_stream"
    assert "could not reach TextQL" in end.error.message


async def test_no_recovery_without_this_run_s_chat_id(fake: FakeTextQL) -> None:
    fake.cut_after = 0  # not even the metadata event: TextQL may never have started the run
    end = finished(await ask(fake))
    assert end.outcome is Outcome.FAILED and end.error.code == "incomplete_stream"
    assert not chat_gets(fake)


async def test_done_failed_is_final_not_recovered(fake: FakeTextQL) -> None:
    fake.v2_script = [data_only({"type": "metadata", "chat_id": "c1", "id": "m1"}),
                      data_only({"type": "text", "text": "Partial"}),
                      data_only({"type": "done", "status": "failed", "error": "Query timed out"})]
    end = finished(await ask(fake))
    assert end.outcome is Outcome.FAILED and end.error.message == "Query timed out"
    assert not chat_gets(fake)
