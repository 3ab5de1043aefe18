"""Outbound Bot Connector calls (post, update, delete) with Teams' pacing and retry rules.

Every call runs as a short proactive turn of the SDK's adapter
(``continue_conversation_with_claims``), so credentials, the regional ``serviceUrl`` and the
conversation addressing are handled by the SDK exactly as for an in-turn reply, long after the
inbound HTTP request returned.

The SDK does not retry; Teams asks bots to back off on 429 and to retry 412, 502 and 504 too
(``bots/how-to/rate-limit``). Each call first takes a slot from a per-conversation
:class:`~bot.delivery.RateBudget`; a 429 also holds the whole conversation back for its
``Retry-After``, so the other runs in it wait as well. (The hold is kept here rather than with
``RateBudget.penalise``, which blocks for the budget's whole window once the window has recent
calls in it.)
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from typing import Any, Awaitable, Callable

import aiohttp
from microsoft_agents.activity import Activity
from microsoft_agents.hosting.core import TurnContext

from bot.delivery import RateBudget
from bot.metrics import Metrics
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
    def __init__(self, adapter: Any, *, budget: RateBudget, metrics: Metrics,
                 max_retries: int = 4, backoff: float = 1.0, sleep: Sleep = asyncio.sleep) -> None:
        self._adapter = adapter
        self._budget = budget
        self._metrics = metrics
        self.max_retries = max_retries
        self.backoff = backoff
        self._sleep = sleep
        self._held_until: dict[str, float] = {}  # conversation → monotonic end of a 429 hold

    # -- operations ----------------------------------------------------------------------
    async def post(self, target: ReplyTarget, activity: Activity, *, retries: int | None = None) -> str:
        """Send a new message; returns its activity id (what later updates address)."""

        async def op(ctx: TurnContext) -> str:
            response = await ctx.send_activity(activity)
            return (response.id if response else "") or ""

        return await self._call("post", target, op, retries)

    async def update(self, target: ReplyTarget, activity_id: str, activity: Activity, *,
                     retries: int | None = None) -> None:
        """Replace the message ``activity_id`` (PUT); text may become a card and back."""

        async def op(ctx: TurnContext) -> None:
            activity.id = activity_id
            await ctx.update_activity(activity)

        await self._call("update", target, op, retries)

    async def delete(self, target: ReplyTarget, activity_id: str) -> None:
        async def op(ctx: TurnContext) -> None:
            await ctx.delete_activity(activity_id)

        await self._call("delete", target, op, None)

    # -- plumbing ------------------------------------------------------------------------
    async def _call(self, operation: str, target: ReplyTarget,
                    op: Callable[[TurnContext], Awaitable[Any]], retries: int | None) -> Any:
        if not target.service_url:
            raise ConnectorError(operation, None, "no_service_url",
                                 "the conversation's service URL is unknown")
        retries = self.max_retries if retries is None else retries
        attempt = 0
        while True:
            await self._wait_hold(target.budget_key)
            await self._budget.acquire(target.budget_key)
            try:
                result = await self._once(target, op)
            except aiohttp.ClientResponseError as exc:
                code, message = _error_details(exc)
                self._metrics.platform_calls.labels("teams", operation, str(exc.status)).inc()
                wait = self._wait(exc, attempt)
                if exc.status == 429:  # also when giving up: the next call must wait too
                    self._hold(target.budget_key, wait)
                if exc.status not in RETRY_STATUSES or attempt >= retries:
                    raise ConnectorError(operation, exc.status, code, message) from None
                log.info("teams %s answered %s; retrying in %.2f s", operation, exc.status, wait)
            except aiohttp.ClientError as exc:  # connection trouble: retry only idempotent calls
                self._metrics.platform_calls.labels("teams", operation, "connection").inc()
                if operation == "post" or attempt >= retries:
                    raise ConnectorError(operation, None, "connection", str(exc)) from None
                wait = self._backoff(attempt)
            else:
                self._metrics.platform_calls.labels("teams", operation, "ok").inc()
                return result
            attempt += 1
            await self._sleep(wait)

    def _hold(self, key: str, seconds: float) -> None:
        until = time.monotonic() + seconds
        self._held_until[key] = max(until, self._held_until.get(key, 0.0))

    async def _wait_hold(self, key: str) -> None:
        until = self._held_until.get(key)
        if until is None:
            return
        delay = until - time.monotonic()
        if delay <= 0:
            self._held_until.pop(key, None)
            return
        await self._sleep(delay)

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
