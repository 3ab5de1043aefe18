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
import json
import logging
import time
from typing import Any, Callable
from urllib.parse import parse_qs

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.internals import build_headers
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

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
        self._verifier = SignatureVerifier(signing_secret) if signing_secret else None
        self._queue: asyncio.Queue[tuple[dict[str, Any], AsyncBoltRequest]] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._size = max(1, workers)
        self._on_event = on_event
        self._last_request = 0.0

    # -- HTTP ------------------------------------------------------------------------------
    async def handle_http(self, request: web.Request) -> web.Response:
        """``POST /slack/events``: verify, then ack events at once; Bolt answers the rest."""
        self.arrived()
        body = await request.text()
        headers = {k.lower(): v for k, v in request.headers.items()}
        if _is_ssl_check(request.content_type, body):  # unsigned by Slack; Bolt answers it
            return await self._dispatch_now(body, request.query_string, headers)
        if self._verifier is None or not self._verifier.is_valid_request(body, headers):
            return web.json_response({"error": "invalid request"}, status=401)
        payload = _event_callback(body) if request.content_type == "application/json" else None
        if payload is not None:
            self.enqueue(payload, AsyncBoltRequest(body=body, query=request.query_string,
                                                   headers=_bolt_headers(headers)))
            return web.Response(status=200)
        return await self._dispatch_now(body, request.query_string, headers)

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

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        self.intake.arrived()
        if req.type != "events_api":
            await super().handle(client, req)
            return
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
        self.intake.enqueue(req.payload, AsyncBoltRequest(mode="socket_mode", body=req.payload,
                                                          headers=build_headers(req)))


def _event_callback(body: str) -> dict[str, Any] | None:
    """The payload of an Events API delivery; None for anything else (url_verification…)."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if isinstance(payload, dict) and payload.get("type") == "event_callback":
        return payload
    return None


def _is_ssl_check(content_type: str, body: str) -> bool:
    return (content_type == "application/x-www-form-urlencoded"
            and parse_qs(body).get("ssl_check") == ["1"])


def _bolt_headers(headers: dict[str, str]) -> dict[str, list[str]]:
    return {k: [v] for k, v in headers.items()}

