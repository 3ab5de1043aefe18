"""Slack intake: acknowledge every Events API delivery before any other work.

Slack retries an event that is not answered within three seconds, and a busy workspace can send
hundreds at once. Bolt answers only after its whole middleware chain (authorization, listener
matching, a Web API client per request) has run, and every listener then starts storage and Web
API work on the same event loop as the next request's ack.

So intake goes the other way round. For an HTTP delivery the only thing that must happen first —
checking Slack's signature — happens, the 200 goes out, and the event waits in a queue; a few
workers hand queued events to Bolt one after another — but only once requests stop arriving for
a few milliseconds (``ACK_QUIET``, never more than ``MAX_DEFER``), because the same event loop
serves the acks of a burst. Just before an event is handed over, ``on_event`` may show a first
sign of life (``bot/slack/first_sign.py``). Socket Mode envelopes of type ``events_api`` are
acknowledged on the socket the same way. Slash commands and interactivity still go through Bolt
directly, because their answer (the ack's body) is the listener's to give.

Bolt's own signature check is switched off (``request_verification_enabled=False``) because it
would run again when a queued event is dispatched, possibly more than five minutes after Slack
signed it; :meth:`EventIntake.handle_http` checks every request instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable
from urllib.parse import parse_qs

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import run_async_bolt_app, send_async_response
from slack_bolt.adapter.socket_mode.internals import build_headers
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.slack import guard
from bot.textclean import clean

log = logging.getLogger(__name__)

DRAIN_TIMEOUT = 10.0  # at shutdown, how long acknowledged events may still take to be handed over
ACK_QUIET = 0.005  # dispatching waits until no request arrived for this long: acks go first...
MAX_DEFER = 0.25  # ...but never longer than this, so a steady stream cannot starve dispatching
BATCH = 50  # events a worker takes at once (their first signs go out together)

EventHook = Callable[[dict[str, Any]], None]


class EventIntake:
    def __init__(self, app: AsyncApp, signing_secret: str | None, *, workers: int = 4,
                 on_event: EventHook | None = None) -> None:
        self.app = app
        self._secret = signing_secret or None
        self._queue: asyncio.Queue[tuple[dict[str, Any], AsyncBoltRequest]] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._size = max(1, workers)
        self._on_event = on_event
        self._last_request = 0.0

    # -- HTTP ------------------------------------------------------------------------------
    async def handle_http(self, request: web.Request) -> web.Response:
        """``POST /slack/events``: verify, then ack events at once; Bolt answers the rest.

        The body is checked at the edge first (``bot/slack/guard.py``): too large → 413,
        unsigned or stale → 401, not UTF-8 / not JSON or a form / a shape Bolt or a listener
        would trip on → 400 (415 for another content type). A malformed *event* is acknowledged
        with 200 and dropped, since Slack would only retry it."""
        self.arrived()
        if request.content_type == guard.FORM and request.content_length is not None \
                and request.content_length < 64:
            raw = await request.read()  # an ssl_check is unsigned by Slack; Bolt answers it
            if _is_ssl_check(request.content_type, raw):
                return await self._dispatch_now(raw.decode(), request.query_string,
                                                _headers(request))
        try:
            body = await guard.read_http(request, self._secret)
            guard.check(body.data)
        except guard.Refused as refused:
            return refused.response
        except guard.Malformed as exc:
            if body.data.get("type") == "event_callback":
                log.info("dropped a malformed Slack event: %s", exc)
                return web.Response(status=200)
            log.info("refused a malformed Slack request: %s", exc)
            return web.json_response({"error": str(exc)}, status=400)
        headers = _headers(request)
        headers["content-type"] = body.content_type
        if body.data.get("type") == "event_callback":
            self.enqueue(body.data, AsyncBoltRequest(body=body.text, query=request.query_string,
                                                     headers=_bolt_headers(headers)))
            return web.Response(status=200)
        return await self._dispatch_now(body.text, request.query_string, headers)

    async def _dispatch_now(self, body: str, query: str, headers: dict[str, str]) -> web.Response:
        response = await self.app.async_dispatch(
            AsyncBoltRequest(body=body, query=query, headers=_bolt_headers(headers)))
        return await to_aiohttp_response(response)

    # -- the queue -----------------------------------------------------------------------------
    def arrived(self) -> None:
        """A request is coming in (dispatching waits for the burst to pause)."""
        self._last_request = time.monotonic()

    def enqueue(self, payload: dict[str, Any], request: AsyncBoltRequest) -> None:
        self._queue.put_nowait((payload, request))
        if not self._workers:
            self._workers = [asyncio.create_task(self._work(), name=f"slack-intake-{i}")
                             for i in range(self._size)]

    async def _work(self) -> None:
        while True:
            batch = [await self._queue.get()]
            await self._acks_first()
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            if self._on_event is not None:  # every first sign before any of the heavier work
                for payload, _ in batch:
                    self._safely(self._on_event, payload)
            for _, request in batch:
                try:
                    await self.app.async_dispatch(request)
                except Exception:
                    log.exception("a Slack event could not be handled")
                finally:
                    self._queue.task_done()

    @staticmethod
    def _safely(hook: EventHook, payload: dict[str, Any]) -> None:
        try:
            hook(payload)
        except Exception:
            log.warning("the first sign for a Slack event failed", exc_info=True)

    async def _acks_first(self) -> None:
        """While requests are still arriving, let their acks go first (one event loop serves
        both): dispatch once the burst pauses, or after ``MAX_DEFER`` at most."""
        deadline = time.monotonic() + MAX_DEFER
        while (quiet := time.monotonic() - self._last_request) < ACK_QUIET:
            if time.monotonic() >= deadline:
                return
            await asyncio.sleep(ACK_QUIET - quiet)

    async def aclose(self) -> None:
        """Hand over what was already acknowledged (bounded), then stop the workers."""
        if self._workers and not self._queue.empty():
            try:
                await asyncio.wait_for(self._queue.join(), DRAIN_TIMEOUT)
            except TimeoutError:
                log.warning("%d acknowledged Slack events were not handled before shutdown",
                            self._queue.qsize())
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []


class AckFirstSocketModeHandler(AsyncSocketModeHandler):
    """Socket Mode with the same rule: an ``events_api`` envelope is acknowledged on the socket
    before the event is handled; other envelopes get Bolt's answer as their ack."""

    def __init__(self, app: AsyncApp, app_token: str, intake: EventIntake, **kwargs: Any) -> None:
        super().__init__(app, app_token, **kwargs)
        self.intake = intake
        self._run_listeners = self.client.run_message_listeners
        self.client.run_message_listeners = self._checked_message  # type: ignore[method-assign]

    async def _checked_message(self, message: dict[str, Any], raw_message: str) -> None:
        """An envelope whose payload slack_sdk cannot even wrap (``null``, a number, a list) is
        acknowledged and dropped here; slack_sdk would log a traceback and never ack it."""
        if isinstance(message, dict) and message.get("envelope_id") is not None \
                and not isinstance(message.get("payload"), (dict, str)):
            log.info("dropped a malformed Socket Mode %s envelope: no payload object",
                     message.get("type"))
            await self.client.send_socket_mode_response(
                SocketModeResponse(envelope_id=str(message["envelope_id"])))
            return
        await self._run_listeners(message, raw_message)

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        """Envelopes pass the same edge checks as HTTP bodies (``bot/slack/guard.py``); one that
        fails is acknowledged (so Slack does not resend it) and dropped."""
        self.intake.arrived()
        req.payload = clean(req.payload)
        try:
            guard.check_envelope(req.type, req.payload)
        except guard.Malformed as exc:
            await self._ack(client, req, f"malformed: {exc}")
            return
        if req.type != "events_api":
            await self._handle_interaction(client, req)
            return
        await self._ack_held_event(client, req)
        if req.payload.get("type") != "event_callback":
            return  # app_rate_limited: nothing to do but acknowledge it
        self.intake.enqueue(req.payload, AsyncBoltRequest(mode="socket_mode", body=req.payload,
                                                          headers=build_headers(req)))

    async def _handle_interaction(self, client: SocketModeClient, req: SocketModeRequest) -> None:
        """A slash command or interaction through Bolt. One nothing handles (a view we never
        opened, an unknown action) is still acknowledged: over HTTP Bolt answers it 404, but
        over the socket it would send nothing, and Slack would wait, then show the person an
        error and send it again."""
        start = time.time()
        bolt_resp = await run_async_bolt_app(self.app, req)
        if bolt_resp.status == 404:
            await self._ack(client, req, "no listener handles it")
            return
        await send_async_response(client, req, bolt_resp, start)

    @staticmethod
    async def _ack_held_event(client: SocketModeClient, req: SocketModeRequest) -> None:
        """Acknowledge an event the bot now holds. When the connection broke before the ack could
        go out, the event is handled all the same: Slack's retry of it is a duplicate the event
        ledger drops — and after Slack's last retry there is none, so waiting would lose it."""
        try:
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
        except (ConnectionError, aiohttp.ClientConnectionError) as exc:
            log.info("could not acknowledge Socket Mode envelope %s (retry %s): %s; handling the "
                     "event anyway", req.envelope_id, req.retry_attempt or 0, exc)

    @staticmethod
    async def _ack(client: SocketModeClient, req: SocketModeRequest, reason: str) -> None:
        log.info("acknowledged and dropped a Socket Mode %s envelope: %s", req.type, reason)
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))


def _is_ssl_check(content_type: str, raw: bytes) -> bool:
    return content_type == guard.FORM and parse_qs(raw.decode("utf-8", "replace")).get("ssl_check") == ["1"]


def _headers(request: web.Request) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


def _bolt_headers(headers: dict[str, str]) -> dict[str, list[str]]:
    return {k: [v] for k, v in headers.items()}

