"""WrenBackend against the loopback FakeWren, over real httpx (no mocks of our own code)."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import pytest

from adapters.answer import (
    Answer, Column, ErrorPart, Finished, Outcome, PartKind, PartUpsert, SessionAssigned, SqlPart,
    StatusPart, StepState, TablePart, TextPart,
)
from adapters.base import AskRequest, Backend
from adapters.wren import WrenBackend, WrenSettings
from adapters.wren.client import error_from_response, parse_retry_after
from adapters.wren.language import wren_language
from adapters.wren.stream import display_text
from tests.fakes.wren import (
    ASK, AUTH_SERVER_ERROR, CANNOT_GENERATE_SQL_TEXT, CHART, DEFAULT_ROWS, DEFAULT_SQL, FORBIDDEN,
    MULTILINGUAL_SUMMARY, MULTILINGUAL_SUMMARY_TEXT, NO_RELEVANT_DATA_TEXT, RUN_SQL, STREAM_ASK, FakeWren,
)

QUESTION = "Which states pay the most?"


@pytest.fixture
async def fake():
    async with FakeWren() as server:
        yield server


class Sleeps:
    """Records rate-limit waits instead of sleeping through them."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def make_backend(fake, sleeps):
    backends: list[WrenBackend] = []

    def make(**overrides) -> WrenBackend:
        values = {"base_url": fake.base_url, "api_key": fake.api_key} | overrides
        backend = WrenBackend(WrenSettings(**values), sleep=sleeps)
        backends.append(backend)
        return backend

    yield make
    for backend in backends:
        await backend.aclose()


async def run(backend: WrenBackend, question: str = QUESTION, session_id: str | None = None,
              language: str | None = None):
    updates = [u async for u in backend.ask(AskRequest(question, session_id=session_id,
                                                        language=language))]
    answer = Answer()
    for update in updates:
        answer = answer.apply(update)
    assert isinstance(updates[-1], Finished)
    assert sum(isinstance(u, Finished) for u in updates) == 1
    return updates, answer


def parts(updates, cls):
    return [u.part for u in updates if isinstance(u, PartUpsert) and isinstance(u.part, cls)]


def statuses(updates) -> list[str]:
    return [p.text for p in parts(updates, StatusPart)]


# -- happy paths ------------------------------------------------------------------------------

async def test_sql_answer_with_chart(fake, make_backend):
    backend = make_backend()
    assert isinstance(backend, Backend)
    assert backend.name == "wren"
    assert backend.capabilities.keeps_context and not backend.capabilities.cooperative_stop

    updates, answer = await run(backend)

    assert isinstance(updates[0], PartUpsert) and isinstance(updates[0].part, StatusPart)
    assert updates[0].part.id == "status"
    assert statuses(updates) == ["Asking Wren AI…", "Fetching the result rows…", "Drawing a chart…"]
    session = [u for u in updates if isinstance(u, SessionAssigned)]
    assert len(session) == 1
    thread_id = session[0].session_id
    assert thread_id in fake.threads and session[0].run_id

    assert answer.outcome is Outcome.DONE and answer.session_id == thread_id
    [sql] = answer.of_kind(PartKind.SQL)
    assert sql == SqlPart("sql", DEFAULT_SQL)
    # The summary arrives with literal \n, \" and \u00e3 escapes; the user sees characters.
    assert answer.text.startswith("São Paulo (SP) leads")
    assert "\n\n- RJ: R$1,886,761\n- MG" in answer.text
    assert 'The "top 5" states' in answer.text
    assert "\\" not in answer.text

    [chart] = answer.charts
    assert chart.id == "chart" and not chart.note
    assert chart.title == "Total Payments by Customer State"
    assert chart.vega_spec["mark"] == {"type": "bar"}
    assert chart.vega_spec["width"] == "container"
    assert chart.vega_spec["encoding"]["color"]["field"] == "customer_state"

    [ask] = fake.requests_to(ASK)
    assert ask.json == {"question": QUESTION}
    assert ask.headers["Authorization"] == f"Bearer {fake.api_key}"
    assert "X-Project-Id" not in ask.headers
    [chart_req] = fake.requests_to(CHART)
    assert chart_req.json == {"question": QUESTION, "sql": DEFAULT_SQL, "threadId": thread_id,
                              "sampleSize": 2000}


async def test_follow_up_sends_thread_id(fake, make_backend):
    backend = make_backend()
    _, first = await run(backend, "Top states by payments")
    fake.script_ask(sql="SELECT 2", summary="Only SP.")
    _, second = await run(backend, "Only the first one", session_id=first.session_id)

    asks = fake.requests_to(ASK)
    assert "threadId" not in asks[0].json
    assert asks[1].json["threadId"] == first.session_id
    assert second.session_id == first.session_id
    assert [t["question"] for t in fake.context_for(first.session_id)] == [
        "Top states by payments", "Only the first one"]


async def test_project_header_language_and_sample_size(fake, make_backend):
    backend = make_backend(project_id="42", language="zh-TW", ask_sample_size=500,
                           chart_sample_size=100)
    await run(backend)
    await run(backend, language="en")
    first, second = fake.requests_to(ASK)
    assert first.headers["X-Project-Id"] == "42"
    # Wren passes `language` into the AI's prompt; the server's own values are language names.
    assert first.json == {"question": QUESTION, "language": "Traditional Chinese", "sampleSize": 500}
    assert second.json["language"] == "English"
    for chart in fake.requests_to(CHART):
        assert chart.headers["X-Project-Id"] == "42"
        assert chart.json["sampleSize"] == 100
        assert "language" not in chart.json  # generate_vega_chart reads none
    for table in fake.requests_to(RUN_SQL):
        assert table.headers["X-Project-Id"] == "42"


@pytest.mark.parametrize("tag, expected", [
    ("pt-BR", "Portuguese"), ("pt", "Portuguese"), ("PT_pt", "Portuguese"),
    ("en", "English"), ("en-US", "English"), ("es-419", "Spanish"), ("fr-CA", "French"),
    ("de-CH", "German"), ("it", "Italian"), ("ru", "Russian"), ("ja-JP", "Japanese"),
    ("ko-KR", "Korean"), ("nl-BE", "Dutch"), ("tr", "Turkish"), ("id-ID", "Indonesian"),
    ("ar-EG", "Arabic"), ("fa-IR", "Persian"), ("az-Latn-AZ", "Azerbaijani"),
    ("zh-TW", "Traditional Chinese"), ("zh-HK", "Traditional Chinese"),
    ("zh-Hant", "Traditional Chinese"), ("zh-Hant-CN", "Traditional Chinese"),
    ("zh", "Simplified Chinese"), ("zh-CN", "Simplified Chinese"), ("zh-Hans-TW", "Simplified Chinese"),
    ("zh-SG", "Simplified Chinese"),
    ("English", "English"), ("traditional chinese", "Traditional Chinese"),  # already Wren's own
    ("he-IL", None), ("pl", None), ("", None), (None, None), ("x", None),  # not Wren languages
])
def test_language_tags_map_to_wren_language_names(tag, expected):
    assert wren_language(tag) == expected


async def test_asker_language_reaches_wren_as_its_name(fake, make_backend):
    backend = make_backend(language="en")
    await run(backend, language="pt-BR")
    await run(backend, language="he")  # not one of Wren's languages: the operator's default
    await run(make_backend(), language="he")  # and without one, none: the project's language
    first, second, third = fake.requests_to(ASK)
    assert first.json["language"] == "Portuguese"
    assert second.json["language"] == "English"
    assert "language" not in third.json

    await run(make_backend(streaming=True), language="ja-JP")
    assert fake.requests_to(STREAM_ASK)[0].json["language"] == "Japanese"


async def test_org_key_without_project_is_answered_by_the_first_project(fake, make_backend):
    """Why WREN_PROJECT_ID is required with an osk- key: the server does not refuse, it answers
    from its lowest-id project. (A psk- key is pinned to its own project by the server.)"""
    await run(make_backend(api_key=fake.org_key))
    await run(make_backend(api_key=fake.org_key, project_id="7"))
    await run(make_backend(project_id="1"))  # psk-: the key's project wins over the header
    assert [r.project for r in fake.requests_to(ASK)] == ["1", "7", "7"]


@pytest.mark.parametrize("kind", ["NON_SQL_QUERY", "EXPLANATION"])
async def test_non_sql_answer(fake, make_backend, kind):
    fake.script_ask_non_sql("I can help with sales data.\\nTry \\\"revenue by month\\\".", type=kind)
    updates, answer = await run(make_backend(), "hello")
    assert answer.outcome is Outcome.DONE
    assert answer.text == 'I can help with sales data.\nTry "revenue by month".'
    assert not answer.of_kind(PartKind.SQL) and not answer.charts
    assert not fake.requests_to(CHART)
    assert answer.session_id


# -- /ask errors ------------------------------------------------------------------------------

ERROR_CASES = [
    # (script kwargs, expected code, substrings of the message)
    (dict(code="NO_RELEVANT_DATA", invalidSql="SELECT nope"), "NO_RELEVANT_DATA",
     [NO_RELEVANT_DATA_TEXT]),
    (dict(code="NON_SQL_QUERY", explanationQueryId="q-1"), "NON_SQL_QUERY",
     ["can't answer this with a query", CANNOT_GENERATE_SQL_TEXT]),
    (dict(code="NO_RELEVANT_SQL", error="The question is ambiguous.\\nWhich year?"),
     "NO_RELEVANT_SQL", ["couldn't write a query", "ambiguous.\nWhich year?"]),
    (dict(code="OTHERS", error="LLM provider unavailable"), "OTHERS",
     ["couldn't answer", "LLM provider unavailable"]),
    (dict(code="NO_DEPLOYMENT_FOUND"), "NO_DEPLOYMENT_FOUND",
     ["no deployed model", "WREN_PROJECT_ID", "deploy your project first"]),
    (dict(code="INVALID_SQL_ERROR", error='Binder Error: column \\"x\\" not found'),
     "INVALID_SQL_ERROR", ["failed to run", 'column "x" not found']),
    (dict(code="INTERNAL_SERVER_ERROR", error="Summary failed"), "INTERNAL_SERVER_ERROR",
     ["couldn't write the summary", "Summary failed"]),
    (dict(code="POLLING_TIMEOUT"), "POLLING_TIMEOUT", ["took too long (its 180 s limit)"]),
    (dict(), "400", ["didn't come up with a query"]),  # {"id","error":"No SQL generated"}
    (dict(status=500, error="Failed to start summary generation task"), "500",
     ["server problem (HTTP 500)", "Failed to start summary generation task"]),
    (dict(status=400, error="Question is required"), "400",
     ["rejected the request (HTTP 400)", "Question is required"]),
]


@pytest.mark.parametrize("script,code,expected", ERROR_CASES,
                         ids=[c[1] + "-" + str(i) for i, c in enumerate(ERROR_CASES)])
async def test_ask_errors(fake, make_backend, script, code, expected):
    fake.script_ask_error(**script)
    updates, answer = await run(make_backend())
    assert answer.outcome is Outcome.FAILED
    error = updates[-1].error
    assert isinstance(error, ErrorPart) and error.id == "error"
    assert error.code == code
    for text in expected:
        assert text in error.message
    assert "\\" not in error.message
    assert not fake.requests_to(CHART)
    assert not [u for u in updates if isinstance(u, SessionAssigned)]


@pytest.mark.parametrize("key", ["osk-" + "f" * 64, "some-session-token"])
async def test_rejected_key(fake, make_backend, key):
    _, answer = await run(make_backend(api_key=key))
    [error] = answer.errors
    assert error.code == "401"
    assert "rejected the API key" in error.message and "WREN_API_KEY" in error.message
    assert key not in error.message


async def test_forbidden_and_auth_server_error(fake, make_backend):
    backend = make_backend()
    fake.script_auth_error(403, FORBIDDEN)
    _, answer = await run(backend)
    assert answer.errors[0].code == "403"
    assert "refused access" in answer.errors[0].message
    assert "WREN_PROJECT_ID" in answer.errors[0].message

    fake.script_auth_error(500, AUTH_SERVER_ERROR)
    _, answer = await run(backend)
    assert answer.errors[0].code == "500"
    assert "could not check the API key" in answer.errors[0].message


def test_settings_repr_hides_key():
    settings = WrenSettings(base_url="https://w.example/api/v1/", api_key="osk-secret")
    assert "osk-secret" not in repr(settings)
    assert settings.api_root == "https://w.example/api/v1"


# -- rate limits ------------------------------------------------------------------------------

async def test_rate_limit_waits_retry_after_and_retries(fake, make_backend, sleeps):
    fake.script_rate_limit(retry_after=1)
    updates, answer = await run(make_backend())
    assert answer.outcome is Outcome.DONE
    assert sleeps.calls == [1.0]
    assert len(fake.requests_to(ASK)) == 2
    assert "Wren AI is rate limiting us; retrying in 1 s…" in statuses(updates)
    assert statuses(updates)[-3:] == ["Asking Wren AI…", "Fetching the result rows…", "Drawing a chart…"]


async def test_rate_limit_body_retry_after_ms(fake, make_backend, sleeps):
    # retryAfterMs 0 → the server sends no Retry-After header; the body value still counts.
    fake.script_rate_limit(retry_after=0)
    _, answer = await run(make_backend())
    assert answer.outcome is Outcome.DONE
    assert sleeps.calls == [0.0]


async def test_rate_limit_gives_up_after_max_retries(fake, make_backend, sleeps):
    for _ in range(3):
        fake.script_rate_limit(retry_after=2)
    _, answer = await run(make_backend(max_rate_limit_retries=2))
    assert answer.outcome is Outcome.FAILED
    assert sleeps.calls == [2.0, 2.0]
    assert len(fake.requests_to(ASK)) == 3
    assert answer.errors[0].code == "429"
    assert "try again in 2 s" in answer.errors[0].message


async def test_rate_limit_wait_too_long_is_not_waited(fake, make_backend, sleeps):
    fake.script_rate_limit(retry_after=120)
    _, answer = await run(make_backend(max_rate_limit_wait=60))
    assert sleeps.calls == []
    assert len(fake.requests_to(ASK)) == 1
    assert "try again in 120 s" in answer.errors[0].message


async def test_monthly_quota(fake, make_backend, sleeps):
    fake.script_rate_limit(quota=True)
    _, answer = await run(make_backend())
    assert sleeps.calls == []
    message = answer.errors[0].message
    assert "quota" in message and "resets at 20" in message


def test_retry_after_header_wins_over_body():
    body = json.dumps({"error": "Rate limit exceeded", "retryAfterMs": 42000}).encode()
    err = error_from_response(429, httpx.Headers({"Retry-After": "5"}), body)
    assert err.retry_after == 5.0
    assert error_from_response(429, httpx.Headers(), body).retry_after == 42.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a past date: now
    assert parse_retry_after("soon") is None


# -- transport failures -----------------------------------------------------------------------

async def test_timeout(fake, make_backend):
    fake.script_delay(2.0)
    _, answer = await run(make_backend(request_timeout=0.2))
    assert answer.outcome is Outcome.FAILED
    assert answer.errors[0].code == "timeout"
    assert "did not answer within 1 s" in answer.errors[0].message


async def test_unreachable_host(make_backend):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _, answer = await run(make_backend(base_url=f"http://127.0.0.1:{port}"))
    assert answer.errors[0].code == "connect"
    assert "Could not reach Wren AI" in answer.errors[0].message
    assert str(port) not in answer.errors[0].message  # no internal address in a chat reply


async def test_non_json_error_body(fake, make_backend):
    fake.script_raw(502, "<html><body>Bad Gateway</body></html>")
    _, answer = await run(make_backend())
    assert answer.errors[0].code == "502"
    assert "server problem (HTTP 502)" in answer.errors[0].message
    assert "<html>" not in answer.errors[0].message


async def test_non_json_success_body(fake, make_backend):
    fake.script_raw(200, "<html>ok</html>")
    _, answer = await run(make_backend())
    assert answer.outcome is Outcome.FAILED
    assert answer.errors[0].code == "bad_response"


async def test_answer_without_sql_or_explanation(fake, make_backend):
    fake.script_raw(200, json.dumps({"id": "a1", "threadId": "t1"}), "application/json")
    _, answer = await run(make_backend())
    assert answer.outcome is Outcome.FAILED
    assert "neither a query nor an explanation" in answer.errors[0].message
    assert answer.session_id == "t1"


async def test_unexpected_exception_becomes_failure():
    def explode(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("boom")

    backend = WrenBackend(WrenSettings("http://wren.test", "osk-x"),
                          transport=httpx.MockTransport(explode))
    try:
        _, answer = await run(backend)
    finally:
        await backend.aclose()
    assert answer.outcome is Outcome.FAILED
    assert answer.errors[0].code == "internal"


# -- result table -----------------------------------------------------------------------------

async def test_sql_answer_has_the_result_table(fake, make_backend):
    backend = make_backend(project_id="7")
    updates, answer = await run(backend)
    [table] = answer.of_kind(PartKind.TABLE)
    assert isinstance(table, TablePart) and table.id == "table"
    assert table.columns == (Column("customer_state", "VARCHAR"), Column("total_payment_value", "DOUBLE"))
    assert table.rows == tuple((r["customer_state"], r["total_payment_value"]) for r in DEFAULT_ROWS)
    assert table.total == 5  # fewer rows than the limit came back: that is the whole result
    [req] = fake.requests_to(RUN_SQL)
    assert req.json == {"sql": DEFAULT_SQL, "threadId": answer.session_id, "limit": 1000}
    assert req.headers["X-Project-Id"] == "7"
    # the table comes before the chart, right after the summary
    kinds = [p.kind for p in answer.parts if p.kind is not PartKind.STATUS]
    assert kinds == [PartKind.SQL, PartKind.TEXT, PartKind.TABLE, PartKind.CHART]
    # run_sql is logged under the thread but adds no context
    assert [t["question"] for t in fake.context_for(answer.session_id)] == [QUESTION]


async def test_table_keeps_the_engine_column_order_and_types(fake, make_backend):
    # JSON objects do not promise key order (JS even moves integer-like keys first): the
    # `columns` array is the order, and its types are kept.
    fake.script_run_sql(records=[{"2021": 7, "region": "North", "share": None},
                                 {"2021": 9, "region": "South", "share": 0.25}],
                        columns=[{"name": "region", "type": "VARCHAR"},
                                 {"name": "2021", "type": "INTEGER"},
                                 {"name": "share", "type": "DECIMAL(5,2)"}])
    _, answer = await run(make_backend())
    [table] = answer.of_kind(PartKind.TABLE)
    assert [c.name for c in table.columns] == ["region", "2021", "share"]
    assert [c.type for c in table.columns] == ["VARCHAR", "INTEGER", "DECIMAL(5,2)"]
    assert table.rows == (("North", 7, None), ("South", 9, 0.25))


async def test_a_full_page_of_rows_has_no_known_total(fake, make_backend):
    _, answer = await run(make_backend(table_rows=3))
    [table] = answer.of_kind(PartKind.TABLE)
    assert len(table.rows) == 3
    assert table.total is None  # totalRows counts returned rows; the result may be longer
    assert fake.requests_to(RUN_SQL)[0].json["limit"] == 3


async def test_table_can_be_turned_off(fake, make_backend):
    _, answer = await run(make_backend(table_rows=0))
    assert not answer.of_kind(PartKind.TABLE) and not fake.requests_to(RUN_SQL)
    assert answer.charts and answer.outcome is Outcome.DONE


async def test_table_falls_back_to_the_chart_data(fake, make_backend):
    fake.script_run_sql_error(code="INVALID_SQL_ERROR", error="Engine busy")
    _, answer = await run(make_backend())
    assert answer.outcome is Outcome.DONE and not answer.errors
    [table] = answer.of_kind(PartKind.TABLE)
    assert [c.name for c in table.columns] == ["customer_state", "total_payment_value"]
    assert table.rows[0] == ("SP", 5218263.12) and len(table.rows) == 5
    assert table.total == 5  # below the chart's sample size: all of it


async def test_no_table_when_neither_run_sql_nor_the_chart_has_rows(fake, make_backend):
    fake.script_run_sql_error(status=500, code=None, error="boom")
    fake.script_chart_error()
    _, answer = await run(make_backend())
    assert answer.outcome is Outcome.DONE
    assert not answer.of_kind(PartKind.TABLE)
    assert answer.text and answer.of_kind(PartKind.SQL)


async def test_run_sql_rate_limit_is_waited(fake, make_backend, sleeps):
    fake.script_rate_limit(retry_after=1, endpoint="run_sql")
    _, answer = await run(make_backend())
    assert sleeps.calls == [1.0]
    assert len(fake.requests_to(RUN_SQL)) == 2
    assert answer.of_kind(PartKind.TABLE)


async def test_non_sql_answer_has_no_table(fake, make_backend):
    fake.script_ask_non_sql()
    _, answer = await run(make_backend())
    assert not answer.of_kind(PartKind.TABLE) and not fake.requests_to(RUN_SQL)


# -- summaries in every script ------------------------------------------------------------------

@pytest.mark.parametrize("streaming", [False, True], ids=["ask", "stream"])
async def test_multilingual_summary_arrives_intact(fake, make_backend, streaming):
    """Emoji (ZWJ, skin tones, flags), CJK (incl. an astral ideograph) and RTL text, escaped as
    the server sends them: the reader sees the characters, and every snapshot encodes as UTF-8
    (an unpaired surrogate makes storing or posting the answer fail)."""
    fake.script_ask_multilingual()
    updates, answer = await run(make_backend(streaming=streaming))
    assert answer.outcome is Outcome.DONE
    assert answer.text == MULTILINGUAL_SUMMARY_TEXT
    for part in parts(updates, TextPart):
        part.markdown.encode("utf-8")
        assert "\ufffd" not in part.markdown and "\\" not in part.markdown


async def test_multilingual_summary_as_the_fake_default():
    async with FakeWren(summary=MULTILINGUAL_SUMMARY) as server:
        backend = WrenBackend(WrenSettings(server.base_url, server.api_key))
        try:
            _, answer = await run(backend)
        finally:
            await backend.aclose()
    assert answer.text == MULTILINGUAL_SUMMARY_TEXT


# -- charts -----------------------------------------------------------------------------------

CHART_FAILURES = {
    "no-chart": (lambda f: f.script_chart_error(), "didn't find a fitting chart"),
    "ai-error": (lambda f: f.script_chart_error(error="Unsupported chart type"),
                 "Unsupported chart type"),
    "500": (lambda f: f.script_chart_error(code=None), "Failed to generate Vega spec"),
    "polling-timeout": (lambda f: f.script_chart_error(code="POLLING_TIMEOUT"), "took too long"),
    "invalid-sql": (lambda f: f.script_chart_error(code="INVALID_SQL_ERROR"), "query failed"),
    "empty-spec": (lambda f: f.script_chart_empty(), "empty chart"),
    "non-json": (lambda f: f.script_raw(502, "bad gateway", endpoint="chart"), "HTTP 502"),
    "timeout": (lambda f: f.script_delay(2.0, endpoint="chart"), "timed out"),
}


@pytest.mark.parametrize("name", list(CHART_FAILURES))
async def test_chart_failure_is_a_quiet_note(fake, make_backend, name):
    script, reason = CHART_FAILURES[name]
    script(fake)
    _, answer = await run(make_backend(chart_timeout=0.2))
    assert answer.outcome is Outcome.DONE
    assert not answer.errors
    assert answer.of_kind(PartKind.SQL) and answer.text
    [chart] = answer.charts
    assert chart.vega_spec is None
    assert chart.note.startswith("No chart this time: ")
    assert reason in chart.note


async def test_chart_rate_limited_then_drawn(fake, make_backend, sleeps):
    fake.script_rate_limit(retry_after=0, endpoint="chart")
    _, answer = await run(make_backend())
    assert answer.charts[0].vega_spec is not None
    assert len(fake.requests_to(CHART)) == 2


async def test_line_chart_title_object(fake, make_backend):
    fake.script_chart(llm_spec={"title": {"text": "Orders per month"}, "mark": "line",
                                "encoding": {"x": {"field": "m", "type": "temporal"},
                                             "y": {"field": "n", "type": "quantitative"}}})
    _, answer = await run(make_backend())
    chart = answer.charts[0]
    assert chart.title == "Orders per month"
    assert chart.vega_spec["mark"] == {"type": "line", "point": True}


# -- stop -------------------------------------------------------------------------------------

async def test_stop_is_cancellation_and_closes_the_request(fake, make_backend):
    backend = make_backend()
    release = fake.hold_ask()
    seen: list = []

    async def consume() -> None:
        async for update in backend.ask(AskRequest(QUESTION)):
            seen.append(update)

    task = asyncio.create_task(consume())
    await fake.wait_for_request(ASK)
    assert await backend.stop(None, None) is None  # no vendor call; nothing to wait for
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await fake.wait_for_cancel(ASK)
    release.set()
    assert not any(isinstance(u, Finished) for u in seen)
    with pytest.raises(NotImplementedError):
        backend.resume("t", "r")


# -- streaming mode ---------------------------------------------------------------------------

async def test_streaming_sql_answer(fake, make_backend):
    updates, answer = await run(make_backend(streaming=True))
    assert answer.outcome is Outcome.DONE
    [start] = fake.requests_to(STREAM_ASK)
    assert start.json == {"question": QUESTION}
    assert [r.path for r in fake.requests if r.path in (ASK, STREAM_ASK)] == [STREAM_ASK]  # no /ask
    [table] = answer.of_kind(PartKind.TABLE)
    assert table.total == 5 and fake.requests_to(RUN_SQL)[0].json["threadId"] == answer.session_id
    thread_id = answer.session_id
    assert thread_id in fake.threads
    assert answer.of_kind(PartKind.SQL)[0].sql == DEFAULT_SQL
    # Deltas split escapes at arbitrary points; the folded text is still clean.
    assert answer.text.startswith("São Paulo (SP) leads") and "\\" not in answer.text
    assert len(parts(updates, TextPart)) > 1  # the summary grew delta by delta
    assert all("\\" not in p.markdown for p in parts(updates, TextPart))
    steps = {p.id: p for p in answer.of_kind(PartKind.STEP)}
    assert list(steps) == ["step:understand", "step:search", "step:plan", "step:generate",
                           "step:run", "step:summarize"]
    assert all(s.state is StepState.DONE for s in steps.values())
    assert steps["step:search"].detail == "Tables: olist_customers_dataset"
    assert answer.charts[0].vega_spec is not None
    assert fake.requests_to(CHART)[0].json["threadId"] == thread_id


def test_stream_text_holds_back_a_split_escape():
    assert display_text("a\\") == "a"
    assert display_text("a\\u00") == "a"
    assert display_text("a\\u00e3") == "aã"
    assert display_text("a\\\\") == "a\\"  # an escaped backslash is complete
    assert display_text("line\\nnext") == "line\nnext"


async def test_streaming_non_sql_and_errors(fake, make_backend):
    backend = make_backend(streaming=True)
    fake.script_ask_non_sql()
    _, answer = await run(backend, "hi")
    assert answer.outcome is Outcome.DONE
    assert answer.text.startswith("I can help you analyze data")
    assert not fake.requests_to(CHART)

    fake.script_ask_error(code="NO_RELEVANT_DATA")
    _, answer = await run(backend, session_id="thread-7")
    assert answer.outcome is Outcome.FAILED
    assert answer.errors[0].message == NO_RELEVANT_DATA_TEXT
    assert answer.session_id == "thread-7"

    fake.script_ask_error(code="POLLING_TIMEOUT")
    _, answer = await run(backend)
    assert "180 s" in answer.errors[0].message


async def test_streaming_auth_and_rate_limit(fake, make_backend, sleeps):
    fake.script_rate_limit(retry_after=1)
    _, answer = await run(make_backend(streaming=True))
    assert answer.outcome is Outcome.DONE and sleeps.calls == [1.0]

    _, answer = await run(make_backend(streaming=True, api_key="osk-" + "e" * 64))
    assert answer.errors[0].code == "401"


async def test_streaming_falls_back_to_ask_on_a_server_without_the_stream_route(make_backend_for):
    async with FakeWren(stream=False) as server:
        backend = make_backend_for(server, streaming=True)
        updates, answer = await run(backend)
        assert answer.outcome is Outcome.DONE
        assert [r.path for r in server.requests if r.path in (ASK, STREAM_ASK)] == [STREAM_ASK, ASK]
        assert answer.of_kind(PartKind.SQL) and answer.text.startswith("São Paulo")
        assert answer.of_kind(PartKind.TABLE) and answer.charts[0].vega_spec
        assert not [u for u in updates if isinstance(u, Finished) and u.error]
        # the server has no stream route: later questions go straight to /ask
        await run(backend, session_id=answer.session_id)
        assert [r.path for r in server.requests if r.path in (ASK, STREAM_ASK)] == [STREAM_ASK, ASK, ASK]


async def test_streaming_off_uses_ask_only(fake, make_backend):
    _, answer = await run(make_backend(streaming=False))
    assert answer.outcome is Outcome.DONE
    assert fake.requests_to(ASK) and not fake.requests_to(STREAM_ASK)
    assert not answer.of_kind(PartKind.STEP)


@pytest.fixture
async def make_backend_for(sleeps):
    backends: list[WrenBackend] = []

    def make(server: FakeWren, **overrides) -> WrenBackend:
        values = {"base_url": server.base_url, "api_key": server.api_key} | overrides
        backend = WrenBackend(WrenSettings(**values), sleep=sleeps)
        backends.append(backend)
        return backend

    yield make
    for backend in backends:
        await backend.aclose()
