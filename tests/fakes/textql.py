"""A loopback fake of TextQL Ana, honest to seed 002 and backends.md §2.

Legacy surface (seed 002):

* Basic auth ``base64(member_id:api_key)`` on every ``/api/ana…`` route (the chat summary/detail
  examples in the seed use ``Bearer <api_key>``, so those two routes accept that too). A failure
  is HTTP 401 with the only error body TextQL documents, ``{"error": {"code", "message"}}``.
* ``GET /api/ana``: ``text/event-stream`` with named events ``chatId``, ``userMsgId``,
  ``assistantMsgId``, ``block`` (re-sent with the same id as it grows; the seed's second block
  is ``event: block `` with a trailing space, kept here) and ``message`` = ``"done"``. Bytes are
  written in awkward pieces (mid-line, inside UTF-8 sequences, between ``\\r`` and ``\\n``), lines
  end in ``\\n`` or ``\\r\\n`` alternately, and keep-alive comments come in between.
* ``GET /api/ana/chat/summary`` and ``GET /api/ana/:chat_id``: the seed's example bodies.

v2 surface (§2.3): Bearer auth, ``POST /v2/chats/stream`` (``data:``-only events: metadata,
text deltas, cells, assets, done; ``model`` with ``chat_id`` → 400; unknown ``chat_id`` → 404),
``POST /v2/chats/{id}/cancel`` → ``{"cancelled": bool}``, ``GET /v2/chats``, ``GET /v2/chats/{id}``.
``GET /v2/chats/{id}`` is the archived v2 OpenAPI's ``GetChatResponse``: ``{"chat": {"id",
"model"}, "messages": [ChatMessage{role, content, created_at, cell_id, assets}], "assets":
[Asset{…, message_cell_id}]}``. What it holds is what Ana *produced* for each question — the whole
script, not what reached the client — so a stream cut short can be recovered from it: every run
of text deltas between two steps is one markdown cell, i.e. one assistant message with its own
``cell_id``; the run's assets belong to its last assistant message. Asset URLs are "freshly
signed on every fetch" (``?sig=N`` changes on every GET).

Images: ``GET /images/{name}`` serves :attr:`FakeTextQL.images` without auth (signed URLs), and
``GET /redirect/{name}`` answers 302 to :attr:`FakeTextQL.redirects` ``[name]``.

Fault knobs: ``fail_status`` (every API route), ``fail_once`` (the next requests, one status
each), ``end_without_done``, ``malformed_block`` (one event whose data is not JSON, early in the
stream) or ``malformed_at`` (the same before script event N; ``malformed_data`` is what it
carries), ``silent_after`` (send nothing after N events until :attr:`release` is set),
``hold_after`` (keep the stream alive with keep-alive comments after N events until released),
``cut_after`` (end the stream cleanly after N events: no ``done``), ``break_after`` (drop the
connection after N events, mid-chunk), ``get_chat_status`` (``GET /v2/chats/{id}`` answers this
error status) and ``answer_pending`` (``GET /v2/chats/{id}`` does not show the latest question's
answer yet). A client that goes away mid-stream sets :attr:`stream_closed`.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import uuid
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from aiohttp import web

from tests.fakes.loopback import serve
from multidict import CIMultiDict
from PIL import Image

DEFAULT_MEMBER_ID = "member-test-ad799459-d366-4fcc-94a5-d9ded9aa5462"
DEFAULT_API_KEY = "tql-test-api-key-0123456789"

SEED_CHAT_ID = "nahar-alpha-cd66081b89c5cd9b0c"
SEED_USER_MSG_ID = 33893
SEED_ASSISTANT_MSG_ID = 33894
ONTOLOGY_BLOCK_ID = "e0c4b91b-950a-48cc-a5e1-9d55753bf4d9"
HISTORY_CHAT_ID = "guild-navigator-anomaly-5c758e4ccce190a10a"
ORG_ID = "organization-test-1526533d-fc7e-4b44-9ec9-5f40ba8ee0d2"
FINAL_TEXT = "Summary: the largest store — “ation” — has 9 997 773 ft² of floor space 📈"

ERRORS = {
    400: ("invalid_request", "Invalid request body"),
    401: ("unauthenticated", "Authentication required"),
    403: ("permission_denied", "Insufficient permissions"),
    404: ("not_found", "Resource not found"),
    429: ("rate_limit_exceeded", "Rate limit exceeded"),
    500: ("internal", "Internal server error"),
}


def error_body(status: int) -> dict[str, Any]:
    code, message = ERRORS.get(status, ("internal", "Internal server error"))
    return {"error": {"code": code, "message": message}}


# -- images ------------------------------------------------------------------------------------
def png_bytes(width: int = 8, height: int = 8, *, noise: bool = False) -> bytes:
    """A real PNG; ``noise`` makes it incompressible (for size-cap tests)."""
    if noise:
        import os
        image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    else:
        image = Image.new("RGB", (width, height), (200, 30, 30))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@dataclass
class FakeImage:
    data: bytes
    content_type: str = "image/png"
    chunked: bool = False  # no Content-Length: the size cap must count bytes


# -- script building -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SseEvent:
    """One SSE event; ``event`` None means a ``data:``-only event (v2)."""

    data: str
    event: str | None = None


def named(event: str, payload: Any) -> SseEvent:
    return SseEvent(json.dumps(payload, ensure_ascii=False), event)


def data_only(payload: Any) -> SseEvent:
    return SseEvent(json.dumps(payload, ensure_ascii=False))


def text_block(block_id: str, text: str) -> dict[str, Any]:
    return {"tag": "TextBlock", "contents": text, "id": block_id}


def python_block(block_id: str, code: str, results: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"tag": "PythonBlock", "contents": code, "id": block_id}
    if results is not None:
        block["results"] = results
    return block


def text_result(text: str) -> dict[str, Any]:
    return {"tag": "TextResult", "contents": text}


def image_result(url: str) -> dict[str, Any]:
    """ImageUrlResult: the seed names it but not its shape; the reference's best guess is a bare URL."""
    return {"tag": "ImageUrlResult", "contents": url}


def error_block(message: str = "An error occurred fetching the requested dataset.") -> dict[str, Any]:
    return {"tag": "ErrorBlock", "contents": message}  # the seed's example has no id


SEED_ROW = ["AAAAAAAANIBAAAAA", "273", "null", "null", "9997773", "1997-03-13T00:00:00.000Z", "ation", "397"]
SEED_SQL = ("SELECT S_STORE_ID, S_NUMBER_EMPLOYEES, S_REC_END_DATE, S_CLOSED_DATE_SK, S_FLOOR_SPACE, "
            "S_REC_START_DATE, S_STORE_NAME, S_STORE_SK FROM SNOWFLAKE_SAMPLE_DATA.TPCDS_SF100TCL.STORE "
            "ORDER BY S_FLOOR_SPACE DESC")


def _attribute(name: str, kind: str) -> dict[str, Any]:
    return {"innerOrgId": ORG_ID, "innerUUID": f"big.{name}", "innerUVal": {
        "attributeName": name, "attributeObject": {"objectRef": "7vf5ce7rdnngwm1nyftj8"},
        "attributeType": kind, "attributeDescription": "", "attributeIsInherent": True,
        "attributeData": {"tag": "UnlinkedAttribute", "contents": {"columnName": name}}}}


def ontology_block(block_id: str = ONTOLOGY_BLOCK_ID, *, complete: bool = True,
                   rows: list[list[str]] | None = None, sql: str = SEED_SQL) -> dict[str, Any]:
    """The seed's OntologyBlock example, as valid JSON (the seed's has trailing commas and a
    ``/* … */``; its ``sqlQuery`` is elided as ``"..."``, here a plausible query)."""
    prompt = "Stores ordered by size descending"
    if not complete:  # what an in-progress version plausibly carries: the prompt, no SQL yet
        return {"tag": "OntologyBlock", "id": block_id,
                "contents": {"query": prompt, "result": {"complete": False, "userPrompt": prompt}},
                "tool_call_id": "call_a195c002-0869-4c30-8d14-5c0fccf26967"}
    result = {
        "complete": True, "connectorId": 9,
        "queryClassification": {"classification": "object"},
        "userPrompt": prompt,
        "segmentation": {"output": {"filters": [], "groupings": ["stores", "size descending"],
                                    "metrics": [], "order": ["size descending"]}},
        "object": {
            "reason": "The question asks to order stores by size descending, so the 'Store' object "
                      "is the relevant object to group and order by.",
            "selectedFromGroup": prompt,
            "selectedObject": {"innerOrgId": ORG_ID, "innerUUID": "7vf5ce7rdnngwm1nyftj8", "innerUVal": {
                "backingQuery": None,
                "backingTable": {"schema": "SNOWFLAKE_SAMPLE_DATA", "table": "TPCDS_SF100TCL.STORE"},
                "graphProperties": {"color": None, "icon": None, "position": {"x": -1, "y": -1}},
                "interestingAttributes": [], "objectDescription": "", "objectName": "Store",
                "primaryKeyAttribute": {"attributeRef": "Store.S_STORE_ID"},
                "titleAttribute": {"attributeRef": "Store.S_STORE_NAME"}}}},
        "groupingsStarted": ["stores", "size descending"],
        "groupingsFound": [{"grouping": "S_STORE_SK"}, {"grouping": "S_FLOOR_SPACE"}],
        "metricsQuery": {"metrics": [], "dimensions": [
            "S_STORE_SK", "S_FLOOR_SPACE", "S_STORE_ID", "S_REC_START_DATE", "S_REC_END_DATE",
            "S_CLOSED_DATE_SK", "S_STORE_NAME", "S_NUMBER_EMPLOYEES"],
            "filters": [], "order": ["S_FLOOR_SPACE"], "direction": "desc", "prompt": prompt,
            "unparsedText": prompt},
        "selectedAttributes": [
            _attribute("S_STORE_ID", "TextType"), _attribute("S_REC_START_DATE", "DateTime"),
            _attribute("S_REC_END_DATE", "TextType"), _attribute("S_CLOSED_DATE_SK", "NumberType"),
            _attribute("S_STORE_NAME", "TextType"), _attribute("S_NUMBER_EMPLOYEES", "NumberType")],
        "ordersStarted": [{"order": "size descending"}],
        "ordersFound": [{"order": {"direction": "desc", "measure": "S_FLOOR_SPACE"},
                         "unparsedText": "size descending"}],
        "directionFound": "desc",
        "sqlQuery": sql,
        "sqlResult": {"result": {
            "colNames": ["S_STORE_ID", "S_NUMBER_EMPLOYEES", "S_REC_END_DATE", "S_CLOSED_DATE_SK",
                         "S_FLOOR_SPACE", "S_REC_START_DATE", "S_STORE_NAME", "S_STORE_SK"],
            "colTypes": ["StringCol", "NumCol", "StringCol", "StringCol", "NumCol", "DateCol",
                         "StringCol", "NumCol"],
            "resultVals": rows if rows is not None else [list(SEED_ROW)]}},
        "preview": {"result": {}},
        "oai_output": "Data from object Store loaded into DataFrame df1 ...",
    }
    return {"tag": "OntologyBlock", "id": block_id, "contents": {"query": prompt, "result": result},
            "tool_call_id": "call_a195c002-0869-4c30-8d14-5c0fccf26967"}


SEED_CODE_1 = "import pandas as pd\n\ndf = pd.read_csv('stores.csv')\nprint(df)"
SEED_CODE_2 = ("import pandas as pd\n\ndf = pd.read_csv('stores.csv') \nprint(df)\n\n"
               "largest_store = df.sort_values('sq_footage', ascending=False).head(1)\n"
               "print(f\"The largest store is in {largest_store['city'].values[0]}\")")
SEED_OUTPUT = ("  store_id        city  sq_footage\n0   ST1234    New York      150000\n"
               "1   ST5678  Los Angeles      145000\n2   ST3456     Chicago      135000\n"
               "The largest store is located in New York.")


def legacy_script(image_url: str | None = None, *, chat_id: str = SEED_CHAT_ID) -> list[SseEvent]:
    """The seed's example stream, plus the seed's OntologyBlock and (when ``image_url``) an image."""
    results = [text_result(SEED_OUTPUT)]
    if image_url:
        results.append(image_result(image_url))
    return [
        named("chatId", chat_id),
        named("userMsgId", SEED_USER_MSG_ID),
        named("assistantMsgId", SEED_ASSISTANT_MSG_ID),
        named("block", text_block("abc123", "The largest store is located in")),
        named("block ", text_block("abc123", "The largest store is located in New York.")),
        named("block", ontology_block(complete=False)),
        named("block", ontology_block()),
        named("block", python_block("def456", SEED_CODE_1)),
        named("block", python_block("def456", SEED_CODE_2, results)),
        named("block", text_block("fin789", FINAL_TEXT)),
        named("message", "done"),
    ]


def v2_script(chat_id: str, *, image_url: str | None = None, chart_url: str | None = None,
              continuation: bool = False) -> list[SseEvent]:
    """A plausible v2 stream in the documented event shapes."""
    sql_cell = {"id": "9d0f6c2e-1111-4a5b-8c7d-000000000001", "type": "sql", "status": "running",
                "created_at": "2026-01-05T10:00:01Z", "query": "SELECT region, SUM(revenue) AS revenue "
                "FROM sales GROUP BY region ORDER BY revenue DESC", "connector_id": 509}
    done_sql = dict(sql_cell, status="completed", execution_time_ms=812, dataframe_preview=(
        "|    | region   |   revenue |\n|---:|:---------|----------:|\n"
        "|  0 | EMEA     |      1200 |\n|  1 | APAC     |       900 |"))
    py_cell = {"id": "9d0f6c2e-1111-4a5b-8c7d-000000000002", "type": "python", "status": "running",
               "created_at": "2026-01-05T10:00:03Z", "code": "df.plot.bar(x='region', y='revenue')"}
    done_py = dict(py_cell, status="completed", output=["<Axes: xlabel='region'>"], execution_time_ms=420)
    events = [
        data_only({"type": "metadata", "id": str(uuid.uuid4()), "created_at": "2026-01-05T10:00:00Z",
                   "model": "default", "chat_id": chat_id, "is_continuation": continuation}),
        data_only({"type": "text", "text": "Revenue by region: "}),
        data_only({"type": "cell", "cell": sql_cell}),
        data_only({"type": "cell", "cell": done_sql}),
        data_only({"type": "cell", "cell": py_cell}),
        data_only({"type": "cell", "cell": done_py}),
    ]
    if image_url:
        events.append(data_only({"type": "asset", "asset": {
            "name": "revenue_by_region.png", "type": "image", "url": image_url, "cell_id": py_cell["id"]}}))
    if chart_url:
        events.append(data_only({"type": "asset", "asset": {
            "name": "echarts_chart_rev.html", "type": "chart", "url": chart_url, "cell_id": py_cell["id"]}}))
    events += [
        data_only({"type": "text", "text": "EMEA leads with 1 200 — "}),
        data_only({"type": "text", "text": "APAC follows (900) ✓"}),
        data_only({"type": "done", "status": "completed"}),
    ]
    return events


SUMMARY_EXAMPLE = [
    {"innerId": HISTORY_CHAT_ID, "innerVal": {
        "id": HISTORY_CHAT_ID, "orgId": ORG_ID, "engine": "{}",
        "summary": "Gabriel searches for the largest store in Virginia",
        "lastUserMessage": {"timestamp": "2024-03-25T04:00:49.116Z"}}},
    {"innerId": "chani-eclipse-53cf2b4b9afdee22aa", "innerVal": {
        "id": "chani-eclipse-53cf2b4b9afdee22aa", "orgId": ORG_ID, "engine": "{}",
        "summary": "Analyzing sales data for Q2 2023",
        "lastUserMessage": {"timestamp": "2024-03-24T15:30:12.842Z"}}},
]


def _message(idx: int, inner_id: int, author: dict[str, str], ts: str, block_id: str, text: str) -> list[dict[str, Any]]:
    return [{"innerId": inner_id, "innerVal": {
        "author": author, "chatId": HISTORY_CHAT_ID, "timestamp": ts,
        "body": [{"tag": "TextBlock", "contents": text, "id": block_id}], "messageIdx": idx}}]


_USER = {"tag": "User", "name": "Spencer Hubert", "contents": "member-test-ad799459-d366-4fcc-94a5-d9ded9aa5462"}
DETAIL_EXAMPLE = [
    _message(0, 33759, _USER, "2024-03-25T04:00:28.176Z", "b6c91631-2e14-47ad-b81d-99437aae4026", "hi"),
    _message(1, 33760, {"tag": "Assistant"}, "2024-03-25T04:00:28.176Z",
             "6cd2f3ed-c543-4196-85a7-cfcd399dacd5", "Hello! How can I assist you today?"),
    _message(2, 33761, _USER, "2024-03-25T04:00:49.116Z", "04b14642-c31c-4456-b552-3a79a4d9ca74",
             "filter this column where the weight of the person is more than 150"),
]


def _script_chat_id(events: list[SseEvent]) -> str | None:
    """The ``chat_id`` of a v2 script's ``metadata`` event, if it has one."""
    for ev in events:
        try:
            payload = json.loads(ev.data)
        except ValueError:
            continue
        if isinstance(payload, dict) and payload.get("type") == "metadata" and payload.get("chat_id"):
            return str(payload["chat_id"])
    return None


# -- wire encoding -------------------------------------------------------------------------------
def encode_event(ev: SseEvent, index: int) -> bytes:
    """SSE text for one event; odd events end their lines in ``\\r\\n``."""
    nl = "\r\n" if index % 2 else "\n"
    lines = [f"event: {ev.event}"] if ev.event is not None else []
    lines += [f"data: {line}" for line in ev.data.split("\n")]
    return (nl.join(lines) + nl + nl).encode("utf-8")


def awkward_chunks(data: bytes, size: int) -> list[bytes]:
    """Cut every ``size`` bytes, between every ``\\r`` and ``\\n``, and inside every UTF-8 sequence."""
    cuts = set(range(size, len(data), size))
    for i in range(1, len(data)):
        if data[i - 1:i + 1] == b"\r\n" or (data[i] & 0xC0 == 0x80 and data[i - 1] >= 0xC0):
            cuts.add(i)
    return [data[a:b] for a, b in pairwise([0, *sorted(cuts), len(data)])]


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: CIMultiDict[str]
    query: dict[str, str]
    body: bytes = b""
    json: Any = None


@dataclass
class ChatTurn:
    """One question of a v2 chat and what Ana produced for it (assistant messages, assets)."""

    question: str
    created_at: str
    messages: list[dict[str, Any]]
    assets: list[dict[str, Any]]


def turn_from_script(question: str, events: list[SseEvent], *, created_at: str) -> ChatTurn:
    """What TextQL keeps of one run: each run of text deltas between steps is one assistant
    message (a markdown cell); the run's assets belong to its last assistant message."""
    messages: list[dict[str, Any]] = []
    assets: list[dict[str, Any]] = []
    open_text = False
    for ev in events:
        try:
            payload = json.loads(ev.data)
        except ValueError:
            continue
        if not isinstance(payload, dict):
            continue
        kind = payload.get("type")
        if kind == "text" and isinstance(payload.get("text"), str):
            if not open_text:
                messages.append({"role": "assistant", "content": "", "created_at": created_at,
                                 "cell_id": str(uuid.uuid4()), "assets": []})
                open_text = True
            messages[-1]["content"] += payload["text"]
        elif kind in ("cell", "asset"):
            open_text = False
            if kind == "asset" and isinstance(payload.get("asset"), dict):
                assets.append(dict(payload["asset"]))
    if messages:
        owner = messages[-1]["cell_id"]
        for asset in assets:
            asset["message_cell_id"] = owner
        messages[-1]["assets"] = assets
    return ChatTurn(question, created_at, messages, assets)


def _signed(asset: dict[str, Any], serial: int) -> dict[str, Any]:
    """An asset as a fresh fetch shows it: same asset, a newly signed URL."""
    url = asset.get("url")
    if not isinstance(url, str) or not url or url.startswith("data:"):
        return dict(asset)
    base = url.split("?", 1)[0]
    return dict(asset, url=f"{base}?sig={serial}")


@dataclass
class _StreamState:
    events_sent: int = 0
    chat_id: str = ""
    running: bool = True


class FakeTextQL:
    """``async with FakeTextQL() as fake: fake.base_url …``; knobs are plain attributes."""

    def __init__(self, member_id: str = DEFAULT_MEMBER_ID, api_key: str = DEFAULT_API_KEY, *,
                 chunk_size: int = 23, keepalive_interval: float = 0.02) -> None:
        self.member_id = member_id
        self.api_key = api_key
        self.chunk_size = chunk_size
        self.keepalive_interval = keepalive_interval
        # scripts: None → the default script, built per request (it needs base_url)
        self.legacy_script: list[SseEvent] | None = None
        self.v2_script: list[SseEvent] | None = None
        self.image_url: str | None = None  # image in the default scripts; None: this fake's chart.png
        # faults
        self.fail_status: int | None = None
        self.fail_once: list[int] = []  # statuses for the next API requests, one each
        self.end_without_done = False
        self.malformed_block = False
        self.malformed_at: int | None = None
        self.malformed_data = "{not json"
        self.silent_after: int | None = None
        self.hold_after: int | None = None
        self.cut_after: int | None = None
        self.break_after: int | None = None
        self.get_chat_status: int | None = None
        self.answer_pending = False
        self.release = asyncio.Event()
        self.stream_closed = asyncio.Event()
        # state
        self.images: dict[str, FakeImage] = {"chart.png": FakeImage(png_bytes())}
        self.redirects: dict[str, str] = {}
        self.requests: list[RecordedRequest] = []
        self.cancelled_chats: list[str] = []
        self.chats: dict[str, list[str]] = {}  # v2 chat id → questions
        self.turns: dict[str, list[ChatTurn]] = {}  # v2 chat id → what Ana produced per question
        self._signatures = 0
        self._streams: list[_StreamState] = []
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/api/ana", self._ana)
        app.router.add_get("/api/ana/chat/summary", self._summary)
        app.router.add_get("/api/ana/{chat_id}", self._detail)
        app.router.add_post("/v2/chats/stream", self._v2_stream)
        app.router.add_post("/v2/chats/{chat_id}/cancel", self._v2_cancel)
        app.router.add_get("/v2/chats", self._v2_list)
        app.router.add_get("/v2/chats/{chat_id}", self._v2_get)
        app.router.add_get("/images/{name}", self._image)
        app.router.add_get("/redirect/{name}", self._redirect)
        self._runner, port = await serve(app, shutdown_timeout=0.5)
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def close(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "FakeTextQL":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- observing ----------------------------------------------------------------------------
    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    async def wait_for_request(self, path: str, count: int = 1, timeout: float = 5.0) -> RecordedRequest:
        """Wait until ``count`` requests to ``path`` have arrived; return the ``count``-th."""
        async def wait() -> RecordedRequest:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.requests_to(path)) >= count)
                return self.requests_to(path)[count - 1]

        return await asyncio.wait_for(wait(), timeout)

    # -- helpers ------------------------------------------------------------------------------
    @property
    def basic_header(self) -> str:
        token = base64.b64encode(f"{self.member_id}:{self.api_key}".encode()).decode()
        return f"Basic {token}"

    async def _record(self, request: web.Request) -> RecordedRequest:
        body = await request.read() if request.can_read_body else b""
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        rec = RecordedRequest(request.method, request.path, CIMultiDict(request.headers),
                              dict(request.query), body, parsed)
        self.requests.append(rec)
        async with self._changed:
            self._changed.notify_all()
        return rec

    def _refusal(self, request: web.Request, *, basic: bool, bearer: bool) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        ok = (basic and header == self.basic_header) or (bearer and header == f"Bearer {self.api_key}")
        if not ok:
            return web.json_response(error_body(401), status=401)
        if self.fail_status is not None:
            return web.json_response(error_body(self.fail_status), status=self.fail_status)
        if self.fail_once:
            status = self.fail_once.pop(0)
            return web.json_response(error_body(status), status=status)
        return None

    def _with_malformed(self, events: list[SseEvent], *, default_at: int, event: str | None) -> list[SseEvent]:
        """``events`` with one event whose data is not JSON, if a knob asks for it."""
        at = self.malformed_at if self.malformed_at is not None else (default_at if self.malformed_block else None)
        if at is None:
            return events
        return [*events[:at], SseEvent(self.malformed_data, event), *events[at:]]

    def _image_url(self) -> str:
        return self.image_url or f"{self.base_url}/images/chart.png"

    # -- legacy -------------------------------------------------------------------------------
    async def _ana(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        if (refusal := self._refusal(request, basic=True, bearer=False)) is not None:
            return refusal
        if not request.query.get("query"):
            return web.json_response(error_body(400), status=400)
        events = list(self.legacy_script or legacy_script(self._image_url()))
        events = self._with_malformed(events, default_at=4, event="block")
        if self.end_without_done:
            events = [e for e in events if e.event != "message"]
        return await self._stream(request, events, _StreamState(chat_id=SEED_CHAT_ID))

    async def _summary(self, request: web.Request) -> web.Response:
        await self._record(request)
        if (refusal := self._refusal(request, basic=True, bearer=True)) is not None:
            return refusal
        return web.json_response(SUMMARY_EXAMPLE)

    async def _detail(self, request: web.Request) -> web.Response:
        await self._record(request)
        if (refusal := self._refusal(request, basic=True, bearer=True)) is not None:
            return refusal
        if request.match_info["chat_id"] != HISTORY_CHAT_ID:
            return web.json_response(error_body(404), status=404)
        return web.json_response(DETAIL_EXAMPLE)

    # -- v2 -----------------------------------------------------------------------------------
    async def _v2_stream(self, request: web.Request) -> web.StreamResponse:
        rec = await self._record(request)
        if (refusal := self._refusal(request, basic=False, bearer=True)) is not None:
            return refusal
        body = rec.json if isinstance(rec.json, dict) else {}
        question, chat_id = body.get("question"), body.get("chat_id")
        if not isinstance(question, str) or not question or (chat_id and "model" in body):
            return web.json_response(error_body(400), status=400)
        if chat_id and chat_id not in self.chats:
            return web.json_response(error_body(404), status=404)
        continuation = bool(chat_id)
        chat_id = chat_id or str(uuid.uuid4())
        events = list(self.v2_script or v2_script(chat_id, image_url=self._image_url(),
                                                  continuation=continuation))
        chat_id = _script_chat_id(events) or chat_id  # a custom script names its own chat
        self.chats.setdefault(chat_id, []).append(question)
        self.turns.setdefault(chat_id, []).append(
            turn_from_script(question, events, created_at=f"2026-01-05T10:{len(self.chats[chat_id]):02d}:00Z"))
        events = self._with_malformed(events, default_at=2, event=None)
        if self.end_without_done:
            events = [e for e in events if '"type": "done"' not in e.data]
        return await self._stream(request, events, _StreamState(chat_id=chat_id))

    async def _v2_cancel(self, request: web.Request) -> web.Response:
        await self._record(request)
        if (refusal := self._refusal(request, basic=False, bearer=True)) is not None:
            return refusal
        chat_id = request.match_info["chat_id"]
        if chat_id not in self.chats:
            return web.json_response(error_body(404), status=404)
        self.cancelled_chats.append(chat_id)
        running = any(s.running and s.chat_id == chat_id for s in self._streams)
        return web.json_response({"cancelled": running})

    async def _v2_list(self, request: web.Request) -> web.Response:
        await self._record(request)
        if (refusal := self._refusal(request, basic=False, bearer=True)) is not None:
            return refusal
        limit = int(request.query.get("limit", "20"))
        chats = [{"id": cid, "summary": qs[0][:80], "timestamp": "2026-01-05T10:00:00Z",
                  "updated_at": f"2026-01-05T10:{i:02d}:00Z", "preview": qs[0][:200],
                  "source": "thread", "model": "default", "is_running": False}
                 for i, (cid, qs) in enumerate(self.chats.items())]
        chats.reverse()  # sort_by=updated_at desc
        return web.json_response({"chats": chats[:limit], "total_count": len(chats)})

    async def _v2_get(self, request: web.Request) -> web.Response:
        await self._record(request)
        if (refusal := self._refusal(request, basic=False, bearer=True)) is not None:
            return refusal
        if self.get_chat_status is not None:
            return web.json_response(error_body(self.get_chat_status), status=self.get_chat_status)
        chat_id = request.match_info["chat_id"]
        if chat_id not in self.chats:
            return web.json_response(error_body(404), status=404)
        self._signatures += 1
        messages: list[dict[str, Any]] = []
        assets: list[dict[str, Any]] = []
        turns = self.turns.get(chat_id, [])
        for index, turn in enumerate(turns):
            messages.append({"role": "user", "content": turn.question, "created_at": turn.created_at,
                             "cell_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{chat_id}/{index}"))})
            if self.answer_pending and index == len(turns) - 1:
                continue  # Ana has not written this answer yet
            for message in turn.messages:
                signed = [_signed(a, self._signatures) for a in message["assets"]]
                messages.append(dict(message, assets=signed))
                assets += signed
        return web.json_response({"chat": {"id": chat_id, "model": "default"},
                                  "messages": messages, "assets": assets})

    # -- images -------------------------------------------------------------------------------
    async def _image(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        image = self.images.get(request.match_info["name"])
        if image is None:
            return web.Response(status=404, text="Not Found")
        if not image.chunked:
            return web.Response(body=image.data, content_type=image.content_type)
        response = web.StreamResponse(headers={"Content-Type": image.content_type})
        await response.prepare(request)
        for chunk in awkward_chunks(image.data, 4096):
            await response.write(chunk)
        await response.write_eof()
        return response

    async def _redirect(self, request: web.Request) -> web.Response:
        await self._record(request)
        target = self.redirects.get(request.match_info["name"])
        if target is None:
            return web.Response(status=404, text="Not Found")
        raise web.HTTPFound(target)

    # -- streaming ----------------------------------------------------------------------------
    async def _stream(self, request: web.Request, events: list[SseEvent], state: _StreamState) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                               "Cache-Control": "no-cache"})
        self._streams.append(state)
        try:
            await response.prepare(request)
            await response.write(b": stream opened\n\n")
            for index, event in enumerate(events):
                if self.cut_after == index:
                    break
                if self.break_after == index:
                    await response.write(b"data: {\"type\": \"te")  # half an event, then gone
                    assert request.transport is not None
                    request.transport.close()
                    return response
                if self.silent_after == index:
                    await self.release.wait()
                if self.hold_after == index:
                    await self._hold(response)
                for chunk in awkward_chunks(encode_event(event, index), self.chunk_size):
                    await response.write(chunk)
                state.events_sent += 1
                if index % 3 == 1:
                    await response.write(b": keep-alive\r\n\r\n")
            await response.write_eof()
        except asyncio.CancelledError:  # handler_cancellation: the client went away
            self.stream_closed.set()
            raise
        except ConnectionError:  # a write after the client went away
            self.stream_closed.set()
        finally:
            state.running = False
        return response

    async def _hold(self, response: web.StreamResponse) -> None:
        """Stay alive (keep-alive comments) until released; a gone client shows up as an error."""
        while not self.release.is_set():
            try:
                await asyncio.wait_for(self.release.wait(), self.keepalive_interval)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
