"""Replace ix_tasks_status (status) with ix_tasks_status_id (status, id): the sweeps
that walk the PENDING (or PENDING and PROCESSING) rows in id order read one page of
the index instead of every such row and a sort; counts by status use
ix_tasks_status_type.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tasks_status_id", "tasks", ["status", "id"])
    op.drop_index("ix_tasks_status", "tasks")


def downgrade() -> None:
    op.create_index("ix_tasks_status", "tasks", ["status"])
    op.drop_index("ix_tasks_status_id", "tasks")
