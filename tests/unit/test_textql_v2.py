"""TextQLBackend in v2 mode (POST /v2/chats/stream, cancel) against FakeTextQL."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, AsyncIterator

import httpx
import pytest

from adapters.answer import (
    Answer, ChartPart, CodePart, Finished, Outcome, SessionAssigned, SqlPart, TablePart, TextPart,
)
from adapters.base import AskRequest
from adapters.textql import TextQLBackend, TextQLSettings
from adapters.textql.v2 import data_events
from tests.fakes.textql import FakeTextQL, data_only


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


def fold(updates: list[Any]) -> Answer:
    answer = Answer()
    for update in updates:
        answer = answer.apply(update)
    return answer


async def ask(backend: TextQLBackend, question: str, session_id: str | None = None) -> list[Any]:
    return [u async for u in backend.ask(AskRequest(question, session_id=session_id))]


async def test_v2_stream_parts_in_order(fake: FakeTextQL) -> None:
    async with FakeTextQL() as host:
        fake.image_url = f"{host.base_url}/images/chart.png"
        async with backend_for(fake, allow_private_images=True) as backend:  # (a loopback host)
            assert backend.capabilities.keeps_context is True
            assert backend.capabilities.cooperative_stop is False
            updates = await ask(backend, "Revenue by region")
        assert "Authorization" not in host.requests_to("/images/chart.png")[0].headers
    assert isinstance(updates[0], SessionAssigned)
    answer = fold(updates)
    assert answer.outcome is Outcome.DONE
    kinds = [type(p).__name__ for p in answer.parts if p.id != "status"]
    assert kinds == ["TextPart", "SqlPart", "TablePart", "CodePart", "ChartPart", "TextPart"]
    texts = [p for p in answer.parts if isinstance(p, TextPart)]
    assert texts[0] == TextPart("text:0", "Revenue by region: ")
    assert texts[1] == TextPart("text:1", "EMEA leads with 1 200 — APAC follows (900) ✓")
    table = next(p for p in answer.parts if isinstance(p, TablePart))
    assert [c.name for c in table.columns] == ["region", "revenue"] and table.rows[0] == ("EMEA", "1200")
    code = next(p for p in answer.parts if isinstance(p, CodePart))
    assert code.output == "<Axes: xlabel='region'>"
    assert next(p for p in answer.parts if isinstance(p, ChartPart)).png is not None
    assert len([p for p in answer.parts if isinstance(p, SqlPart)]) == 1  # started + finished: one part

    request = fake.requests_to("/v2/chats/stream")[0]
    assert request.headers["Authorization"] == f"Bearer {fake.api_key}"
    assert request.json["question"] == "Revenue by region" and "chat_id" not in request.json
    assert request.json["tools"]["sql_enabled"] is True and "model" not in request.json


async def test_v2_preview_table_is_not_cut(fake: FakeTextQL) -> None:
    preview = "| region | revenue |\n|:--|--:|\n" + "".join(f"| r{i} | {i} |\n" for i in range(120))
    fake.v2_script = [data_only({"type": "metadata", "chat_id": "c1", "id": "m1"}),
                      data_only({"type": "cell", "cell": {"id": "s1", "type": "sql", "status": "completed",
                                                         "query": "SELECT 1", "dataframe_preview": preview}}),
                      data_only({"type": "done", "status": "completed"})]
    async with backend_for(fake) as backend:
        answer = fold(await ask(backend, "q"))
    table = next(p for p in answer.parts if isinstance(p, TablePart))
    assert len(table.rows) == 120 and table.total is None


async def test_v2_follow_up_sends_chat_id(fake: FakeTextQL) -> None:
    async with backend_for(fake) as backend:
        first = fold(await ask(backend, "Revenue by region"))
        second = await ask(backend, "And by month?", session_id=first.session_id)
    body = fake.requests_to("/v2/chats/stream")[1].json
    assert body["chat_id"] == first.session_id and "model" not in body
    assert fold(second).session_id == first.session_id and fold(second).outcome is Outcome.DONE
    assert fake.chats[first.session_id] == ["Revenue by region", "And by month?"]


async def test_v2_sends_no_language_because_chatrequest_has_none(fake: FakeTextQL) -> None:
    """ChatRequest (archived v2 OpenAPI; the official SDK) is question, chat_id, model, tools,
    connector_ids: no language or locale. Nothing else is sent, whatever the asker's language."""
    async with backend_for(fake) as backend:
        first = fold([u async for u in backend.ask(AskRequest("Umsatz nach Region", language="de-DE"))])
        [u async for u in backend.ask(AskRequest("Und pro Monat?", session_id=first.session_id,
                                                 language="de-DE"))]
    bodies = [r.json for r in fake.requests_to("/v2/chats/stream")]
    assert [sorted(b) for b in bodies] == [["question", "tools"], ["chat_id", "question", "tools"]]
    assert bodies[0]["question"] == "Umsatz nach Region"  # the question itself is not rewritten


async def test_v2_follow_up_on_unknown_chat_fails_cleanly(fake: FakeTextQL) -> None:
    async with backend_for(fake) as backend:
        updates = await ask(backend, "q", session_id="3c90c3cc-0d44-4b50-8888-8dd25736052a")
    assert updates == [Finished(Outcome.FAILED, updates[-1].error)]
    assert updates[-1].error.code == "not_found"


async def test_v2_stop_calls_cancel(fake: FakeTextQL) -> None:
    fake.hold_after = 3
    got_session = asyncio.Event()
    session: list[str] = []

    async def consume(backend: TextQLBackend) -> None:
        async for update in backend.ask(AskRequest("q")):
            if isinstance(update, SessionAssigned):
                session.append(update.session_id)
                got_session.set()

    async with backend_for(fake) as backend:
        task = asyncio.create_task(consume(backend))
        await asyncio.wait_for(got_session.wait(), 5)
        await backend.stop(session[0], None)
        cancel = await fake.wait_for_request(f"/v2/chats/{session[0]}/cancel")
        assert cancel.headers["Authorization"] == f"Bearer {fake.api_key}"
        assert fake.cancelled_chats == [session[0]]
        task.cancel()  # what the relay does after stop()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(fake.stream_closed.wait(), 2)
        await backend.stop(session[0], None)  # a finished run: still no exception
        await backend.stop(None, None)


@pytest.mark.parametrize("at", [1, 2, 3, 6, 8], ids=["after-metadata", "after-first-text",
                                                    "between-cell-versions", "before-asset",
                                                    "between-text-deltas"])
async def test_v2_a_malformed_event_is_skipped_and_the_answer_goes_on(
        fake: FakeTextQL, caplog: pytest.LogCaptureFixture, at: int) -> None:
    fake.malformed_at = at  # `data: {not json` + blank line, cut at awkward bytes like the rest
    with caplog.at_level(logging.WARNING, logger="adapters.textql"):
        async with backend_for(fake) as backend:
            updates = await ask(backend, "Revenue by region")
    answer = fold(updates)
    assert isinstance(updates[-1], Finished) and updates[-1].outcome is Outcome.DONE and not answer.errors
    assert answer.text.endswith("EMEA leads with 1 200 — APAC follows (900) ✓")  # later events intact
    assert any(isinstance(p, TablePart) for p in answer.parts)
    assert answer.charts and answer.charts[0].png is not None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "skipped" in warnings[0].getMessage()
    assert not fake.requests_to(f"/v2/chats/{answer.session_id}")  # nothing to recover: done came


async def _parse(raw: bytes, step: int = 3) -> list[dict]:
    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(raw), step):
            yield raw[i:i + step]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=pieces(), headers={"content-type": "text/event-stream"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        async with client.stream("GET", "http://x/") as response:
            return [e async for e in data_events(response)]


@pytest.mark.parametrize("raw", [
    b'data: {"type":"text","text":"a"}\n\ndata: {not json\n\ndata: {"type":"done"}\n\n',
    b'data: {"type":"text","text":"a"}\ndata: {not json\ndata: {"type":"done"}\n',  # no blank lines
    b'data: {"type":"text","text":"a"}\r\n\r\ndata: [1, 2]\r\n\r\ndata: {"type":"done"}\r\n\r\n',
    b'data: {"type":"text","text":"a"}\n\ndata: {not json\n',  # the malformed event is the last
], ids=["blank-line-separated", "one-json-per-line", "not-an-object", "at-the-end"])
async def test_data_events_skip_a_malformed_event_with_a_warning(
        raw: bytes, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="adapters.textql"):
        events = await _parse(raw)
    expected = [{"type": "text", "text": "a"}] + ([] if raw.endswith(b"json\n") else [{"type": "done"}])
    assert events == expected
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


async def test_v2_done_failed_and_401(fake: FakeTextQL) -> None:
    fake.v2_script = [data_only({"type": "metadata", "chat_id": "c1", "id": "m1"}),
                      data_only({"type": "done", "status": "failed", "error": "Query timed out"})]
    async with backend_for(fake) as backend:
        end = (await ask(backend, "q"))[-1]
    assert end.outcome is Outcome.FAILED and end.error.message == "Query timed out"
    async with backend_for(fake, api_key="nope") as backend:
        end = (await ask(backend, "q"))[-1]
    assert end.error.code == "unauthenticated"


async def test_v2_silence_times_out(fake: FakeTextQL) -> None:
    fake.silent_after = 2
    fake.answer_pending = True  # and the chat has no answer yet: nothing to recover
    async with backend_for(fake, stream_idle_timeout=0.3) as backend:
        end = (await asyncio.wait_for(ask(backend, "q"), 5))[-1]
    assert end.outcome is Outcome.FAILED and end.error.code == "timeout"
    assert "silent for more than 0.3 s" in end.error.message


async def test_v2_html_chart_asset_is_a_note(fake: FakeTextQL) -> None:
    from tests.fakes.textql import v2_script
    fake.v2_script = v2_script("c1", chart_url=f"{fake.base_url}/charts/echarts_chart_rev.html")
    async with backend_for(fake) as backend:
        answer = fold(await ask(backend, "q"))
    chart = answer.charts[0]
    assert chart.png is None and "interactive chart" in chart.note


async def test_data_events_parser_tolerates_lines_without_blank_separators() -> None:
    raw = (b': hi\r\ndata: {"type":"text","text":"a"}\ndata: {"type":"text","text":"b"}\r\n\r\n'
           b'data: {"type":\ndata: "done"}\n\n')

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(raw), 3):
            yield raw[i:i + 3]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=pieces(), headers={"content-type": "text/event-stream"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        async with client.stream("GET", "http://x/") as response:
            events = [e async for e in data_events(response)]
    assert events == [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}, {"type": "done"}]
