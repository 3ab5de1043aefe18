"""Run ownership: the replica executing a run and its lease.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Without an owner, a replica starting during a rolling deploy took over every unfinished run in
the shared database — runs other live replicas were still executing. Existing unfinished rows
get no owner, so the first replica to start after the upgrade takes them, as before.
"""

from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("owner", sa.String(), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("owner")
