"""The fake Bot Connector enforces Teams' streaming contract (teams.md §3.1)."""

from __future__ import annotations

from typing import Any, AsyncIterator

import aiohttp
import pytest

from tests.fakes.teams_connector import FakeConnector

PERSONAL = "a:1personal"
GROUP = "19:group@thread.v2"


@pytest.fixture
async def fake() -> AsyncIterator[FakeConnector]:
    async with FakeConnector(prefix="/t/") as connector:
        yield connector


async def chunk(fake: FakeConnector, kind: str, seq: int | None, *, stream_id: str | None = None,
                conversation: str = PERSONAL, text: str = "hi", **extra: Any) -> tuple[int, Any]:
    entity: dict[str, Any] = {"type": "streaminfo", "streamType": kind}
    if seq is not None:
        entity["streamSequence"] = seq
    if stream_id:
        entity["streamId"] = stream_id
    body = {"type": "message" if kind == "final" else "typing", "text": text,
            "entities": [entity], **extra}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{fake.service_url}v3/conversations/{conversation}/activities/m1",
                                json=body) as resp:
            return resp.status, await resp.json()


async def test_a_stream_from_start_to_final(fake: FakeConnector) -> None:
    status, body = await chunk(fake, "informative", 1)
    assert status == 201
    sid = body["id"]
    assert (await chunk(fake, "streaming", 2, stream_id=sid, text="a"))[0] == 202
    assert (await chunk(fake, "streaming", 3, stream_id=sid, text="a b"))[0] == 202
    assert (await chunk(fake, "streaming", 4, stream_id=sid, text="x"))[0] == 400  # not cumulative
    assert (await chunk(fake, "final", 4, stream_id=sid))[0] == 400  # no sequence on final
    assert (await chunk(fake, "final", None, stream_id=sid, text="a b"))[0] == 202
    assert fake.streams[sid].state == "final"
    status, body = await chunk(fake, "streaming", 5, stream_id=sid, text="a b c")
    assert status == 403 and "already completed" in body["error"]["message"]


async def test_only_personal_chats_stream(fake: FakeConnector) -> None:
    status, body = await chunk(fake, "informative", 1, conversation=GROUP)
    assert status == 400 and "streaming api is not enabled" in body["error"]["message"]


async def test_sequence_must_increase(fake: FakeConnector) -> None:
    _, body = await chunk(fake, "informative", 1)
    status, answer = await chunk(fake, "informative", 1, stream_id=body["id"])
    assert status == 202 and answer["error"]["code"] == "ContentStreamSequenceOrderPreConditionFailed"
    assert fake.violations
    fake.violations.clear()


async def test_one_stream_per_chat_and_attachments_only_on_final(fake: FakeConnector) -> None:
    _, body = await chunk(fake, "informative", 1)
    status, answer = await chunk(fake, "informative", 1)
    assert status == 403 and answer["error"]["code"] == "ContentStreamNotAllowed"
    status, _ = await chunk(fake, "streaming", 2, stream_id=body["id"],
                            attachments=[{"contentType": "image/png", "contentUrl": "data:,"}])
    assert status == 400
    assert (await chunk(fake, "informative", 2, stream_id=body["id"], text="x" * 1001))[0] == 400


async def test_the_cap_and_the_users_stop(fake: FakeConnector) -> None:
    _, body = await chunk(fake, "informative", 1)
    fake.press_stop(PERSONAL)
    status, answer = await chunk(fake, "informative", 2, stream_id=body["id"])
    assert status == 403 and answer["error"]["message"] == "Content stream was cancelled by user."
    fake.stream_cap = 0.0
    _, body = await chunk(fake, "informative", 1)  # the cancelled stream no longer holds the chat
    status, answer = await chunk(fake, "informative", 2, stream_id=body["id"])
    assert status == 403 and "exceeded streaming time" in answer["error"]["message"]
