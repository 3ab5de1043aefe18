"""Socket Mode across a dropped connection: the bot reconnects, nothing is lost, nothing is
answered twice.

The fake Slack ends the connection the ways it ends in production: a ``disconnect`` envelope
(``refresh_requested``) before Slack retires it, a close frame, and a cut TCP connection that only
the bot's pings notice (the last two also right after a ``disconnect`` envelope). Around the drop
it holds envelopes in every state Slack can leave them: answered before the drop; acted on but its
ack lost with the connection; in flight when the connection died (never received); pushed while
the bot has no connection; received by the bot whose ack could not be sent. Slack retries every
unacknowledged event on the next connection (same envelope and event id, ``retry_attempt`` + 1,
at most three times), and the bot must answer each question once.

SLACK_SOCKET_PING_INTERVAL is shortened so a cut connection is noticed in a fraction of a second;
the tests wait on the fake's state, never on the clock.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.slack import FakeSlack
from tests.fakes.wren import FakeWren
from tests.integration.conftest import USER, SlackBot, blocks_text, event_callback, mention_event
from tests.integration.test_slack_socket_mode import command_payload

PING = 0.3  # SLACK_SOCKET_PING_INTERVAL: how soon a silently dead connection is noticed
ASK = "/api/v1/ask"


async def socket_bot(start_bot: Any, fake_wren: FakeWren) -> SlackBot:
    bot = await start_bot(BACKEND="wren", WREN_BASE_URL=fake_wren.base_url,
                          WREN_API_KEY=fake_wren.api_key, SLACK_APP_TOKEN="xapp-1-test",
                          SLACK_SOCKET_PING_INTERVAL=PING)
    await bot.slack.wait_for(lambda: connected(bot.slack))
    return bot


def connected(slack: FakeSlack, connections: int = 1) -> bool:
    """The bot has opened ``connections`` sockets so far and the newest is open."""
    return len(slack.sockets) >= connections and not slack.sockets[-1].closed


async def ask_over_socket(bot: SlackBot, text: str, envelope_id: str, *,
                          lost: bool = False) -> str:
    """@mention the bot over the socket; returns the thread (the mention's ts)."""
    ts = bot.next_ts()
    payload = event_callback(mention_event(text, ts), f"Ev{envelope_id}")
    await bot.slack.push_envelope("events_api", payload, envelope_id=envelope_id, lost=lost)
    return ts


def asked(fake_wren: FakeWren) -> list[str]:
    return sorted(r.json["question"] for r in fake_wren.requests_to(ASK))


def delivered_on(slack: FakeSlack, envelope_id: str) -> list[int]:
    """The connections (indexes into ``slack.sockets``) an envelope was sent on."""
    return [index for index, env in slack.socket_deliveries if env["envelope_id"] == envelope_id]


async def assert_answered_once(bot: SlackBot, threads: list[str]) -> None:
    for ts in threads:
        [answer] = await bot.wait_finished(ts)
        assert answer.outcome.value == "done"
    await bot.settled()
    for ts in threads:
        assert len(bot.finished.of_thread(ts)) == 1, ts
        # nothing said twice: the answer (edited in place) and its feedback prompt, once each
        said = [m.text for m in bot.bot_replies(ts) if not m.files]
        assert said and len(said) == len(set(said)), (ts, said)


@pytest.mark.parametrize(("how", "warn"), [("refresh", False), ("close", False), ("abort", False),
                                          ("close", True), ("abort", True)],
                         ids=["refresh", "close", "abort", "warned-close", "warned-abort"])
async def test_a_dropped_socket_is_reopened_and_no_event_is_lost_or_answered_twice(
        how: str, warn: bool, start_bot: Any, fake_wren: FakeWren) -> None:
    bot = await socket_bot(start_bot, fake_wren)
    slack = bot.slack
    before = await ask_over_socket(bot, "answered before the drop", "env-before")
    await bot.wait_finished(before)

    slack.lose_socket_acks()  # the bot acts on this one, but Slack never hears its ack
    ack_lost = await ask_over_socket(bot, "ack lost with the connection", "env-ack-lost")
    await bot.wait_finished(ack_lost)
    in_flight = await ask_over_socket(bot, "in flight when it dropped", "env-in-flight", lost=True)

    await slack.drop_socket(how, warn=warn)
    gap = await ask_over_socket(bot, "sent while disconnected", "env-gap")
    await slack.wait_for(lambda: connected(slack, 2), timeout=10 * PING + 5)

    await assert_answered_once(bot, [before, ack_lost, in_flight, gap])
    await bot.dropped_duplicates(1)  # the retry of the one whose ack was lost
    assert asked(fake_wren) == sorted(["answered before the drop", "ack lost with the connection",
                                       "in flight when it dropped", "sent while disconnected"])
    # Slack retried what the dropped connection had not acknowledged, on a new connection (a
    # warned close can make the bot reconnect twice: a retry may then be retried once more)
    assert slack.socket_retries("env-ack-lost")[:2] == [0, 1]
    assert slack.socket_retries("env-in-flight")[:2] == [0, 1]
    assert delivered_on(slack, "env-ack-lost")[1] >= 1
    assert delivered_on(slack, "env-in-flight")[1] >= 1
    assert delivered_on(slack, "env-gap")[0] >= 1
    if how != "refresh":  # (a refresh's new connection may already be open by then)
        assert slack.socket_retries("env-gap")[0] == 1
    # and everything was acknowledged in the end
    assert set(slack.socket_acks) >= {"env-before", "env-ack-lost", "env-in-flight", "env-gap"}
    assert not slack.socket_unacked()
    assert not slack.socket_given_up
    assert len(slack.calls_to("apps.connections.open")) >= 2
    # slash commands work on the new connection too
    await slack.push_envelope("slash_commands", command_payload(slack, "/insight-history"),
                              envelope_id="env-history")
    await slack.wait_for(lambda: bool(slack.responses_to(USER))
                         and "env-history" in slack.socket_acks)
    assert slack.socket_acks.count("env-history") == 1
    assert "sent while disconnected" in blocks_text(slack.responses_to(USER)[0]["blocks"])


async def test_a_failed_reconnect_is_retried(start_bot: Any, fake_wren: FakeWren) -> None:
    """Slack's apps.connections.open can fail right when the bot reconnects; it tries again
    (after SLACK_SOCKET_PING_INTERVAL) and the events waiting for it still arrive."""
    bot = await socket_bot(start_bot, fake_wren)
    slack = bot.slack
    slack.fail_next("apps.connections.open", "internal_error")
    await slack.drop_socket("close")
    waiting = await ask_over_socket(bot, "waiting for the reconnect", "env-waiting")
    await slack.wait_for(lambda: connected(slack, 2), timeout=10 * PING + 5)
    opens = slack.calls_to("apps.connections.open")
    assert [c.response.get("ok") for c in opens[-2:]] == [False, True]
    await assert_answered_once(bot, [waiting])
    assert asked(fake_wren) == ["waiting for the reconnect"]


async def test_the_same_event_over_http_and_the_socket_is_answered_once(
        start_bot: Any, fake_wren: FakeWren) -> None:
    """During a switch between HTTP and Socket Mode Slack may deliver one event both ways."""
    bot = await socket_bot(start_bot, fake_wren)
    ts = bot.next_ts()
    event = mention_event("asked once, delivered twice", ts)
    resp = await bot.send_event(event, event_id="EvBOTHWAYS")
    assert resp.status == 200
    await bot.slack.push_envelope("events_api", event_callback(event, "EvBOTHWAYS"),
                                  envelope_id="env-both-ways")
    await bot.slack.wait_for(lambda: "env-both-ways" in bot.slack.socket_acks)
    await assert_answered_once(bot, [ts])
    await bot.dropped_duplicates(1)
    assert asked(fake_wren) == ["asked once, delivered twice"]


@pytest.mark.parametrize("attempt", [0, 3], ids=["first-try", "last-try"])
async def test_an_event_whose_ack_could_not_be_sent_is_still_answered_once(
        attempt: int, start_bot: Any, fake_wren: FakeWren) -> None:
    """The connection breaks between an envelope's arrival and its ack. The bot answers the event
    it holds anyway: Slack's retry of it is a duplicate (dropped by the event ledger) — and after
    Slack's last retry there is none, so waiting for it would lose the question."""
    bot = await socket_bot(start_bot, fake_wren)
    slack = bot.slack
    assert bot.service.slack is not None and bot.service.slack._socket is not None
    client = bot.service.slack._socket.client
    send, failed = client.send_socket_mode_response, []

    async def breaks_once(response: Any) -> None:
        if getattr(response, "envelope_id", None) == "env-broken" and not failed:
            failed.append(response.envelope_id)
            raise ConnectionResetError("Cannot write to closing transport")  # as aiohttp says
        await send(response)

    client.send_socket_mode_response = breaks_once  # type: ignore[method-assign]
    ts = bot.next_ts()
    payload = event_callback(mention_event("asked as the connection broke", ts), "EvBROKEN")
    await slack.push_envelope("events_api", payload, envelope_id="env-broken",
                              retry_attempt=attempt)
    await slack.drop_socket("abort")
    await slack.wait_for(lambda: connected(slack, 2), timeout=10 * PING + 5)
    await assert_answered_once(bot, [ts])
    assert failed == ["env-broken"]
    assert asked(fake_wren) == ["asked as the connection broke"]
    if attempt < 3:  # Slack retried it on the new connection: a duplicate by then
        await bot.dropped_duplicates(1)
        assert slack.socket_retries("env-broken") == [attempt, attempt + 1]
        assert not slack.socket_given_up and not slack.socket_unacked()
    else:  # that was Slack's last try
        assert [env["envelope_id"] for env in slack.socket_given_up] == ["env-broken"]
