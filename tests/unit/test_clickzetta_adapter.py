"""ClickZettaBackend against the loopback fake: real httpx, real polling (10 ms interval)."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import AsyncIterator

import pytest

from adapters.answer import (
    Answer, ChartPart, Column, Finished, KnowledgePart, MetricPart, Outcome, PartKind, PartUpsert,
    SessionAssigned, SqlPart, StatusPart, TablePart, TextPart, Update,
)
from adapters.base import AskRequest, Backend
from adapters.clickzetta import ClickZettaBackend, ClickZettaSettings
from adapters.clickzetta.adapter import CONTEXT_RESET_PART_ID
from tests.fakes.clickzetta import (
    CHART_SQL, GROUPED_FINAL_SUMMARY, GROUPED_FIRST_SQL, GROUPED_FIRST_SUMMARY, SUMMARY_PARTIAL,
    FakeClickZetta, grouped_script,
)

QUESTION = "Second-hand housing sales in Beijing over the past 6 years by district"


@pytest.fixture
async def fake():
    async with FakeClickZetta() as server:
        yield server


@pytest.fixture
async def make_backend():
    made: list[ClickZettaBackend] = []

    def make(fake: FakeClickZetta, **overrides) -> ClickZettaBackend:
        settings = ClickZettaSettings(**{**fake.identity(), "poll_interval": 0.01, "request_timeout": 5.0,
                                         **overrides})
        backend = ClickZettaBackend(settings)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.aclose()


async def collect(updates: AsyncIterator[Update]) -> list[Update]:
    return [u async for u in updates]


def fold(updates: list[Update]) -> Answer:
    answer = Answer()
    for update in updates:
        answer = answer.apply(update)
    return answer


def finished(updates: list[Update]) -> Finished:
    ends = [u for u in updates if isinstance(u, Finished)]
    assert len(ends) == 1 and updates[-1] is ends[0], "exactly one Finished, last"
    return ends[0]


# -- the happy path ---------------------------------------------------------------------------
async def test_full_analysis(fake, make_backend) -> None:
    backend = make_backend(fake)
    assert isinstance(backend, Backend)
    assert backend.capabilities.cooperative_stop and backend.capabilities.resumable
    updates = await collect(backend.ask(AskRequest(QUESTION)))

    assert updates[0] == SessionAssigned("4729")
    assert SessionAssigned("4729", run_id="34339") in updates
    assert finished(updates).outcome is Outcome.DONE
    answer = fold(updates)
    kinds = [p.kind for p in answer.parts]
    assert kinds == [PartKind.STATUS, PartKind.KNOWLEDGE, PartKind.METRIC, PartKind.SQL, PartKind.CHART,
                     PartKind.TEXT]
    assert answer.run_id == "34339" and answer.session_id == "4729"
    assert "Chaoyang District: CNY 103.49 billion" in answer.text and "\\n" not in answer.text
    chart = answer.charts[0]
    assert chart.vega_spec is None and "CLICKZETTA_WAREHOUSE_URL" in chart.note
    assert chart.sql.startswith("SELECT region") and chart.columns[0].name == "District"

    # parts are upserted by id, and only when they changed
    upserts = [u.part for u in updates if isinstance(u, PartUpsert)]
    assert len(upserts) == 7  # six parts, plus the summary growing once
    summaries = [p for p in upserts if isinstance(p, TextPart)]
    assert [s.markdown for s in summaries][0] == SUMMARY_PARTIAL
    assert len({s.id for s in summaries}) == 1
    assert fake.poll_count == 8  # one step per poll, cumulative answers each time


async def test_follow_up_reuses_the_session(fake, make_backend) -> None:
    backend = make_backend(fake)
    first = fold(await collect(backend.ask(AskRequest(QUESTION))))
    second_updates = await collect(backend.ask(AskRequest("And for Shanghai?", session_id=first.session_id)))
    second = fold(second_updates)
    assert second.outcome is Outcome.DONE
    assert len(fake.requests_to("session")) == 1
    assert [r.body["sessionId"] for r in fake.requests_to("query")] == [4729, 4729]
    assert second.session_id == "4729" and second.run_id == "34340"


async def test_session_id_as_int(make_backend) -> None:
    async with FakeClickZetta(session_id_as="int") as fake:
        updates = await collect(make_backend(fake).ask(AskRequest(QUESTION)))
        assert updates[0] == SessionAssigned("4729")
        assert finished(updates).outcome is Outcome.DONE


async def test_questions_in_one_session_run_one_at_a_time(fake, make_backend) -> None:
    backend = make_backend(fake)
    session = fold(await collect(backend.ask(AskRequest(QUESTION)))).session_id
    fake.hold(2)
    first = asyncio.create_task(collect(backend.ask(AskRequest("one", session_id=session))))
    await fake.wait_for_request("query", count=2)
    second = asyncio.create_task(collect(backend.ask(AskRequest("two", session_id=session))))
    await fake.wait_for_request("poll", count=8 + 3)  # the first question is being polled, held
    assert len(fake.requests_to("query")) == 2  # the second waits for the first
    fake.release()
    results = await asyncio.gather(first, second)
    assert [finished(r).outcome for r in results] == [Outcome.DONE, Outcome.DONE]
    assert len(fake.requests_to("query")) == 3
    assert fake.concurrent_questions == 0


# -- auth -------------------------------------------------------------------------------------
async def test_token_expiring_mid_run_is_renewed(make_backend) -> None:
    async with FakeClickZetta(token_expires_after_calls=3) as fake:
        backend = make_backend(fake)
        updates = await collect(backend.ask(AskRequest(QUESTION)))
        assert finished(updates).outcome is Outcome.DONE
        assert backend.tokens.mint_count >= 3
        poll_requests = fake.requests_to("poll")
        assert len(poll_requests) > fake.poll_count  # some polls were refused, then retried


async def test_bad_secret_fails_clearly(fake, make_backend) -> None:
    backend = make_backend(fake, app_secret_key="not-the-key")
    end = finished(await collect(backend.ask(AskRequest(QUESTION))))
    assert end.outcome is Outcome.FAILED and "CLICKZETTA_APP_SECRET_KEY" in end.error.message


# -- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, times, code, fragment", [
    # a refusal: retried once with a renewed token, then once in a fresh session (4 calls)
    ("success_false", 4, "MODEL_UNAVAILABLE", "model unavailable"),
    ("nested", 4, "MODEL_UNAVAILABLE", "model unavailable"),
    # not the session's fault: no fresh session is tried
    ("http_500", 1, "500", "HTTP 500"),
    ("non_json", 1, "bad_response", "not JSON"),
    ("no_data", 1, "204", "no question id"),
])
async def test_query_failures_end_the_run(fake, make_backend, kind, times, code, fragment) -> None:
    backend = make_backend(fake)
    fake.fail("query", kind, times=times, message="model unavailable", code="MODEL_UNAVAILABLE")
    updates = await collect(backend.ask(AskRequest(QUESTION)))
    end = finished(updates)
    assert end.outcome is Outcome.FAILED
    assert end.error.code == code and fragment in end.error.message
    assert end.error.message.startswith("Could not submit the question")
    assert len(fake.requests_to("query")) == times
    # the thread keeps the session it was given; no "context reset" notice for a failure a fresh
    # session did not cure
    assert [u for u in updates if isinstance(u, SessionAssigned)] == [SessionAssigned("4729")]
    assert not any(isinstance(u, PartUpsert) and u.part.id == CONTEXT_RESET_PART_ID for u in updates)


async def test_session_creation_without_data_fails(fake, make_backend) -> None:
    fake.fail("session", "no_data_ok")
    end = finished(await collect(make_backend(fake).ask(AskRequest(QUESTION))))
    assert end.outcome is Outcome.FAILED and end.error.code == "204"


async def test_transient_poll_errors_are_retried(fake, make_backend) -> None:
    fake.fail("poll", "http_500")
    fake.fail("poll", "non_json")
    end = finished(await collect(make_backend(fake, poll_error_limit=3).ask(AskRequest(QUESTION))))
    assert end.outcome is Outcome.DONE


async def test_persistent_poll_errors_fail(fake, make_backend) -> None:
    fake.fail("poll", "http_500", times=3)
    updates = await collect(make_backend(fake, poll_error_limit=3).ask(AskRequest(QUESTION)))
    end = finished(updates)
    assert end.outcome is Outcome.FAILED and end.error.code == "500"
    assert "Could not fetch the analysis results" in end.error.message


async def test_poll_refusal_is_final(fake, make_backend) -> None:
    fake.fail("poll", "nested", times=2, message="insufficient permissions", code="403")
    end = finished(await collect(make_backend(fake).ask(AskRequest(QUESTION))))
    assert end.outcome is Outcome.FAILED and end.error.code == "403"


async def test_poll_no_data_means_nothing_yet(fake, make_backend) -> None:
    fake.fail("poll", "no_data", times=2)
    end = finished(await collect(make_backend(fake).ask(AskRequest(QUESTION))))
    assert end.outcome is Outcome.DONE


async def test_error_item_fails_the_run(fake, make_backend) -> None:
    fake.script = [{"id": "1", "dataType": "notify", "message": "Thinking"},
                   {"id": "2", "dataType": "error", "message": "Task execution failed"}]
    answer = fold(await collect(make_backend(fake).ask(AskRequest(QUESTION))))
    assert answer.outcome is Outcome.FAILED
    assert answer.errors[0].message == "Task execution failed"


async def test_unknown_data_type_and_bad_raw_res(fake, make_backend) -> None:
    fake.script = [{"id": "1", "dataType": "hologram", "message": "", "rawRes": "{not json"},
                   {"id": "2", "dataType": "summary", "message": "", "rawRes": "{not json",
                    "modelRes": {"code": 200, "data": {"summaryData": "Done\\nreally"}}},
                   {"id": "3", "dataType": "finish"}]
    answer = fold(await collect(make_backend(fake).ask(AskRequest(QUESTION))))
    assert answer.outcome is Outcome.DONE
    assert isinstance(answer.parts[0], StatusPart)
    assert answer.text == "Done\nreally"


# -- sessions that stop working ---------------------------------------------------------------
async def test_stale_session_is_replaced_on_the_first_failure(fake, make_backend) -> None:
    backend = make_backend(fake)
    session = fold(await collect(backend.ask(AskRequest(QUESTION)))).session_id
    fake.broken_sessions.add(int(session))  # e.g. expired on the server: "Session does not exist"
    updates = await collect(backend.ask(AskRequest("again", session_id=session)))
    answer = fold(updates)
    assert answer.outcome is Outcome.DONE  # the question is answered, not failed
    assert SessionAssigned("4730") in updates and answer.session_id == "4730"
    notice = next(p for p in answer.parts if p.id == CONTEXT_RESET_PART_ID)
    assert isinstance(notice, TextPart) and "new one" in notice.markdown
    assert [r.body["sessionId"] for r in fake.requests_to("query")] == [4729, 4729, 4729, 4730]
    # and the next question goes straight to the new session
    later = await collect(backend.ask(AskRequest("more", session_id=answer.session_id)))
    assert finished(later).outcome is Outcome.DONE
    assert fake.requests_to("query")[-1].body["sessionId"] == 4730
    assert len(fake.requests_to("session")) == 2


async def test_a_failure_a_fresh_session_does_not_cure_keeps_the_session(fake, make_backend) -> None:
    backend = make_backend(fake)
    session = fold(await collect(backend.ask(AskRequest(QUESTION)))).session_id
    fake.fail("query", "success_false", times=4, message="Model is unavailable")
    updates = await collect(backend.ask(AskRequest("again", session_id=session)))
    end = finished(updates)
    assert end.outcome is Outcome.FAILED and "Model is unavailable" in end.error.message
    assert not [u for u in updates if isinstance(u, SessionAssigned)]  # context kept
    assert not any(isinstance(u, PartUpsert) and u.part.id == CONTEXT_RESET_PART_ID for u in updates)
    # once the model is back, the thread's own session answers, context intact
    updates = await collect(backend.ask(AskRequest("and again", session_id=session)))
    assert finished(updates).outcome is Outcome.DONE
    assert fake.requests_to("query")[-1].body["sessionId"] == int(session)


async def test_replacing_sessions_can_wait_for_repeated_failures(fake, make_backend) -> None:
    backend = make_backend(fake, session_failure_limit=2)
    session = fold(await collect(backend.ask(AskRequest(QUESTION)))).session_id
    fake.broken_sessions.add(int(session))
    first = await collect(backend.ask(AskRequest("again", session_id=session)))
    assert finished(first).outcome is Outcome.FAILED
    assert "Session does not exist" in finished(first).error.message
    second = fold(await collect(backend.ask(AskRequest("and again", session_id=session))))
    assert second.outcome is Outcome.DONE and second.session_id == "4730"


async def test_unusable_stored_session_id_starts_a_new_one(fake, make_backend) -> None:
    updates = await collect(make_backend(fake).ask(AskRequest(QUESTION, session_id="abc")))
    assert updates[0] == SessionAssigned("4729")
    assert any(isinstance(u, PartUpsert) and u.part.id == CONTEXT_RESET_PART_ID for u in updates)
    assert finished(updates).outcome is Outcome.DONE


# -- time limit, stop, resume ------------------------------------------------------------------
async def test_overall_timeout_stops_the_question_on_the_backend(fake, make_backend) -> None:
    fake.hold(2)
    backend = make_backend(fake, overall_timeout=0.15)
    answer = fold(await collect(backend.ask(AskRequest(QUESTION))))
    assert answer.outcome is Outcome.FAILED
    assert "took longer than 0.15 s" in answer.errors[0].message and answer.errors[0].code == "timeout"
    [stop] = fake.requests_to("stop")
    assert stop.body["questionId"] == 34339 and stop.body["sessionId"] == 4729
    assert any(isinstance(p, KnowledgePart) for p in answer.parts)  # partial results stay


async def test_stop_mid_run_keeps_partial_results(fake, make_backend) -> None:
    fake.hold(3)
    backend = make_backend(fake)
    updates: list[Update] = []
    stopped = False
    async for update in backend.ask(AskRequest(QUESTION)):
        updates.append(update)
        answer = fold(updates)
        if not stopped and answer.run_id and any(isinstance(p, MetricPart) for p in answer.parts):
            await backend.stop(answer.session_id, answer.run_id)
            await backend.stop(answer.session_id, answer.run_id)  # idempotent
            stopped = True
    answer = fold(updates)
    assert finished(updates).outcome is Outcome.STOPPED
    assert [type(p) for p in answer.parts] == [StatusPart, KnowledgePart, MetricPart]
    assert len(fake.requests_to("stop")) == 1
    # safe for a finished run: the backend refuses ("already completed"), nothing is raised, and a
    # repeated stop is not sent again (the refusal costs one retry with a renewed token)
    await backend.stop(answer.session_id, answer.run_id)
    sent = len(fake.requests_to("stop"))
    assert sent == 3
    await backend.stop(answer.session_id, answer.run_id)
    assert len(fake.requests_to("stop")) == sent


async def test_stop_without_confirmation_ends_after_the_grace(fake, make_backend) -> None:
    fake.hold(2)
    fake.ignore_stop = True
    backend = make_backend(fake, stop_grace_polls=3)
    updates: list[Update] = []
    async for update in backend.ask(AskRequest(QUESTION)):
        updates.append(update)
        if isinstance(update, SessionAssigned) and update.run_id:
            await backend.stop(update.session_id, None)  # by session: stops its running question
    assert finished(updates).outcome is Outcome.STOPPED
    assert len(fake.requests_to("stop")) == 1


async def test_stop_of_unknown_run_does_not_raise(fake, make_backend) -> None:
    backend = make_backend(fake)
    await backend.stop("4729", "999")
    await backend.stop(None, None)
    await backend.stop("4729", None)


async def test_resume_polls_an_existing_question(fake, make_backend) -> None:
    fake.hold(2)
    before = make_backend(fake)
    updates: list[Update] = []
    run = before.ask(AskRequest(QUESTION))
    async for update in run:
        updates.append(update)
        if len(fold(updates).parts) == 2:
            break
    await run.aclose()  # the service "restarts" mid-run
    answer = fold(updates)
    polls_before = fake.poll_count

    after = make_backend(fake)  # a fresh backend, as after a restart
    fake.release()
    resumed = await collect(after.resume(answer.session_id, answer.run_id))
    assert resumed[0] == SessionAssigned(answer.session_id, run_id=answer.run_id)
    assert finished(resumed).outcome is Outcome.DONE
    assert len(fake.requests_to("query")) == 1 and len(fake.requests_to("session")) == 1
    assert fake.poll_count > polls_before
    whole = fold(updates + resumed[1:])
    assert [p.kind for p in whole.parts] == [PartKind.STATUS, PartKind.KNOWLEDGE, PartKind.METRIC,
                                             PartKind.SQL, PartKind.CHART, PartKind.TEXT]


async def test_resume_with_a_bad_run_id_fails(fake, make_backend) -> None:
    end = finished(await collect(make_backend(fake).resume("4729", "not-a-number")))
    assert end.outcome is Outcome.FAILED and end.error.code == "bad_id"


# -- charts from the warehouse -----------------------------------------------------------------
async def test_chart_is_drawn_from_the_warehouse(fake, make_backend, tmp_path) -> None:
    db = tmp_path / "housing.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE beijing_housing (region TEXT, transaction_price INTEGER, year INTEGER)")
        conn.executemany("INSERT INTO beijing_housing VALUES (?, ?, ?)", [
            ("Chaoyang", 600, 2020), ("Chaoyang", 435, 2021), ("Haidian", 981, 2021), ("Xicheng", 300, 2019)])
    backend = make_backend(fake, warehouse_url=f"sqlite:///{db}")
    answer = fold(await collect(backend.ask(AskRequest(QUESTION))))
    assert answer.outcome is Outcome.DONE
    chart = answer.charts[0]
    assert isinstance(chart, ChartPart) and chart.note == ""
    spec = chart.vega_spec
    assert spec["mark"]["type"] == "bar"
    assert spec["encoding"]["x"]["title"] == "District"
    assert spec["encoding"]["y"]["title"] == "Total Transaction Amount (10K CNY)"
    assert spec["data"]["values"] == [{"c0": "Chaoyang", "c1": 1035}, {"c0": "Haidian", "c1": 981},
                                      {"c0": "Xicheng", "c1": 300}]
    assert isinstance(spec["width"], int) and isinstance(spec["height"], int)
    assert backend.charts.queries_run == 1  # the chart item came on 4 polls; SQL ran once
    with sqlite3.connect(db) as conn:  # read-only: nothing changed
        assert conn.execute("SELECT count(*) FROM beijing_housing").fetchone() == (4,)


async def test_chart_query_failure_is_a_note_not_a_failure(fake, make_backend, tmp_path) -> None:
    db = tmp_path / "empty.db"
    sqlite3.connect(db).close()
    answer = fold(await collect(make_backend(fake, warehouse_url=f"sqlite:///{db}").ask(AskRequest(QUESTION))))
    assert answer.outcome is Outcome.DONE
    chart = answer.charts[0]
    assert chart.vega_spec is None and "no such table" in chart.note
    assert isinstance(next(p for p in answer.parts if isinstance(p, SqlPart)), SqlPart)



# -- several answer groups (resGroupId) ---------------------------------------------------------
async def test_only_the_latest_groups_result_is_shown(fake, make_backend, tmp_path) -> None:
    db = _housing_db(tmp_path)
    fake.script_factory = grouped_script
    backend = make_backend(fake, warehouse_url=f"sqlite:///{db}")
    updates = await collect(backend.ask(AskRequest(QUESTION)))
    assert finished(updates).outcome is Outcome.DONE
    # while group 1 was the latest, its summary was shown…
    shown = [u.part for u in updates if isinstance(u, PartUpsert)]
    assert any(isinstance(p, TextPart) and p.markdown == GROUPED_FIRST_SUMMARY for p in shown)
    # …and the final answer holds group 2's result only
    answer = fold(updates)
    assert answer.text == GROUPED_FINAL_SUMMARY
    assert [p.sql for p in answer.parts if isinstance(p, SqlPart)] == [CHART_SQL]
    assert [c.sql for c in answer.charts] == [CHART_SQL]
    tables = [p for p in answer.parts if isinstance(p, TablePart)]
    assert len(tables) == 1 and tables[0].id == answer.charts[0].id + ":table"
    assert GROUPED_FIRST_SQL not in repr(answer.parts)
    assert any(isinstance(p, KnowledgePart) for p in answer.parts)  # what was consulted stays
    # withdrawn parts are empty text in their old places: nothing for a platform to show
    hidden = [p for p in answer.parts if isinstance(p, TextPart) and not p.markdown]
    assert {p.id for p in hidden} == {"cz-3433901", "cz-3433903", "cz-3433904", "cz-3433904:table",
                                      "cz-3433905"}


# -- result tables from the warehouse -----------------------------------------------------------
def _housing_db(tmp_path):
    db = tmp_path / "housing.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE beijing_housing (region TEXT, transaction_price INTEGER, year INTEGER)")
        conn.executemany("INSERT INTO beijing_housing VALUES (?, ?, ?)", [
            ("Chaoyang", 600, 2020), ("Chaoyang", 435, 2021), ("Haidian", 981, 2021), ("Xicheng", 300, 2019)])
    return db


async def test_chart_rows_become_the_result_table(fake, make_backend, tmp_path) -> None:
    db = _housing_db(tmp_path)
    backend = make_backend(fake, warehouse_url=f"sqlite:///{db}")
    answer = fold(await collect(backend.ask(AskRequest(QUESTION))))
    [table] = [p for p in answer.parts if isinstance(p, TablePart)]
    chart = answer.charts[0]
    assert table.id == chart.id + ":table" and table.title == chart.title
    # the chart's column names and types (from echarts_plus) in the query's order
    assert table.columns == (Column("District", "STRING"), Column("Total Transaction Amount (10K CNY)", "LONG"))
    assert table.rows == (("Chaoyang", 1035), ("Haidian", 981), ("Xicheng", 300))
    assert table.total == 3
    kinds = [p.kind for p in answer.parts]
    assert kinds.index(PartKind.TABLE) == kinds.index(PartKind.CHART) + 1
    assert backend.charts.queries_run == 1


async def test_a_capped_result_has_no_known_total(fake, make_backend, tmp_path) -> None:
    db = _housing_db(tmp_path)
    answer = fold(await collect(make_backend(fake, warehouse_url=f"sqlite:///{db}",
                                             warehouse_row_cap=2).ask(AskRequest(QUESTION))))
    [table] = [p for p in answer.parts if isinstance(p, TablePart)]
    assert len(table.rows) == 2 and table.total is None


async def test_rows_that_make_no_chart_still_make_a_table(fake, make_backend, tmp_path) -> None:
    db = tmp_path / "names.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE beijing_housing (region TEXT, transaction_price TEXT)")
        conn.execute("INSERT INTO beijing_housing VALUES ('Chaoyang', 'n/a')")
    fake.script = [{"id": "1", "dataType": "echarts_plus", "message": "Districts",
                    "modelRes": {"data": {"columns": "District (STRING), Note (STRING)",
                                          "calculateSql": "SELECT region, transaction_price FROM beijing_housing"}}},
                   {"id": "2", "dataType": "finish"}]
    answer = fold(await collect(make_backend(fake, warehouse_url=f"sqlite:///{db}").ask(AskRequest(QUESTION))))
    assert answer.charts[0].vega_spec is None and "no numeric column" in answer.charts[0].note
    [table] = [p for p in answer.parts if isinstance(p, TablePart)]
    assert table.rows == (("Chaoyang", "n/a"),) and [c.name for c in table.columns] == ["District", "Note"]


async def test_no_warehouse_no_table(fake, make_backend) -> None:
    # The agent's items carry chart metadata and SQL, never rows (backends.md §1.5, §1.8).
    answer = fold(await collect(make_backend(fake).ask(AskRequest(QUESTION))))
    assert not [p for p in answer.parts if isinstance(p, TablePart)]
    assert "CLICKZETTA_WAREHOUSE_URL" in answer.charts[0].note


async def test_the_askers_language_is_not_sent(fake, make_backend) -> None:
    """Text2InsightQuery documents no language field (seed 001: tenantId, userId, domainId,
    sessionId, msg, loginToken, modelSettings.model_name); nothing undocumented is sent."""
    backend = make_backend(fake, model_name="qwen/qwen3.6-plus")
    await collect(backend.ask(AskRequest(QUESTION, language="pt-BR")))
    [query] = fake.requests_to("query")
    assert set(query.body) == {"tenantId", "userId", "domainId", "sessionId", "msg", "loginToken",
                               "modelSettings"}
    assert query.body["modelSettings"] == {"model_name": "qwen/qwen3.6-plus"}
