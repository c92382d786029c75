"""Add ``tasks.metadata`` (the client's free-form object, at most 16 KiB as JSON) and
``task_attempts.metadata`` (the latest ``metadata`` a backend reported for the attempt,
e.g. processing time or model version). Both are nullable JSON like ``payload``: rows
from before have none, and nothing has to be backfilled.

The downgrade drops the columns in place (``ALTER TABLE ... DROP COLUMN``; SQLite has
it since 3.35) rather than in batch mode, whose copy-and-rename of ``tasks`` would
cascade-delete every attempt and transition under SQLite's foreign keys.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

from app.store.models import JsonType

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("metadata", JsonType, nullable=True))
    op.add_column("task_attempts", sa.Column("metadata", JsonType, nullable=True))


def downgrade() -> None:
    op.drop_column("task_attempts", "metadata")
    op.drop_column("tasks", "metadata")
