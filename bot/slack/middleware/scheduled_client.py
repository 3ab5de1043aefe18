"""Give every listener the scheduled Web API client instead of Bolt's per-request one.

Bolt builds a plain ``AsyncWebClient`` for each request; calls made with it would bypass the
workspace's delivery scheduler (and its per-method limits). This middleware swaps in a
:class:`~bot.slack.client.ScheduledWebClient` for the request's workspace, sharing the session and
the scheduler, so a listener's ``client``, ``say`` and friends are scheduled too.
"""

from __future__ import annotations

from typing import Awaitable, Callable

from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.slack.client import ScheduledWebClient


class ScheduledClientMiddleware(AsyncMiddleware):
    def __init__(self, client: ScheduledWebClient) -> None:
        self.client = client

    async def async_process(self, *, req: AsyncBoltRequest, resp: BoltResponse,
                            next: Callable[[], Awaitable[BoltResponse]]) -> BoltResponse:
        current = req.context.client
        token = current.token if current is not None else None
        req.context["client"] = self.client.for_workspace(req.context.team_id or "", token)
        return await next()
