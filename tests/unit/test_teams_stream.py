"""The Teams stream protocol speaker: numbering, stream id, limits, pacing and Teams' answers."""

from __future__ import annotations

from typing import Any

import pytest
from microsoft_agents.activity import Activity

from bot.teams.connector import ConnectorError
from bot.teams.stream import (
    StreamCancelled, StreamExpired, StreamRefused, StreamTiming, TeamsStream, classify,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Connector:
    """Records what would be POSTed; the first chunk's answer id becomes the stream id."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.fail: ConnectorError | None = None

    async def post(self, target: Any, activity: Activity, **kw: Any) -> str:
        if self.fail is not None:
            raise self.fail
        self.sent.append(activity.model_dump(by_alias=True, exclude_unset=True, mode="json"))
        return "stream-1" if len(self.sent) == 1 else ""


def make(**timing: Any) -> tuple[TeamsStream, Connector, Clock]:
    connector, clock = Connector(), Clock()
    stream = TeamsStream(connector, object(), timing=StreamTiming(**timing),  # type: ignore[arg-type]
                         sleep=clock.sleep, clock=clock)
    return stream, connector, clock


def info(body: dict[str, Any]) -> dict[str, Any]:
    [entity] = [e for e in body["entities"] if e["type"] == "streaminfo"]
    return entity


async def test_chunks_are_numbered_and_carry_the_first_chunks_id() -> None:
    stream, connector, _ = make(interval=0)
    assert await stream.informative("Working…") == "stream-1"
    await stream.append("São")
    await stream.append("São Paulo")
    await stream.finish(Activity(type="message", text="done"))
    first, *rest, final = connector.sent
    assert first["type"] == "typing" and info(first) == {"type": "streaminfo",
                                                         "streamType": "informative",
                                                         "streamSequence": 1}
    assert [info(c)["streamSequence"] for c in rest] == [2, 3]
    assert all(info(c)["streamId"] == "stream-1" for c in rest)
    assert [c["text"] for c in rest] == ["São", "São Paulo"]
    assert final["type"] == "message" and info(final) == {"type": "streaminfo",
                                                          "streamType": "final",
                                                          "streamId": "stream-1"}
    with pytest.raises(StreamRefused):  # nothing after the final message
        await stream.append("more")


async def test_informative_updates_are_cut_to_teams_limit() -> None:
    stream, connector, _ = make(interval=0)
    await stream.informative("x" * 5_000)
    assert len(connector.sent[0]["text"]) <= 1_000


async def test_chunks_are_paced() -> None:
    stream, _, clock = make(interval=1.0)
    await stream.informative("a")
    await stream.informative("b")
    assert clock.slept == [1.0]


async def test_the_stream_expires_at_max_age_but_can_still_be_finished() -> None:
    stream, connector, clock = make(interval=0, max_age=10.0)
    await stream.informative("a")
    clock.now += 10.0
    with pytest.raises(StreamExpired):
        await stream.append("text")
    assert stream.open and len(connector.sent) == 1
    await stream.finish(Activity(type="message", text="card"))
    assert stream.finished


@pytest.mark.parametrize(("status", "message", "kind"), [
    (403, "Content stream was cancelled by user.", StreamCancelled),
    (403, "Content stream finished due to exceeded streaming time.", StreamExpired),
    (403, "Content stream is not allowed", StreamRefused),
    (400, "BadArgument: streaming api is not enabled", StreamRefused),
])
async def test_teams_answers_end_the_stream(status: int, message: str, kind: type) -> None:
    stream, connector, _ = make(interval=0)
    await stream.informative("a")
    connector.fail = ConnectorError("post", status, "ContentStreamNotAllowed", message)
    with pytest.raises(kind):
        await stream.append("b")
    connector.fail = None
    with pytest.raises(kind):  # and stays ended
        await stream.repeat()


def test_server_errors_are_not_stream_outcomes() -> None:
    assert classify(ConnectorError("post", 502, "BadGateway", "")) is None
    assert classify(ConnectorError("post", 429, "TooManyRequests", "")) is None
