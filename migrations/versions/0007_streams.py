"""Streaming: whether a task asked its backend to stream, and what each transition's
event needs so a task's status and progress events can be rebuilt from the database
after Redis lost them (the server, the error shown, the progress).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("stream", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("task_transitions", sa.Column("server_id", sa.String(64), nullable=True))
    op.add_column("task_transitions", sa.Column("progress", sa.Integer(), nullable=True))
    op.add_column("task_transitions", sa.Column("error", sa.Text(), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+), as in 0006: a batch copy would cascade-delete.
    op.drop_column("task_transitions", "error")
    op.drop_column("task_transitions", "progress")
    op.drop_column("task_transitions", "server_id")
    op.drop_column("tasks", "stream")
