"""Suggested follow-ups, admin stop, and /insight-stop with several running analyses."""

from __future__ import annotations

from typing import Any, AsyncIterator

from adapters.answer import Finished, Outcome, PartUpsert, SessionAssigned, SuggestionsPart, TextPart
from adapters.base import AskRequest
from tests.fakes.wren import FakeWren
from tests.integration.conftest import CHANNEL, OTHER, USER, SlackBot, blocks_text
from tests.integration.own_backend import OwnBackend
from tests.integration.test_slack_controls import running, stop_value


class SuggestingBackend(OwnBackend):
    """A minimal backend (our own protocol) that proposes follow-up questions."""

    name = "suggesting"

    async def ask(self, request: AskRequest) -> AsyncIterator[Any]:
        self.asked.append(request)
        yield SessionAssigned("conv-1")
        yield PartUpsert(TextPart("t", f"Answer to: {request.question}"))
        yield PartUpsert(SuggestionsPart("s", ("Break it down by month", "Compare with last year",
                                               "Which products drove it?", "A fourth one")))
        yield Finished(Outcome.DONE)


async def test_suggested_follow_ups_are_buttons_that_ask_in_the_thread(start_bot) -> None:
    backend = SuggestingBackend()
    bot = await start_bot(backend=backend)
    event = await bot.mention("revenue last quarter")
    await bot.wait_finished(event["ts"])
    reply = bot.bot_replies(event["ts"])[0]
    buttons = [el for b in reply.blocks if b["type"] == "actions" for el in b["elements"]]
    assert [b["text"]["text"] for b in buttons] == ["Break it down by month", "Compare with last year",
                                                    "Which products drove it?"]
    await bot.action(buttons[0]["action_id"], buttons[0]["value"], user=OTHER,
                     message_ts=reply.ts, thread_ts=event["ts"])
    await bot.wait_finished(event["ts"], count=2)
    assert backend.asked[-1].question == "Break it down by month"
    assert backend.asked[-1].session_id == "conv-1"  # same conversation
    runs = await bot.service.repo.list_runs("slack", "T1", channel=CHANNEL)
    assert runs[0].asker == OTHER and runs[0].thread == event["ts"]


async def test_workspace_admin_may_stop_someone_elses_analysis(wren_bot: SlackBot, fake_wren: FakeWren) -> None:
    wren_bot.slack.admins.add(OTHER)
    event = await running(wren_bot, fake_wren)
    run_id, reply_ts = stop_value(wren_bot, event["ts"])
    await wren_bot.action("stop_run", run_id, user=OTHER, message_ts=reply_ts, thread_ts=event["ts"])
    [answer] = await wren_bot.wait_finished(event["ts"])
    assert answer.outcome.value == "stopped" and answer.stopped_by == OTHER


async def test_slash_stop_with_several_runs_offers_one_button_each(wren_bot: SlackBot,
                                                                  fake_wren: FakeWren) -> None:
    first = await running(wren_bot, fake_wren, "first slow one")
    fake_wren.hold_ask()
    second = await wren_bot.mention("second slow one")
    await fake_wren.wait_for_request("/api/v1/ask", count=2)
    await wren_bot.command("/insight-stop")
    await wren_bot.slack.wait_for(lambda: bool(wren_bot.slack.responses_to(USER)))
    body = wren_bot.slack.responses_to(USER)[-1]
    assert body["response_type"] == "ephemeral"
    accessories = [b["accessory"] for b in body["blocks"] if "accessory" in b]
    assert len(accessories) == 2 and "second slow one" in blocks_text(body["blocks"])
    run_id = accessories[0]["value"]
    await wren_bot.action("stop_run", run_id)
    await wren_bot.finished.wait_for(lambda: any(r == run_id for r, _, _ in wren_bot.finished.items), 10)
    stopped = await wren_bot.service.repo.get_run(run_id)
    assert stopped.status == "stopped"
    assert first and second
