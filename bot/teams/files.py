"""The full result of a cut table as a CSV file, where Teams lets a bot send one.

Teams' bot file API works in personal chats only (``bots/how-to/bots-filesv4``; the manifest
says ``supportsFiles: true``). The bot cannot just attach a file there either: it asks first.

1. Below the answer it posts a ``FileConsentCard`` naming the file and its size; the card's
   accept/decline context carries a token for the file, which waits here, in memory.
2. The user presses *Allow*: Teams creates an upload session in their OneDrive and sends the
   invoke ``fileConsent/invoke`` with ``action: "accept"`` and an ``uploadInfo.uploadUrl``.
   The invoke is answered 200 at once; the bytes go to that URL with one ``PUT`` (a
   ``Content-Range`` for the whole file) in the background.
3. The bot then posts a ``FileInfoCard`` (the file as Teams shows it, opened in place) and
   removes the consent card. *Decline* just removes the card and forgets the file.

In channels and group chats bots can share files only through Microsoft Graph and SharePoint,
with permissions this bot does not ask for, so there the answer says the full result cannot be
attached instead of pretending (see :class:`~bot.teams.cards.Files`).

The waiting files are bounded (:data:`MAX_STORED` bytes, oldest dropped first) and do not
survive a restart; a late *Allow* is told so, with the question to ask again.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import aiohttp
from microsoft_agents.activity import Activity, Attachment

from adapters.answer import TablePart
from bot.delivery.tabular import to_csv

log = logging.getLogger(__name__)

CONSENT_CARD = "application/vnd.microsoft.teams.card.file.consent"
FILE_INFO_CARD = "application/vnd.microsoft.teams.card.file.info"
MAX_FILE = 50 * 1024 * 1024  # one PUT to an upload session (OneDrive takes < 60 MiB a request)
MAX_STORED = 128 * 1024 * 1024
UPLOAD_TIMEOUT = 120.0

_UNSAFE = re.compile(r"[^\w.-]+", re.UNICODE)


@dataclass(frozen=True)
class CsvFile:
    token: str
    conversation_id: str
    run_id: str
    name: str
    data: bytes
    rows: int

    @property
    def description(self) -> str:
        return f"The full result of your question: {self.rows:,} rows as CSV (UTF-8)."


class CsvOffers:
    """Files offered with a consent card, until the user answers (bounded LRU by bytes)."""

    def __init__(self, max_bytes: int = MAX_STORED) -> None:
        self._files: OrderedDict[str, CsvFile] = OrderedDict()
        self._bytes = 0
        self._max = max_bytes
        self._sent: OrderedDict[str, None] = OrderedDict()  # tokens uploaded (a late repeat is no news)

    def offer(self, conversation_id: str, run_id: str, table: TablePart, index: int = 0, *,
              data: bytes | None = None) -> CsvFile | None:
        """Keep the table's CSV (``data``, made off the loop by the caller, or made here) for a
        consent card; None when it is too large to send."""
        data = to_csv(table) if data is None else data
        if len(data) > MAX_FILE:
            log.info("run %s: the CSV of %d bytes is too large to offer", run_id, len(data))
            return None
        file = CsvFile(secrets.token_urlsafe(12), conversation_id, run_id,
                       file_name(table.title, run_id, index), data, len(table.rows))
        self._files[file.token] = file
        self._bytes += len(data)
        while self._bytes > self._max and len(self._files) > 1:
            _, old = self._files.popitem(last=False)
            self._bytes -= len(old.data)
        return file

    def get(self, token: str) -> CsvFile | None:
        return self._files.get(token)

    def drop(self, token: str, *, sent: bool = False) -> None:
        file = self._files.pop(token, None)
        if file is not None:
            self._bytes -= len(file.data)
        if sent:
            self._sent[token] = None
            while len(self._sent) > 10_000:
                self._sent.popitem(last=False)

    def was_sent(self, token: str) -> bool:
        return token in self._sent


def file_name(title: str, run_id: str, index: int = 0) -> str:
    stem = _UNSAFE.sub("-", title.strip().lower()).strip("-.")[:40] or "result"
    suffix = f"-{index + 1}" if index else ""
    return f"{stem}-{run_id[:8]}{suffix}.csv"


def consent_activity(file: CsvFile) -> Activity:
    context = {"csv": file.token}
    return Activity(type="message", summary=f"CSV file: {file.name}", attachments=[Attachment(
        content_type=CONSENT_CARD, name=file.name,
        content={"description": file.description, "sizeInBytes": len(file.data),
                 "acceptContext": context, "declineContext": context})])


def file_info_activity(upload_info: dict[str, Any]) -> Activity:
    """The uploaded file as Teams shows it: a card the user opens or downloads."""
    name = str(upload_info.get("name") or "result.csv")
    return Activity(type="message", summary=name, attachments=[Attachment(
        content_type=FILE_INFO_CARD, name=name, content_url=str(upload_info.get("contentUrl") or "") or None,
        content={"uniqueId": str(upload_info.get("uniqueId") or ""),
                 "fileType": str(upload_info.get("fileType") or "csv")})])


async def upload(url: str, data: bytes) -> None:
    """The whole file in one request to the OneDrive upload session Teams created."""
    headers = {"Content-Length": str(len(data)), "Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}",
               "Content-Type": "application/octet-stream"}
    timeout = aiohttp.ClientTimeout(total=UPLOAD_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.put(url, data=data, headers=headers) as response:
            if response.status not in (200, 201):
                raise UploadFailed(response.status)


class UploadFailed(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"the upload answered {status}")
        self.status = status


def is_personal(conversation_type: str | None, conversation_id: str) -> bool:
    """Personal chats are ``conversationType: personal``; after a restart only the id is left,
    and personal chat ids start with ``a:`` (group chats and channels with ``19:``)."""
    if conversation_type:
        return conversation_type == "personal"
    return conversation_id.startswith("a:")
