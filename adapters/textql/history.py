"""Past TextQL chats, for the bot's history views.

Legacy: ``GET /api/ana/chat/summary`` (every chat: ``innerId`` + ``innerVal{summary,
lastUserMessage.timestamp}``) and ``GET /api/ana/:chat_id`` (an array of arrays of messages whose
``body`` is a list of blocks). v2: ``GET /v2/chats?limit=`` (``{"chats": [...], "total_count"}``)
and ``GET /v2/chats/{id}`` (``{"chat", "messages": [{role, content, created_at, cell_id, assets}],
"assets"}``).

Results are plain frozen dataclasses; failures raise :class:`adapters.base.BackendError` with a
message fit for the user (the bot shows history on request, not inside a run).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from adapters.base import BackendError
from adapters.textql.blocks import untag
from adapters.textql.errors import http_error, transport_error
from adapters.textql.settings import TextQLSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChatSummary:
    id: str
    title: str
    last_activity: datetime | None = None


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "user" | "assistant"
    text: str
    timestamp: datetime | None = None
    author: str = ""  # the user's name, when TextQL gives one


@dataclass(frozen=True)
class ChatDetail:
    id: str
    messages: tuple[ChatMessage, ...]


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _sort_key(summary: ChatSummary) -> float:
    return summary.last_activity.timestamp() if summary.last_activity else float("-inf")


def legacy_summaries(data: Any) -> list[ChatSummary]:
    out: list[ChatSummary] = []
    for item in data if isinstance(data, list) else []:
        if not isinstance(item, dict):
            continue
        inner = item.get("innerVal") if isinstance(item.get("innerVal"), dict) else {}
        chat_id = item.get("innerId") or inner.get("id")
        if not chat_id:
            continue
        last = inner.get("lastUserMessage")
        out.append(ChatSummary(str(chat_id), str(inner.get("summary") or ""),
                               parse_time(last.get("timestamp") if isinstance(last, dict) else None)))
    return out


def _body_text(body: Any) -> str:
    """The text of a message's blocks; non-text blocks as a bracketed tag so the turn is not blank."""
    pieces: list[str] = []
    for block in body if isinstance(body, list) else []:
        tag, contents = untag(block)
        if tag == "TextBlock" and isinstance(contents, str):
            pieces.append(contents)
        elif tag:
            pieces.append(f"[{tag}]")
    return "\n\n".join(p for p in pieces if p)


def legacy_detail(chat_id: str, data: Any) -> ChatDetail:
    messages: list[tuple[int, ChatMessage]] = []
    groups = data if isinstance(data, list) else []
    for group in groups:
        for item in group if isinstance(group, list) else [group]:
            inner = item.get("innerVal") if isinstance(item, dict) else None
            if not isinstance(inner, dict):
                continue
            author = inner.get("author") if isinstance(inner.get("author"), dict) else {}
            role = "user" if author.get("tag") == "User" else "assistant"
            index = inner.get("messageIdx")
            messages.append((index if isinstance(index, int) else len(messages), ChatMessage(
                role, _body_text(inner.get("body")), parse_time(inner.get("timestamp")),
                str(author.get("name") or ""))))
    messages.sort(key=lambda pair: pair[0])
    return ChatDetail(chat_id, tuple(m for _, m in messages))


def v2_summaries(data: Any) -> list[ChatSummary]:
    chats = data.get("chats") if isinstance(data, dict) else None
    out: list[ChatSummary] = []
    for chat in chats if isinstance(chats, list) else []:
        if isinstance(chat, dict) and chat.get("id"):
            out.append(ChatSummary(str(chat["id"]), str(chat.get("summary") or chat.get("preview") or ""),
                                   parse_time(chat.get("updated_at") or chat.get("timestamp"))))
    return out


def v2_detail(chat_id: str, data: Any) -> ChatDetail:
    """One message per turn: TextQL keeps an assistant message per markdown cell of an answer,
    so consecutive assistant messages are joined into the one reply they make up."""
    messages = data.get("messages") if isinstance(data, dict) else None
    out: list[ChatMessage] = []
    for m in messages if isinstance(messages, list) else []:
        if not isinstance(m, dict):
            continue
        role = "user" if m.get("role") == "user" else "assistant"
        text = str(m.get("content") or "")
        if role == "assistant" and out and out[-1].role == "assistant":
            previous = out[-1]
            out[-1] = ChatMessage(role, "\n\n".join(t for t in (previous.text, text) if t),
                                  previous.timestamp)
            continue
        out.append(ChatMessage(role, text, parse_time(m.get("created_at"))))
    return ChatDetail(chat_id, tuple(out))


class TextQLHistory:
    """Reads chat lists and chats with the backend's API client (and thus its credentials)."""

    def __init__(self, client: httpx.AsyncClient, settings: TextQLSettings) -> None:
        self._client = client
        self._settings = settings

    async def list_chats(self, limit: int = 20) -> list[ChatSummary]:
        """The most recently active chats first, at most ``limit`` of them."""
        limit = max(1, min(int(limit), 100))
        if self._settings.mode == "v2":
            return v2_summaries(await self._get("/v2/chats", params={"limit": limit}))[:limit]
        summaries = legacy_summaries(await self._get("/api/ana/chat/summary"))
        return sorted(summaries, key=_sort_key, reverse=True)[:limit]

    async def get_chat(self, chat_id: str) -> ChatDetail:
        escaped = quote(chat_id, safe="")
        if self._settings.mode == "v2":
            return v2_detail(chat_id, await self._get(f"/v2/chats/{escaped}"))
        return legacy_detail(chat_id, await self._get(f"/api/ana/{escaped}"))

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        try:
            response = await self._client.get(path, params=params, timeout=self._settings.call_timeout())
        except httpx.HTTPError as exc:
            error = transport_error(exc, idle_timeout=self._settings.request_timeout)
            raise BackendError(error.message, code=error.code) from None
        if not response.is_success:
            error = http_error(response.status_code, response.content[:65536])
            raise BackendError(error.message, code=error.code, status=response.status_code)
        try:
            return response.json()
        except ValueError:
            raise BackendError("TextQL answered the history request with something unreadable.",
                               code="bad_response") from None
