"""A loopback server that fails the ways a backend's network really does (issue 12).

Not a mock transport: the bot's own httpx clients talk to a real socket, so every fault goes
through the same connection, TLS and read paths as in production.

* ``refused`` — the base URL names a port that is bound but not listening: the kernel refuses.
* ``tls_untrusted`` — ``https`` to a server whose self-signed certificate no one trusts.
* ``tls_plain_http`` — ``https`` to a server that speaks plain HTTP.
* ``slow_loris`` — 200 and headers at once, then one byte every ``drip_interval`` (10 s).
* ``huge_body`` — a 10 MB answer in the backend's own framing (one endless SSE event for the
  streaming backends, a JSON envelope for ClickZetta's poll; ``textql:junk-lines`` floods short
  junk ``data:`` lines instead), sent without ``Content-Length``.
  With ``hold_after`` set, the server sends that many bytes, then waits for the client to hang up
  before it sends the rest: ``abandoned`` shows that a client stopped reading part-way, and
  ``completed`` counts bodies a client took whole.
* ``wrong_content_type`` — a 200 ``text/html`` page (a proxy's sign-in or error page).
* ``json_not_sse`` — a 200 JSON answer where an event stream is expected; for polled ClickZetta,
  the analogue: a poll envelope whose ``responses`` is an object instead of a list; for Wren's
  one-shot ``/ask``, the inverse: an event stream where JSON is expected.

Bodies mention the server's own URL, as proxies' pages do, so a test can check that no adapter
copies a body (or its own base URL) into what users read. A :class:`Wire` says how much of a
backend's protocol must work before the faulted call: ClickZetta mints a token, opens a session
and submits the question honestly, and only its poll fails.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import tempfile
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.fakes.loopback import serve

HUGE_BYTES = 10 * 1024 * 1024
_CHUNK = 64 * 1024


class Fault(str, Enum):
    REFUSED = "refused"
    TLS_UNTRUSTED = "tls_untrusted"
    TLS_PLAIN_HTTP = "tls_plain_http"
    SLOW_LORIS = "slow_loris"
    HUGE_BODY = "huge_body"
    WRONG_CONTENT_TYPE = "wrong_content_type"
    JSON_NOT_SSE = "json_not_sse"


NO_REQUEST_ARRIVES = frozenset({Fault.REFUSED, Fault.TLS_UNTRUSTED, Fault.TLS_PLAIN_HTTP})


@dataclass(frozen=True)
class Wire:
    """What of one backend's protocol the faults need.

    ``faulted`` is the path (after ``base_path``) that gets the fault, ``None`` for every path;
    ``prelude`` answers other paths honestly. ``huge`` is the prefix and suffix around the filler
    of the huge answer, in the faulted call's own framing; ``foreign`` the content type and body
    of the ``json_not_sse`` answer (``{url}`` is replaced by the server's base URL).
    """

    base_path: str
    streams: bool
    huge: tuple[bytes, bytes]
    foreign: tuple[str, str]
    faulted: str | None = None
    prelude: dict[str, Any] = field(default_factory=dict)
    filler: bytes = b"x"  # repeated between the huge answer's prefix and suffix


WIRES: dict[str, Wire] = {
    "wren": Wire(
        base_path="", streams=True,
        huge=(b'data: {"type":"content_block_delta","delta":{"type":"text_delta","text":"',
              b'"}}\n\n'),
        # what /api/v1/ask answers, from a proxy that sends /stream/ask there
        foreign=("application/json",
                 '{"id":"f1","threadId":"t1","sql":"SELECT 1","summary":"See {url}/api/v1/ask"}'),
    ),
    "textql": Wire(
        base_path="", streams=True,
        huge=(b'data: {"type":"text","text":"', b'"}\n\n'),
        # a GET /v2/chats/{id} answer where the stream was expected
        foreign=("application/json",
                 '{"chat":{"id":"c1","model":"default"},"messages":[],"assets":[],'
                 '"url":"{url}/v2/chats/c1"}'),
    ),
    # Wren with WREN_STREAM=false: one JSON answer from /api/v1/ask
    "wren:ask": Wire(
        base_path="", streams=False,
        huge=(b'{"id":"f1","threadId":"t1","sql":"SELECT 1","summary":"', b'"}'),
        # the inverse mix-up: the event stream where /ask's JSON is expected
        foreign=("text/event-stream", 'data: {"type":"message_start","timestamp":1}\n\n'),
    ),
    # TextQL's legacy GET /api/ana: named events
    "textql:legacy": Wire(
        base_path="", streams=True,
        huge=(b'event: block\ndata: {"tag":"TextBlock","id":"b1","contents":"', b'"}\n\n'),
        foreign=("application/json", '{"chatId":"c1","messages":[],"url":"{url}/api/ana"}'),
    ),
    # TextQL v2 whose huge answer is a flood of short junk data lines rather than one long line
    "textql:junk-lines": Wire(
        base_path="", streams=True, huge=(b"", b"\n"), filler=b"data: x\n",
        foreign=("application/json", "{}"),
    ),
    "clickzetta": Wire(
        base_path="/clickzetta-campaign-data", streams=False,
        huge=(b'{"success":true,"data":{"responses":[{"id":"1","dataType":"summary","message":"',
              b'"},{"id":"2","dataType":"finish","message":"done"}]}}'),
        # the envelope is right, the poll results are not a list
        foreign=("application/json",
                 '{"success":true,"data":{"responses":{"id":"1","dataType":"finish",'
                 '"message":"see {url}"}}}'),
        faulted="/open/safe_question_poll",
        prelude={
            "/open/api/v1/appSecretKey/generateAuthToken":
                {"success": True, "data": {"token": "fault.server.token", "expireMillisecond": 3_600_000}},
            "/open/session/safe_new": {"success": True, "data": "4729"},
            "/open/text2insight/query":
                {"success": True, "data": {"questionId": 34339, "sessionId": 4729, "status": "running"}},
            "/open/text2insight/stop": {"success": True, "code": "200", "data": None, "message": "ok"},
        },
    ),
}

_HTML = ("<!DOCTYPE html><html><head><title>Sign in</title></head><body><h1>Sign in</h1>"
         "<p>Your session expired. Continue at <a href=\"{url}/login\">{url}/login</a>.</p>"
         "</body></html>")


@lru_cache(maxsize=1)
def _self_signed_pem() -> tuple[bytes, bytes]:
    """A certificate for 127.0.0.1 signed by itself (valid name, untrusted issuer), and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def _untrusted_context() -> ssl.SSLContext:
    cert, key = _self_signed_pem()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as folder:  # load_cert_chain reads files only
        (Path(folder) / "cert.pem").write_bytes(cert)
        (Path(folder) / "key.pem").write_bytes(key)
        context.load_cert_chain(Path(folder) / "cert.pem", Path(folder) / "key.pem")
    return context


class FaultServer:
    """``async with FaultServer(Fault.SLOW_LORIS, WIRES["wren"]) as server: server.base_url``."""

    def __init__(self, fault: Fault, wire: Wire, *, huge_bytes: int = HUGE_BYTES,
                 hold_after: int | None = None, hold_timeout: float = 5.0,
                 drip_interval: float = 10.0) -> None:
        self.fault = fault
        self.wire = wire
        self.huge_bytes = huge_bytes
        self.hold_after = hold_after
        self.hold_timeout = hold_timeout
        self.drip_interval = drip_interval
        self.requests: list[str] = []  # "METHOD path" of every request that reached the app
        self.faulted = 0  # faulty answers begun
        self.completed = 0  # huge bodies a client took whole
        self.bytes_sent = 0
        self.abandoned = asyncio.Event()  # a client hung up in the middle of a faulty answer
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._refusing: socket.socket | None = None
        self.base_url = ""

    # -- lifecycle ------------------------------------------------------------------------------
    async def __aenter__(self) -> FaultServer:
        if self.fault is Fault.REFUSED:
            self._refusing = socket.socket()
            self._refusing.bind(("127.0.0.1", 0))  # bound, never listening: connect is refused
            port = self._refusing.getsockname()[1]
        elif self.fault is Fault.TLS_UNTRUSTED:
            port = await self._serve_tls()
        else:
            self._runner, port = await serve(self._app())
        scheme = "https" if self.fault in (Fault.TLS_UNTRUSTED, Fault.TLS_PLAIN_HTTP) else "http"
        self.base_url = f"{scheme}://127.0.0.1:{port}{self.wire.base_path}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing.set()  # ends drips and holds at once
        if self._runner is not None:
            await self._runner.cleanup()
        if self._refusing is not None:
            self._refusing.close()

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _serve_tls(self) -> int:
        self._runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=1.0,
                                     handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=_untrusted_context())
        await site.start()
        return self._runner.addresses[0][1]

    # -- answers --------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path}")
        path = request.path[len(self.wire.base_path):]
        if self.wire.faulted is not None and path != self.wire.faulted:
            if path in self.wire.prelude:
                return web.json_response(self.wire.prelude[path])
            return web.json_response({"error": "not found"}, status=404)
        self.faulted += 1
        url = self.base_url
        if self.fault is Fault.SLOW_LORIS:
            return await self._drip(request)
        if self.fault is Fault.HUGE_BODY:
            return await self._huge(request)
        if self.fault is Fault.JSON_NOT_SSE:
            content_type, body = self.wire.foreign
            return web.Response(text=body.replace("{url}", url), content_type=content_type)
        # wrong_content_type; also what a TLS fault would get if a handshake ever succeeded
        return web.Response(text=_HTML.replace("{url}", url), content_type="text/html")

    def _content_type(self) -> str:
        return "text/event-stream" if self.wire.streams else "application/json"

    async def _drip(self, request: web.Request) -> web.StreamResponse:
        """Headers, then one byte per ``drip_interval`` (a byte that never completes a line)."""
        response = web.StreamResponse(headers={"Content-Type": self._content_type()})
        await response.prepare(request)
        byte = b":" if self.wire.streams else b" "
        try:
            while not self._closing.is_set():
                await response.write(byte)
                self.bytes_sent += 1
                try:
                    await asyncio.wait_for(self._closing.wait(), self.drip_interval)
                except TimeoutError:
                    pass
        except ConnectionError:  # the client hung up between two bytes
            self.abandoned.set()
        except asyncio.CancelledError:  # ... or while we waited (aiohttp cancels the handler)
            self.abandoned.set()
            raise
        return response

    async def _huge(self, request: web.Request) -> web.StreamResponse:
        """The huge answer, chunked; past ``hold_after`` bytes, only once the client stayed."""
        prefix, suffix = self.wire.huge
        total = self.huge_bytes
        filler = total - len(prefix) - len(suffix)
        response = web.StreamResponse(headers={"Content-Type": self._content_type()})
        response.enable_chunked_encoding()
        await response.prepare(request)
        filler_bytes = self.wire.filler
        chunk = filler_bytes * (_CHUNK // len(filler_bytes))
        try:
            await self._send(response, prefix)
            sent_filler = 0
            held = self.hold_after is None
            while sent_filler < filler:
                if not held and len(prefix) + sent_filler >= self.hold_after:  # type: ignore[operator]
                    held = True
                    try:  # a client that stopped reading hangs up here (the handler is cancelled)
                        await asyncio.wait_for(self._closing.wait(), self.hold_timeout)
                    except TimeoutError:
                        pass
                piece = chunk[: min(len(chunk), filler - sent_filler)]
                await self._send(response, piece)
                sent_filler += len(piece)
            await self._send(response, suffix)
            await response.write_eof()
        except ConnectionError:  # the client hung up while we wrote
            self.abandoned.set()
            return response
        except asyncio.CancelledError:  # ... or while we held the tail back
            self.abandoned.set()
            raise
        self.completed += 1
        return response

    async def _send(self, response: web.StreamResponse, data: bytes) -> None:
        await response.write(data)
        self.bytes_sent += len(data)
