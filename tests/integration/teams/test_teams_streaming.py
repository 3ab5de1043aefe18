"""Teams native streaming in personal chats, against the fake connector's streaming contract.

A scripted backend (our own protocol) moves on only when the test opens its next gate, so what
was streamed at each point is certain; the Stop test runs against every real backend's fake.
Stream timings are shortened on the sink factory (``StreamTiming``); the fake's 2-minute cap is
shortened with ``stream_cap``.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

from adapters.answer import (
    Column, Finished, Outcome, PartUpsert, SessionAssigned, SqlPart, StepPart, StepState,
    TablePart, TextPart,
)
from adapters.base import AskRequest
from bot.teams.stream import StreamTiming
from tests.fakes.teams_connector import CARD, FakeStream
from tests.integration.conftest import TIME_SCALE
from tests.integration.own_backend import OwnBackend
from tests.integration.teams.conftest import (
    ADA, GROUP, PERSONAL, TENANT, StartTeams, TeamsBot, actions_of, card_text, stop_buttons, walk,
)

FAST = StreamTiming(interval=0.5 * TIME_SCALE, heartbeat=1.0 * TIME_SCALE, max_age=30.0)
STEPS = ["Looking up the sales tables", "Writing SQL", "Running the query"]
FIRST = "São Paulo pays the most"
WHOLE = FIRST + ", then Rio de Janeiro."


class Scripted(OwnBackend):
    """Steps, a table and SQL, then the text in two pieces; pauses at each gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gates = [asyncio.Event() for _ in range(4)]
        self.cancelled = asyncio.Event()

    def open_all(self) -> None:
        for gate in self.gates:
            gate.set()

    def ask(self, request: AskRequest) -> AsyncIterator[Any]:
        self.asked.append(request)
        return self._run()

    async def _run(self) -> AsyncIterator[Any]:
        try:
            yield SessionAssigned("session-1", "run-1")
            yield PartUpsert(StepPart("s1", STEPS[0], StepState.RUNNING))
            await self.gates[0].wait()
            yield PartUpsert(StepPart("s1", STEPS[0], StepState.DONE))
            yield PartUpsert(StepPart("s2", STEPS[1], StepState.RUNNING))
            yield PartUpsert(SqlPart("sql", "SELECT state, SUM(amount) AS revenue FROM sales "
                                            "GROUP BY state ORDER BY revenue DESC"))
            yield PartUpsert(StepPart("s2", STEPS[1], StepState.DONE))
            yield PartUpsert(StepPart("s3", STEPS[2], StepState.RUNNING))
            yield PartUpsert(TablePart("table", (Column("state"), Column("revenue", "number")),
                                       (("SP", 120.5), ("RJ", 80.25)), total=2))
            yield PartUpsert(StepPart("s3", STEPS[2], StepState.DONE))
            await self.gates[1].wait()
            yield PartUpsert(TextPart("text", FIRST))
            await self.gates[2].wait()
            yield PartUpsert(TextPart("text", WHOLE))
            await self.gates[3].wait()
            yield Finished(Outcome.DONE)
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled.set()
            raise


async def streaming_bot(start_teams: StartTeams, *, backend: Any = None, own: Any = None,
                        timing: StreamTiming = FAST, **settings: Any) -> TeamsBot:
    return await start_teams(backend, own=own, TEAMS_STREAMING=True,
                             TEAMS_STREAM_INTERVAL=timing.interval,
                             TEAMS_STREAM_HEARTBEAT=timing.heartbeat,
                             TEAMS_STREAM_MAX_AGE=timing.max_age, **settings)


async def wait_stream(bot: TeamsBot, predicate: Any = lambda s: True) -> FakeStream:
    def ready() -> bool:
        streams = bot.connector.streams_in(PERSONAL)
        return bool(streams) and predicate(streams[-1])

    await bot.connector.wait_for(ready)
    return bot.connector.streams_in(PERSONAL)[-1]


def info(chunk: dict[str, Any]) -> dict[str, Any]:
    [entity] = [e for e in chunk["entities"] if e.get("type") == "streaminfo"]
    return entity


def ai_labelled(activity: dict[str, Any]) -> bool:
    return any(e.get("@type") == "Message" and "AIGeneratedContent" in (e.get("additionalType") or [])
               for e in activity.get("entities") or [])


async def test_personal_answer_streams_steps_then_text_then_the_final_card(
        start_teams: StartTeams) -> None:
    backend = Scripted()
    bot = await streaming_bot(start_teams, own=backend)
    question = await bot.personal("Which states pay the most?")

    stream = await wait_stream(bot, lambda s: STEPS[0] in s.informative)
    assert stream.informative[0] == "Working on it…"  # the placeholder is the first chunk
    backend.gates[0].set()
    await wait_stream(bot, lambda s: STEPS[2] in s.informative)
    backend.gates[1].set()
    await wait_stream(bot, lambda s: FIRST in s.texts)
    backend.gates[2].set()
    await wait_stream(bot, lambda s: WHOLE in s.texts)
    backend.gates[3].set()
    [answer] = await bot.wait_finished(PERSONAL)
    assert answer.outcome is Outcome.DONE

    # informative updates: the status, then each step once, in order, before any text
    steps = [line for line in stream.informative if line in STEPS]
    assert steps == STEPS
    # each line once (a heartbeat repeats the line just sent, nothing else)
    collapsed = [line for i, line in enumerate(stream.informative)
                 if i == 0 or line != stream.informative[i - 1]]
    assert collapsed == list(dict.fromkeys(stream.informative))
    kinds = [info(c)["streamType"] for c in stream.chunks]
    assert kinds.index("streaming") > max(i for i, k in enumerate(kinds) if k == "informative")
    assert stream.texts[0] == FIRST and stream.texts[-1] == WHOLE  # cumulative
    sequences = [info(c)["streamSequence"] for c in stream.chunks[:-1]]
    assert sequences == sorted(set(sequences)) and sequences[0] == 1

    # the final message: the answer card (table, SQL toggle), AI label, feedback loop
    final = stream.final
    assert final is not None and kinds[-1] == "final"
    assert final["type"] == "message" and info(final)["streamId"] == stream.id
    assert "streamSequence" not in info(final)
    [card] = [a["content"] for a in final["attachments"] if a["contentType"] == CARD]
    text = card_text(card)
    assert WHOLE in text and "SP" in text and "Answered in" in text
    assert [n for n in walk(card) if n.get("type") == "Table"]
    assert actions_of(card, "Action.ToggleVisibility") and not stop_buttons(card)
    assert final["channelData"]["feedbackLoop"] == {"type": "default"}
    assert ai_labelled(final)

    # one message in the chat: the stream itself, recorded as the run's reply
    [reply] = bot.replies(PERSONAL)
    assert reply.id == stream.id and reply.reply_to_id == question["id"]
    assert stream.state == "final"
    [run] = await bot.service.repo.list_runs("teams", TENANT, channel=PERSONAL)
    assert run.reply_ts == stream.id
    assert not bot.connector.calls_to("PUT")  # nothing was edited: it streamed
    # a vote on the streamed answer counts for the run
    await bot.vote(reply, "like")
    assert (await bot.service.repo.get_run(run.id)).feedback == "good"


async def test_the_users_stop_on_a_stream_stops_the_backend_run(
        start_teams: StartTeams, backend: Any) -> None:
    bot = await streaming_bot(start_teams, backend=backend)
    backend.hold()
    await bot.personal("slow question")
    await backend.wait_asked()
    stream = await wait_stream(bot)
    bot.connector.press_stop(PERSONAL)  # Teams tells the bot nothing until its next chunk

    await backend.wait_cancelled()
    [answer] = await bot.wait_finished(PERSONAL)
    assert answer.outcome is Outcome.STOPPED
    assert stream.state == "cancelled"
    [run] = await bot.service.repo.list_runs("teams", TENANT, channel=PERSONAL)
    assert run.status == "stopped" and run.stopped_by == ADA.aad  # the asker: Teams names nobody
    # the streamed message carries on as a card and says so
    [reply] = bot.replies(PERSONAL)
    assert reply.id == stream.id
    assert "Stopped by Ada Lovelace" in card_text(reply.card)
    assert not stop_buttons(reply.card)


async def test_after_teams_cap_the_reply_carries_on_as_card_updates(
        start_teams: StartTeams) -> None:
    backend = Scripted()
    bot = await streaming_bot(start_teams, own=backend)
    bot.connector.stream_cap = 0.3  # Teams' 2 minutes, shortened
    await bot.personal("Which states pay the most?")
    stream = await wait_stream(bot, lambda s: STEPS[0] in s.informative)
    await bot.connector.wait_for(lambda: stream.state == "timed_out"
                                 and bool(bot.connector.calls_to("PUT")), timeout=5.0)
    # the streamed message became the progress card, Stop button and all
    [reply] = bot.replies(PERSONAL)
    assert reply.id == stream.id and stop_buttons(reply.card)
    assert STEPS[0] in card_text(reply.card)
    backend.open_all()
    [answer] = await bot.wait_finished(PERSONAL)
    assert answer.outcome is Outcome.DONE
    [reply] = bot.replies(PERSONAL)  # still one message: the answer replaced it whole
    text = card_text(reply.card)
    assert WHOLE in text and "SP" in text and not stop_buttons(reply.card)
    assert reply.activity["channelData"]["feedbackLoop"] == {"type": "default"}
    assert ai_labelled(reply.activity)
    assert stream.final is None  # never finished as a stream: Teams had cut it


async def test_a_stream_older_than_max_age_is_finished_by_us_and_continues_as_cards(
        start_teams: StartTeams) -> None:
    backend = Scripted()
    bot = await streaming_bot(start_teams, own=backend,
                              timing=StreamTiming(interval=FAST.interval, heartbeat=FAST.heartbeat,
                                                  max_age=0.3))
    await bot.personal("Which states pay the most?")
    stream = await wait_stream(bot, lambda s: s.state == "final")
    assert stop_buttons(stream.final["attachments"][0]["content"])  # the progress card
    backend.open_all()
    [answer] = await bot.wait_finished(PERSONAL)
    assert answer.outcome is Outcome.DONE
    [reply] = bot.replies(PERSONAL)
    assert reply.id == stream.id and WHOLE in card_text(reply.card)
    assert bot.connector.calls_to("PUT")  # the answer edited the finished stream


async def test_a_group_chat_is_never_streamed(start_teams: StartTeams) -> None:
    backend = Scripted()
    backend.open_all()
    bot = await streaming_bot(start_teams, own=backend)
    await bot.group("Which states pay the most?")
    [answer] = await bot.wait_finished(GROUP)
    assert answer.outcome is Outcome.DONE
    assert not bot.connector.streams
    assert not [c for c in bot.connector.calls if c.body and c.body.get("type") == "typing"]
    [reply] = bot.replies(GROUP)
    assert WHOLE in card_text(reply.card)


async def test_streaming_off_uses_the_card_path_in_personal_chats(start_teams: StartTeams) -> None:
    backend = Scripted()
    backend.open_all()
    bot = await start_teams(own=backend, TEAMS_STREAMING=False)
    await bot.personal("Which states pay the most?")
    [answer] = await bot.wait_finished(PERSONAL)
    assert answer.outcome is Outcome.DONE
    assert not bot.connector.streams
    [reply] = bot.replies(PERSONAL)
    assert WHOLE in card_text(reply.card) and reply.versions[0]["type"] == "message"


async def test_a_second_question_while_one_streams_waits_as_a_card(start_teams: StartTeams) -> None:
    backend = Scripted()
    bot = await streaming_bot(start_teams, own=backend)
    await bot.personal("first question")
    await wait_stream(bot, lambda s: STEPS[0] in s.informative)
    await bot.personal("second question")
    replies = await bot.wait_replies(PERSONAL, count=2)
    assert replies[1].card is not None and len(bot.connector.streams) == 1  # one stream per chat
    backend.open_all()
    await bot.wait_finished(PERSONAL, count=2)


async def test_a_clickzetta_stream_announces_each_item_of_the_analysis(
        start_teams: StartTeams, fake_clickzetta: Any) -> None:
    from tests.integration.backends import ClickZettaHarness
    backend = ClickZettaHarness(fake_clickzetta)
    bot = await streaming_bot(start_teams, backend=backend)
    fake_clickzetta.hold(at_step=3)  # knowledge and metric shown, the rest still to come
    await bot.personal("Transaction amount by district?")
    await wait_stream(bot, lambda s: any(line.startswith("Used the metric") for line in s.informative))
    fake_clickzetta.release()
    [answer] = await bot.wait_finished(PERSONAL)
    assert answer.outcome is Outcome.DONE
    [stream] = bot.connector.streams_in(PERSONAL)
    # the same tasks Slack shows: what ClickZetta consulted and used, in that order
    lines = [line for line in stream.informative if line.startswith(("Consulted", "Used the metric"))]
    assert [line.split(" ")[0] for line in dict.fromkeys(lines)] == ["Consulted", "Used"]
