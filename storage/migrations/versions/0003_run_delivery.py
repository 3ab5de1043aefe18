"""Delivery of a finished run's answer: stored first, then shown, then marked delivered.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

A run's answer is stored before it is shown, so a crash between the two used to leave the
reply on "working" for good (nobody resumes a finished run). ``delivered_at`` stays empty until
the platform took the final reply; a finished, undelivered run whose lease ran out is taken by a
live replica and its stored answer delivered again. Rows finished before this revision count as
delivered.
"""

from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE runs SET delivered_at = finished_at WHERE finished_at IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("delivered_at")
