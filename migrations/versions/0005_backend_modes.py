"""Backends as they really are: a server's own call timeout and batch settings, a
task's poll settings, and the status URL a poll-mode attempt follows (so polling goes
on after Redis lost its copy).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("servers", sa.Column("timeout_s", sa.Integer(), nullable=True))
    op.add_column("servers", sa.Column("batch", JSON, nullable=True))
    op.add_column("tasks", sa.Column("poll_interval_s", sa.Integer(), nullable=True))
    op.add_column("tasks", sa.Column("poll_max_attempts", sa.Integer(), nullable=True))
    op.add_column("task_attempts", sa.Column("poll_url", sa.Text(), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+): a batch copy of these tables would cascade-delete
    # their attempts and transitions through SQLite's foreign keys.
    op.drop_column("task_attempts", "poll_url")
    op.drop_column("tasks", "poll_max_attempts")
    op.drop_column("tasks", "poll_interval_s")
    op.drop_column("servers", "batch")
    op.drop_column("servers", "timeout_s")
