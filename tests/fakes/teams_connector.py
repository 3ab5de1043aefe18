"""A loopback fake of the Bot Connector API Teams bots reply through (``/v3/conversations``).

Honest to teams.md §2.5/§4 and the rate-limit page:

* the ``serviceUrl`` may carry a path prefix (``http://127.0.0.1:PORT/teams/amer/``); requests
  outside it get 404, so a client that drops the prefix fails;
* ``POST …/conversations/{id}/activities[/{replyToId}]`` → 201 ``{"id": …}``; ``PUT
  …/activities/{id}`` → 200 ``{"id": …}`` (the SDK reads a JSON body); ``DELETE`` → 200;
* conversation ids arrive raw (``:``, ``;``, ``@`` unescaped);
* errors are ``{"error": {"code", "message"}}``; an unknown activity is 404;
* a message over the size limit (JSON without inline ``data:`` images, ~28 KB) or over the
  256 KB payload ceiling is refused with 413 ``MessageSizeTooBig``;
* a message with both ``text`` and attachments is split by Teams and answers without an id;
* scripted failures: ``fail_next("PUT", 429, retry_after=…)`` and the like;
* what Teams refuses about AI messages (``agents-in-teams/integrate-ai``): 400 for more than one
  root ``Message`` entity, more than 20 citations, a citation without a name, and
  ``channelData`` with both ``feedbackLoop`` and ``feedbackLoopEnabled``;
* a OneDrive upload session for the file consent flow: ``upload_url(name)`` is what Teams would
  put in ``uploadInfo.uploadUrl``; ``PUT`` there with a ``Content-Range`` for the whole body
  stores the file in ``uploads`` (``fail_uploads`` makes the next ones answer 500);
* Teams streaming (teams.md §3.1, ``bots/streaming-ux``), in personal chats only (``a:`` ids;
  elsewhere 400 ``BadArgument`` "streaming api is not enabled"): ``typing`` chunks with exactly
  one ``streaminfo`` entity (``informative`` ≤1,000 characters, or ``streaming`` text that
  extends the previous text), ``streamSequence`` from 1 and increasing (an out-of-order chunk
  is dropped with 202 ``ContentStreamSequenceOrderPreConditionFailed`` and recorded in
  ``violations``), ``streamId`` = the first chunk's id on every later one; attachments, the AI
  label and the feedback loop only on the ``final`` message (which has no sequence and needs text
  or attachments). One stream per chat; a stream older than ``stream_cap`` seconds (Teams: 120)
  answers 403 ``ContentStreamNotAllowed`` "…exceeded streaming time."; :meth:`press_stop` is the
  user's Stop button — the next chunk answers 403 "Content stream was cancelled by user.";
  chunks to a completed stream, and PUTs to a stream still open, answer 403 too. Each stream is
  also a message in ``messages`` (every chunk a version), and is kept in ``streams``;
* Teams' per-conversation rate limits (7 sends per second, 8 per 2 s, 60 per 30 s, 1,800 per
  hour; posts, updates and deletes alike, per bot per thread: the bot is the ``appid`` of its
  token) answered with 429 ``TooManyRequests`` and a ``Retry-After``; ``time_scale`` runs that
  clock faster for tests (0.1: 60 per 3 s);
* a bot with credentials (``token_check``, e.g. :meth:`tests.fakes.entra.FakeEntra.
  check_bot_token`): every call must carry ``Authorization: Bearer <token>`` and the check must
  pass, or Teams answers 401 ``Authorization has been denied for this request.`` (recorded in
  ``unauthorized``) before anything else happens. Without ``token_check`` (anonymous mode) the
  SDK sends no header and none is asked for.

Tests read ``messages`` (every message with its versions) and ``calls``, and wait with
:meth:`FakeConnector.wait_for` instead of sleeping.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import jwt
from aiohttp import web

from tests.fakes.loopback import serve
from multidict import CIMultiDict

CARD = "application/vnd.microsoft.card.adaptive"
RATE_LIMITS = [(7, 1.0), (8, 2.0), (60, 30.0), (1800, 3600.0)]  # per conversation (rate-limit page)
MESSAGE_LIMIT = 28_000
PAYLOAD_LIMIT = 262_144
STREAM_CAP = 120.0  # seconds: Teams ends every stream 2 minutes after it began
INFORMATIVE_LIMIT = 1_000
CANCELLED = "Content stream was cancelled by user."
TIMED_OUT = "Content stream finished due to exceeded streaming time."
COMPLETED = "Content stream is not allowed on an already completed streamed message."
NOT_ALLOWED = "Content stream is not allowed"


@dataclass
class ConnectorCall:
    method: str
    path: str
    conversation_id: str
    activity_id: str | None
    body: Any
    headers: CIMultiDict[str]
    status: int = 0
    at: float = field(default_factory=time.monotonic)  # when it arrived, for pacing checks

    @property
    def authorization(self) -> str | None:
        return self.headers.get("Authorization")


@dataclass
class TeamsMessage:
    """One message the bot posted, with every version it had (post, then each PUT)."""

    id: str
    conversation_id: str
    reply_to_id: str | None
    versions: list[dict[str, Any]] = field(default_factory=list)
    deleted: bool = False

    @property
    def activity(self) -> dict[str, Any]:
        return self.versions[-1]

    @property
    def text(self) -> str:
        return self.activity.get("text") or ""

    @property
    def cards(self) -> list[dict[str, Any]]:
        return [a.get("content") or {} for a in self.activity.get("attachments") or []
                if a.get("contentType") == CARD]

    @property
    def card(self) -> dict[str, Any] | None:
        cards = self.cards
        return cards[0] if cards else None

    @property
    def edits(self) -> int:
        return len(self.versions) - 1


@dataclass
class FakeStream:
    """One streamed reply as Teams saw it."""

    id: str
    conversation_id: str
    started: float
    chunks: list[dict[str, Any]] = field(default_factory=list)  # accepted chunk bodies, in order
    sequence: int = 0
    state: str = "streaming"  # → final, cancelled, timed_out
    stop_pressed: bool = False

    def of_type(self, stream_type: str) -> list[dict[str, Any]]:
        return [c for c in self.chunks if _stream_info(c).get("streamType") == stream_type]

    @property
    def informative(self) -> list[str]:
        return [c.get("text") or "" for c in self.of_type("informative")]

    @property
    def texts(self) -> list[str]:
        return [c.get("text") or "" for c in self.of_type("streaming")]

    @property
    def final(self) -> dict[str, Any] | None:
        finals = self.of_type("final")
        return finals[0] if finals else None


@dataclass
class _Failure:
    method: str
    status: int
    retry_after: str | None
    code: str
    message: str
    matching: str | None = None

    def applies(self, call: ConnectorCall, raw: bytes) -> bool:
        return call.method == self.method and (
            self.matching is None or self.matching in raw.decode("utf-8", "replace"))


class FakeConnector:
    def __init__(self, prefix: str = "/teams/amer/", *, message_limit: int | None = MESSAGE_LIMIT,
                 time_scale: float = 1.0, stream_cap: float = STREAM_CAP,
                 token_check: Callable[[str], str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not prefix.startswith("/") or not prefix.endswith("/"):
            raise ValueError("prefix must start and end with '/'")
        self.prefix = prefix
        self.message_limit = message_limit
        self.windows = [(limit, seconds * time_scale) for limit, seconds in RATE_LIMITS]
        self._sent: dict[tuple[str, str], deque[float]] = {}
        # why a token is not acceptable ("" when it is); None: anonymous, no token asked for
        self.token_check = token_check
        self.clock = clock  # when calls arrive: rate windows and stream ages (tests may drive it)
        self.unauthorized: list[tuple[str, str]] = []  # (path, why) of calls refused with 401
        self.calls: list[ConnectorCall] = []
        self.messages: dict[str, TeamsMessage] = {}
        self.uploads: dict[str, bytes] = {}  # OneDrive: file name → bytes
        self.fail_uploads = 0
        self._failures: deque[_Failure] = deque()
        self.stream_cap = stream_cap  # Teams ends a stream this many seconds after it began
        self.streams: dict[str, FakeStream] = {}
        self.violations: list[str] = []  # protocol breaches Teams answers without an error
        self._next_id = 1_800_000_000_000
        self._cond = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.service_url = ""

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> str:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner, port = await serve(app, handler_cancellation=False)
        self.service_url = f"http://127.0.0.1:{port}{self.prefix}"
        return self.service_url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "FakeConnector":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- scripting ------------------------------------------------------------------------
    def fail_next(self, method: str, status: int, *, retry_after: float | str | None = None,
                  code: str | None = None, message: str = "", times: int = 1,
                  matching: str | None = None) -> None:
        """The next ``times`` requests with ``method`` (and ``matching`` in their body, if given)
        answer ``status``, with ``Retry-After`` if given."""
        default_code = {429: "TooManyRequests", 412: "PreconditionFailed", 413: "MessageSizeTooBig",
                        404: "NotFound", 502: "BadGateway", 504: "GatewayTimeout",
                        400: "BadArgument", 403: "Forbidden"}.get(status, "ServiceError")
        for _ in range(times):
            self._failures.append(_Failure(method.upper(), status,
                                           None if retry_after is None else str(retry_after),
                                           code or default_code, message or default_code,
                                           matching))

    def press_stop(self, conversation_id: str) -> FakeStream:
        """The user presses Teams' Stop on the chat's open stream: the bot hears nothing now; its
        next chunk is answered 403 "cancelled by user"."""
        stream = self.open_stream(conversation_id)
        if stream is None:
            raise AssertionError(f"no open stream in {conversation_id}")
        stream.stop_pressed = True
        return stream

    def open_stream(self, conversation_id: str) -> FakeStream | None:
        for stream in self.streams.values():
            if stream.conversation_id == conversation_id and self._stream_state(stream) == "streaming":
                return stream
        return None

    def streams_in(self, conversation_id: str) -> list[FakeStream]:
        return [s for s in self.streams.values() if s.conversation_id == conversation_id]

    def upload_url(self, name: str) -> str:
        """Where Teams' ``uploadInfo.uploadUrl`` would point for ``name`` (an upload session)."""
        return f"{self.service_url}upload/{name}"

    # -- reading --------------------------------------------------------------------------
    def in_conversation(self, conversation_id: str) -> list[TeamsMessage]:
        return [m for m in self.messages.values() if m.conversation_id == conversation_id]

    def calls_to(self, method: str) -> list[ConnectorCall]:
        return [c for c in self.calls if c.method == method.upper()]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Return once ``predicate()`` holds; re-checked after every request handled."""
        async with self._cond:
            try:
                await asyncio.wait_for(self._cond.wait_for(predicate), timeout)
            except TimeoutError:
                last = "\n".join(f"  {c.method} {c.path} -> {c.status}" for c in self.calls[-10:])
                raise AssertionError(f"FakeConnector.wait_for: not met within {timeout}s; last calls:\n"
                                     f"{last or '  (none)'}") from None

    # -- HTTP -----------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path
        if path.startswith(self.prefix + "upload/"):
            return await self._upload(request, path[len(self.prefix + "upload/"):])
        try:
            body = await request.json() if request.can_read_body else None
        except (ValueError, UnicodeDecodeError):
            body = None
        raw = await request.read()
        conversation_id, activity_id = self._parse(path)
        call = ConnectorCall(request.method, path, conversation_id or "", activity_id, body,
                             CIMultiDict(request.headers), at=self.clock())
        self.calls.append(call)
        response = self._respond(call, raw)
        call.status = response.status
        async with self._cond:
            self._cond.notify_all()
        return response

    def _parse(self, path: str) -> tuple[str | None, str | None]:
        if not path.startswith(self.prefix + "v3/conversations/"):
            return None, None
        rest = path[len(self.prefix + "v3/conversations/"):]
        conversation_id, sep, tail = rest.partition("/activities")
        if not sep or not conversation_id:
            return None, None
        activity_id = tail.lstrip("/") or None
        return conversation_id, activity_id

    def _respond(self, call: ConnectorCall, raw: bytes) -> web.Response:
        if not call.conversation_id:
            return _error(404, "NotFound", "Resource not found")
        refused = self._unauthorized(call)
        if refused is not None:
            return refused
        failure = next((f for f in self._failures if f.applies(call, raw)), None)
        if failure is not None:
            self._failures.remove(failure)
            headers = {"Retry-After": failure.retry_after} if failure.retry_after else None
            return _error(failure.status, failure.code, failure.message, headers)
        limited = self._rate_limited(call)
        if limited is not None:
            return limited
        if call.method == "DELETE":
            message = self.messages.get(call.activity_id or "")
            if message is None or message.conversation_id != call.conversation_id:
                return _error(404, "NotFound", "The activity was not found")
            message.deleted = True
            return web.Response(status=200)
        if not isinstance(call.body, dict) or not call.body.get("type"):
            return _error(400, "BadArgument", "Activity type is required")
        too_big = self._too_big(call.body, raw)
        if too_big:
            return _error(413, "MessageSizeTooBig", too_big)
        refused = _ai_metadata_problem(call.body)
        if refused:
            return _error(400, "BadArgument", refused)
        infos = [e for e in call.body.get("entities") or []
                 if isinstance(e, dict) and e.get("type") == "streaminfo"]
        if call.method == "POST" and infos:
            return self._stream_chunk(call, infos)
        if call.method == "POST":
            return self._post(call)
        if call.method == "PUT":
            return self._put(call)
        return _error(405, "MethodNotAllowed", "Method not allowed")

    def _post(self, call: ConnectorCall) -> web.Response:
        body = call.body
        if body.get("type") == "typing":
            return web.json_response({"id": self._new_id()}, status=201)
        split = bool(body.get("text")) and bool(body.get("attachments"))
        message = TeamsMessage(self._new_id(), call.conversation_id,
                               body.get("replyToId") or call.activity_id, [body])
        self.messages[message.id] = message
        if split:  # Teams splits text + attachment into two messages and returns no id
            return web.json_response({}, status=201)
        return web.json_response({"id": message.id}, status=201)

    def _put(self, call: ConnectorCall) -> web.Response:
        message = self.messages.get(call.activity_id or "")
        if message is None or message.conversation_id != call.conversation_id or message.deleted:
            return _error(404, "NotFound", "The activity was not found in the conversation")
        stream = self.streams.get(message.id)
        if stream is not None and self._stream_state(stream) == "streaming":
            return _error(403, "ContentStreamNotAllowed", NOT_ALLOWED)
        message.versions.append(call.body)
        return web.json_response({"id": message.id}, status=200)

    # -- streaming --------------------------------------------------------------------------
    def _stream_state(self, stream: FakeStream) -> str:
        if stream.state == "streaming" and self.clock() - stream.started > self.stream_cap:
            stream.state = "timed_out"
        return stream.state

    def _stream_chunk(self, call: ConnectorCall, infos: list[dict[str, Any]]) -> web.Response:
        body = call.body
        if not call.conversation_id.startswith("a:"):  # Teams streams in 1:1 chats only
            return _error(400, "BadArgument", "BadArgument: streaming api is not enabled")
        if len(infos) != 1:
            return _error(400, "BadArgument", "Exactly one streaminfo entity is allowed")
        info = infos[0]
        kind = info.get("streamType")
        sequence = info.get("streamSequence")
        stream_id = info.get("streamId") or None
        if body["type"] == "typing":
            if kind not in ("informative", "streaming"):
                return _error(400, "BadArgument", f"streamType {kind!r} is not valid on typing")
            if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 1:
                return _error(400, "BadArgument", "streamSequence must be a positive integer")
            if body.get("attachments") or _ai_entities(body) or _feedback(body):
                return _error(400, "BadArgument", "attachments, AI label and feedback go on the "
                                                  "final message only")
            if kind == "informative" and len(body.get("text") or "") > INFORMATIVE_LIMIT:
                return _error(400, "BadArgument", "Informative message exceeds 1000 characters")
        elif body["type"] == "message":
            if kind != "final":
                return _error(400, "BadArgument", "A streamed message must be streamType final")
            if sequence is not None:
                return _error(400, "BadArgument", "streamSequence must not be set on final")
            if not stream_id:
                return _error(400, "BadArgument", "streamId is required on the final message")
            if not body.get("text") and not body.get("attachments"):
                return _error(400, "BadArgument", "The final message needs text or attachments")
        else:
            return _error(400, "BadArgument", "Stream chunks are typing or message activities")

        if stream_id is None:  # a new stream
            if sequence != 1:
                return _error(400, "BadArgument", "A stream starts with streamSequence 1")
            if self.open_stream(call.conversation_id) is not None:
                return _error(403, "ContentStreamNotAllowed", NOT_ALLOWED)
            stream = FakeStream(self._new_id(), call.conversation_id, call.at, [body], 1)
            self.streams[stream.id] = stream
            self.messages[stream.id] = TeamsMessage(stream.id, call.conversation_id,
                                                    body.get("replyToId") or call.activity_id, [body])
            return web.json_response({"id": stream.id}, status=201)

        stream = self.streams.get(stream_id)
        if stream is None or stream.conversation_id != call.conversation_id:
            return _error(400, "BadArgument", f"Unknown streamId {stream_id}")
        state = self._stream_state(stream)
        if state == "streaming" and stream.stop_pressed:
            stream.state = "cancelled"
            return _error(403, "ContentStreamNotAllowed", CANCELLED)
        if state == "timed_out":
            return _error(403, "ContentStreamNotAllowed", TIMED_OUT)
        if state != "streaming":
            return _error(403, "ContentStreamNotAllowed", COMPLETED)
        if body["type"] == "typing":
            if sequence <= stream.sequence:
                self.violations.append(f"stream {stream.id}: sequence {sequence} after "
                                       f"{stream.sequence}")
                return web.json_response({"error": {
                    "code": "ContentStreamSequenceOrderPreConditionFailed",
                    "message": "Out of order chunk dropped"}}, status=202)
            previous = stream.texts[-1] if stream.texts else ""
            if kind == "streaming" and not (body.get("text") or "").startswith(previous):
                return _error(400, "BadArgument", "Streamed text must contain the previous text")
            if kind == "informative" and stream.texts:
                self.violations.append(f"stream {stream.id}: informative after streamed text")
            stream.sequence = sequence
        else:
            stream.state = "final"
        stream.chunks.append(body)
        self.messages[stream.id].versions.append(body)
        return web.json_response({"id": stream.id}, status=202)

    def _too_big(self, body: dict[str, Any], raw: bytes) -> str:
        if len(raw) > PAYLOAD_LIMIT:
            return f"Payload of {len(raw)} bytes exceeds {PAYLOAD_LIMIT}"
        if self.message_limit is not None:
            size = len(json.dumps(_without_images(body), ensure_ascii=False).encode())
            if size > self.message_limit:
                return f"Message of {size} bytes exceeds {self.message_limit}"
        return ""

    def _unauthorized(self, call: ConnectorCall) -> web.Response | None:
        """With credentials, the Bot Connector wants the bot's Bot Framework token on every
        call (teams.md §2.5: ``Authorization: Bearer <token>``)."""
        if self.token_check is None:
            return None
        scheme, _, token = (call.authorization or "").partition(" ")
        why = "no Authorization header" if not call.authorization else (
            "not a Bearer token" if scheme.lower() != "bearer" or not token.strip()
            else self.token_check(token.strip()))
        if not why:
            return None
        self.unauthorized.append((call.path, why))
        return web.json_response({"message": "Authorization has been denied for this request."},
                                 status=401)

    def _rate_limited(self, call: ConnectorCall) -> web.Response | None:
        """Teams' per-conversation limits (per bot per thread), counted over the sends it
        accepted."""
        sent = self._sent.setdefault((_bot_of(call), call.conversation_id), deque())
        now = call.at
        longest = max(seconds for _, seconds in self.windows)
        while sent and sent[0] <= now - longest:
            sent.popleft()
        for limit, seconds in self.windows:
            inside = [t for t in sent if t > now - seconds]
            if len(inside) >= limit:
                retry = max(0.001, inside[-limit] + seconds - now)
                return _error(429, "TooManyRequests", "API calls quota exceeded",
                              {"Retry-After": f"{retry:.3f}"})
        sent.append(now)
        return None

    async def _upload(self, request: web.Request, name: str) -> web.Response:
        data = await request.read()
        call = ConnectorCall(request.method, request.path, "", None, None, CIMultiDict(request.headers))
        self.calls.append(call)
        expected = f"bytes 0-{len(data) - 1}/{len(data)}"
        if request.method != "PUT":
            response = _error(405, "MethodNotAllowed", "upload with PUT")
        elif self.fail_uploads > 0:
            self.fail_uploads -= 1
            response = _error(500, "generalException", "upload failed")
        elif request.headers.get("Content-Range") != expected:
            response = _error(400, "invalidRange", f"Content-Range must be {expected!r}")
        else:
            self.uploads[name] = data
            response = web.json_response({"id": f"drive-item-{name}", "name": name, "size": len(data)},
                                         status=201)
        call.status = response.status
        async with self._cond:
            self._cond.notify_all()
        return response

    def _new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)


def _bot_of(call: ConnectorCall) -> str:
    """Which bot made the call: its token's ``appid`` (all anonymous calls are one bot)."""
    scheme, _, token = (call.authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return ""
    try:
        claims = jwt.decode(token.strip(), options={"verify_signature": False})
    except jwt.PyJWTError:
        return ""
    return str(claims.get("appid") or claims.get("azp") or "")


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status,
                             headers=headers)


def _without_images(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: ("" if isinstance(v, str) and v.startswith("data:") else _without_images(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_without_images(v) for v in node]
    return node


def _stream_info(body: dict[str, Any]) -> dict[str, Any]:
    return next((e for e in body.get("entities") or []
                 if isinstance(e, dict) and e.get("type") == "streaminfo"), {})


def _ai_entities(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in body.get("entities") or []
            if isinstance(e, dict) and e.get("@type") == "Message"]


def _feedback(body: dict[str, Any]) -> bool:
    data = body.get("channelData") or {}
    return isinstance(data, dict) and ("feedbackLoop" in data or "feedbackLoopEnabled" in data)


def _ai_metadata_problem(body: dict[str, Any]) -> str:
    """What Teams answers 400 for in a message's AI label, citations and feedback settings."""
    roots = [e for e in body.get("entities") or []
             if isinstance(e, dict) and e.get("@type") == "Message"]
    if len(roots) > 1:
        return "Multiple root message entities found under entities array"
    for root in roots:
        citations = root.get("citation") or []
        if len(citations) > 20:
            return "Bot message with more than 20 citations"
        for citation in citations:
            appearance = citation.get("appearance") or {}
            if not appearance.get("name") or citation.get("@type") != "Claim":
                return "The appearance object is empty"
            if len(appearance["name"]) > 80 or len(appearance.get("abstract") or "") > 160:
                return f"Error while parsing citation entity with ID: {citation.get('position')}"
    channel_data = body.get("channelData") or {}
    if isinstance(channel_data, dict) and "feedbackLoop" in channel_data \
            and "feedbackLoopEnabled" in channel_data:
        return "feedbackLoop and feedbackLoopEnabled must not both be set"
    return ""
