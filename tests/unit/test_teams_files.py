"""The CSV offer of a cut result (personal chats): what is kept, the cards, where it may go."""

from __future__ import annotations

import asyncio
from typing import Any

from adapters.answer import Column, TablePart
from bot.metrics import Metrics
from bot.teams.agent import TeamsAgent
from bot.teams.files import (
    CONSENT_CARD, FILE_INFO_CARD, CsvOffers, consent_activity, file_info_activity, file_name,
    is_personal,
)
from bot.teams.memory import NameBook, TargetBook


def table(rows: int, title: str = "Revenue by state") -> TablePart:
    return TablePart("t", (Column("state"), Column("n", "BIGINT")),
                     tuple((f"S{i}", i) for i in range(rows)), title=title)


def test_offers_are_bounded_by_bytes_oldest_first() -> None:
    offers = CsvOffers(max_bytes=3_000)
    first = offers.offer("a:chat", "run1", table(200))
    second = offers.offer("a:chat", "run2", table(200))
    assert first is not None and second is not None
    assert len(first.data) + len(second.data) > 3_000
    assert offers.get(first.token) is None and offers.get(second.token) == second  # the newest stays
    offers.drop(second.token)
    assert offers.get(second.token) is None
    assert first.token != second.token and len(first.token) >= 16  # not guessable


def test_the_offer_and_the_file_as_teams_wants_them() -> None:
    file = CsvOffers().offer("a:chat", "0123456789ab", table(150))
    assert file is not None and file.rows == 150
    assert file.data.startswith("\ufeffstate,n\r\n".encode())
    [card] = consent_activity(file).attachments
    assert card.content_type == CONSENT_CARD and card.name == "revenue-by-state-01234567.csv"
    assert card.content == {"description": file.description, "sizeInBytes": len(file.data),
                            "acceptContext": {"csv": file.token}, "declineContext": {"csv": file.token}}
    [info] = file_info_activity({"name": "r.csv", "contentUrl": "https://x/r.csv", "uniqueId": "U1",
                                 "fileType": "csv", "uploadUrl": "https://secret"}).attachments
    assert info.content_type == FILE_INFO_CARD and info.content_url == "https://x/r.csv"
    assert info.content == {"uniqueId": "U1", "fileType": "csv"}  # the upload URL is not echoed
    assert file_name("", "run", 2) == "result-run-3.csv"
    assert file_name("../../etc/passwd ☃", "r1") == "etc-passwd-r1.csv"


def test_only_personal_chats_take_files() -> None:
    assert is_personal("personal", "a:1") and not is_personal("groupChat", "19:x@thread.v2")
    assert not is_personal("channel", "19:x@thread.tacv2;messageid=1")
    assert is_personal(None, "a:1pL6") and not is_personal(None, "19:x@thread.v2")  # after a restart


class _Replies:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def deliver(self, target: Any, activity: Any) -> None:
        self.sent.append(activity)

    async def deliver_delete(self, target: Any, activity_id: str) -> None:
        self.sent.append(("delete", activity_id))


def test_in_production_a_csv_goes_only_to_an_https_upload_url(monkeypatch: Any) -> None:
    import bot.teams.agent as agent_module

    uploads: list[str] = []

    async def record(url: str, data: bytes) -> None:
        uploads.append(url)

    monkeypatch.setattr(agent_module, "upload", record)
    offers = CsvOffers()
    file = offers.offer("a:chat", "run1", table(150))
    assert file is not None
    replies = _Replies()
    agent = TeamsAgent(relay=None, repo=None, metrics=Metrics(), replies=replies,  # type: ignore[arg-type]
                       targets=TargetBook(), names=NameBook(), files=offers, https_uploads_only=True)
    asyncio.run(agent._upload(None, file.token, {"uploadUrl": "http://attacker.example/x"}, "m1"))  # type: ignore[arg-type]
    assert uploads == []  # never even tried
    [notice] = replies.sent
    assert "could not be saved" in notice.text and "run1" in notice.text
    assert offers.get(file.token) == file  # kept for a proper Allow

    asyncio.run(agent._upload(None, file.token, {"uploadUrl": "https://tenant.sharepoint.com/u",  # type: ignore[arg-type]
                                                 "name": "r.csv"}, "m1"))
    assert uploads == ["https://tenant.sharepoint.com/u"]
    assert replies.sent[-1] == ("delete", "m1") and offers.get(file.token) is None
