"""Outbound Bot Connector calls (post, update, delete) with Teams' pacing and retry rules.

Every call runs as a short proactive turn of the SDK's adapter
(``continue_conversation_with_claims``), so credentials, the regional ``serviceUrl`` and the
conversation addressing are handled by the SDK exactly as for an in-turn reply, long after the
inbound HTTP request returned.

Each call first takes a slot from the conversation's limiter in the delivery scheduler
(``bot/teams/limits.py``: posts, updates and deletes share Teams' per-conversation budget), with
the caller's priority — a final answer never waits behind another run's progress — and how long
it may wait. The SDK does not retry; Teams asks bots to back off on 429 and to retry 412, 502 and
504 too (``bots/how-to/rate-limit``). A 429 also holds the whole conversation back for its
``Retry-After`` (the limiter's hold), so the other runs in it wait as well; that wait goes
through ``sleep`` so tests can observe it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

import aiohttp
from microsoft_agents.activity import Activity
from microsoft_agents.hosting.core import AuthenticationConstants, TurnContext

from bot.delivery.limiter import Limiter, SlotTimeout
from bot.delivery.priority import Priority
from bot.delivery.scheduler import Scheduler, Scope
from bot.metrics import Metrics
from bot.teams.limits import SEND
from bot.teams.target import ReplyTarget

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({412, 429, 502, 503, 504})
MAX_WAIT = 60.0

Sleep = Callable[[float], Awaitable[Any]]


class ConnectorError(Exception):
    """A Bot Connector call that failed for good. ``code`` is Teams' error code, if any."""

    def __init__(self, operation: str, status: int | None, code: str = "", message: str = "") -> None:
        super().__init__(f"{operation} failed: {status} {code}".strip())
        self.operation = operation
        self.status = status
        self.code = code
        self.message = message


class TeamsConnector:
    def __init__(self, adapter: Any, *, scheduler: Scheduler, metrics: Metrics,
                 max_retries: int = 4, backoff: float = 1.0, sleep: Sleep = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._adapter = adapter
        self.scheduler = scheduler
        self._metrics = metrics
        self.max_retries = max_retries
        self.backoff = backoff
        self._sleep = sleep
        self._clock = clock

    # -- operations ----------------------------------------------------------------------
    async def post(self, target: ReplyTarget, activity: Activity, *,
                   priority: Priority = Priority.ACK, wait: float | None = None,
                   retries: int | None = None, grant: float | None = None) -> str:
        """Send a new message; returns its activity id (what later updates address)."""

        async def op(ctx: TurnContext) -> str:
            response = await ctx.send_activity(activity)
            return (response.id if response else "") or ""

        return await self._call("post", target, op, priority=priority, wait=wait,
                                retries=retries, grant=grant)

    async def update(self, target: ReplyTarget, activity_id: str, activity: Activity, *,
                     priority: Priority = Priority.ACK, wait: float | None = None,
                     retries: int | None = None, grant: float | None = None) -> None:
        """Replace the message ``activity_id`` (PUT); text may become a card and back."""

        async def op(ctx: TurnContext) -> None:
            activity.id = activity_id
            await ctx.update_activity(activity)

        await self._call("update", target, op, priority=priority, wait=wait, retries=retries,
                         grant=grant)

    async def delete(self, target: ReplyTarget, activity_id: str, *,
                     priority: Priority = Priority.ACK) -> None:
        async def op(ctx: TurnContext) -> None:
            await ctx.delete_activity(activity_id)

        await self._call("delete", target, op, priority=priority)

    def limiter(self, target: ReplyTarget) -> Limiter:
        limiter = self.scheduler.limiter(SEND, Scope(target.budget_key))
        assert limiter is not None, "the Teams scheduler has a rule for every send"
        return limiter

    # -- plumbing ------------------------------------------------------------------------
    async def _call(self, operation: str, target: ReplyTarget,
                    op: Callable[[TurnContext], Awaitable[Any]], *, priority: Priority,
                    wait: float | None = None, retries: int | None = None,
                    grant: float | None = None) -> Any:
        if not target.service_url:
            raise ConnectorError(operation, None, "no_service_url",
                                 "the conversation's service URL is unknown")
        if not vouched_for(target):
            log.warning("teams: not sending to %s: the activity's token names another service URL",
                        urlsplit(target.service_url).hostname)
            raise ConnectorError(operation, None, "untrusted_service_url",
                                 "the service URL is not the one the Bot Connector's token names")
        retries = self.max_retries if retries is None else retries
        limiter = self.limiter(target)
        attempt = 0
        while True:
            if grant is None or attempt > 0:
                grant = await self._admit(limiter, priority, wait)
            try:
                result = await self._once(target, op)
            except aiohttp.ClientResponseError as exc:
                limiter.completed(grant)
                code, message = _error_details(exc)
                self._metrics.platform_calls.labels("teams", operation, str(exc.status)).inc()
                pause = self._wait(exc, attempt)
                if exc.status == 429:  # also when giving up: the next call must wait too
                    limiter.hold(pause)
                if exc.status not in RETRY_STATUSES or attempt >= retries:
                    raise ConnectorError(operation, exc.status, code, message) from None
                log.info("teams %s answered %s; retrying in %.2f s", operation, exc.status, pause)
            except aiohttp.ClientError as exc:  # connection trouble: retry only idempotent calls
                limiter.completed(grant)
                self._metrics.platform_calls.labels("teams", operation, "connection").inc()
                if operation == "post" or attempt >= retries:
                    raise ConnectorError(operation, None, "connection", str(exc)) from None
                pause = self._backoff(attempt)
            else:
                limiter.completed(grant)  # count it from its answer (closed loop)
                self._metrics.platform_calls.labels("teams", operation, "ok").inc()
                return result
            if wait is not None and pause > wait:  # the caller cannot wait that long
                raise ConnectorError(operation, None, "no_time", f"would wait {pause:.1f} s")
            attempt += 1
            await self._sleep(pause)

    async def _admit(self, limiter: Limiter, priority: Priority, wait: float | None) -> float:
        """Wait out a 429 hold (through ``sleep``), then take a slot with ``priority``; return
        the slot's grant stamp."""
        held = limiter.held_until - self._clock()
        if held > 0:
            if wait is not None and held > wait:
                raise SlotTimeout(f"the conversation is held for {held:.1f} s")
            await self._sleep(held)
        if priority is Priority.PROGRESS:
            grant = limiter.try_progress()
            if grant is None:
                raise SlotTimeout("no progress slot")
            return grant
        return await limiter.acquire(priority, timeout=wait)

    async def _once(self, target: ReplyTarget, op: Callable[[TurnContext], Awaitable[Any]]) -> Any:
        """One call in a proactive turn. The pipeline would hand a failure to ``on_turn_error``
        (which talks to the user); the callback keeps it and it is raised here instead."""
        box: dict[str, Any] = {}

        async def callback(ctx: TurnContext) -> None:
            try:
                box["result"] = await op(ctx)
            except Exception as exc:  # re-raised below, outside the SDK's pipeline
                box["error"] = exc

        await self._adapter.continue_conversation_with_claims(target.identity, target.continuation(),
                                                              callback)
        if "error" in box:
            raise box["error"]
        return box.get("result")

    def _wait(self, exc: aiohttp.ClientResponseError, attempt: int) -> float:
        header = (exc.headers or {}).get("Retry-After") if exc.headers else None
        try:
            seconds = float(header) if header is not None else None
        except ValueError:  # an HTTP date: not worth parsing, back off instead
            seconds = None
        if seconds is None or seconds < 0:
            return self._backoff(attempt)
        return min(seconds, MAX_WAIT)

    def _backoff(self, attempt: int) -> float:
        """Exponential with jitter, so runs throttled together do not retry together."""
        return min(self.backoff * (2 ** attempt) * random.uniform(0.5, 1.0), MAX_WAIT)


def vouched_for(target: ReplyTarget) -> bool:
    """Whether our Bot Framework token may go to ``target.service_url``.

    Every call carries the bot's token to the activity's ``serviceUrl``. An activity's own token
    names, in its ``serviceurl`` claim, where the Bot Connector sent it from; the SDK only warns
    when the two hosts differ. Anyone who got hold of one genuine activity token could then post
    an activity naming a server of theirs and receive our token there; so the origin (scheme,
    host, port) must be the one the token names. Identities without the claim (anonymous mode,
    replies after a restart) name none.
    """
    return service_url_vouched(target.identity, target.service_url)


def service_url_vouched(identity: Any, service_url: str) -> bool:
    """:func:`vouched_for` for an identity and a URL (also checked on arrival, so an activity
    naming another server is refused before anything is asked)."""
    claimed = identity.get_claim_value(AuthenticationConstants.SERVICE_URL_CLAIM) if identity else None
    if not claimed:
        return True
    return _origin(str(claimed)) == _origin(service_url)


def _origin(url: str) -> tuple[str, str, int | None]:
    try:
        parts = urlsplit(url.strip())
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme.lower())
    except ValueError:
        return ("", url, None)
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def _error_details(exc: aiohttp.ClientResponseError) -> tuple[str, str]:
    """Teams' ErrorResponse is ``{"error": {"code", "message"}}``; the SDK puts the body in
    ``message``."""
    try:
        body = json.loads(exc.message)
    except (TypeError, ValueError):
        return "", ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("code") or ""), str(error.get("message") or "")
    return "", ""
