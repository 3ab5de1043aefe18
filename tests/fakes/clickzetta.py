"""Loopback fake of the ClickZetta Analytics Agent Open API ("text2insight").

Honest to /work/shared/reference/backends.md §1 and the vendor's pages:

* ``GET  …/open/api/v1/appSecretKey/generateAuthToken?appSecretKey=`` → ``data.token`` (a JWT
  with ``exp``) and ``data.expireMillisecond`` (absolute epoch ms);
* ``POST …/open/session/safe_new``, ``…/open/text2insight/query``, ``…/open/safe_question_poll``
  and ``…/open/text2insight/stop`` want ``tenantId``, ``userId`` and ``loginToken`` in the query
  string *and* the JSON body, and refuse with HTTP 200 ``success:false`` otherwise;
* the session id comes back as a numeric string by default (as cz-cli observed), or an int;
* polls are cumulative; a scripted analysis advances one step per poll; a stop makes the next
  poll end with ``finish_stop`` while keeping the earlier items; stopping a finished question is
  ``success:false``.

The vendor documents no error *code* for an expired token (only ``success=false``), so the code
used here (``token_error_code``) is an assumption the adapter must not rely on.

Fault knobs: :meth:`FakeClickZetta.fail` (``success_false``, ``nested``, ``http_500``,
``http_408``, ``non_json``, ``no_data``, ``no_data_ok`` on any endpoint), :meth:`stall` (a slow
answer), token expiry after N calls or on demand, :meth:`hold` / :meth:`release` to pause an
analysis, ``ignore_stop``, ``broken_sessions``; every request is recorded for assertions.

Several answer groups: items may carry ``resGroupId`` (seen in cz-cli's client and its mocks; the
official pages do not document it). cz-cli takes the final answer from the *latest* group, so a
question's responses can hold more than one. ``fake.script_factory = grouped_script`` makes every
question answer in two groups: a first pass (its own SQL, chart and summary) and then the final
one, all items tagged with their ``resGroupId``.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any, Callable

from aiohttp import web

from tests.fakes.loopback import serve

BASE_PATH = "/clickzetta-campaign-data"
PATHS = {
    "token": "/open/api/v1/appSecretKey/generateAuthToken",
    "session": "/open/session/safe_new",
    "query": "/open/text2insight/query",
    "poll": "/open/safe_question_poll",
    "stop": "/open/text2insight/stop",
}
TERMINAL = {"finish", "finish_stop", "error"}

CHART_SQL = ("SELECT region AS district, SUM(transaction_price) AS total_transaction_amount "
             "FROM beijing_housing GROUP BY region ORDER BY total_transaction_amount DESC")
CHART_COLUMNS = "District (STRING), Total Transaction Amount (10K CNY) (LONG)"
SUMMARY_PARTIAL = "**Beijing second-hand housing by district:**"
SUMMARY_FULL = (SUMMARY_PARTIAL + "\\n- Chaoyang District: CNY 103.49 billion"
                "\\n- Haidian District: CNY 98.12 billion")  # literal backslash-n, as the vendor sends


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class RecordedRequest:
    method: str
    path: str  # relative to the base URL, e.g. "/open/safe_question_poll"
    query: dict[str, str]
    body: Any


@dataclass
class _Token:
    expires_ms: int
    calls_left: int | None
    revoked: bool = False


@dataclass
class FakeQuestion:
    question_id: int
    session_id: int
    msg: str
    script: list[dict[str, Any]]
    step: int = 0
    polls: int = 0
    stopped: bool = False
    items: list[dict[str, Any]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return bool(self.items) and self.items[-1].get("dataType") in TERMINAL

    def advance(self) -> None:
        """Apply the next script step: a new item, or a replacement of an item with its id."""
        item = copy.deepcopy(self.script[self.step])
        self.step += 1
        for i, existing in enumerate(self.items):
            if existing.get("id") == item.get("id"):
                self.items[i] = item
                return
        self.items.append(item)


def default_script(question_id: int, msg: str) -> list[dict[str, Any]]:
    """notify → message+knowledgeData → metric → code → echarts_plus → summary (grows) → finish,
    with fields at the top level, in ``modelRes.data`` and in the ``rawRes`` JSON string."""
    base = question_id * 100
    ids = [str(base + n) for n in range(1, 8)]
    metric_dsl = {"useDefaultLimit": True, "metricId": {"metricType": "SQL_SIMPLE", "id": 631},
                  "name": "Total Transaction Amount"}
    physical_dsl = {"table": "beijing_housing", "measure": "SUM(transaction_price)"}
    summary_item = lambda text: {  # noqa: E731
        "id": ids[5], "dataType": "summary", "message": "Analysis complete",
        "modelRes": {"code": 200, "data": {"dataType": "summary", "summaryData": text}}}
    return [
        {"id": ids[0], "dataType": "notify", "message": "Thinking next step"},
        {"id": ids[1], "dataType": "message",
         "message": "Viewed knowledge details: Beijing Second-hand Housing 10-year Transaction Data",
         "modelRes": {"code": 200, "data": {
             "dataType": "message", "message": "Viewed knowledge details",
             "knowledgeData": {"detailItems": [{
                 "id": 51, "keys": "Beijing Second-hand Housing 10-year Transaction Data",
                 "value": json.dumps({"desc": "If no time is explicitly specified in the question, use yesterday",
                                      "type": "time_range_func"}),
                 "type": "TEXT"}]}}}},
        {"id": ids[2], "dataType": "metric",
         "message": "Metric: Total Transaction Amount by District in the Past 6 Years",
         "modelRes": {"code": 200, "data": {"dataType": "metric", "metricDsl": json.dumps(metric_dsl),
                                            "physicalMetricDsl": json.dumps(physical_dsl)}}},
        {"id": ids[3], "dataType": "code", "message": "",
         "rawRes": json.dumps({"code": 200, "data": {
             "dataType": "code", "message": "Generated SQL", "codeType": "sql",
             "code": CHART_SQL.replace(" FROM", "\\nFROM")}})},
        {"id": ids[4], "dataType": "echarts_plus",
         "message": "Beijing Second-hand Housing Transaction Amount by District (2015-2021)",
         "modelRes": {"code": 200, "data": {"dataType": "echarts_plus", "chartType": "ECHARTS",
                                            "columns": CHART_COLUMNS, "calculateSql": CHART_SQL}}},
        summary_item(SUMMARY_PARTIAL),
        summary_item(SUMMARY_FULL),
        {"id": ids[6], "dataType": "finish", "message": "Analysis complete"},
    ]


GROUPED_FIRST_SQL = "SELECT region AS district, COUNT(*) AS deals FROM beijing_housing GROUP BY region"
GROUPED_FIRST_SUMMARY = "First pass: counted deals per district."
GROUPED_FINAL_SUMMARY = "**Final:** Chaoyang District leads with CNY 103.49 billion."


def grouped_script(question_id: int, msg: str) -> list[dict[str, Any]]:
    """Two ``resGroupId`` groups in one question: group 1 (knowledge, SQL, chart, summary), then
    group 2 (its own SQL, chart and summary) and the finish, every item tagged with its group."""
    base = question_id * 100
    group_one, group_two = base + 1, base + 2

    def item(n: int, group: int, data_type: str, message: str = "", **model: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": str(base + n), "dataType": data_type, "message": message,
                                 "resGroupId": group}
        if model:
            entry["modelRes"] = {"code": 200, "data": {"dataType": data_type, **model}}
        return entry

    return [
        item(1, group_one, "notify", "Thinking next step"),
        item(2, group_one, "message", "Viewed knowledge details",
             knowledgeData={"detailItems": [{"id": 51, "keys": "Beijing Second-hand Housing",
                                             "value": json.dumps({"desc": "Deals since 2015"}),
                                             "type": "TEXT"}]}),
        item(3, group_one, "code", "Generated SQL", codeType="sql", code=GROUPED_FIRST_SQL),
        item(4, group_one, "echarts_plus", "Deals by district", chartType="ECHARTS",
             columns="District (STRING), Deals (LONG)", calculateSql=GROUPED_FIRST_SQL),
        item(5, group_one, "summary", "Analysis complete", summaryData=GROUPED_FIRST_SUMMARY),
        item(6, group_two, "notify", "Refining the analysis"),
        item(7, group_two, "code", "Generated SQL", codeType="sql", code=CHART_SQL),
        item(8, group_two, "echarts_plus", "Transaction amount by district", chartType="ECHARTS",
             columns=CHART_COLUMNS, calculateSql=CHART_SQL),
        item(9, group_two, "summary", "Analysis complete", summaryData=GROUPED_FINAL_SUMMARY),
        item(10, group_two, "finish", "Analysis complete"),
    ]


class FakeClickZetta:
    """``async with FakeClickZetta() as fake: base_url = fake.base_url`` (or ``await fake.start()``)."""

    def __init__(self, *, app_secret_key: str = "db119bd3_1022_44&&6e7d-fake-secret",
                 tenant_id: int = 10, user_id: int = 1, session_id_as: str = "str",
                 token_ttl_seconds: float = 3600.0, include_expire_millisecond: bool = True,
                 token_expires_after_calls: int | None = None,
                 token_error_code: str = "TOKEN_INVALID", require_domain: bool = True) -> None:
        self.app_secret_key = app_secret_key
        self.tenant_id = tenant_id
        self.user_id = user_id
        self.session_id_as = session_id_as
        self.token_ttl_seconds = token_ttl_seconds
        self.include_expire_millisecond = include_expire_millisecond
        self.token_expires_after_calls = token_expires_after_calls
        self.token_error_code = token_error_code
        self.require_domain = require_domain
        self.script: list[dict[str, Any]] | None = None  # fixed script for every new question
        self.script_factory: Callable[[int, str], list[dict[str, Any]]] = default_script
        self.ignore_stop = False
        self.broken_sessions: set[int] = set()
        self.requests: list[RecordedRequest] = []
        self.questions: dict[int, FakeQuestion] = {}
        self.sessions: set[int] = set()
        self.tokens: dict[str, _Token] = {}
        self.concurrent_questions = 0  # queries submitted while the session had one running
        self.poll_count = 0
        self._faults: dict[str, deque[tuple[str, str | None, str | None]]] = defaultdict(deque)
        self._stalls: dict[str, deque[asyncio.Event]] = defaultdict(deque)
        self._next_session = 4729
        self._next_question = 34339
        self._hold_at: int | None = None
        self._released: asyncio.Event | None = None
        self._arrived: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> str:
        app = web.Application()
        app.router.add_get(BASE_PATH + PATHS["token"], self._token)
        app.router.add_post(BASE_PATH + PATHS["session"], self._session)
        app.router.add_post(BASE_PATH + PATHS["query"], self._query)
        app.router.add_post(BASE_PATH + PATHS["poll"], self._poll)
        app.router.add_post(BASE_PATH + PATHS["stop"], self._stop)
        self._runner, port = await serve(app, handler_cancellation=False)
        self._released = asyncio.Event()
        self._arrived = asyncio.Event()
        self.base_url = f"http://127.0.0.1:{port}{BASE_PATH}"
        return self.base_url

    async def close(self) -> None:
        if self._released is not None:
            self._released.set()
        for stalls in self._stalls.values():
            for gate in stalls:
                gate.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "FakeClickZetta":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- knobs ------------------------------------------------------------------------------
    def fail(self, endpoint: str, kind: str, *, times: int = 1, message: str | None = None,
             code: str | None = None) -> None:
        """Make the next ``times`` calls of ``endpoint`` (token/session/query/poll/stop) fail."""
        if endpoint not in PATHS:
            raise ValueError(f"unknown endpoint {endpoint!r}")
        for _ in range(times):
            self._faults[endpoint].append((kind, message, code))

    def stall(self, endpoint: str) -> asyncio.Event:
        """The next call of ``endpoint`` answers only once the returned event is set (a slow
        server; the client's per-request timeout should give up first)."""
        if endpoint not in PATHS:
            raise ValueError(f"unknown endpoint {endpoint!r}")
        gate = asyncio.Event()
        self._stalls[endpoint].append(gate)
        return gate

    def hold(self, at_step: int) -> None:
        """Pause every analysis once it has shown ``at_step`` items, until :meth:`release`."""
        self._hold_at = at_step
        if self._released is not None:
            self._released.clear()

    def release(self) -> None:
        if self._released is not None:
            self._released.set()

    def expire_tokens(self) -> None:
        """Every token minted so far stops working (as if their lifetime just ran out)."""
        for token in self.tokens.values():
            token.revoked = True

    def identity(self, domain_id: int = 106) -> dict[str, Any]:
        """Keyword arguments for ``ClickZettaSettings`` that this fake accepts."""
        return {"base_url": self.base_url, "app_secret_key": self.app_secret_key,
                "tenant_id": self.tenant_id, "user_id": self.user_id, "domain_id": domain_id}

    # -- inspection -------------------------------------------------------------------------
    def requests_to(self, endpoint: str) -> list[RecordedRequest]:
        path = PATHS.get(endpoint, endpoint)
        return [r for r in self.requests if r.path == path]

    async def wait_for_request(self, path: str, count: int = 1, timeout: float = 5.0) -> RecordedRequest:
        """The ``count``-th request to ``path`` (an endpoint name or a path), waiting for it."""
        assert self._arrived is not None, "start() the fake first"

        async def wait() -> RecordedRequest:
            while True:
                matching = self.requests_to(path)
                if len(matching) >= count:
                    return matching[count - 1]
                self._arrived.clear()
                await self._arrived.wait()

        return await asyncio.wait_for(wait(), timeout)

    # -- helpers ----------------------------------------------------------------------------
    async def _record(self, request: web.Request) -> RecordedRequest:
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
        recorded = RecordedRequest(request.method, request.path[len(BASE_PATH):], dict(request.query), body)
        self.requests.append(recorded)
        if self._arrived is not None:
            self._arrived.set()
        return recorded

    @staticmethod
    def _ok(data: Any = None, *, with_data: bool = True) -> web.Response:
        return web.json_response({"success": True, "data": data} if with_data else {"success": True})

    @staticmethod
    def _refuse(message: str, code: str = "") -> web.Response:
        body: dict[str, Any] = {"success": False, "message": message}
        if code:
            body["code"] = code
        return web.json_response(body)

    def _fault(self, endpoint: str, path: str) -> web.Response | None:
        if not self._faults[endpoint]:
            return None
        kind, message, code = self._faults[endpoint].popleft()
        if kind == "success_false":
            return self._refuse(message or "Parameters are missing or the model is unavailable", code or "500")
        if kind == "nested":
            return web.json_response({"data": {"success": False, "code": code or "500",
                                               "message": message or "Model is unavailable"}})
        if kind in ("http_500", "http_408"):
            status = int(kind[5:])
            reason = "Internal Server Error" if status == 500 else "Request Timeout"
            return web.json_response({"timestamp": int(time.time() * 1000), "status": status,
                                      "error": reason, "path": BASE_PATH + path}, status=status)
        if kind == "non_json":
            return web.Response(text="<html><body><h1>502 Bad Gateway</h1></body></html>",
                                content_type="text/html")
        if kind == "no_data":
            return web.json_response({"success": False, "code": "204"})
        if kind == "no_data_ok":
            return web.json_response({"success": True, "code": 200, "message": "操作成功", "data": None})
        raise ValueError(f"unknown fault kind {kind!r}")

    def _mint(self) -> tuple[str, int]:
        now = time.time()
        exp = now + self.token_ttl_seconds
        header = _b64(json.dumps({"alg": "HS256"}, separators=(",", ":")).encode())
        payload = _b64(json.dumps({"sub": str(self.user_id), "tenantId": self.tenant_id,
                                   "exp": int(exp), "jti": secrets.token_hex(4)}).encode())
        token = f"{header}.{payload}.{_b64(secrets.token_bytes(32))}"
        self.tokens[token] = _Token(expires_ms=int(exp * 1000), calls_left=self.token_expires_after_calls)
        return token, int(exp * 1000)

    def _authenticate(self, rec: RecordedRequest) -> web.Response | None:
        """Both places, same values, a live token — or the documented ``success:false``."""
        body = rec.body if isinstance(rec.body, dict) else {}
        for name in ("tenantId", "userId", "loginToken"):
            if name not in rec.query or body.get(name) in (None, ""):
                return self._refuse(f"Missing required parameter: {name}", "400")
            if str(rec.query[name]) != str(body[name]):
                return self._refuse(f"Parameter {name} differs between query and body", "400")
        if str(body["tenantId"]) != str(self.tenant_id) or str(body["userId"]) != str(self.user_id):
            return self._refuse("No permission for this tenant or user", "403")
        token = self.tokens.get(str(body["loginToken"]))
        if token is None or token.revoked or token.expires_ms <= time.time() * 1000:
            return self._refuse("Token is invalid or expired", self.token_error_code)
        if token.calls_left is not None:
            if token.calls_left <= 0:
                token.revoked = True
                return self._refuse("Token is invalid or expired", self.token_error_code)
            token.calls_left -= 1
        return None

    def _session_value(self, session_id: int) -> Any:
        return str(session_id) if self.session_id_as == "str" else session_id

    # -- handlers ---------------------------------------------------------------------------
    async def _admit(self, request: web.Request,
                     endpoint: str) -> tuple[RecordedRequest, web.Response | None]:
        """Record a call; answer at once with an injected fault or an auth refusal, if any."""
        rec = await self._record(request)
        if self._stalls[endpoint]:
            await self._stalls[endpoint].popleft().wait()
        return rec, self._fault(endpoint, rec.path) or self._authenticate(rec)

    async def _token(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        if (fault := self._fault("token", rec.path)) is not None:
            return fault
        if rec.query.get("appSecretKey") != self.app_secret_key:
            return self._refuse("appSecretKey is invalid or expired", "401")
        token, expire_ms = self._mint()
        data: dict[str, Any] = {"token": token}
        if self.include_expire_millisecond:
            data["expireMillisecond"] = expire_ms
        return self._ok(data)

    async def _session(self, request: web.Request) -> web.Response:
        rec, answer = await self._admit(request, "session")
        if answer is not None:
            return answer
        session_id = self._next_session
        self._next_session += 1
        self.sessions.add(session_id)
        return self._ok(self._session_value(session_id))

    async def _query(self, request: web.Request) -> web.Response:
        rec, answer = await self._admit(request, "query")
        if answer is not None:
            return answer
        body = rec.body
        if self.require_domain and not body.get("domainId"):
            return self._refuse("Missing required parameter: domainId", "400")
        if not isinstance(body.get("msg"), str) or not body["msg"].strip():
            return self._refuse("Missing required parameter: msg", "400")
        session_id = body.get("sessionId")
        if not isinstance(session_id, int) or session_id not in self.sessions or session_id in self.broken_sessions:
            return self._refuse("Session does not exist", "404")
        if any(q.session_id == session_id and not q.finished for q in self.questions.values()):
            self.concurrent_questions += 1
        question_id = self._next_question
        self._next_question += 1
        script = copy.deepcopy(self.script) if self.script is not None else self.script_factory(question_id, body["msg"])
        self.questions[question_id] = FakeQuestion(question_id, session_id, body["msg"], script)
        return self._ok({"questionId": question_id, "sessionId": session_id, "status": "running"})

    async def _poll(self, request: web.Request) -> web.Response:
        rec, answer = await self._admit(request, "poll")
        if answer is not None:
            return answer
        question = self.questions.get(rec.body.get("questionId"))
        if question is None:
            return self._refuse("questionId does not exist", "404")
        self.poll_count += 1
        question.polls += 1
        if question.stopped and not self.ignore_stop:
            if not question.finished:
                question.items.append({"id": str(question.question_id * 100 + 99), "dataType": "finish_stop",
                                       "message": "Analysis stopped by user"})
        elif not question.finished:
            self._progress(question)
        return self._ok({"responses": copy.deepcopy(question.items)})

    def _progress(self, question: FakeQuestion) -> None:
        """How far an analysis gets at a poll: one more step, unless held (a subclass may pace it
        differently, e.g. by the clock)."""
        held = (self._hold_at is not None and question.step >= self._hold_at
                and self._released is not None and not self._released.is_set())
        if not held and question.step < len(question.script):
            question.advance()

    async def _stop(self, request: web.Request) -> web.Response:
        rec, answer = await self._admit(request, "stop")
        if answer is not None:
            return answer
        question = self.questions.get(rec.body.get("questionId"))
        if question is None:
            return self._refuse("questionId does not exist", "404")
        if question.finished or question.stopped:
            return self._refuse("Question already completed", "400")
        question.stopped = True
        return self._ok(with_data=False)
