"""TextQL Ana backend: legacy ``/api/ana`` named-event SSE, or v2 REST streaming.

Modules: ``settings`` (configuration), ``blocks`` (legacy block JSON → parts), ``cells`` (v2 cells
and assets → parts), ``images`` (safe image download), ``tracker`` (parts already shown),
``legacy`` and ``v2`` (the two streams), ``recovery`` (a v2 answer read back from the chat),
``history`` (past chats), ``errors`` (user-facing error parts), ``adapter`` (:class:`TextQLBackend`).
"""

from adapters.textql.adapter import TextQLBackend
from adapters.textql.history import ChatDetail, ChatMessage, ChatSummary, TextQLHistory
from adapters.textql.settings import TextQLSettings

__all__ = ["ChatDetail", "ChatMessage", "ChatSummary", "TextQLBackend", "TextQLHistory", "TextQLSettings"]
