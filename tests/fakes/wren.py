"""A loopback fake of the Wren AI / Legible ``osk-`` API (``/api/v1``), honest to backends.md §3.

What it reproduces from the code (not the docs):

* auth first (``withApiKeyAuth``): 401 ``{error, message}`` with no ``id``/``code``; a 429
  from the rate limiter with ``Retry-After`` (only when ``retryAfterMs`` is non-zero),
  ``X-RateLimit-*`` headers and ``{error, message, retryAfterMs, resetAt}``;
* handler validation: 405 ``{"id","error":"Method not allowed"}``, 400 ``Question is required``,
  ``SQL is required``, ``Invalid sampleSize``;
* ``/ask`` 200 ``{id, sql, summary, threadId}`` with the summary still JSON-escaped (a literal
  ``\\n``), or ``{id, type:"NON_SQL_QUERY", explanation, threadId}``; errors
  ``{id, code, error, …extra}``; ``POLLING_TIMEOUT`` as HTTP 500;
* ``/generate_vega_chart`` 200 ``{id, threadId, vegaSpec}`` where the spec went through a port of
  ``enhanceVegaSpec`` (``width:"container"``, config, hover params, colour channel…);
* ``/run_sql`` 200 ``{id, records, columns: [{name, type}], threadId, totalRows}`` where
  ``totalRows`` counts the rows *returned* (at most ``limit``, default 1000), not the result;
  ``SQL is required`` / ``INVALID_SQL_ERROR`` as 400s. Logged under the thread, but it adds no
  context (only SQL answers do);
* ``/stream/ask``: ``data:`` events only (no ``event:`` names), errors in-band with HTTP 200;
  ``FakeWren(stream=False)`` is a server without the route (404, as an older deployment);
* ``threadId``: a UUID when none is given; context per thread = earlier SQL answers;
* keys and projects (``apiKeyAuth.ts``, ``getCurrentProject``): ``api_key`` is a ``psk-`` project
  key (the server sets ``X-Project-Id`` to the key's project, ``key_project``); ``org_key`` is an
  ``osk-`` organisation key that must send ``X-Project-Id`` — missing or unknown, the server
  silently answers from its lowest-id project. Each recorded request notes the project that
  answered it (``RecordedRequest.project``).

Summaries with emoji, CJK and RTL text: ``script_ask_multilingual()`` scripts the next ``/ask``
(or ``/stream/ask``) with :data:`MULTILINGUAL_SUMMARY` — escaped exactly as the server sends it,
astral characters as ``\\ud83d\\ude00``-style surrogate pairs — and the reader must see
:data:`MULTILINGUAL_SUMMARY_TEXT`. ``FakeWren(summary=MULTILINGUAL_SUMMARY)`` makes it every
answer's summary (for platform end-to-end tests and benchmarks).

Tests script the next answers (``script_*``) and read ``requests``; ``hold_ask`` keeps an
``/ask`` open until released, and ``wait_for_request`` / ``wait_for_cancel`` let tests wait on
events instead of sleeping.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from tests.fakes.loopback import serve
from multidict import CIMultiDict

API = "/api/v1"
ASK = f"{API}/ask"
STREAM_ASK = f"{API}/stream/ask"
CHART = f"{API}/generate_vega_chart"
RUN_SQL = f"{API}/run_sql"

# A project key (the server pins X-Project-Id to its project) and an organisation key (the client
# must name the project). Both formats: prefix + 64 hex characters.
DEFAULT_API_KEY = "psk-" + "0123456789abcdef" * 4
ORG_API_KEY = "osk-" + "fedcba9876543210" * 4
DEFAULT_PROJECTS = ("1", "7")

NO_RELEVANT_DATA_TEXT = ("I can't find the exact data you're looking for, but feel free to ask "
                         "about other available topics.")
NO_DEPLOYMENT_TEXT = "No deployment found, please deploy your project first"
NO_CHART_TEXT = ("The chart couldn't be generated this time. Please try regenerating the chart "
                 "or rephrasing your question for better results.")
CANNOT_GENERATE_SQL_TEXT = "Cannot generate SQL from this question."

AUTH_REQUIRED = {"error": "Authentication required",
                 "message": "Provide an API key or session token via Authorization: Bearer <token>"}
INVALID_KEY = {"error": "Invalid API key",
               "message": "The provided API key is invalid, expired, or revoked"}
INVALID_SESSION = {"error": "Invalid session",
                   "message": "The provided session token is invalid or expired"}
AUTH_SERVER_ERROR = {"error": "Internal server error", "message": "Failed to validate API key"}
FORBIDDEN = {"error": "Forbidden", "message": "You do not have access to this project"}

DEFAULT_SQL = (
    "SELECT c.customer_state, SUM(p.payment_value) AS total_payment_value "
    "FROM olist_customers_dataset AS c "
    "JOIN olist_orders_dataset AS o ON o.customer_id = c.customer_id "
    "JOIN olist_order_payments_dataset AS p ON p.order_id = o.order_id "
    "GROUP BY c.customer_state ORDER BY total_payment_value DESC LIMIT 5"
)
# As /ask sends it: cut out of the AI's JSON by a regex, so escapes are still in the text.
DEFAULT_SUMMARY = (
    "S\\u00e3o Paulo (SP) leads with R$5,218,263 in payments.\\n\\n"
    "- RJ: R$1,886,761\\n- MG: R$1,872,257\\n- RS: R$890,898\\n- PR: R$811,156\\n\\n"
    "The \\\"top 5\\\" states account for more than 60% of all payments."
)
DEFAULT_ROWS: list[dict[str, Any]] = [
    {"customer_state": "SP", "total_payment_value": 5218263.12},
    {"customer_state": "RJ", "total_payment_value": 1886761.45},
    {"customer_state": "MG", "total_payment_value": 1872257.26},
    {"customer_state": "RS", "total_payment_value": 890898.54},
    {"customer_state": "PR", "total_payment_value": 811156.38},
]
DEFAULT_LLM_CHART = {
    "title": "Total Payments by Customer State",
    "mark": {"type": "bar"},
    "encoding": {
        "x": {"field": "customer_state", "type": "nominal", "title": "State"},
        "y": {"field": "total_payment_value", "type": "quantitative", "title": "Total Payments"},
    },
}
DEFAULT_COLUMNS: list[dict[str, str]] = [
    {"name": "customer_state", "type": "VARCHAR"},
    {"name": "total_payment_value", "type": "DOUBLE"},
]

# What the reader must see, and (below) what the server sends: the AI's JSON text cut out with a
# regex, so still escaped with ASCII-only escapes — astral characters as surrogate pairs.
MULTILINGUAL_SUMMARY_TEXT = (
    "📈 São Paulo leads 👍🏽 — 北京 second, 𠀀 third.\n"
    "Households 👨‍👩‍👧‍👦 grew; flags 🇧🇷🇯🇵.\n"
    "العربية: المبيعات ارتفعت ١٢٪ — עברית: המכירות עלו \"מאוד\"."
)
MULTILINGUAL_SUMMARY = json.dumps(MULTILINGUAL_SUMMARY_TEXT, ensure_ascii=True)[1:-1]

DEFAULT_EXPLANATION = (
    "I can help you analyze data from your connected database.\\n"
    "Try asking about specific metrics, trends, or comparisons."
)

# -- a port of wren-ui's enhanceVegaSpec (src/utils/vegaSpecUtils.ts) -------------------------

_COLOR_SCHEME = ["#7763CF", "#444CE7", "#1570EF", "#0086C9", "#3E4784",
                 "#E31B54", "#EC4A0A", "#EF8D0C", "#EBC405", "#5381AD"]
_DEFAULT_COLOR = _COLOR_SCHEME[2]
_VEGA_CONFIG: dict[str, Any] = {
    "mark": {"tooltip": True},
    "font": "Roboto, Arial, Noto Sans, sans-serif",
    "padding": {"top": 30, "bottom": 20, "left": 0, "right": 0},
    "title": {"color": "#262626", "fontSize": 14},
    "axis": {"labelPadding": 0, "labelOffset": 0, "labelFontSize": 10, "gridColor": "#d9d9d9",
             "titleColor": "#434343", "labelColor": "#65676c",
             "labelFont": " Roboto, Arial, Noto Sans, sans-serif"},
    "axisX": {"labelAngle": -45},
    "line": {"color": _DEFAULT_COLOR},
    "bar": {"color": _DEFAULT_COLOR},
    "legend": {"symbolLimit": 15, "columns": 1, "labelFontSize": 10, "labelColor": "#65676c",
               "titleColor": "#434343", "titleFontSize": 14},
    "range": {k: list(_COLOR_SCHEME) for k in
              ("category", "ordinal", "diverging", "symbol", "heatmap", "ramp")},
    "point": {"size": 60, "color": _DEFAULT_COLOR},
}


def bar_chart_spec(rows: int, title: str = "Revenue by store") -> dict[str, Any]:
    """A bar chart exactly as ``/generate_vega_chart`` shapes it (hover params, a colour per
    bar, ``width: "container"``), with ``rows`` bars: what charts and benchmarks render."""
    llm = {"title": title, "mark": {"type": "bar"},
           "encoding": {"x": {"field": "store", "type": "nominal", "title": "Store"},
                        "y": {"field": "revenue", "type": "quantitative", "title": "Revenue"}}}
    data = [{"store": f"store-{i:04d}", "revenue": (i * 7919) % 10_000 + 100} for i in range(rows)]
    return enhance_vega_spec(llm, data)


def enhance_vega_spec(llm_spec: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What the server does to the LLM's chart schema before answering (keys absent in JS stay absent)."""
    spec = copy.deepcopy(llm_spec)
    params: list[dict[str, Any]] = [{"name": "hover", "select": {
        "type": "point", "on": "mouseover", "clear": "mouseout"}}]
    out: dict[str, Any] = {"$schema": "https://vega.github.io/schema/vega-lite/v5.json",
                           "config": copy.deepcopy(_VEGA_CONFIG)}
    if spec.get("title") is not None:
        out["title"] = spec["title"]
    out["data"] = {"values": rows}
    mark = None
    if "mark" in spec:
        raw = spec["mark"]
        mark = {"type": raw} if isinstance(raw, str) else {"type": (raw or {}).get("type")}
        if mark["type"] == "line":
            mark["point"] = True
        elif mark["type"] == "arc":
            mark["innerRadius"] = 60
        out["mark"] = mark
    out.update({"width": "container", "height": "container",
                "autosize": {"type": "fit", "contains": "padding"}})
    if "encoding" in spec:
        enc = dict(spec["encoding"])
        if not enc.get("color"):
            axis = next((a for a in ("x", "y") if (enc.get(a) or {}).get("type") == "nominal"), None)
            if axis:
                cat = enc[axis]
                enc["color"] = {"field": cat.get("field"), "type": cat.get("type"),
                                "title": cat.get("title") or cat.get("field"),
                                "scale": {"range": list(_COLOR_SCHEME)}}
        elif not enc["color"].get("scale"):
            enc["color"]["scale"] = {"range": list(_COLOR_SCHEME)}
        if (enc.get("color") or {}).get("field"):
            params[0]["select"]["fields"] = [enc["color"]["field"]]
        if mark and mark.get("type") == "bar" and isinstance(enc.get("y"), dict) and "stack" in enc["y"]:
            enc["y"]["stack"] = "zero"
        if not enc.get("opacity"):
            enc["opacity"] = {"condition": {"param": "hover", "value": 1}, "value": 0.3}
        out["encoding"] = enc
    out["params"] = params
    return out


def infer_columns(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """``[{name, type}]`` for rows, in the first row's key order, typed as the engine would."""
    if not rows:
        return []
    out = []
    for name, value in rows[0].items():
        if isinstance(value, bool):
            kind = "BOOLEAN"
        elif isinstance(value, int):
            kind = "BIGINT"
        elif isinstance(value, float):
            kind = "DOUBLE"
        else:
            kind = "VARCHAR"
        out.append({"name": name, "type": kind})
    return out


# -- recording and scripting ----------------------------------------------------------------

@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: CIMultiDict[str]
    json: Any
    query: dict[str, str]
    project: str | None = None  # the project that answered (after authentication)


@dataclass
class ThreadTurn:
    question: str
    sql: str | None = None


@dataclass
class _Script:
    """One scripted reply. ``kind``: sql | non_sql | error | rate_limit | raw | chart | chart_error |
    run_sql | run_sql_error."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def before_handler(self) -> bool:
        # The rate limiter and raw replies (proxies, crashes) answer before validation runs.
        return self.kind in ("rate_limit", "raw", "auth")


def _endpoint(name: str) -> str:
    aliases = {"ask": ASK, "chart": CHART, "generate_vega_chart": CHART, "stream/ask": STREAM_ASK,
               "run_sql": RUN_SQL}
    if name in aliases:
        return aliases[name]
    return name if name.startswith("/api/") else f"{API}/{name.lstrip('/')}"


def _script_key(name: str) -> str:
    """Scripts, delays and holds for ``/ask`` also drive ``/stream/ask`` (one answer, two wires)."""
    key = _endpoint(name)
    return ASK if key == STREAM_ASK else key


def _observed(request_path: str, asked_for: str) -> bool:
    """Whether a request at ``request_path`` is one a test asking about ``asked_for`` means:
    ``"ask"`` is the question on either wire, so tests hold whatever ``WREN_STREAM`` says."""
    wanted = _endpoint(asked_for)
    return request_path == wanted or (wanted == ASK and request_path == STREAM_ASK)


def _uid() -> str:
    return str(uuid.uuid4())


class FakeWren:
    """The fake server. ``async with FakeWren() as fake: base = fake.base_url``."""

    def __init__(self, api_key: str = DEFAULT_API_KEY, *, chart_rows: list[dict[str, Any]] | None = None,
                 columns: list[dict[str, str]] | None = None, summary: str = DEFAULT_SUMMARY,
                 stream: bool = True, org_key: str = ORG_API_KEY,
                 projects: tuple[str, ...] = DEFAULT_PROJECTS, key_project: str = "7") -> None:
        """``chart_rows`` are the result rows of every query (chart data and ``/run_sql``);
        ``columns`` their ``[{name, type}]`` (inferred from the rows when not given);
        ``summary`` is the (escaped) summary of unscripted SQL answers."""
        self.api_key = api_key
        self.org_key = org_key
        self.projects = tuple(sorted(projects, key=int))
        self.key_project = key_project
        self.requests: list[RecordedRequest] = []
        self.cancelled: list[RecordedRequest] = []  # requests whose client went away mid-answer
        self.threads: dict[str, list[ThreadTurn]] = {}
        self.chart_rows = chart_rows if chart_rows is not None else list(DEFAULT_ROWS)
        self.columns = columns if columns is not None else (
            list(DEFAULT_COLUMNS) if chart_rows is None else infer_columns(self.chart_rows))
        self.summary = summary
        self.stream = stream
        self._scripts: dict[str, deque[_Script]] = {ASK: deque(), CHART: deque(), RUN_SQL: deque()}
        self._delays: dict[str, deque[float]] = {ASK: deque(), CHART: deque(), RUN_SQL: deque()}
        self._holds: dict[str, deque[asyncio.Event]] = {ASK: deque(), CHART: deque(), RUN_SQL: deque()}
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", ASK, self._ask)
        app.router.add_route("*", STREAM_ASK, self._stream_ask if self.stream else self._no_route)
        app.router.add_route("*", CHART, self._chart)
        app.router.add_route("*", RUN_SQL, self._run_sql)
        self._runner, port = await serve(app)
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def close(self) -> None:
        for holds in self._holds.values():
            for event in holds:
                event.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "FakeWren":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- scripting ----------------------------------------------------------------------------
    def script_ask(self, sql: str = DEFAULT_SQL, summary: str | None = None) -> None:
        """Next ``/ask``: an SQL answer. ``summary`` is sent as given (put escapes in it yourself)."""
        self._scripts[ASK].append(_Script("sql", {"sql": sql, "summary": self.summary if summary is None else summary}))

    def script_ask_multilingual(self, sql: str = DEFAULT_SQL) -> None:
        """Next ``/ask``: an SQL answer whose summary has emoji (ZWJ sequences, skin tones, flags),
        CJK and RTL text, escaped as the server sends it (:data:`MULTILINGUAL_SUMMARY`)."""
        self.script_ask(sql=sql, summary=MULTILINGUAL_SUMMARY)

    def script_run_sql(self, records: list[dict[str, Any]] | None = None,
                       columns: list[dict[str, str]] | None = None) -> None:
        """Next ``/run_sql``: these records and columns (else the fake's rows), cut to ``limit``."""
        self._scripts[RUN_SQL].append(_Script("run_sql", {"records": records, "columns": columns}))

    def script_run_sql_error(self, status: int = 400, code: str | None = "INVALID_SQL_ERROR",
                             error: str = "Error executing SQL query") -> None:
        self._scripts[RUN_SQL].append(_Script("run_sql_error", {"status": status, "code": code,
                                                                "error": error}))

    def script_ask_non_sql(self, explanation: str = DEFAULT_EXPLANATION, type: str = "NON_SQL_QUERY") -> None:
        """Next ``/ask``: a non-SQL answer (the code says ``NON_SQL_QUERY``, the docs ``EXPLANATION``)."""
        self._scripts[ASK].append(_Script("non_sql", {"explanation": explanation, "type": type}))

    def script_ask_error(self, status: int | None = None, code: str | None = None,
                         error: str | None = None, **extra: Any) -> None:
        """Next ``/ask``: ``{id, code?, error, **extra}``. Status defaults to 500 for POLLING_TIMEOUT, else 400."""
        if status is None:
            status = 500 if code == "POLLING_TIMEOUT" else 400
        if error is None:
            error = {
                "NO_RELEVANT_DATA": NO_RELEVANT_DATA_TEXT,
                "NO_DEPLOYMENT_FOUND": NO_DEPLOYMENT_TEXT,
                "NON_SQL_QUERY": CANNOT_GENERATE_SQL_TEXT,
                "POLLING_TIMEOUT": "Timeout waiting for SQL generation",
            }.get(code or "", "No SQL generated" if code is None else "Something went wrong")
        self._scripts[ASK].append(_Script("error", {"status": status, "code": code,
                                                    "error": error, "extra": extra}))

    def script_rate_limit(self, retry_after: float = 1, *, quota: bool = False,
                          endpoint: str = "ask", limit: int = 60) -> None:
        """Next request to ``endpoint``: the limiter's 429 (quota variant: no ``Retry-After``)."""
        self._scripts[_script_key(endpoint)].append(_Script("rate_limit", {
            "retry_after": retry_after, "quota": quota, "limit": limit}))

    def script_auth_error(self, status: int = 401, body: dict[str, str] | None = None,
                          endpoint: str = "ask") -> None:
        """Next request: an auth-layer failure, e.g. ``(403, FORBIDDEN)`` or ``(500, AUTH_SERVER_ERROR)``."""
        self._scripts[_script_key(endpoint)].append(_Script("auth", {
            "status": status, "body": body or INVALID_KEY}))

    def script_raw(self, status: int, body: str | bytes, content_type: str = "text/html",
                   endpoint: str = "ask", headers: dict[str, str] | None = None) -> None:
        """Next request: exactly these bytes (a proxy page, a crash, a malformed answer)."""
        self._scripts[_script_key(endpoint)].append(_Script("raw", {
            "status": status, "body": body if isinstance(body, bytes) else body.encode(),
            "content_type": content_type, "headers": headers or {}}))

    def script_chart(self, spec: dict[str, Any] | None = None, *,
                     llm_spec: dict[str, Any] | None = None) -> None:
        """Next chart: ``spec`` verbatim as ``vegaSpec``, or ``llm_spec`` run through enhance_vega_spec."""
        self._scripts[CHART].append(_Script("chart", {"spec": spec, "llm_spec": llm_spec}))

    def script_chart_empty(self) -> None:
        """Next chart: the LLM gave ``{}`` — a 200 whose spec has no ``mark``/``encoding``."""
        self.script_chart(llm_spec={})

    def script_chart_error(self, status: int | None = None,
                           code: str | None = "FAILED_TO_GENERATE_VEGA_SCHEMA",
                           error: str | None = None) -> None:
        if status is None:
            status = 500 if code in ("POLLING_TIMEOUT", None) else 400
        if error is None:
            error = {
                "FAILED_TO_GENERATE_VEGA_SCHEMA": NO_CHART_TEXT,
                "POLLING_TIMEOUT": "Timeout waiting for Vega spec generation",
                "INVALID_SQL_ERROR": "Error executing SQL query",
            }.get(code or "", "Failed to generate Vega spec")
        self._scripts[CHART].append(_Script("chart_error", {"status": status, "code": code,
                                                            "error": error}))

    def script_delay(self, seconds: float, endpoint: str = "ask") -> None:
        """The next request to ``endpoint`` answers only after ``seconds``."""
        self._delays[_script_key(endpoint)].append(seconds)

    def hold_ask(self, endpoint: str = "ask") -> asyncio.Event:
        """The next ``/ask`` (or ``/stream/ask``) waits, after being recorded, until the event is set."""
        event = asyncio.Event()
        self._holds[_script_key(endpoint)].append(event)
        return event

    # -- observing ----------------------------------------------------------------------------
    def requests_to(self, path: str) -> list[RecordedRequest]:
        """Requests to ``path``. ``"ask"`` means the question, whichever wire carried it
        (``/ask`` or ``/stream/ask``); name ``STREAM_ASK`` to see the stream alone."""
        return [r for r in self.requests if _observed(r.path, path)]

    def context_for(self, thread_id: str) -> list[dict[str, str]]:
        """What Wren would send the AI as history for this thread: earlier SQL answers only."""
        return [{"question": t.question, "sql": t.sql}
                for t in self.threads.get(thread_id, []) if t.sql]

    async def wait_for_request(self, path: str, count: int = 1, timeout: float = 5.0) -> RecordedRequest:
        """Wait until ``count`` requests to ``path`` have arrived; return the ``count``-th."""
        return await self._wait(lambda: self.requests, path, count, timeout)

    async def wait_for_cancel(self, path: str = ASK, count: int = 1, timeout: float = 5.0) -> RecordedRequest:
        """Wait until the client of ``count`` requests to ``path`` went away before the answer."""
        return await self._wait(lambda: self.cancelled, path, count, timeout)

    async def _wait(self, source: Any, path: str, count: int, timeout: float) -> RecordedRequest:
        def matching() -> list[RecordedRequest]:
            return [r for r in source() if _observed(r.path, path)]

        async def wait() -> RecordedRequest:
            async with self._changed:
                await self._changed.wait_for(lambda: len(matching()) >= count)
                return matching()[count - 1]

        return await asyncio.wait_for(wait(), timeout)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- shared request handling --------------------------------------------------------------
    async def _record(self, request: web.Request) -> RecordedRequest:
        try:
            body = await request.json() if request.can_read_body else None
        except (ValueError, UnicodeDecodeError):
            body = None
        rec = RecordedRequest(request.method, request.path, CIMultiDict(request.headers), body,
                              dict(request.query))
        self.requests.append(rec)
        await self._notify()
        return rec

    def _auth_failure(self, request: web.Request, rec: RecordedRequest) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.startswith("Bearer ") else request.query.get("access_token", "")
        if not token:
            return web.json_response(AUTH_REQUIRED, status=401)
        if token.startswith(("osk-", "psk-")):
            if token not in (self.api_key, self.org_key):
                return web.json_response(INVALID_KEY, status=401)
            rec.project = self._project(token, request.headers.get("X-Project-Id"))
            return None
        return web.json_response(INVALID_SESSION, status=401)

    def _project(self, token: str, header: str | None) -> str:
        """``psk-``: the key's own project (the header is overwritten). ``osk-``: the header's
        project — or, missing or unknown, the lowest-id project, silently."""
        if token.startswith("psk-"):
            return self.key_project
        named = (header or "").strip()
        return named if named in self.projects else self.projects[0]

    async def _pause(self, endpoint: str) -> None:
        if self._delays[endpoint]:
            await asyncio.sleep(self._delays[endpoint].popleft())
        if self._holds[endpoint]:
            await self._holds[endpoint].popleft().wait()

    def _next_script(self, endpoint: str, *, before_handler: bool) -> _Script | None:
        queue = self._scripts[endpoint]
        if queue and queue[0].before_handler == before_handler:
            return queue.popleft()
        return None

    @staticmethod
    def _error(status: int, error: str, code: str | None = None, **extra: Any) -> web.Response:
        body: dict[str, Any] = {"id": _uid()}
        if code:
            body["code"] = code
        body["error"] = error
        body.update(extra)
        return web.json_response(body, status=status)

    def _early_reply(self, script: _Script) -> web.Response:
        data = script.data
        if script.kind == "raw":
            return web.Response(status=data["status"], body=data["body"],
                                content_type=None, headers={"Content-Type": data["content_type"],
                                                            **data["headers"]})
        if script.kind == "auth":
            return web.json_response(data["body"], status=data["status"])
        # rate_limit, as apiKeyAuth.ts writes it
        now = datetime.now(timezone.utc)
        headers = {"X-RateLimit-Limit": str(data["limit"]), "X-RateLimit-Remaining": "0"}
        if data["quota"]:
            first_next_month = (now.replace(day=1) + timedelta(days=32)).replace(
                day=1, hour=0, minute=0, second=0, microsecond=0)
            reset_at = first_next_month.isoformat().replace("+00:00", "Z")
            headers["X-RateLimit-Reset"] = reset_at
            body = {"error": "Rate limit exceeded", "message": "Monthly token quota exceeded",
                    "resetAt": reset_at}
        else:
            retry_ms = int(round(data["retry_after"] * 1000))
            reset_at = (now + timedelta(milliseconds=retry_ms)).isoformat(
                timespec="milliseconds").replace("+00:00", "Z")
            headers["X-RateLimit-Reset"] = reset_at
            if retry_ms:
                headers["Retry-After"] = str(math.ceil(retry_ms / 1000))
            body = {"error": "Rate limit exceeded",
                    "message": "Rate limit exceeded: too many requests per minute",
                    "retryAfterMs": retry_ms, "resetAt": reset_at}
        return web.json_response(body, status=429, headers=headers)

    async def _guarded(self, request: web.Request,
                       endpoint: str) -> tuple[RecordedRequest, web.Response | None, bool]:
        """Record, authenticate, pause as scripted, apply early scripts and generic validation.

        Returns the record, a reply if one is due already, and whether that reply comes from the
        handler's own validation (which ``/stream/*`` writes in-band) rather than the auth layer.
        """
        rec = await self._record(request)
        failure = self._auth_failure(request, rec)
        if failure is not None:
            return rec, failure, False
        try:
            await self._pause(endpoint)
        except asyncio.CancelledError:
            self.cancelled.append(rec)
            await asyncio.shield(self._notify())
            raise
        early = self._next_script(endpoint, before_handler=True)
        if early is not None:
            return rec, self._early_reply(early), False
        if request.method != "POST":
            return rec, self._error(405, "Method not allowed"), True
        body = rec.json if isinstance(rec.json, dict) else {}
        if not body.get("question"):
            return rec, self._error(400, "Question is required"), True
        return rec, None, False

    # -- /ask -----------------------------------------------------------------------------------
    def _ask_outcome(self, body: dict[str, Any]) -> tuple[str, _Script]:
        thread_id = body.get("threadId") or _uid()
        script = self._next_script(ASK, before_handler=False) or _Script(
            "sql", {"sql": DEFAULT_SQL, "summary": self.summary})
        sql = script.data.get("sql") if script.kind == "sql" else None
        self.threads.setdefault(thread_id, []).append(ThreadTurn(str(body["question"]), sql))
        return thread_id, script

    async def _ask(self, request: web.Request) -> web.Response:
        rec, reply, _ = await self._guarded(request, ASK)
        if reply is not None:
            return reply
        thread_id, script = self._ask_outcome(rec.json)
        data = script.data
        if script.kind == "sql":
            return web.json_response({"id": _uid(), "sql": data["sql"], "summary": data["summary"],
                                      "threadId": thread_id})
        if script.kind == "non_sql":
            return web.json_response({"id": _uid(), "type": data["type"],
                                      "explanation": data["explanation"], "threadId": thread_id})
        return self._error(data["status"], data["error"], data["code"], **data["extra"])

    async def _no_route(self, request: web.Request) -> web.Response:
        """A deployment without this route: Next.js's 404 page (recorded, so tests can see it)."""
        await self._record(request)
        return web.Response(status=404, content_type="text/html",
                            text="<!DOCTYPE html><html><body><h1>404</h1>"
                                 "<h2>This page could not be found.</h2></body></html>")

    # -- /stream/ask ----------------------------------------------------------------------------
    async def _stream_ask(self, request: web.Request) -> web.StreamResponse:
        rec, reply, in_band = await self._guarded(request, ASK)
        if reply is not None and not in_band:
            return reply
        start = time.monotonic()
        if reply is not None:
            # Validation failures are still written as SSE events, with status 200 and no SSE type.
            error = json.loads(reply.body)["error"]
            resp = web.StreamResponse(status=200)
            await resp.prepare(request)
            await self._send(resp, {"type": "error", "data": {"error": error}})
            await self._send(resp, {"type": "message_stop", "data": {"threadId": _uid(), "duration": 0}})
            await resp.write_eof()
            return resp
        body = rec.json
        given_thread = body.get("threadId")
        thread_id, script = self._ask_outcome(body)
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream",
                                                       "Cache-Control": "no-cache"})
        await resp.prepare(request)
        try:
            await self._send(resp, {"type": "message_start"})
            await self._state(resp, "sql_generation_start", question=body["question"],
                              threadId=thread_id, language=body.get("language") or "English")
            await self._state(resp, "sql_generation_understanding", pollCount=1, traceId=_uid())
            data = script.data
            if script.kind == "sql":
                await self._state(resp, "sql_generation_searching", pollCount=3,
                                  rephrasedQuestion=body["question"], intentReasoning="Asks for data.",
                                  retrievedTables=["olist_customers_dataset"])
                await self._state(resp, "sql_generation_planning", pollCount=5,
                                  sqlGenerationReasoning="1. Join payments to customers.")
                await self._state(resp, "sql_generation_generating", pollCount=7)
                await self._state(resp, "sql_generation_finished", pollCount=9)
                await self._state(resp, "sql_generation_success", sql=data["sql"])
                await self._state(resp, "sql_execution_start", sql=data["sql"])
                await self._state(resp, "sql_execution_end")
                await self._block(resp, "summary_generation", data["summary"])
            elif script.kind == "non_sql":
                await self._state(resp, "sql_generation_finished", pollCount=3)
                await self._block(resp, "explanation", data["explanation"])
            else:
                await self._state(resp, "sql_generation_failed", pollCount=3)
                code = data["code"] or "OTHERS"
                text = "Request timeout" if code == "POLLING_TIMEOUT" else data["error"]
                await self._send(resp, {"type": "error", "data": {"error": text, "code": code,
                                                                  **data["extra"]}})
                thread_id = given_thread or _uid()  # sseUtils: threadId || uuidv4() on errors
            await self._send(resp, {"type": "message_stop", "data": {
                "threadId": thread_id, "duration": int((time.monotonic() - start) * 1000)}})
            await resp.write_eof()
        except asyncio.CancelledError:
            self.cancelled.append(rec)
            await asyncio.shield(self._notify())
            raise
        return resp

    @staticmethod
    async def _send(resp: web.StreamResponse, event: dict[str, Any]) -> None:
        event.setdefault("timestamp", int(time.time() * 1000))
        await resp.write(f"data: {json.dumps(event)}\n\n".encode())

    async def _state(self, resp: web.StreamResponse, state: str, **extra: Any) -> None:
        await self._send(resp, {"type": "state", "data": {"state": state, **extra}})

    async def _block(self, resp: web.StreamResponse, name: str, text: str) -> None:
        await self._send(resp, {"type": "content_block_start",
                                "content_block": {"type": "text", "name": name}})
        # Split at arbitrary points, escapes included, as the regex-cut AI chunks are.
        step = max(1, len(text) // 3)
        for i in range(0, len(text), step):
            await self._send(resp, {"type": "content_block_delta",
                                    "delta": {"type": "text_delta", "text": text[i:i + step]}})
        await self._send(resp, {"type": "content_block_stop"})

    # -- /run_sql -------------------------------------------------------------------------------
    async def _run_sql(self, request: web.Request) -> web.Response:
        # run_sql.ts checks the method and the SQL before anything else, then runs the query
        # with ``limit`` (no validation; default 1000). Context is not extended by it.
        rec = await self._record(request)
        failure = self._auth_failure(request, rec)
        if failure is not None:
            return failure
        try:
            await self._pause(RUN_SQL)
        except asyncio.CancelledError:
            self.cancelled.append(rec)
            await asyncio.shield(self._notify())
            raise
        early = self._next_script(RUN_SQL, before_handler=True)
        if early is not None:
            return self._early_reply(early)
        if request.method != "POST":
            return self._error(405, "Method not allowed")
        body = rec.json if isinstance(rec.json, dict) else {}
        if not body.get("sql"):
            return self._error(400, "SQL is required")
        limit = body.get("limit", 1000)
        script = self._next_script(RUN_SQL, before_handler=False) or _Script("run_sql", {})
        data = script.data
        if script.kind == "run_sql_error":
            return self._error(data["status"], data["error"], data["code"])
        records = data.get("records")
        records = list(self.chart_rows if records is None else records)
        columns = data.get("columns") or (self.columns if data.get("records") is None
                                          else infer_columns(records))
        if isinstance(limit, int) and not isinstance(limit, bool) and limit >= 0:
            records = records[:limit]
        return web.json_response({"id": _uid(), "records": records, "columns": columns,
                                  "threadId": body.get("threadId") or _uid(),
                                  "totalRows": len(records)})

    # -- /generate_vega_chart -------------------------------------------------------------------
    async def _chart(self, request: web.Request) -> web.Response:
        rec, reply, _ = await self._guarded(request, CHART)
        if reply is not None:
            return reply
        body = rec.json
        if not body.get("sql"):
            return self._error(400, "SQL is required")
        sample_size = body.get("sampleSize", 10000)
        if (not isinstance(sample_size, int) or isinstance(sample_size, bool)
                or not 0 < sample_size <= 1_000_000):
            return self._error(400, "Invalid sampleSize")
        thread_id = body.get("threadId") or _uid()
        script = self._next_script(CHART, before_handler=False) or _Script("chart", {})
        data = script.data
        if script.kind == "chart_error":
            return self._error(data["status"], data["error"], data["code"])
        spec = data.get("spec")
        if spec is None:
            llm = data.get("llm_spec")
            spec = enhance_vega_spec(DEFAULT_LLM_CHART if llm is None else llm,
                                     self.chart_rows[:sample_size])
        return web.json_response({"id": _uid(), "threadId": thread_id, "vegaSpec": spec})
