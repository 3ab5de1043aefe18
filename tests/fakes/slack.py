"""A loopback fake of the Slack Web API, honest to Slack's documented limits.

Point a real ``slack_sdk`` ``AsyncWebClient`` at it with ``base_url=await fake.start()``. It
keeps the state a test wants to assert on (messages per channel/thread with their edit history,
ephemerals, uploaded file bytes, home views, assistant statuses, agent sessions) and enforces
the limits our bot has to live with (shared/reference/slack.md §3–4):

* ``text`` over 4,000 characters → ``msg_too_long``;
* Block Kit: more than 50 blocks, a section over 3,000, a header over 150, context over 10
  elements, actions over 25, image alt text over 2,000 → ``invalid_blocks`` with
  ``errors: ["… [json-pointer:/blocks/N/…]"]``; more than 12,000 characters of ``markdown``
  blocks in one message → ``msg_blocks_too_long``;
* per element and surface (``tests/fakes/slack_rules.py``): empty text objects, button text over
  75 / value over 2,000, option value over 150, an ``action_id`` repeated within a block, a
  ``block_id`` repeated within a message or view → ``invalid_blocks``; ``chat.update`` with
  neither text nor blocks → ``no_text``; views (``views.publish``/``views.open``) checked as
  Slack does (type, 1–100 blocks, the same block rules) → ``invalid_arguments`` with
  ``response_metadata.messages``; ``response_url`` bodies (``POST /respond/{user}``) checked
  like ``chat.postMessage`` and refused as a webhook does (HTTP 400, the error as plain text;
  see :attr:`FakeSlack.refused_responses`);
* rate limits per (team, method) in a sliding window (``chat.update`` Tier 3 = 50/min) and a
  per-channel token bucket for ``chat.postMessage`` (1/s, small burst), answered like Slack:
  HTTP 429, ``Retry-After: <seconds>``, ``{"ok": false, "error": "ratelimited"}``;
* native streams expire ``stream_ttl`` seconds after ``chat.startStream``
  (``message_not_in_streaming_state``), as observed in the field (§2.4).

Many workspaces (the distributed app): :meth:`FakeSlack.offer_install` makes an OAuth code that
``oauth.v2.access`` (client id and secret, as Slack checks them) exchanges for a bot token of
that workspace — or of an Enterprise Grid organisation — with a refresh token and ``expires_in``
when the installation rotates tokens (``grant_type=refresh_token`` then swaps a refresh token,
once, for a new pair). Once any such token exists, only known bot tokens are accepted: a revoked
one (:meth:`FakeSlack.revoke`) answers ``token_revoked``, an expired one ``token_expired``;
``auth.test`` answers for the token's own installation, and every call records the token it
came with (:attr:`Call.token`).

Requests are read like Slack reads them: parameters may come in the URL query (slack_sdk sends
``auth.test`` and ``files.*`` that way), a form body, or a JSON body (``chat.*``). Every call,
failed or not, is recorded. Tests wait on state with :meth:`FakeSlack.wait_for`, which is
woken by every call instead of polling with sleeps.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import math
import re
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes import slack_rules
from tests.fakes.loopback import serve

BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
TEAM_ID = "T1"
APP_ID = "A1"
CLIENT_ID = "1111.2222"
CLIENT_SECRET = "fake-client-secret"

# Tier numbers from shared/reference/slack.md §3.1 (Tier 2 = 20, Tier 3 = 50, Tier 4 = 100/min).
DEFAULT_LIMITS: dict[str, int] = {
    "chat.update": 50,
    "chat.delete": 50,
    "chat.postEphemeral": 100,
    "chat.startStream": 20,
    "chat.stopStream": 20,
    "chat.appendStream": 100,
    "reactions.add": 50,
    "conversations.open": 50,
    "conversations.replies": 50,
    "conversations.history": 50,
    "conversations.members": 100,  # Tier 4
    "usergroups.users.list": 20,  # Tier 2
    "views.publish": 100,
    "views.open": 100,
    "files.getUploadURLExternal": 100,
    "files.completeUploadExternal": 100,
    "files.info": 100,
    "assistant.threads.setSuggestedPrompts": 50,
    "assistant.threads.setTitle": 50,
    "agents.sessions.setStatus": 50,  # Tier 3 (java-slack-sdk #1633)
}

# Block types the fake accepts; anything else is ``invalid_blocks`` like Slack.
KNOWN_BLOCK_TYPES = {
    "section", "header", "divider", "context", "actions", "image", "input", "file", "rich_text",
    "video", "markdown", "table", "data_table", "plan", "task_card", "alert", "card", "carousel",
    "container", "context_actions",
}
MESSAGE_BLOCKS = 50  # counted after markdown blocks are expanded
STREAM_MARKDOWN = 12_000  # markdown characters per startStream/appendStream/stopStream call
STREAM_TASKS = 50  # task cards in one plan (streamed or as a block)
TASK_FIELD = 256  # characters of a task's title, details or output (agent-progress guidance)
TASK_STATUSES = {"pending", "in_progress", "complete", "error"}
CHUNK_TYPES = {"markdown_text", "task_update", "plan_update", "blocks"}
SESSION_STATUSES = ("processing", "active", "suspended", "closed")
MESSAGE_TEXT = 12_000  # characters of block text in one message (msg_blocks_too_long)
TABLE_CELLS = 10_000  # characters across one message's table cells
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+\S")
_MD_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
_MD_FENCE = re.compile(r"^\s*(```|~~~)")
_CHANNEL_ID = re.compile(r"^[CGDZ][A-Z0-9]{8,}$")
_JSON_ARGS = ("blocks", "files", "view", "loading_messages", "chunks", "metadata", "prompts")


@dataclass
class Call:
    """One request the fake received, as the server saw it."""

    method: str
    args: dict[str, Any]
    headers: dict[str, str]
    at: float
    status: int = 200
    response: dict[str, Any] = field(default_factory=dict)
    token: str = ""  # the token it came with (bearer header or ``token`` argument)


@dataclass
class Install:
    """A workspace (``team_id``) or an Enterprise Grid organisation (``org_install``, no team of
    its own) the app can be installed into through the fake's OAuth."""

    team_id: str | None
    team_name: str = "Fake Team"
    enterprise_id: str | None = None
    enterprise_name: str = "Fake Org"
    org_install: bool = False
    bot_user_id: str = BOT_USER_ID
    bot_id: str = BOT_ID
    installer: str = "U0INSTALLER"
    scopes: tuple[str, ...] = ("app_mentions:read", "chat:write")
    expires_in: int | None = None  # rotating tokens: seconds the token given at install lives
    refreshed_expires_in: int = 43_200  # ... and each refreshed one (Slack: 12 hours)


@dataclass
class BotToken:
    token: str
    install: Install
    expires_at: float | None = None  # wall clock (time.time()), as Slack's expires_in means
    revoked: bool = False


@dataclass
class Message:
    """The current state of one message (bot posts, file shares, seeded user messages)."""

    channel: str
    ts: str
    text: str = ""
    blocks: list[dict[str, Any]] | None = None
    thread_ts: str | None = None
    user: str = BOT_USER_ID
    bot_id: str | None = BOT_ID
    subtype: str | None = None
    files: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] | None = None
    streaming: bool = False
    stream_started: float = 0.0
    chunks: list[dict[str, Any]] = field(default_factory=list)
    #: a stream's task cards as Slack shows them: id → title, status, details and output (these
    #: two are appended on every update that carries them, as Slack does)
    tasks: dict[str, dict[str, str]] = field(default_factory=dict)
    plan_title: str = ""
    task_display_mode: str = ""
    deleted: bool = False

    def as_api(self) -> dict[str, Any]:
        """The message as Slack's API returns it."""
        out: dict[str, Any] = {"type": "message", "ts": self.ts, "user": self.user,
                               "text": self.text}
        if self.bot_id:
            out["bot_id"] = self.bot_id
        if self.blocks is not None:
            out["blocks"] = self.blocks
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if self.subtype:
            out["subtype"] = self.subtype
        if self.files:
            out["files"] = self.files
        if self.metadata:
            out["metadata"] = self.metadata
        return out


@dataclass
class Ephemeral:
    channel: str
    user: str
    text: str
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None
    message_ts: str


@dataclass
class StoredFile:
    id: str
    filename: str
    length: int
    alt_txt: str | None = None
    data: bytes | None = None
    title: str | None = None
    channel: str | None = None
    thread_ts: str | None = None
    share_ts: str | None = None
    completed: bool = False

    def as_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "name": self.filename, "title": self.title or self.filename,
            "mimetype": _mimetype(self.filename), "filetype": self.filename.rsplit(".", 1)[-1],
            "size": len(self.data or b""), "user": BOT_USER_ID,
            "permalink": f"https://fake.slack.test/files/{BOT_USER_ID}/{self.id}/{self.filename}",
            "url_private": f"https://files.fake.slack.test/files-pri/{TEAM_ID}-{self.id}/{self.filename}",
            "shares": {}, "channels": [], "groups": [], "ims": [],
        }
        if self.alt_txt:
            out["alt_txt"] = self.alt_txt
        if self.channel and self.share_ts:
            share = {"ts": self.share_ts}
            if self.thread_ts:
                share["thread_ts"] = self.thread_ts
            kind = "private" if self.channel[0] in "GD" else "public"
            out["shares"] = {kind: {self.channel: [share]}}
            out["channels" if self.channel[0] == "C" else "groups"].append(self.channel)
        return out


@dataclass
class _Hold:
    """A slow Slack for one method (see :meth:`FakeSlack.hold`)."""

    gate: asyncio.Event
    when: Callable[[dict[str, Any]], bool] | None = None
    after: bool = False

    def applies(self, args: dict[str, Any]) -> bool:
        return not self.gate.is_set() and (self.when is None or self.when(args))


class _Fail(Exception):
    """A Slack error answer, raised inside handlers."""

    def __init__(self, error: str, status: int = 200, headers: Mapping[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(error)
        self.body = {"ok": False, "error": error, **extra}
        self.status = status
        self.headers = dict(headers or {})


@dataclass
class _Fault:
    error: str
    status: int
    retry_after: int | None
    times: int
    extra: dict[str, Any]


class FakeSlack:
    """In-process Slack Web API on 127.0.0.1 with a random port."""

    def __init__(
        self,
        *,
        team_id: str = TEAM_ID,
        team: str = "Fake Team",
        user_id: str = BOT_USER_ID,
        user: str = "insightbot",
        bot_id: str = BOT_ID,
        window_seconds: float = 60.0,
        limits: Mapping[str, int] | None = None,
        post_message_per_second: float = 1.0,
        post_message_burst: int = 5,
        max_text_chars: int = 4000,
        stream_ttl: float = 300.0,
        unsupported_blocks: frozenset[str] = frozenset(),
        clock: Callable[[], float] = time.monotonic,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.auth = {"ok": True, "url": "https://fake.slack.test/", "team": team, "user": user,
                     "team_id": team_id, "user_id": user_id, "bot_id": bot_id,
                     "is_enterprise_install": False}
        self.team_id = team_id
        self.user_id = user_id
        self.bot_id = bot_id
        self.window_seconds = window_seconds
        self.limits = {**DEFAULT_LIMITS, **(limits or {})}
        self.post_message_per_second = post_message_per_second
        self.post_message_burst = post_message_burst
        self.max_text_chars = max_text_chars
        self.stream_ttl = stream_ttl
        # block types this workspace's Slack does not take yet (e.g. {"data_table"})
        self.unsupported_blocks = unsupported_blocks
        self.clock = clock

        self.calls: list[Call] = []
        self.ephemerals: list[Ephemeral] = []
        self.files: dict[str, StoredFile] = {}
        self.home_views: dict[str, dict[str, Any]] = {}
        self.opened_views: list[dict[str, Any]] = []  # modals (views.open), in order
        self.reactions: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.assistant_statuses: dict[tuple[str, str], list[str]] = defaultdict(list)
        # (status, loading_messages) of every setStatus call per thread, for what a person saw
        self.status_lines: dict[tuple[str, str], list[tuple[str, list[str]]]] = defaultdict(list)
        self.agent_sessions: dict[tuple[str, str | None], list[dict[str, Any]]] = defaultdict(list)
        self.suggested_prompts: list[dict[str, Any]] = []
        # bodies POSTed to response_url (slash commands, interactivity): /respond/{user}
        self.responses: list[tuple[str, dict[str, Any]]] = []
        # response_url bodies Slack refused: (user, body, error), e.g. invalid_blocks, no_text
        self.refused_responses: list[tuple[str, Any, str]] = []
        self.admins: set[str] = set()  # user ids users.info reports as workspace admins
        self.locales: dict[str, str] = {}  # user id → locale users.info reports (else en-US)
        # user group id (S…) → member ids (usergroups.users.list); others: no_such_subteam
        self.usergroups: dict[str, list[str]] = {}
        # channel id → member ids (conversations.members, paged); others: channel_not_found
        self.channel_members: dict[str, list[str]] = {}
        # Socket Mode: connected websockets and the envelope ids the app acknowledged
        self.sockets: list[web.WebSocketResponse] = []
        self.socket_acks: list[str] = []
        # every envelope Slack sent, in order, redeliveries too: (index in ``sockets``, envelope)
        self.socket_deliveries: list[tuple[int, dict[str, Any]]] = []
        self.socket_given_up: list[dict[str, Any]] = []  # envelopes past Slack's last retry
        self._socket_unacked: dict[str, tuple[int, dict[str, Any]]] = {}  # id → (socket, envelope)
        self._socket_waiting: list[dict[str, Any]] = []  # for the next connection to open
        self._socket_retired: set[int] = set()  # sockets nothing more is sent on
        self._socket_deaf: set[int] = set()  # sockets whose acks never reach Slack
        self._socket_transports: dict[int, Any] = {}
        self._messages: dict[tuple[str, str], Message] = {}
        self._order: list[tuple[str, str]] = []
        self._edits: dict[tuple[str, str], list[tuple[str, list[dict[str, Any]] | None]]] = (
            defaultdict(list))
        self._dms: dict[str, str] = {}
        self._faults: dict[str, deque[_Fault]] = defaultdict(deque)
        self._holds: dict[str, _Hold] = {}
        self.held: list[tuple[str, dict[str, Any]]] = []  # (method, args) of calls held so far
        self._windows: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._ts = itertools.count(1_700_000_000_000_100, 100)
        self._ids = itertools.count(1)
        # the distributed app: OAuth codes on offer, bot tokens issued, refresh tokens
        self.bot_tokens: dict[str, BotToken] = {}
        self._codes: dict[str, Install] = {}
        self._refresh: dict[str, Install] = {}  # unused refresh tokens
        self._spent_refresh: set[str] = set()
        self._secrets = itertools.count(1)
        self._caller: BotToken | None = None  # the token of the call being handled
        self._cond = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> str:
        """Bind 127.0.0.1 on a free port; return the ``base_url`` for ``AsyncWebClient``."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/upload/{file_id}", self._handle_upload)
        app.router.add_post("/respond/{user}", self._handle_respond)
        app.router.add_get("/socket", self._handle_socket)
        self._runner, self.port = await serve(app, handler_cancellation=False)
        self.base_url = f"http://127.0.0.1:{self.port}/api/"
        return self.base_url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ test controls

    def fail_next(self, method: str, error: str = "internal_error", status: int = 200,
                  retry_after: int | None = None, times: int = 1, **extra: Any) -> None:
        """Answer the next ``times`` calls of ``method`` with ``error`` (after the auth check).

        ``status=429, error="ratelimited", retry_after=0`` imitates a rate limit; ``extra``
        fields are merged into the body (e.g. ``errors=[...]`` for ``invalid_blocks``).
        """
        self._faults[method].append(_Fault(error, status, retry_after, times, extra))

    def hold(self, method: str) -> asyncio.Event:
        """Keep every call of ``method`` unanswered until the returned event is set (a slow
        Slack); calls still count as received when they arrive."""
        gate = self.hold_calls(method).gate
        return gate

    def hold_calls(self, method: str, *, when: Callable[[dict[str, Any]], bool] | None = None,
                   after: bool = False) -> _Hold:
        """:meth:`hold` with options: ``when`` holds only calls whose arguments it accepts;
        ``after`` carries the call out first and holds only its answer (the change is visible
        in Slack, the caller does not know yet). A call held *before* being carried out whose
        caller went away meanwhile (a killed bot) is dropped unapplied, as Slack drops a request
        that never fully arrived. Calls held are listed in ``held``."""
        hold = self._holds.get(method)
        if hold is None:
            hold = self._holds[method] = _Hold(asyncio.Event())
        hold.gate.clear()
        hold.when, hold.after = when, after
        return hold

    def offer_install(self, code: str, install: Install) -> None:
        """Slack's consent page gave the installer ``code`` (for the redirect URL): one
        ``oauth.v2.access`` may exchange it for ``install``'s bot token."""
        self._codes[code] = install

    def grant_token(self, install: Install, lifetime: int | None = None) -> BotToken:
        """Issue a bot token of ``install`` (what ``oauth.v2.access`` hands out); ``lifetime``:
        seconds it lasts (None: for ever, a token that does not rotate)."""
        prefix = "xoxe.xoxb-1-" if lifetime else "xoxb-"
        serial = next(self._secrets)
        token = f"{prefix}{install.team_id or install.enterprise_id}-{serial:04d}-fakesecret"
        expires_at = time.time() + lifetime if lifetime else None
        granted = self.bot_tokens[token] = BotToken(token, install, expires_at)
        return granted

    def revoke(self, *, team_id: str | None = None, enterprise_id: str | None = None) -> None:
        """The app was uninstalled there: every bot token of that installation stops working."""
        for granted in self.bot_tokens.values():
            install = granted.install
            if install.team_id == team_id and install.enterprise_id == enterprise_id:
                granted.revoked = True
        for refresh, install in list(self._refresh.items()):
            if install.team_id == team_id and install.enterprise_id == enterprise_id:
                del self._refresh[refresh]

    def expire(self, token: str) -> None:
        """``token`` expires now (whatever its ``expires_in`` said)."""
        self.bot_tokens[token].expires_at = time.time() - 1

    def tokens_of(self, *, team_id: str | None = None,
                  enterprise_id: str | None = None) -> list[str]:
        """The bot tokens issued for an installation, oldest first."""
        return [t.token for t in self.bot_tokens.values()
                if t.install.team_id == team_id and t.install.enterprise_id == enterprise_id]

    def refresh_grants(self) -> list[Call]:
        return [c for c in self.calls_to("oauth.v2.access")
                if c.args.get("grant_type") == "refresh_token"]

    def end_stream(self, channel: str, ts: str) -> None:
        """Slack ends a stream itself: the agent session's Stop (it stops the streams listed in
        ``agent_session_stopped``) or its own timeout; later chunks get
        ``message_not_in_streaming_state``."""
        msg = self.message(channel, ts)
        assert msg is not None and msg.streaming, f"{ts} is not streaming"
        msg.streaming = False

    def post_user_message(self, channel: str, text: str, *, user: str = "U1",
                          thread_ts: str | None = None) -> Message:
        """Seed a human's message (it arrives by event in real life, not by this API)."""
        msg = Message(channel=channel, ts=self._next_ts(), text=text, thread_ts=thread_ts,
                      user=user, bot_id=None)
        self._store(msg)
        return msg

    # ------------------------------------------------------------------ views for tests

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def messages(self, channel: str, thread_ts: str | None = None) -> list[Message]:
        """Live messages of a channel in post order; with ``thread_ts``, that thread's root
        (if known) and replies, like ``conversations.replies``."""
        out = []
        for key in self._order:
            msg = self._messages[key]
            if msg.deleted or msg.channel != channel:
                continue
            if thread_ts is None or msg.thread_ts == thread_ts or msg.ts == thread_ts:
                out.append(msg)
        return out

    def message(self, channel: str, ts: str) -> Message | None:
        msg = self._messages.get((channel, ts))
        return None if msg is None or msg.deleted else msg

    def edits(self, channel: str, ts: str) -> list[tuple[str, list[dict[str, Any]] | None]]:
        """``(text, blocks)`` of each successful ``chat.update`` of a message, in order."""
        return list(self._edits.get((channel, ts), []))

    def status(self, channel: str, thread_ts: str) -> str:
        """The assistant status currently shown in a thread ("" when cleared)."""
        history = self.assistant_statuses.get((channel, thread_ts))
        return history[-1] if history else ""

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Return once ``predicate()`` holds; re-checked after every request the fake handles."""
        async with self._cond:
            try:
                await asyncio.wait_for(self._cond.wait_for(predicate), timeout)
            except TimeoutError:
                last = "\n".join(f"  {c.method} {c.status} {_short(c.args)} -> {_short(c.response)}"
                                 for c in self.calls[-10:])
                raise AssertionError(
                    f"FakeSlack.wait_for: condition not met within {timeout}s; last calls:\n"
                    f"{last or '  (none)'}") from None

    # ------------------------------------------------------------------ HTTP plumbing

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await _read_args(request)
        hold = self._holds.get(method)
        held = hold is not None and hold.applies(args)
        if hold is not None and held and not hold.after:
            await self._wait_held(hold, method, args)
            if request.transport is None or request.transport.is_closing():
                return web.Response(status=400, text="the client went away")
        headers = dict(request.headers)
        call = Call(method=method, args=args, headers=headers, at=self.clock(),
                    token=_token_of(headers, args))
        status, body, extra_headers = 200, {}, {}
        try:
            if method == "oauth.v2.access":  # the app authenticates as itself, not with a token
                self._check_client(headers, args)
                self._inject_fault(method)
                body = {"ok": True, **self._oauth_access(args)}
            else:
                self._caller = self._check_auth(headers, args, method)
                self._inject_fault(method)
                handler = self._handlers().get(method)
                if handler is None:
                    raise _Fail("unknown_method")
                self._check_rate(method, args)
                body = handler(args)
                body = {"ok": True, **body}
        except _Fail as fail:
            status, body, extra_headers = fail.status, fail.body, fail.headers
        finally:
            self._caller = None
        call.status, call.response = status, body
        self.calls.append(call)
        await self._notify()
        if hold is not None and held and hold.after:
            await self._wait_held(hold, method, args)
        return web.json_response(body, status=status, headers=extra_headers)

    async def _wait_held(self, hold: _Hold, method: str, args: dict[str, Any]) -> None:
        self.held.append((method, args))
        await self._notify()
        await hold.gate.wait()

    def _connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket"}

    async def _handle_socket(self, request: web.Request) -> web.WebSocketResponse:
        """Socket Mode: say hello, send what waited for a connection, then relay envelopes pushed
        by tests; record the acks. When the connection ends, Slack retries on the next one what
        this one never acknowledged (:meth:`_socket_ended`)."""
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        index = len(self.sockets)
        self.sockets.append(ws)
        self._socket_transports[index] = request.transport
        try:
            await ws.send_json({"type": "hello", "num_connections": len(self._open_sockets()),
                                "connection_info": {"app_id": "A1"}})
            await self._send_waiting()
            await self._notify()
            async for msg in ws:
                if msg.type.name == "TEXT":
                    data = json.loads(msg.data)
                    if "envelope_id" in data and index not in self._socket_deaf:
                        self._socket_acked(str(data["envelope_id"]))
                        await self._notify()
        finally:
            self._socket_ended(index)
        await self._send_waiting()
        await self._notify()
        return ws

    async def push_envelope(self, envelope_type: str, payload: dict[str, Any], *,
                            envelope_id: str, retry_attempt: int = 0, lost: bool = False) -> None:
        """Send a Socket Mode envelope (``events_api``, ``slash_commands``, ``interactive``) on
        the newest open connection (once the app has connected at all).

        With no connection open — after a drop, before the app reconnects — Slack's delivery
        fails, so an ``events_api`` envelope arrives on the next connection as a retry
        (``retry_attempt`` + 1); a slash command or a click is not retried (the user sees an
        error). ``lost=True``: the envelope was in flight when the connection died — sent as far
        as Slack knows, never received by the app — so only its retry can arrive."""
        await self.wait_for(lambda: bool(self.sockets))
        envelope: dict[str, Any] = {"envelope_id": envelope_id, "type": envelope_type,
                                    "payload": payload,
                                    "accepts_response_payload": envelope_type != "events_api"}
        if envelope_type == "events_api":
            envelope.update(retry_attempt=retry_attempt,
                            retry_reason="timeout" if retry_attempt else "")
        await self._send_envelope(envelope, lost=lost)

    async def drop_socket(self, how: str = "close", *, warn: bool = False) -> None:
        """End the newest open Socket Mode connection the ways Slack (or the network) does:

        * ``"refresh"``: a ``disconnect`` envelope with reason ``refresh_requested``, which Slack
          sends before it retires a connection: nothing more is sent on it, and the app is to
          open a new connection (and close this one) itself;
        * ``"close"``: a WebSocket close frame from Slack's side;
        * ``"abort"``: the TCP connection is cut, no close frame: the app can only notice by
          itself (pings).

        ``warn=True`` sends the ``disconnect`` envelope first, then closes or cuts at once.
        Envelopes the connection did not acknowledge are retried on the next one (see
        :meth:`push_envelope`); so are envelopes pushed until the app reconnects."""
        if how not in ("refresh", "close", "abort"):
            raise ValueError(f"unknown way to drop a socket: {how!r}")
        index = self._open_socket()
        assert index is not None, "no open Socket Mode connection to drop"
        self._socket_retired.add(index)
        ws = self.sockets[index]
        if warn or how == "refresh":
            await ws.send_json({"type": "disconnect", "reason": "refresh_requested",
                                "debug_info": {"host": "fake-slack"}})
        if how == "close":
            await ws.close(code=1001, message=b"going away")
        elif how == "abort":
            self._socket_transports[index].abort()

    def lose_socket_acks(self) -> None:
        """From now on, acks the app sends on the current connection never reach Slack (they
        are lost with it when it drops): Slack retries those envelopes on the next one."""
        index = self._open_socket()
        assert index is not None, "no open Socket Mode connection"
        self._socket_deaf.add(index)

    def socket_unacked(self) -> list[str]:
        """Envelopes Slack still expects an ack for (sent, or waiting for a connection)."""
        return [*self._socket_unacked, *(env["envelope_id"] for env in self._socket_waiting)]

    def socket_retries(self, envelope_id: str) -> list[int]:
        """``retry_attempt`` of each delivery of an envelope, in order."""
        return [env.get("retry_attempt", 0) for _, env in self.socket_deliveries
                if env["envelope_id"] == envelope_id]

    def _open_sockets(self) -> list[int]:
        return [i for i, ws in enumerate(self.sockets)
                if i not in self._socket_retired and not ws.closed]

    def _open_socket(self) -> int | None:
        open_ = self._open_sockets()
        return open_[-1] if open_ else None

    async def _send_envelope(self, envelope: dict[str, Any], *, lost: bool = False) -> None:
        index = self._open_socket()
        if index is None:  # the delivery fails at once
            self._retry_later(envelope)
            return
        # Slack waits for the ack from here on; if the send fails, the end of the connection
        # (which is what makes it fail) moves the envelope on to the next one
        self._socket_unacked[envelope["envelope_id"]] = (index, envelope)
        self.socket_deliveries.append((index, envelope))
        if lost:
            return
        try:
            await self.sockets[index].send_json(envelope)
        except ConnectionError:
            pass

    async def _send_waiting(self) -> None:
        while self._socket_waiting and self._open_socket() is not None:
            await self._send_envelope(self._socket_waiting.pop(0))

    def _socket_acked(self, envelope_id: str) -> None:
        self.socket_acks.append(envelope_id)
        self._socket_unacked.pop(envelope_id, None)
        self._socket_waiting = [e for e in self._socket_waiting if e["envelope_id"] != envelope_id]

    def _socket_ended(self, index: int) -> None:
        """A connection is gone: what it did not acknowledge is retried on the next one."""
        self._socket_retired.add(index)
        for envelope_id, (sent_on, envelope) in list(self._socket_unacked.items()):
            if sent_on == index:
                del self._socket_unacked[envelope_id]
                self._retry_later(envelope)

    def _retry_later(self, envelope: dict[str, Any]) -> None:
        """Slack retries an event (up to three times) whose delivery failed or went
        unacknowledged; slash commands and interactions are not retried."""
        attempt = envelope.get("retry_attempt", 0) + 1
        if envelope["type"] != "events_api" or attempt > 3:
            self.socket_given_up.append(envelope)
            return
        self._socket_waiting.append({**envelope, "retry_attempt": attempt,
                                     "retry_reason": "timeout"})

    async def _handle_respond(self, request: web.Request) -> web.Response:
        """A ``response_url``: Slack answers plain ``ok`` and shows the body to that user; a
        body it cannot show gets HTTP 400 with the error code as plain text, as a webhook
        answers (Bolt's ``respond`` does not raise on it: the test must look)."""
        user = request.match_info["user"]
        try:
            body = await request.json()
        except ValueError:
            body = None
        call = Call(method="respond", args=body if isinstance(body, dict) else {"body": body},
                    headers=dict(request.headers), at=self.clock())
        error = slack_rules.response_errors(body)
        if error is None and isinstance(body, dict) and not body.get("delete_original"):
            try:
                self._checked_content(body)
            except _Fail as fail:
                error, call.response = fail.body["error"], fail.body
        if error is not None:
            call.status = 400
            call.response = call.response or {"ok": False, "error": error}
            self.refused_responses.append((user, body, error))
        else:
            self.responses.append((user, body))
        self.calls.append(call)
        await self._notify()
        if error is not None:
            return web.Response(status=400, text=error, content_type="text/plain")
        return web.Response(text="ok")

    def responses_to(self, user: str) -> list[dict[str, Any]]:
        return [body for who, body in self.responses if who == user]

    async def _handle_upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        data = await request.read()
        call = Call(method="upload", args={"file_id": file_id, "length": len(data)},
                    headers=dict(request.headers), at=self.clock())
        stored = self.files.get(file_id)
        if stored is None:
            call.status = 404
            self.calls.append(call)
            await self._notify()
            return web.Response(status=404, text="Not Found", content_type="text/plain")
        stored.data = data
        self.calls.append(call)
        await self._notify()
        return web.Response(text=f"OK - {len(data)}", content_type="text/plain")

    async def _notify(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    def _check_auth(self, headers: Mapping[str, str], args: Mapping[str, Any],
                    method: str = "") -> BotToken | None:
        """The bot token of the call (None for the app-level token, or any bot token while no
        installation was made through OAuth: the single workspace)."""
        token = _token_of(headers, args)
        if not token:
            raise _Fail("not_authed")
        if not token.startswith(("xoxb-", "xoxe.xoxb-", "xapp-")):
            raise _Fail("invalid_auth")
        if token.startswith("xapp-") != (method == "apps.connections.open"):
            raise _Fail("not_allowed_token_type")
        if token.startswith("xapp-") or not self.bot_tokens:
            return None
        granted = self.bot_tokens.get(token)
        if granted is None:
            raise _Fail("invalid_auth")
        if granted.revoked:
            raise _Fail("token_revoked")
        if granted.expires_at is not None and granted.expires_at <= time.time():
            raise _Fail("token_expired")
        return granted

    def _check_client(self, headers: Mapping[str, str], args: Mapping[str, Any]) -> None:
        """``oauth.v2.access``: the client id and secret, by HTTP Basic auth or as arguments."""
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        client_id, secret = args.get("client_id"), args.get("client_secret")
        if auth.lower().startswith("basic "):
            try:
                client_id, _, secret = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except ValueError:
                raise _Fail("invalid_client_id") from None
        if client_id != self.client_id:
            raise _Fail("invalid_client_id")
        if secret != self.client_secret:
            raise _Fail("bad_client_secret")

    def _oauth_access(self, args: dict[str, Any]) -> dict[str, Any]:
        if args.get("grant_type") == "refresh_token":
            refresh = str(args.get("refresh_token") or "")
            install = self._refresh.pop(refresh, None)
            if install is None:  # unknown, or already used once: Slack revoked it then
                raise _Fail("invalid_refresh_token")
            self._spent_refresh.add(refresh)
            lifetime: int | None = install.refreshed_expires_in
        else:
            install = self._codes.pop(str(args.get("code") or ""), None)
            if install is None:  # unknown, or already exchanged
                raise _Fail("invalid_code")
            lifetime = install.expires_in
        granted = self.grant_token(install, lifetime)
        body: dict[str, Any] = {
            "app_id": APP_ID, "access_token": granted.token, "token_type": "bot",
            "scope": ",".join(install.scopes), "bot_user_id": install.bot_user_id,
            "team": None if install.org_install else {"id": install.team_id,
                                                      "name": install.team_name},
            "enterprise": {"id": install.enterprise_id, "name": install.enterprise_name}
            if install.enterprise_id else None,
            "is_enterprise_install": install.org_install,
            "authed_user": {"id": install.installer},
        }
        if lifetime:
            refresh = f"xoxe-1-{install.team_id or install.enterprise_id}-{next(self._secrets):04d}"
            self._refresh[refresh] = install
            body.update(refresh_token=refresh, expires_in=lifetime)
        return body

    def _inject_fault(self, method: str) -> None:
        queue = self._faults.get(method)
        if not queue:
            return
        fault = queue[0]
        fault.times -= 1
        if fault.times <= 0:
            queue.popleft()
        headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
        raise _Fail(fault.error, status=fault.status, headers=headers, **fault.extra)

    def _check_rate(self, method: str, args: Mapping[str, Any]) -> None:
        caller = self._caller  # limits are per workspace: a known token's own
        team = str((caller.install.team_id or caller.install.enterprise_id) if caller is not None
                   else (args.get("team_id") or self.team_id))
        now = self.clock()
        if method == "chat.postMessage":
            self._take_post_token(team, str(args.get("channel", "")), now)
            return
        limit = self.limits.get(method)
        if not limit:
            return
        window = self._windows[(team, method)]
        while window and window[0] <= now - self.window_seconds:
            window.popleft()
        if len(window) >= limit:
            wait = window[0] + self.window_seconds - now
            raise _ratelimited(wait)
        window.append(now)

    def _take_post_token(self, team: str, channel: str, now: float) -> None:
        """1 message per second per channel with a small burst: a token bucket."""
        burst = float(self.post_message_burst)
        tokens, last = self._buckets.get((team, channel), (burst, now))
        tokens = min(burst, tokens + (now - last) * self.post_message_per_second)
        if tokens < 1.0:
            self._buckets[(team, channel)] = (tokens, now)
            raise _ratelimited((1.0 - tokens) / self.post_message_per_second)
        self._buckets[(team, channel)] = (tokens - 1.0, now)

    # ------------------------------------------------------------------ methods

    def _handlers(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {
            "auth.test": self._auth_test,
            "apps.connections.open": self._connections_open,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.delete": self._delete,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.getPermalink": self._permalink,
            "chat.startStream": self._start_stream,
            "chat.appendStream": self._append_stream,
            "chat.stopStream": self._stop_stream,
            "reactions.add": self._reaction_add,
            "assistant.threads.setStatus": self._set_status,
            "assistant.threads.setSuggestedPrompts": self._set_prompts,
            "assistant.threads.setTitle": lambda a: {},
            "agents.sessions.setStatus": self._session_status,
            "views.publish": self._views_publish,
            "views.open": self._views_open,
            "users.info": self._users_info,
            "conversations.open": self._conversations_open,
            "conversations.replies": self._replies,
            "conversations.history": self._history,
            "conversations.members": self._conversations_members,
            "usergroups.users.list": self._usergroup_users,
            "files.getUploadURLExternal": self._get_upload_url,
            "files.completeUploadExternal": self._complete_upload,
            "files.info": self._files_info,
        }

    def _bot_user(self) -> str:
        return self._caller.install.bot_user_id if self._caller is not None else self.user_id

    def _bot_id(self) -> str:
        return self._caller.install.bot_id if self._caller is not None else self.bot_id

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        caller = self._caller
        if caller is None:
            return {k: v for k, v in self.auth.items() if k != "ok"}
        install = caller.install
        answer: dict[str, Any] = {
            "url": "https://fake.slack.test/", "team": install.team_name, "user": "insightbot",
            "team_id": install.team_id or install.enterprise_id, "user_id": install.bot_user_id,
            "bot_id": install.bot_id, "is_enterprise_install": install.org_install}
        if install.enterprise_id:
            answer["enterprise_id"] = install.enterprise_id
        return answer

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = _required(args, "channel")
        text, blocks = self._checked_content(args)
        if not text and not blocks and not args.get("attachments"):
            raise _Fail("no_text")
        thread_ts = _opt_str(args.get("thread_ts"))
        msg = Message(channel=channel, ts=self._next_ts(), text=text, blocks=blocks,
                      thread_ts=thread_ts, user=self._bot_user(), bot_id=self._bot_id(),
                      metadata=_as_json(args.get("metadata")))
        self._store(msg)
        self._clear_status(channel, thread_ts)
        return {"channel": channel, "ts": msg.ts, "message": msg.as_api()}

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        msg = self._existing(args, "ts")
        if msg.user != self._bot_user():  # only the bot's own messages (of this workspace)
            raise _Fail("cant_update_message")
        if msg.streaming and self.clock() - msg.stream_started <= self.stream_ttl:
            # Not documented either way; the bot must stop its stream before editing it, so the
            # fake holds it to that (after Slack's own expiry, chat.update is the recovery path).
            raise _Fail("message_is_streaming")
        msg.streaming = False
        text, blocks = self._checked_content(args)
        if not text and not blocks and not args.get("attachments") and not args.get("file_ids"):
            raise _Fail("no_text")  # an edit must leave something to show, as a post must
        if "text" in args or "markdown_text" in args:
            msg.text = text
        if "blocks" in args:
            msg.blocks = blocks
        if args.get("metadata") is not None:
            msg.metadata = _as_json(args.get("metadata"))
        self._edits[(msg.channel, msg.ts)].append((msg.text, msg.blocks))
        return {"channel": msg.channel, "ts": msg.ts, "text": msg.text, "message": msg.as_api()}

    def _delete(self, args: dict[str, Any]) -> dict[str, Any]:
        msg = self._existing(args, "ts")
        if msg.user != self._bot_user():
            raise _Fail("cant_delete_message")
        msg.deleted = True
        return {"channel": msg.channel, "ts": msg.ts}

    def _post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = _required(args, "channel")
        user = _required(args, "user")
        text, blocks = self._checked_content(args)
        if not text and not blocks:
            raise _Fail("no_text")
        eph = Ephemeral(channel=channel, user=user, text=text, blocks=blocks,
                        thread_ts=_opt_str(args.get("thread_ts")), message_ts=self._next_ts())
        self.ephemerals.append(eph)
        return {"message_ts": eph.message_ts}

    def _permalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = _required(args, "channel")
        ts = _required(args, "message_ts")
        return {"channel": channel,
                "permalink": f"https://fake.slack.test/archives/{channel}/p{ts.replace('.', '')}"}

    def _start_stream(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = _required(args, "channel")
        if channel[:1] in ("C", "G"):  # "required when streaming to channels" (§2.4)
            if not args.get("recipient_user_id"):
                raise _Fail("missing_recipient_user_id")
            if not args.get("recipient_team_id"):
                raise _Fail("missing_recipient_team_id")
        thread_ts = _opt_str(args.get("thread_ts"))
        mode = args.get("task_display_mode")
        if mode is not None and mode not in ("timeline", "plan"):
            raise _Fail("invalid_arguments")
        msg = Message(channel=channel, ts=self._next_ts(), thread_ts=thread_ts,
                      user=self._bot_user(), bot_id=self._bot_id(), streaming=True,
                      stream_started=self.clock(), task_display_mode=str(mode or "timeline"))
        self._append_chunks(msg, args)
        self._store(msg)
        self._clear_status(channel, thread_ts)
        return {"channel": channel, "ts": msg.ts}

    def _append_stream(self, args: dict[str, Any]) -> dict[str, Any]:
        msg = self._live_stream(args)
        self._append_chunks(msg, args)
        return {"channel": msg.channel, "ts": msg.ts}

    def _stop_stream(self, args: dict[str, Any]) -> dict[str, Any]:
        msg = self._live_stream(args)
        self._append_chunks(msg, args)
        if args.get("blocks") is not None:
            blocks = _as_json(args.get("blocks"))
            self._validate_blocks(blocks)
            msg.blocks = blocks
        if args.get("metadata") is not None:
            msg.metadata = _as_json(args.get("metadata"))
        if args.get("session_status") and args["session_status"] not in SESSION_STATUSES:
            raise _Fail("invalid_arguments")
        msg.streaming = False
        if args.get("session_status"):
            self.agent_sessions[(msg.channel, msg.thread_ts)].append(
                {"status": args["session_status"]})
        return {"channel": msg.channel, "ts": msg.ts, "message": msg.as_api()}

    def _reaction_add(self, args: dict[str, Any]) -> dict[str, Any]:
        key = (_required(args, "channel"), _required(args, "timestamp"))
        name = _required(args, "name")
        if name in self.reactions[key]:
            raise _Fail("already_reacted")
        self.reactions[key].append(name)
        return {}

    def _set_status(self, args: dict[str, Any]) -> dict[str, Any]:
        key = (_required(args, "channel_id"), _required(args, "thread_ts"))
        loading = _as_json(args.get("loading_messages")) or []
        if len(loading) > 10:
            raise _Fail("invalid_arguments")
        self.assistant_statuses[key].append(str(args.get("status") or ""))
        self.status_lines[key].append((str(args.get("status") or ""), [str(m) for m in loading]))
        return {}

    def _set_prompts(self, args: dict[str, Any]) -> dict[str, Any]:
        prompts = _as_json(args.get("prompts")) or []
        _required(args, "channel_id")
        if not isinstance(prompts, list) or not 1 <= len(prompts) <= 4 or not all(
                isinstance(p, dict) and p.get("title") and p.get("message") for p in prompts):
            raise _Fail("invalid_arguments")
        self.suggested_prompts.append(dict(args, prompts=prompts))
        return {}

    def _session_status(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = _required(args, "channel_id")
        status = _required(args, "status")
        if status not in SESSION_STATUSES:
            raise _Fail("invalid_arguments")
        if args.get("title") is not None and not 1 <= len(str(args["title"])) <= 200:
            raise _Fail("invalid_arguments")  # agents.sessions.rename: a title of 1-200 characters
        entry = {k: args[k] for k in ("status", "title", "initiator_user_id") if args.get(k)}
        self.agent_sessions[(channel, _opt_str(args.get("thread_ts")))].append(entry)
        return {}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = _required(args, "user")
        admin = user in self.admins
        out = {"id": user, "team_id": self.team_id, "name": user.lower(), "is_admin": admin,
               "is_owner": False, "is_primary_owner": False, "is_bot": False}
        if str(args.get("include_locale", "")).lower() in ("true", "1"):
            out["locale"] = self.locales.get(user, "en-US")
        return {"ok": True, "user": out}

    def _checked_view(self, args: Mapping[str, Any], kind: str) -> dict[str, Any]:
        """A view as Slack checks it: its own fields, then its blocks by the message rules
        (100 of them, no text budget); any fault is ``invalid_arguments`` with
        ``response_metadata.messages`` pointing into ``/view``, as Slack answers views."""
        view = _as_json(args.get("view"))
        errors = slack_rules.view_errors(view, kind)
        if not errors:
            try:
                self._validate_blocks(view["blocks"], limit=slack_rules.VIEW_BLOCKS,
                                      text_limit=None)
            except _Fail as fail:
                errors = [e.replace("[json-pointer:/blocks", "[json-pointer:/view/blocks")
                          for e in fail.body.get("errors") or [fail.body["error"]]]
        if errors:
            raise _Fail("invalid_arguments",
                        response_metadata={"messages": [f"[ERROR] {e}" for e in errors]})
        return view

    def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        user_id = _required(args, "user_id")
        view = self._checked_view(args, "home")
        stored = {"id": f"V{next(self._ids):09d}", **view}
        self.home_views[user_id] = stored
        return {"view": stored}

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        """A modal opened from a click: needs the click's ``trigger_id``; 100 blocks at most."""
        trigger = _required(args, "trigger_id")
        view = self._checked_view(args, "modal")
        stored = {"id": f"V{next(self._ids):09d}", "trigger_id": trigger, **view}
        self.opened_views.append(stored)
        return {"view": stored}

    def _usergroup_users(self, args: dict[str, Any]) -> dict[str, Any]:
        """``{"users": [...]}``, unpaged like Slack's; an unknown id is ``no_such_subteam``."""
        group = _required(args, "usergroup")
        if group not in self.usergroups:
            raise _Fail("no_such_subteam")
        return {"users": list(self.usergroups[group])}

    def _conversations_members(self, args: dict[str, Any]) -> dict[str, Any]:
        """A page of member ids and ``response_metadata.next_cursor`` ("" on the last page);
        ``limit`` 1–999 (default 100), an opaque cursor as Slack's (base64 of ``user:<id>``)."""
        channel = _required(args, "channel")
        if channel not in self.channel_members:
            raise _Fail("channel_not_found")
        try:
            limit = int(args.get("limit") or 100)
        except (TypeError, ValueError):
            raise _Fail("invalid_limit") from None
        if not 1 <= limit <= 999:
            raise _Fail("invalid_limit")
        members = self.channel_members[channel]
        start = 0
        if args.get("cursor"):
            try:
                start = members.index(base64.b64decode(str(args["cursor"])).decode()
                                      .removeprefix("user:"))
            except ValueError:
                raise _Fail("invalid_cursor") from None
        page, rest = members[start:start + limit], members[start + limit:]
        cursor = base64.b64encode(f"user:{rest[0]}".encode()).decode() if rest else ""
        return {"members": page, "response_metadata": {"next_cursor": cursor}}

    def _conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        users = str(args.get("users") or "")
        if not users:
            raise _Fail("users_list_not_supplied")
        if users not in self._dms:
            self._dms[users] = f"D{next(self._ids):09d}"
        return {"channel": {"id": self._dms[users]}}

    def _replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = _required(args, "channel"), _required(args, "ts")
        msgs = self.messages(channel, ts)
        if not msgs:
            raise _Fail("thread_not_found")
        return {"messages": [m.as_api() for m in msgs], "has_more": False}

    def _history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = _required(args, "channel")
        roots = [m for m in self.messages(channel) if not m.thread_ts or m.thread_ts == m.ts]
        return {"messages": [m.as_api() for m in reversed(roots)], "has_more": False}

    def _get_upload_url(self, args: dict[str, Any]) -> dict[str, Any]:
        filename = _required(args, "filename")
        try:
            length = int(_required(args, "length"))
        except ValueError:
            raise _Fail("invalid_arguments") from None
        file_id = f"F{next(self._ids):09d}"
        self.files[file_id] = StoredFile(id=file_id, filename=filename, length=length,
                                         alt_txt=_opt_str(args.get("alt_txt")))
        return {"file_id": file_id,
                "upload_url": f"http://127.0.0.1:{self.port}/upload/{file_id}"}

    def _complete_upload(self, args: dict[str, Any]) -> dict[str, Any]:
        items = _as_json(args.get("files"))
        if not isinstance(items, list) or not items:
            raise _Fail("invalid_arguments")
        channel = _opt_str(args.get("channel_id"))
        if channel and not _CHANNEL_ID.match(channel):
            pointer = "must match regex pattern: ^[CGDZ][A-Z0-9]{8,}$ [json-pointer:/channel_id]"
            raise _Fail("invalid_arguments",
                        response_metadata={"messages": [f"[ERROR] input {pointer}"]})
        thread_ts = _opt_str(args.get("thread_ts"))
        stored: list[StoredFile] = []
        for item in items:
            f = self.files.get(str(item.get("id"))) if isinstance(item, dict) else None
            if f is None or f.data is None:
                raise _Fail("file_not_found")
            f.title = _opt_str(item.get("title")) or f.filename
            stored.append(f)
        if channel:
            msg = Message(channel=channel, ts=self._next_ts(),
                          text=str(args.get("initial_comment") or ""), thread_ts=thread_ts,
                          user=self._bot_user(), bot_id=None, subtype="file_share")
            for f in stored:
                f.channel, f.thread_ts, f.share_ts, f.completed = channel, thread_ts, msg.ts, True
            msg.files = [f.as_api() for f in stored]
            self._store(msg)
        else:
            for f in stored:
                f.completed = True
        return {"files": [{"id": f.id, "title": f.title, "name": f.filename} for f in stored]}

    def _files_info(self, args: dict[str, Any]) -> dict[str, Any]:
        f = self.files.get(_required(args, "file"))
        if f is None or not f.completed:
            raise _Fail("file_not_found")
        return {"file": f.as_api()}

    # ------------------------------------------------------------------ helpers

    def _next_ts(self) -> str:
        micros = next(self._ts)
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _store(self, msg: Message) -> None:
        self._messages[(msg.channel, msg.ts)] = msg
        self._order.append((msg.channel, msg.ts))

    def _existing(self, args: Mapping[str, Any], ts_key: str) -> Message:
        channel = _required(args, "channel")
        msg = self.message(channel, _required(args, ts_key))
        if msg is None:
            raise _Fail("message_not_found")
        return msg

    def _live_stream(self, args: Mapping[str, Any]) -> Message:
        msg = self._existing(args, "ts")
        if msg.streaming and self.clock() - msg.stream_started > self.stream_ttl:
            msg.streaming = False  # Slack closed it server-side
        if not msg.streaming:
            raise _Fail("message_not_in_streaming_state")
        return msg

    def _append_chunks(self, msg: Message, args: Mapping[str, Any]) -> None:
        """One call's text and chunks, validated as a whole before any of it shows: at most
        12,000 characters of markdown per call, known chunk types, task fields within 256
        characters, at most 50 tasks per message."""
        text = str(args.get("markdown_text") or "")
        chunks = _as_json(args.get("chunks")) or []
        if not isinstance(chunks, list):
            raise _Fail("invalid_chunks")
        errors: list[str] = []
        for i, chunk in enumerate(chunks):
            errors += _chunk_errors(chunk, f"/chunks/{i}")
        new_tasks = {c.get("id") for c in chunks if isinstance(c, dict)
                     and c.get("type") == "task_update"} - set(msg.tasks)
        if len(msg.tasks) + len(new_tasks) > STREAM_TASKS:
            errors.append(f"no more than {STREAM_TASKS} tasks allowed [json-pointer:/chunks]")
        if errors:
            raise _Fail("invalid_chunks", errors=errors)
        markdown = text + "".join(str(c.get("text", "")) for c in chunks
                                  if c.get("type") == "markdown_text")
        if len(markdown) > STREAM_MARKDOWN:
            raise _Fail("msg_too_long")
        msg.text += text
        for chunk in chunks:
            msg.chunks.append(chunk)
            kind = chunk.get("type")
            if kind == "markdown_text":
                msg.text += str(chunk.get("text", ""))
            elif kind == "plan_update":
                msg.plan_title = str(chunk["title"])
            elif kind == "task_update":
                task = msg.tasks.setdefault(chunk["id"], {"details": "", "output": ""})
                task["title"], task["status"] = chunk["title"], chunk["status"]
                for key in ("details", "output"):  # appended, as Slack does
                    if chunk.get(key):
                        task[key] += str(chunk[key])

    def _clear_status(self, channel: str, thread_ts: str | None) -> None:
        """A reply in the thread clears the assistant status, as Slack does."""
        key = (channel, thread_ts or "")
        if self.assistant_statuses.get(key) and self.assistant_statuses[key][-1]:
            self.assistant_statuses[key].append("")

    def _checked_content(self, args: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]] | None]:
        text = str(args.get("text") or args.get("markdown_text") or "")
        if len(text) > self.max_text_chars:
            raise _Fail("msg_too_long")
        blocks = _as_json(args.get("blocks")) if args.get("blocks") is not None else None
        if blocks is not None:
            self._validate_blocks(blocks)
        return text, blocks

    def _validate_blocks(self, blocks: Any, *, limit: int = MESSAGE_BLOCKS,
                         text_limit: int | None = MESSAGE_TEXT) -> None:
        """Slack's per-message limits: blocks as Slack expands them, every block's text, one
        table, the table cells' characters, and each block's own limits."""
        if not isinstance(blocks, list):
            raise _Fail("invalid_blocks_format")
        errors: list[str] = []
        if sum(_expanded(b) for b in blocks) > limit:
            errors.append(f"no more than {limit} items allowed [json-pointer:/blocks]")
        tables = [i for i, b in enumerate(blocks)
                  if isinstance(b, dict) and b.get("type") in ("table", "data_table")]
        if len(tables) > 1:
            errors.append(f"only_one_table_allowed [json-pointer:/blocks/{tables[1]}]")
        unsupported = self.unsupported_blocks
        for i, block in enumerate(blocks):
            if isinstance(block, dict) and block.get("type") in unsupported:
                errors.append(f"unsupported type: {block['type']} [json-pointer:/blocks/{i}/type]")
                continue
            errors.extend(_block_errors(block, f"/blocks/{i}"))
        errors.extend(slack_rules.block_id_errors(blocks))
        if sum(_cells_text(b) for b in blocks) > TABLE_CELLS:
            errors.append(f"table cells over {TABLE_CELLS} characters [json-pointer:/blocks]")
        if errors:
            raise _Fail("invalid_blocks", errors=errors,
                        response_metadata={"messages": [f"[ERROR] {e}" for e in errors]})
        if text_limit is not None and sum(len(s) for s in _texts(blocks)) > text_limit:
            raise _Fail("msg_blocks_too_long")


# ---------------------------------------------------------------------- module helpers


def _chunk_errors(chunk: Any, at: str) -> list[str]:
    """A streaming chunk as slack_sdk's chunk models and Slack's guidance define it."""
    if not isinstance(chunk, dict) or chunk.get("type") not in CHUNK_TYPES:
        return [f"unsupported chunk type [json-pointer:{at}/type]"]
    errors: list[str] = []
    kind = chunk["type"]
    required = {"markdown_text": ("text",), "plan_update": ("title",),
                "task_update": ("id", "title", "status"), "blocks": ("blocks",)}[kind]
    for key in required:
        if chunk.get(key) in (None, ""):
            errors.append(f"missing required field: {key} [json-pointer:{at}/{key}]")
    if kind == "task_update":
        if chunk.get("status") not in TASK_STATUSES:
            errors.append(f"invalid status [json-pointer:{at}/status]")
        for key in ("title", "details", "output"):
            value = chunk.get(key)
            if isinstance(value, str) and len(value) > TASK_FIELD:
                errors.append(f"must be less than {TASK_FIELD + 1} characters [json-pointer:{at}/{key}]")
    if kind == "plan_update" and len(str(chunk.get("title", ""))) > TASK_FIELD:
        errors.append(f"must be less than {TASK_FIELD + 1} characters [json-pointer:{at}/title]")
    return errors


def _plan_errors(block: dict[str, Any], at: str) -> list[str]:
    """``plan``: a title and at most 50 ``task_card``s with unique ids, a known status and
    rich_text details/output."""
    errors: list[str] = []
    if not isinstance(block.get("title"), str) or not block["title"]:
        errors.append(f"missing required field: title [json-pointer:{at}/title]")
    tasks = block.get("tasks") or []
    if not isinstance(tasks, list) or len(tasks) > STREAM_TASKS:
        return errors + [f"must provide no more than {STREAM_TASKS} items [json-pointer:{at}/tasks]"]
    seen: set[Any] = set()
    for j, card in enumerate(tasks):
        where = f"{at}/tasks/{j}"
        if not isinstance(card, dict) or card.get("type") != "task_card":
            errors.append(f"must be a task_card [json-pointer:{where}]")
            continue
        if not card.get("task_id") or card["task_id"] in seen:
            errors.append(f"task_id missing or repeated [json-pointer:{where}/task_id]")
        seen.add(card.get("task_id"))
        if not isinstance(card.get("title"), str) or not card["title"]:
            errors.append(f"missing required field: title [json-pointer:{where}/title]")
        if card.get("status") not in TASK_STATUSES:
            errors.append(f"invalid status [json-pointer:{where}/status]")
        for key in ("details", "output"):
            value = card.get(key)
            if value is not None and (not isinstance(value, dict) or value.get("type") != "rich_text"):
                errors.append(f"must be a rich_text block [json-pointer:{where}/{key}]")
    return errors


def _block_errors(block: Any, at: str) -> list[str]:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        return [f"missing required field: type [json-pointer:{at}]"]
    kind = block["type"]
    if kind not in KNOWN_BLOCK_TYPES:
        return [f"unsupported type: {kind} [json-pointer:{at}/type]"]
    errors = []

    def too_long(value: Any, limit: int, where: str) -> None:
        if isinstance(value, str) and len(value) > limit:
            errors.append(f"must be less than {limit + 1} characters [json-pointer:{at}{where}]")

    def too_many(value: Any, limit: int, where: str) -> None:
        if isinstance(value, list) and len(value) > limit:
            errors.append(f"must provide no more than {limit} items [json-pointer:{at}{where}]")

    too_long(block.get("block_id"), 255, "/block_id")
    errors.extend(slack_rules.block_rules(block, at))
    text = block.get("text")
    if kind == "section":
        if isinstance(text, dict):
            too_long(text.get("text"), 3000, "/text/text")
        fields = block.get("fields")
        too_many(fields, 10, "/fields")
        for j, f in enumerate(fields or []):
            if isinstance(f, dict):
                too_long(f.get("text"), 2000, f"/fields/{j}/text")
    elif kind == "header" and isinstance(text, dict):
        too_long(text.get("text"), 150, "/text/text")
    elif kind == "context":
        too_many(block.get("elements"), 10, "/elements")
    elif kind == "actions":
        too_many(block.get("elements"), 25, "/elements")
    elif kind == "context_actions":
        too_many(block.get("elements"), 5, "/elements")
    elif kind == "image":
        too_long(block.get("alt_text"), 2000, "/alt_text")
        too_long(block.get("image_url"), 3000, "/image_url")
    elif kind == "markdown":
        too_long(text, 12000, "/text")
    elif kind in ("table", "data_table"):
        errors.extend(_table_errors(block, at))
    elif kind == "plan":
        errors.extend(_plan_errors(block, at))
    return errors


def _table_errors(block: dict[str, Any], at: str) -> list[str]:
    """``table``: ≤ 100 rows with the header; ``data_table``: a caption, 2–101 rows, page_size
    1–100, no rich_text in the header. Both: 1–20 columns, rows of one length, cells raw_text
    (non-empty), raw_number (a number) or rich_text, ≤ 10,000 characters across the cells."""
    errors: list[str] = []
    rows = block.get("rows")
    data = block["type"] == "data_table"
    if not isinstance(rows, list) or not rows:
        return [f"missing required field: rows [json-pointer:{at}/rows]"]
    if len(rows) > (101 if data else 100):
        errors.append(f"must provide no more than {101 if data else 100} items [json-pointer:{at}/rows]")
    if data:
        if len(rows) < 2:
            errors.append(f"must provide at least 2 items [json-pointer:{at}/rows]")
        if not isinstance(block.get("caption"), str) or not block["caption"]:
            errors.append(f"missing required field: caption [json-pointer:{at}/caption]")
        size = block.get("page_size", 5)
        if not isinstance(size, int) or not 1 <= size <= 100:
            errors.append(f"page_size must be 1 to 100 [json-pointer:{at}/page_size]")
    width = len(rows[0]) if isinstance(rows[0], list) else 0
    if not 1 <= width <= 20:
        errors.append(f"must provide 1 to 20 columns [json-pointer:{at}/rows/0]")
    for j, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            errors.append(f"all rows must have the same number of cells [json-pointer:{at}/rows/{j}]")
            continue
        for k, cell in enumerate(row):
            kind = cell.get("type") if isinstance(cell, dict) else None
            where = f"[json-pointer:{at}/rows/{j}/{k}]"
            if kind == "raw_text":
                if not isinstance(cell.get("text"), str) or not cell["text"]:
                    errors.append(f"raw_text needs a non-empty text {where}")
            elif kind == "raw_number":
                value = cell.get("value")
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    errors.append(f"raw_number needs a numeric value {where}")
            elif kind == "rich_text":
                if data and j == 0:
                    errors.append(f"rich_text is not allowed in the header {where}")
            else:
                errors.append(f"unsupported cell type: {kind} {where}")
    if _cells_text(block) > TABLE_CELLS:
        errors.append(f"table cells over {TABLE_CELLS} characters [json-pointer:{at}/rows]")
    if not data:
        settings = block.get("column_settings")
        if isinstance(settings, list) and len(settings) > 20:
            errors.append(f"must provide no more than 20 items [json-pointer:{at}/column_settings]")
    return errors


def _expanded(block: Any) -> int:
    """How many blocks Slack makes of ``block``: a markdown block becomes one per text run,
    heading, horizontal rule and code block."""
    if not isinstance(block, dict) or block.get("type") != "markdown":
        return 1
    count, in_run, fenced = 0, False, False
    for line in str(block.get("text", "")).splitlines():
        if _MD_FENCE.match(line):
            if not fenced:
                count += 1
            fenced, in_run = not fenced, False
        elif fenced:
            continue
        elif _MD_HEADING.match(line) or _MD_RULE.match(line):
            count, in_run = count + 1, False
        elif line.strip() and not in_run:
            count, in_run = count + 1, True
    return max(1, count)


def _texts(node: Any) -> list[str]:
    """Every text a person can read in ``node`` (labels, alt texts, captions and cells too)."""
    out: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("text", "alt_text", "caption", "title") and isinstance(value, str):
                out.append(value)
            elif key not in ("type", "action_id", "block_id", "value", "style", "url"):
                out.extend(_texts(value))
    elif isinstance(node, list):
        for item in node:
            out.extend(_texts(item))
    return out


def _cells_text(block: Any) -> int:
    if not isinstance(block, dict) or block.get("type") not in ("table", "data_table"):
        return 0
    return sum(len(s) for s in _texts(block.get("rows") or []))


def _token_of(headers: Mapping[str, str], args: Mapping[str, Any]) -> str:
    auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else str(args.get("token") or "")


def _ratelimited(wait_seconds: float) -> _Fail:
    retry_after = max(1, math.ceil(wait_seconds))
    return _Fail("ratelimited", status=429, headers={"Retry-After": str(retry_after)})


async def _read_args(request: web.Request) -> dict[str, Any]:
    """Merge URL query, form and JSON body parameters (Slack accepts all three)."""
    args: dict[str, Any] = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        ctype = request.content_type
        if ctype == "application/json":
            try:
                body = await request.json()
            except ValueError:
                body = None
            if isinstance(body, dict):
                args.update(body)
        elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            args.update({k: v for k, v in form.items() if isinstance(v, str)})
    for key in _JSON_ARGS:  # form-encoded structured arguments arrive as JSON strings
        if isinstance(args.get(key), str):
            try:
                args[key] = json.loads(args[key])
            except ValueError:
                pass
    return args


def _required(args: Mapping[str, Any], key: str) -> str:
    value = args.get(key)
    if value is None or value == "":
        raise _Fail("invalid_arguments" if key not in ("channel", "channel_id")
                    else "channel_not_found")
    return str(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _as_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _mimetype(filename: str) -> str:
    ext = filename.rsplit(".", 1)[-1].lower()
    return {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
            "csv": "text/csv", "txt": "text/plain", "json": "application/json"}.get(
        ext, "application/octet-stream")


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"
