"""Feedback votes: one per person per run.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

``runs.feedback``/``feedback_by`` held one verdict per run, overwritten by every click: a person
clicking 👍 twice, or two replicas taking the same click, could not be told from two people, and
nobody could count. ``feedback_votes`` keeps each person's verdict under the key (run, voter).
The run columns stay, holding the latest verdict, for the readers that show one. A run's stored
verdict becomes its voter's vote, so no feedback given before this revision is lost.
"""

from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feedback_votes",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("voter", sa.String(), nullable=False),
        sa.Column("value", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "voter", name="pk_feedback_votes"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_feedback_votes_run_id_runs",
                                ondelete="CASCADE"),
    )
    op.execute(
        "INSERT INTO feedback_votes (run_id, voter, value, created_at, updated_at) "
        "SELECT id, feedback_by, feedback, COALESCE(finished_at, created_at), "
        "COALESCE(finished_at, created_at) FROM runs "
        "WHERE feedback IS NOT NULL AND feedback_by IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_table("feedback_votes")
