"""Socket Mode (SLACK_APP_TOKEN set): events arrive over the websocket, are acked, and answered."""

from __future__ import annotations


from tests.fakes.wren import FakeWren
from tests.integration.conftest import event_callback, mention_event


async def test_socket_mode_event_is_acked_and_answered_once(start_bot, fake_wren: FakeWren) -> None:
    bot = await start_bot(BACKEND="wren", WREN_BASE_URL=fake_wren.base_url,
                          WREN_API_KEY=fake_wren.api_key, SLACK_APP_TOKEN="xapp-1-test")
    ts = bot.next_ts()
    payload = event_callback(mention_event("socket question", ts), "EvSOCKET1")
    await bot.slack.push_envelope("events_api", payload, envelope_id="env-1")
    await bot.slack.wait_for(lambda: "env-1" in bot.slack.socket_acks)
    # Slack redelivers over the socket when it thinks the ack was late
    await bot.slack.push_envelope("events_api", payload, envelope_id="env-2", retry_attempt=1)
    [answer] = await bot.wait_finished(ts)
    await bot.dropped_duplicates(1)
    assert answer.outcome.value == "done"
    assert len(fake_wren.requests_to("/api/v1/ask")) == 1
    assert bot.slack.calls_to("apps.connections.open")
