"""The backend profile a conversation started with.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

With a routing file (``ROUTES_FILE``) several backend profiles serve one bot, chosen per chat by
routes. A thread must keep the profile it started with when the routes change (its session lives
on that backend), so the conversation stores it. Existing conversations get NULL: the single
backend of a set-up without a routing file; under a routing file such a thread is routed afresh
on its next question and adopts the profile it is routed to.
"""

from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("profile", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("profile")
