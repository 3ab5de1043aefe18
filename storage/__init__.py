"""Persistence for insightbot: conversations, runs and the event ledger (SQLite or PostgreSQL).

The only package that writes SQL. It imports nothing from ``bot`` or ``adapters``.
"""

from storage.engine import DEFAULT_URL, create_engine, normalize_url
from storage.migrate import upgrade, upgrade_sync
from storage.records import (
    ACTIVE_STATUSES,
    FEEDBACK_VALUES,
    FINAL_STATUSES,
    STATUSES,
    ConversationRecord,
    RunRecord,
)
from storage.repository import Repository

__all__ = [
    "ACTIVE_STATUSES",
    "DEFAULT_URL",
    "FEEDBACK_VALUES",
    "FINAL_STATUSES",
    "STATUSES",
    "ConversationRecord",
    "Repository",
    "RunRecord",
    "create_engine",
    "normalize_url",
    "upgrade",
    "upgrade_sync",
]
