"""A streamed Slack reply is paced by chat.appendStream's budget among the workspace's live
streams, not by chat.update's budget among all live replies (bench/README.md, issue #11)."""

from __future__ import annotations

from bot.config import Settings
from bot.delivery.reply import Timing
from bot.delivery.tasks import BackgroundTasks
from bot.relay.thread import ThreadRef
from bot.slack.client import ScheduledWebClient
from bot.slack.limits import slack_scheduler
from bot.slack.stream import SlackStream
from bot.slack.stream_budget import StreamBudget
from bot.slack.streaming_sink import SlackStreamingSink


async def test_appends_are_paced_by_their_own_budget_and_the_live_streams() -> None:
    scheduler = slack_scheduler(Settings(_env_file=None))
    client = ScheduledWebClient(token="xoxb-test", base_url="http://127.0.0.1:9/api/",
                                scheduler=scheduler)
    ref = ThreadRef("slack", "T1", "C1", "1.0")
    budget = StreamBudget(scheduler, reserve=4)
    stream = SlackStream(client, "C1", "1.0", recipient_user="U1", recipient_team="T1", max_age=240)
    sink = SlackStreamingSink(client, ref, scheduler=scheduler, tasks=BackgroundTasks(),
                              timing=Timing(progress_interval=1.5), status_after=3.0,
                              stream=stream, stream_budget=budget)
    for _ in range(19):  # 20 live replies in the workspace, most of them placeholders
        scheduler.enter("T1")
    placeholder_pace = sink._interval()
    assert placeholder_pace == 20 * scheduler.limiter("chat.update", sink.scope).progress_spacing

    for _ in range(3):  # 3 of them stream, this one included
        assert budget.try_enter(sink.scope)
    stream.live = True
    append = scheduler.limiter("chat.appendStream", sink.scope)
    assert sink._interval() == max(1.5, 3 * append.progress_spacing)
    assert sink._interval() < placeholder_pace / 5
    assert sink._retry_interval() == min(sink._interval(), append.progress_spacing)
