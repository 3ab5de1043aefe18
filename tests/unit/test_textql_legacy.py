"""TextQLBackend in legacy mode against the loopback FakeTextQL (real httpx, real sockets)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, AsyncIterator

import pytest

from adapters.answer import (
    Answer, ChartPart, CodePart, ErrorPart, Finished, Outcome, PartUpsert, SessionAssigned,
    StatusPart, TablePart, TextPart,
)
from adapters.base import AskRequest
from adapters.textql import TextQLBackend, TextQLSettings
from tests.fakes.textql import (
    FINAL_TEXT, ONTOLOGY_BLOCK_ID, SEED_CHAT_ID, FakeImage, FakeTextQL, error_block, legacy_script,
    named, ontology_block, png_bytes, text_block,
)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTextQL]:
    async with FakeTextQL() as server:
        yield server


@contextlib.asynccontextmanager
async def backend_for(fake: FakeTextQL, **overrides: Any) -> AsyncIterator[TextQLBackend]:
    options: dict[str, Any] = dict(member_id=fake.member_id, api_key=fake.api_key, base_url=fake.base_url,
                                   stream_idle_timeout=3.0, connect_timeout=2.0, image_timeout=2.0)
    options.update(overrides)
    backend = TextQLBackend(TextQLSettings(**options))
    try:
        yield backend
    finally:
        await backend.aclose()


async def run(fake: FakeTextQL, question: str = "Which store is largest?", **overrides: Any) -> list[Any]:
    async with backend_for(fake, **overrides) as backend:
        return [u async for u in backend.ask(AskRequest(question))]


def fold(updates: list[Any]) -> Answer:
    answer = Answer()
    for update in updates:
        answer = answer.apply(update)
    return answer


def finished(updates: list[Any]) -> Finished:
    assert isinstance(updates[-1], Finished)
    assert sum(isinstance(u, Finished) for u in updates) == 1
    return updates[-1]


async def test_progressive_parts_replace_by_block_id(fake: FakeTextQL) -> None:
    updates = await run(fake)
    assert updates[0] == SessionAssigned(SEED_CHAT_ID)
    assert SessionAssigned(SEED_CHAT_ID, run_id="33894") in updates
    texts = [u.part.markdown for u in updates if isinstance(u, PartUpsert) and u.part.id == "abc123:text"]
    assert texts == ["The largest store is located in", "The largest store is located in New York."]
    codes = [u.part for u in updates if isinstance(u, PartUpsert) and u.part.id == "def456:code"]
    assert len(codes) == 2 and codes[-1].output.endswith("The largest store is located in New York.")

    answer = fold(updates)
    assert answer.outcome is Outcome.DONE
    assert answer.session_id == SEED_CHAT_ID and answer.run_id == "33894"
    ids = [p.id for p in answer.parts]
    assert len(ids) == len(set(ids))
    assert ids.index("abc123:text") < ids.index(f"{ONTOLOGY_BLOCK_ID}:sql") < ids.index("def456:code")
    # split mid-UTF-8 and between \r and \n on the wire, yet intact
    assert answer.parts[ids.index("fin789:text")] == TextPart("fin789:text", FINAL_TEXT)

    request = fake.requests_to("/api/ana")[0]
    assert request.query == {"query": "Which store is largest?"}
    assert request.headers["Authorization"] == fake.basic_header


async def test_ontology_block_gives_sql_and_the_whole_table(fake: FakeTextQL) -> None:
    rows = [[f"S{i}", str(i), "null", "null", str(99 - i), "1997-03-13T00:00:00.000Z", f"store {i}", str(i)]
            for i in range(300)]
    fake.legacy_script = [named("chatId", "c-1"), named("block", ontology_block(complete=False)),
                          named("block", ontology_block(rows=rows)), named("message", "done")]
    updates = await run(fake)
    assert any(isinstance(u, PartUpsert) and isinstance(u.part, StatusPart)
               and "Stores ordered by size descending" in u.part.text for u in updates)
    answer = fold(updates)
    table = next(p for p in answer.parts if isinstance(p, TablePart))
    assert table.id == f"{ONTOLOGY_BLOCK_ID}:table"
    assert len(table.rows) == 300 and table.total is None  # every row sent; TextQL gives no count
    assert table.columns[4].name == "S_FLOOR_SPACE" and table.columns[4].type == "number"
    assert table.rows[0][2] is None  # "null" is a missing value
    assert answer.outcome is Outcome.DONE


async def test_ontology_oai_output_reaches_the_answer(fake: FakeTextQL) -> None:
    answer = fold(await run(fake))
    assert "Data from object Store loaded into DataFrame df1 ..." in answer.text


async def test_python_image_on_textql_host_is_downloaded_with_credentials(fake: FakeTextQL) -> None:
    answer = fold(await run(fake))
    chart = next(p for p in answer.parts if isinstance(p, ChartPart))
    assert chart.id == "def456:image:0" and chart.png == fake.images["chart.png"].data and not chart.note
    assert fake.requests_to("/images/chart.png")[0].headers["Authorization"] == fake.basic_header
    assert answer.outcome is Outcome.DONE


async def test_image_on_foreign_host_gets_no_credentials(fake: FakeTextQL) -> None:
    async with FakeTextQL(member_id="other", api_key="other-key") as host:
        fake.image_url = f"{host.base_url}/images/chart.png"
        answer = fold(await run(fake, allow_private_images=True))  # (the other host is loopback)
        chart = next(p for p in answer.parts if isinstance(p, ChartPart))
        assert chart.png == host.images["chart.png"].data
        seen = host.requests_to("/images/chart.png")
        assert len(seen) == 1 and "Authorization" not in seen[0].headers


@pytest.mark.parametrize("address", ["127.0.0.1:{port}", "169.254.169.254", "10.0.0.7", "[::1]",
                                     "localhost:{port}"])
async def test_images_on_private_hosts_are_refused_by_default(fake: FakeTextQL, address: str) -> None:
    async with FakeTextQL(member_id="other", api_key="other-key") as host:
        port = host.base_url.rsplit(":", 1)[1]
        fake.image_url = f"http://{address.format(port=port)}/images/chart.png"
        answer = fold(await run(fake))
        chart = next(p for p in answer.parts if isinstance(p, ChartPart))
        assert chart.png is None and "private network" in chart.note
        assert host.requests_to("/images/chart.png") == []  # never fetched


async def test_a_redirect_to_a_private_host_is_refused(fake: FakeTextQL) -> None:
    fake.redirects["chart"] = "http://169.254.169.254/latest/meta-data/"
    fake.image_url = f"{fake.base_url}/redirect/chart"  # TextQL's own host: allowed, then not
    answer = fold(await run(fake))
    chart = next(p for p in answer.parts if isinstance(p, ChartPart))
    assert chart.png is None and "private network" in chart.note


async def test_redirect_from_textql_host_to_foreign_host_drops_credentials(fake: FakeTextQL) -> None:
    async with FakeTextQL(member_id="other", api_key="other-key") as host:
        fake.redirects["chart"] = f"{host.base_url}/images/chart.png"
        fake.image_url = f"{fake.base_url}/redirect/chart"
        answer = fold(await run(fake, allow_private_images=True))
        chart = next(p for p in answer.parts if isinstance(p, ChartPart))
        assert chart.png == host.images["chart.png"].data
        assert fake.requests_to("/redirect/chart")[0].headers["Authorization"] == fake.basic_header
        assert "Authorization" not in host.requests_to("/images/chart.png")[0].headers


@pytest.mark.parametrize("image", [
    FakeImage(png_bytes(64, 64, noise=True)),
    FakeImage(png_bytes(64, 64, noise=True), chunked=True),
    FakeImage(b"<html>not a chart</html>", content_type="text/html"),
    FakeImage(b"GIF? no: plain bytes", content_type="image/png"),
], ids=["too-big", "too-big-chunked", "not-an-image", "lying-content-type"])
async def test_bad_image_becomes_a_note_not_a_failure(fake: FakeTextQL, image: FakeImage) -> None:
    fake.images["chart.png"] = image
    answer = fold(await run(fake, image_max_bytes=4000))
    chart = next(p for p in answer.parts if isinstance(p, ChartPart))
    assert chart.png is None and chart.note.startswith("The chart image could not be shown")
    assert answer.outcome is Outcome.DONE


async def test_missing_image_becomes_a_note(fake: FakeTextQL) -> None:
    fake.image_url = f"{fake.base_url}/images/nope.png"
    answer = fold(await run(fake))
    chart = next(p for p in answer.parts if isinstance(p, ChartPart))
    assert chart.png is None and "HTTP 404" in chart.note


async def test_unknown_block_is_progress_line(fake: FakeTextQL) -> None:
    fake.legacy_script = [named("chatId", "c-1"),
                          named("block", {"tag": "VisualizationBlock", "id": "v1", "contents": {"x": 1}}),
                          named("block", text_block("t1", "Done.")), named("message", "done")]
    updates = await run(fake)
    assert PartUpsert(StatusPart("status", "Ana is working (visualization)…")) in updates
    assert finished(updates).outcome is Outcome.DONE


@pytest.mark.parametrize("status,code", [(401, "unauthenticated"), (500, "internal"), (429, "rate_limit_exceeded")])
async def test_http_errors_fail_with_a_clear_message(fake: FakeTextQL, status: int, code: str) -> None:
    fake.fail_status = status
    end = finished(await run(fake))
    assert end.outcome is Outcome.FAILED and end.error is not None
    assert end.error.code == code and f"HTTP {status}" in end.error.message


async def test_wrong_credentials_get_401(fake: FakeTextQL) -> None:
    end = finished(await run(fake, api_key="wrong"))
    assert end.outcome is Outcome.FAILED and end.error.code == "unauthenticated"
    assert "API key" in end.error.message


async def test_stream_ending_without_done_fails(fake: FakeTextQL) -> None:
    fake.end_without_done = True
    updates = await run(fake)
    end = finished(updates)
    assert end.outcome is Outcome.FAILED and end.error.code == "incomplete_stream"
    assert fold(updates).text  # what arrived stays visible


@pytest.mark.parametrize("at", [3, 4, 7, 9], ids=["before-first-block", "between-versions",
                                                 "mid-python", "before-final-text"])
async def test_a_malformed_event_is_skipped_and_the_answer_goes_on(
        fake: FakeTextQL, caplog: pytest.LogCaptureFixture, at: int) -> None:
    fake.malformed_at = at  # `event: block` / `data: {not json`, split at awkward bytes like the rest
    with caplog.at_level(logging.WARNING, logger="adapters.textql"):
        updates = await run(fake)
    answer = fold(updates)
    assert finished(updates).outcome is Outcome.DONE and not answer.errors
    assert TextPart("fin789:text", FINAL_TEXT) in answer.parts  # later blocks arrive intact
    assert "New York" in answer.text and any(isinstance(p, TablePart) for p in answer.parts)
    assert answer.charts and answer.charts[0].png is not None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "skipped" in warnings[0].getMessage()


async def test_malformed_event_without_a_name_is_skipped_too(fake: FakeTextQL) -> None:
    from tests.fakes.textql import SseEvent
    fake.legacy_script = [named("chatId", "c"), SseEvent('{"tag":"TextBlock","contents":"Hi'),
                          SseEvent('{"tag":"TextBlock","contents":"Hi","id":"t"}'), SseEvent('"done"')]
    updates = await run(fake)
    assert PartUpsert(TextPart("t:text", "Hi")) in updates
    assert finished(updates).outcome is Outcome.DONE


async def test_silent_stream_fails_after_idle_timeout(fake: FakeTextQL) -> None:
    fake.silent_after = 4
    updates = await asyncio.wait_for(run(fake, stream_idle_timeout=0.3), 5)
    end = finished(updates)
    assert end.outcome is Outcome.FAILED and end.error.code == "timeout"
    assert "0.3 s" in end.error.message


async def test_unreachable_host_fails() -> None:
    async with FakeTextQL() as gone:
        base = gone.base_url
    settings = TextQLSettings(member_id="m", api_key="k", base_url=base, connect_timeout=1.0)
    backend = TextQLBackend(settings)
    try:
        end = finished([u async for u in backend.ask(AskRequest("q"))])
    finally:
        await backend.aclose()
    assert end.outcome is Outcome.FAILED and end.error.code == "unreachable"


async def test_error_block_as_last_block_fails_the_run(fake: FakeTextQL) -> None:
    fake.legacy_script = [named("chatId", "c-1"), named("block", error_block()), named("message", "done")]
    updates = await run(fake)
    end = finished(updates)
    assert end.outcome is Outcome.FAILED
    assert end.error == ErrorPart("block:1", "An error occurred fetching the requested dataset.", code="ana_error")
    assert len(fold(updates).errors) == 1  # the block's part and the final error are one part


async def test_error_block_ana_recovers_from_stays_visible(fake: FakeTextQL) -> None:
    fake.legacy_script = [named("chatId", "c-1"), named("block", error_block("dataset missing")),
                          named("block", text_block("t1", "Used another dataset.")), named("message", "done")]
    answer = fold(await run(fake))
    assert answer.outcome is Outcome.DONE
    assert [e.message for e in answer.errors] == ["dataset missing"]


async def test_optional_query_parameters(fake: FakeTextQL) -> None:
    await run(fake, dataset="stores", use_ontology=True, ontology_connector_id=9, clifford=True)
    assert fake.requests_to("/api/ana")[0].query == {
        "query": "Which store is largest?", "dataset": "stores", "useOntology": "true",
        "ontologyConnectorId": "9", "clifford": "true"}


async def test_no_language_parameter_is_sent(fake: FakeTextQL) -> None:
    """``GET /api/ana`` takes query, dataset, useOntology, ontologyConnectorId and clifford (seed
    002): no language or locale, so the asker's language is not sent."""
    async with backend_for(fake) as backend:
        updates = [u async for u in backend.ask(AskRequest("Welcher Laden ist am größten?", language="de"))]
    assert finished(updates).outcome is Outcome.DONE
    assert fake.requests_to("/api/ana")[0].query == {"query": "Welcher Laden ist am größten?"}


async def test_legacy_capabilities_and_follow_up_starts_new_chat(fake: FakeTextQL) -> None:
    async with backend_for(fake) as backend:
        assert backend.capabilities.keeps_context is False
        assert backend.capabilities.cooperative_stop is False and backend.capabilities.resumable is False
        updates = [u async for u in backend.ask(AskRequest("again", session_id=SEED_CHAT_ID))]
    assert finished(updates).outcome is Outcome.DONE
    assert fake.requests_to("/api/ana")[0].query == {"query": "again"}


async def test_legacy_stop_is_cancellation_and_closes_the_stream(fake: FakeTextQL) -> None:
    fake.hold_after = 5  # after chatId, ids and the first blocks; keep-alives keep it open
    seen_run = asyncio.Event()
    updates: list[Any] = []

    async def consume(backend: TextQLBackend) -> None:
        async for update in backend.ask(AskRequest("q")):
            updates.append(update)
            if isinstance(update, SessionAssigned) and update.run_id:
                seen_run.set()

    async with backend_for(fake) as backend:
        task = asyncio.create_task(consume(backend))
        await asyncio.wait_for(seen_run.wait(), 5)
        await backend.stop(SEED_CHAT_ID, "33894")  # legacy: no call to make
        assert [r.path for r in fake.requests] == ["/api/ana"]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(fake.stream_closed.wait(), 2)
    assert not any(isinstance(u, Finished) for u in updates)


async def test_resume_is_refused_cleanly(fake: FakeTextQL) -> None:
    async with backend_for(fake) as backend:
        updates = [u async for u in backend.resume("c", "r")]
    assert finished(updates).outcome is Outcome.FAILED


async def test_too_many_images_become_notes(fake: FakeTextQL) -> None:
    from tests.fakes.textql import image_result, python_block
    url = f"{fake.base_url}/images/chart.png"
    fake.legacy_script = [named("chatId", "c"), named("block", python_block(
        "p", "plot()", [image_result(url), image_result(url), image_result(url)])), named("message", "done")]
    answer = fold(await run(fake, max_images=2))
    charts = answer.charts
    assert [c.png is not None for c in charts] == [True, True, False]
    assert len(fake.requests_to("/images/chart.png")) == 2
    assert isinstance(answer.parts[0], CodePart)


def test_default_script_is_the_seed_with_additions() -> None:
    events = legacy_script("http://img/x.png")
    assert [e.event for e in events][:5] == ["chatId", "userMsgId", "assistantMsgId", "block", "block "]


async def test_inline_data_url_image_needs_no_download(fake: FakeTextQL) -> None:
    import base64
    from tests.fakes.textql import image_result, python_block
    png = png_bytes()
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    fake.legacy_script = [named("chatId", "c"), named("block", python_block("p", "plot()", [image_result(url)])),
                          named("message", "done")]
    answer = fold(await run(fake))
    assert answer.charts[0].png == png and not fake.requests_to("/images/chart.png")


async def test_events_without_names_are_still_understood(fake: FakeTextQL) -> None:
    from tests.fakes.textql import SseEvent
    fake.legacy_script = [named("chatId", "c"), SseEvent('{"tag":"TextBlock","contents":"Hi","id":"t"}'),
                          SseEvent('"done"')]
    updates = await run(fake)
    assert PartUpsert(TextPart("t:text", "Hi")) in updates
    assert finished(updates).outcome is Outcome.DONE
