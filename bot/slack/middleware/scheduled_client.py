"""Give every listener the scheduled Web API client instead of Bolt's per-request one.

Bolt builds a plain ``AsyncWebClient`` for each request; calls made with it would bypass the
workspace's delivery scheduler (and its per-method limits). This middleware swaps in a
:class:`~bot.slack.client.ScheduledWebClient` for the request's workspace, sharing the session and
the scheduler, so a listener's ``client``, ``say`` and friends are scheduled too. The client keeps
the token Bolt authorised the request with — for the distributed app, that of the installation
the request came from.

The workspace is Bolt's ``context.team_id``, or, for an Enterprise Grid organisation's
installation (which names no team), the request's own workspace. For the distributed app the
middleware also notes which installation that workspace belongs to
(:meth:`~bot.slack.installations.SlackInstallations.learn`), for the replies sent later.
"""

from __future__ import annotations

from typing import Awaitable, Callable

from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.slack.client import ScheduledWebClient
from bot.slack.installations import SlackInstallations, workspace_of


class ScheduledClientMiddleware(AsyncMiddleware):
    def __init__(self, client: ScheduledWebClient,
                 installations: SlackInstallations | None = None) -> None:
        self.client = client
        self.installations = installations

    async def async_process(self, *, req: AsyncBoltRequest, resp: BoltResponse,
                            next: Callable[[], Awaitable[BoltResponse]]) -> BoltResponse:
        current = req.context.client
        token = current.token if current is not None else None
        workspace = workspace_of(req.body or {}, req.context.team_id)
        if self.installations is not None and token:
            self.installations.learn(req.body or {}, req.context.team_id)
        req.context["workspace"] = workspace
        req.context["client"] = self.client.for_workspace(workspace, token)
        return await next()
