"""Backends as they really are: a server's own call timeout and batch settings, a
task's poll settings, and the status URL a poll-mode attempt follows (so polling goes
on after Redis lost its copy).

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0003"
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
    with op.batch_alter_table("task_attempts") as batch:
        batch.drop_column("poll_url")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("poll_max_attempts")
        batch.drop_column("poll_interval_s")
    with op.batch_alter_table("servers") as batch:
        batch.drop_column("batch")
        batch.drop_column("timeout_s")
