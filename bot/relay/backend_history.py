"""The backend's own record of the conversations behind our runs (TextQL's chat history).

Backends that keep browsable chats expose a ``history`` object (see adapters/textql/history.py);
this finds the chats that belong to the runs a user is looking at, for any platform's history
view. Backends without one simply have nothing to add.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

from adapters.base import BackendError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackendChat:
    id: str
    title: str
    last_activity: datetime | None


async def backend_chats(backend: Any, session_ids: Iterable[str | None], *,
                        limit: int = 50) -> tuple[list[BackendChat], str | None]:
    """Return ``(chats, problem)``: the backend chats among ``session_ids``, or why not."""
    history = getattr(backend, "history", None)
    wanted = {s for s in session_ids if s}
    if history is None or not wanted:
        return [], None
    try:
        chats = await history.list_chats(limit=limit)
    except BackendError as exc:
        return [], exc.message
    except Exception:  # a history view must never fail because of the backend
        log.warning("backend chat history unavailable", exc_info=True)
        return [], "the backend's chat history is unavailable right now"
    found = [BackendChat(c.id, c.title, c.last_activity) for c in chats if c.id in wanted]
    return found, None
