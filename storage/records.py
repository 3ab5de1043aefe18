"""Plain immutable values the repository hands out.

Callers get snapshots, not live ORM objects: nothing can lazy-load after the session is gone,
and nothing written to a record is silently persisted (or silently lost).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

QUEUED = "queued"
RUNNING = "running"
DONE = "done"
STOPPED = "stopped"
FAILED = "failed"

ACTIVE_STATUSES: tuple[str, ...] = (QUEUED, RUNNING)
FINAL_STATUSES: tuple[str, ...] = (DONE, STOPPED, FAILED)
STATUSES: tuple[str, ...] = ACTIVE_STATUSES + FINAL_STATUSES

FEEDBACK_VALUES: tuple[str, ...] = ("good", "bad")


@dataclass(frozen=True)
class ConversationRecord:
    """A chat thread (platform, workspace, channel, thread) bound to one backend session."""

    id: int
    platform: str
    workspace: str
    channel: str
    thread: str
    backend: str
    session_id: str | None
    created_at: datetime
    updated_at: datetime
    profile: str | None = None  # the backend profile it started with (None: the single backend)


@dataclass(frozen=True)
class RunRecord:
    """One question and its outcome; ``id`` doubles as the user-visible reference id."""

    id: str
    conversation_id: int
    platform: str
    workspace: str
    channel: str
    thread: str
    question: str
    asker: str
    backend: str
    backend_run_id: str | None
    session_id: str | None
    status: str
    reply_channel: str | None
    reply_ts: str | None
    error: str | None
    answer: dict[str, Any] | None
    stopped_by: str | None
    feedback: str | None
    feedback_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    owner: str | None = None  # the replica executing it (see Repository.claim_orphans)
    lease_until: datetime | None = None
    delivered_at: datetime | None = None  # when the final reply reached the chat platform

    @property
    def active(self) -> bool:
        """True while the run is queued or running (not yet finished)."""
        return self.status in ACTIVE_STATUSES
