"""The schema, as SQLAlchemy 2 declarative models.

These classes are the single source of truth for the migrations (``alembic check`` must find
no difference) and are used by the repository only to build statements; ORM objects never
leave ``storage/``.

Identifiers that come from Slack, Teams or a backend (channel, thread, user and session ids)
are unbounded strings: Teams conversation ids easily exceed 100 characters and we must not
fail on PostgreSQL where SQLite would silently accept a longer value.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    Boolean, Column, DateTime, ForeignKey, Index, Integer, MetaData, String, Table, Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

EVENT_KEY_MAX = 255
RUN_ID_MAX = 32

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every database.

    PostgreSQL stores ``timestamptz`` natively; SQLite has no timezone support and hands back
    naive values. Writing always converts to UTC and reading always attaches UTC, so callers
    see aware datetimes everywhere and SQLite's text ordering matches time ordering.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; storage needs timezone-aware values")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Conversation(Base):
    """One chat thread and the backend conversation (session) it continues."""

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("platform", "workspace", "channel", "thread"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String)
    workspace: Mapped[str] = mapped_column(String)
    channel: Mapped[str] = mapped_column(String)
    thread: Mapped[str] = mapped_column(String)
    backend: Mapped[str] = mapped_column(String)
    session_id: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The backend profile (ROUTES_FILE) the thread started with; it keeps it when the routes
    # change. NULL: the single backend of a set-up without a routing file.
    profile: Mapped[str | None] = mapped_column(String)


class Run(Base):
    """One question asked in a thread and what became of it.

    Thread coordinates are copied from the conversation so history queries ("my recent
    questions in this channel") need no join.
    """

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_history", "platform", "workspace", "channel", "asker", "created_at"),
        Index("ix_runs_status", "status"),
        Index("ix_runs_reply", "reply_channel", "reply_ts"),
    )

    id: Mapped[str] = mapped_column(String(RUN_ID_MAX), primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String)
    workspace: Mapped[str] = mapped_column(String)
    channel: Mapped[str] = mapped_column(String)
    thread: Mapped[str] = mapped_column(String)
    question: Mapped[str] = mapped_column(Text)
    asker: Mapped[str] = mapped_column(String)
    backend: Mapped[str] = mapped_column(String)
    backend_run_id: Mapped[str | None] = mapped_column(String)
    session_id: Mapped[str | None] = mapped_column(String)
    status: Mapped[str] = mapped_column(String(16))
    reply_channel: Mapped[str | None] = mapped_column(String)
    reply_ts: Mapped[str | None] = mapped_column(String)
    error: Mapped[str | None] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text)  # JSON text, decoded by the repository
    stopped_by: Mapped[str | None] = mapped_column(String)
    feedback: Mapped[str | None] = mapped_column(String(16))
    feedback_by: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The replica executing the run and until when its claim holds (renewed while it runs);
    # a run whose lease ran out, or was released at a clean shutdown, belongs to nobody.
    owner: Mapped[str | None] = mapped_column(String)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the platform took the final reply; a finished run without it was stored but maybe
    # never shown (a crash in between): a live replica delivers its stored answer again.
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Event(Base):
    """The ledger of inbound chat events already claimed by some replica."""

    __tablename__ = "events"

    key: Mapped[str] = mapped_column(String(EVENT_KEY_MAX), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class FeedbackVote(Base):
    """One person's 👍/👎 on one run.

    The primary key (run, voter) is what makes it one vote per person per run: a second click,
    a redelivered click or the same click reaching two replicas finds the row already there,
    so counting the rows of a run counts people. (``runs.feedback`` keeps the latest verdict for
    the readers that show one.)
    """

    __tablename__ = "feedback_votes"

    run_id: Mapped[str] = mapped_column(
        String(RUN_ID_MAX), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    voter: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


# -- Slack's distributed app (OAuth install) --------------------------------------------------
#
# The three tables of slack_sdk's AsyncSQLAlchemyInstallationStore and
# AsyncSQLAlchemyOAuthStateStore, which the service uses as they are (bot/slack/installations.py).
# They are declared here, column for column as slack_sdk builds them
# (``SQLAlchemyInstallationStore.build_installations_table`` / ``build_bots_table``,
# ``SQLAlchemyOAuthStateStore.build_oauth_states_table``; tests/unit/test_storage.py keeps the
# two in step), so that migrations create them like every other table — on PostgreSQL under the
# replicas' migration lock — and the schema check sees them. slack_sdk stores naive UTC times.

slack_installations = Table(
    "slack_installations", Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_id", String(32), nullable=False),
    Column("app_id", String(32), nullable=False),
    Column("enterprise_id", String(32)),
    Column("enterprise_name", String(200)),
    Column("enterprise_url", String(200)),
    Column("team_id", String(32)),
    Column("team_name", String(200)),
    Column("bot_token", String(200)),
    Column("bot_id", String(32)),
    Column("bot_user_id", String(32)),
    Column("bot_scopes", String(1000)),
    Column("bot_refresh_token", String(200)),
    Column("bot_token_expires_at", DateTime),
    Column("user_id", String(32), nullable=False),
    Column("user_token", String(200)),
    Column("user_scopes", String(1000)),
    Column("user_refresh_token", String(200)),
    Column("user_token_expires_at", DateTime),
    Column("incoming_webhook_url", String(200)),
    Column("incoming_webhook_channel", String(200)),
    Column("incoming_webhook_channel_id", String(200)),
    Column("incoming_webhook_configuration_url", String(200)),
    Column("is_enterprise_install", Boolean, nullable=False),
    Column("token_type", String(32)),
    Column("installed_at", DateTime, nullable=False),
    Index("slack_installations_idx", "client_id", "enterprise_id", "team_id", "user_id",
          "installed_at"),
)

slack_bots = Table(
    "slack_bots", Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_id", String(32), nullable=False),
    Column("app_id", String(32), nullable=False),
    Column("enterprise_id", String(32)),
    Column("enterprise_name", String(200)),
    Column("team_id", String(32)),
    Column("team_name", String(200)),
    Column("bot_token", String(200)),
    Column("bot_id", String(32)),
    Column("bot_user_id", String(32)),
    Column("bot_scopes", String(1000)),
    Column("bot_refresh_token", String(200)),
    Column("bot_token_expires_at", DateTime),
    Column("is_enterprise_install", Boolean, nullable=False),
    Column("installed_at", DateTime, nullable=False),
    Index("slack_bots_idx", "client_id", "enterprise_id", "team_id", "installed_at"),
)

slack_oauth_states = Table(
    "slack_oauth_states", Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("state", String(200), nullable=False),
    Column("expire_at", DateTime, nullable=False),
)


class SlackWorkspace(Base):
    """Where a Slack workspace's installation is: its Enterprise Grid, and whether the app was
    installed for the whole organisation (one installation, one bot token, for every workspace
    of the Grid) rather than into the workspace itself.

    Bolt learns this from each request; a reply sent later (a run resumed after a restart, or
    taken over from another replica) has only the workspace id, so it is remembered here. Not
    tokens: those stay in ``slack_bots``.
    """

    __tablename__ = "slack_workspaces"

    team_id: Mapped[str] = mapped_column(String, primary_key=True)
    enterprise_id: Mapped[str | None] = mapped_column(String)
    org_install: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
