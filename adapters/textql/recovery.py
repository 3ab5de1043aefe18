"""Reading one question's answer back from ``GET /v2/chats/{id}`` (backends.md §2.3, §2.8).

A v2 stream can end without ``done`` (TextQL's 200 s stream timeout, a dropped connection); the
reference's remedy is to fetch the chat. Its shape (archived v2 OpenAPI, ``GetChatResponse``)::

    {"chat": {"id", "model"},
     "messages": [{"role": "user"|"assistant", "content": <markdown>, "created_at",
                   "cell_id", "assets": [Asset]}],          # assets: assistant messages only
     "assets": [Asset{name, type, url, content, cell_id, message_cell_id, created_at}]}

Each assistant message is one markdown cell of an answer ("ID of the cell this message came
from"), so one answer can be several messages; assets point at theirs through
``message_cell_id``. This module finds the answer to *this* question: the chat's last user
message must be the question (a chat can hold earlier questions, and someone may have asked
another one since), and the answer is every assistant message after it. GET Chat has no
"still running" flag, so what is there is taken as the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RecoveredTurn:
    texts: tuple[str, ...]  # one Markdown text per assistant message, in order
    assets: tuple[dict[str, Any], ...]


def _norm(text: Any) -> str:
    return " ".join(text.split()) if isinstance(text, str) else ""


def answer_turn(data: Any, question: str) -> RecoveredTurn | None:
    """The answer to ``question`` in a GetChatResponse, or None when the chat has none (yet)."""
    raw = data.get("messages") if isinstance(data, dict) else None
    messages = [m for m in raw if isinstance(m, dict)] if isinstance(raw, list) else []
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
    if last_user is None or _norm(messages[last_user].get("content")) != _norm(question):
        return None
    replies = [m for m in messages[last_user + 1:] if m.get("role") == "assistant"]
    texts = tuple(m["content"] for m in replies
                  if isinstance(m.get("content"), str) and m["content"].strip())
    cells = {str(m["cell_id"]) for m in replies if m.get("cell_id")}
    assets: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str]] = set()
    chat_assets = data.get("assets") if isinstance(data.get("assets"), list) else []
    candidates = [a for m in replies for a in (m.get("assets") if isinstance(m.get("assets"), list) else [])]
    candidates += [a for a in chat_assets
                   if isinstance(a, dict) and str(a.get("message_cell_id") or "") in cells]
    for asset in candidates:
        if not isinstance(asset, dict):
            continue
        key = (str(asset.get("cell_id") or ""), str(asset.get("name") or ""), str(asset.get("type") or ""))
        if key not in seen:
            seen.add(key)
            assets.append(asset)
    if not texts and not assets:
        return None
    return RecoveredTurn(texts, tuple(assets))
