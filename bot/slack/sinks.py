"""Builds the Slack reply sink for each run: the streaming one when ``SLACK_STREAMING`` is on,
else the placeholder one — both sharing the client, the workspace scheduler, the pacing and
the per-workspace memories (which table style and whether agent sessions are taken)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.delivery.reply import Timing
from bot.delivery.scheduler import Scheduler
from bot.delivery.tasks import BackgroundTasks
from bot.relay.thread import ThreadRef
from bot.slack.agent_session import Refusals
from bot.slack.client import ScheduledWebClient
from bot.slack.first_sign import FirstSign
from bot.slack.plan_support import PlanSupport
from bot.slack.sink import SlackReplySink
from bot.slack.stream import SlackStream
from bot.slack.stream_budget import StreamBudget
from bot.slack.streaming_sink import SlackStreamingSink
from bot.slack.table_styles import TableStyles


class SlackSinkFactory:
    """Builds Slack sinks sharing one client, the workspace scheduler and the pacing."""

    def __init__(self, client: ScheduledWebClient, *, scheduler: Scheduler, timing: Timing,
                 status_after: float, max_retries: int = 3,
                 first_sign: FirstSign | None = None, streaming: bool = False,
                 stream_max_age: float = 240.0, stream_reserve: int = 4,
                 recipient_team: Callable[[str], str] | None = None) -> None:
        self.client = client
        # the team a stream's recipient is named in: the workspace, or for an Enterprise Grid
        # organisation's installation the organisation (bot/slack/installations.py)
        self.recipient_team = recipient_team or (lambda workspace: workspace)
        self.streaming = streaming
        self.stream_max_age = stream_max_age
        self.stream_budget = StreamBudget(scheduler, reserve=stream_reserve)
        self.first_sign = first_sign
        self.scheduler = scheduler
        self.timing = timing
        self.status_after = status_after
        self.max_retries = max_retries
        self.refusals = Refusals()  # workspaces that refused agent sessions, shared by sinks
        self.table_styles = TableStyles()  # the table style each workspace takes
        self.plan_support = PlanSupport()  # workspaces that refused plan blocks
        self.tasks = BackgroundTasks()

    def for_question(self, ref: ThreadRef, asker: str, *, title: str = "") -> SlackReplySink:
        session = {"title": title, "initiator": asker}
        if not self.streaming:
            return self._sink(ref, session=session)
        # In channels Slack requires the asker as the stream's recipient (DMs ignore it).
        stream = SlackStream(self.client.for_workspace(ref.workspace), ref.channel, ref.thread,
                             recipient_user=asker,
                             recipient_team=self.recipient_team(ref.workspace),
                             max_age=self.stream_max_age)
        return SlackStreamingSink(self.client, ref, stream=stream, stream_budget=self.stream_budget,
                                  session=session, **self._shared())

    def for_existing_reply(self, ref: ThreadRef, asker: str, reply_channel: str, reply_id: str,
                           run_id: str) -> SlackReplySink:
        return self._sink(ref, reply_ts=reply_id, run_id=run_id)

    def _sink(self, ref: ThreadRef, *, session: dict[str, str] | None = None,
              **kw: str) -> SlackReplySink:
        return SlackReplySink(self.client, ref, session=session or {}, **self._shared(), **kw)

    def _shared(self) -> dict[str, Any]:
        """What every sink of this factory shares: budgets, pacing, per-workspace memories."""
        return dict(scheduler=self.scheduler, tasks=self.tasks, timing=self.timing,
                    status_after=self.status_after, max_retries=self.max_retries,
                    first_sign=self.first_sign, refusals=self.refusals,
                    table_styles=self.table_styles, plan_support=self.plan_support)

    async def aclose(self) -> None:
        await self.tasks.aclose()
