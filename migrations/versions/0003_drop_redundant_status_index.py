"""Drop ix_tasks_status: ix_tasks_status_type (status, type) serves every query by
status, and each status change of a task no longer updates a third index.

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
    op.drop_index("ix_tasks_status", "tasks")


def downgrade() -> None:
    op.create_index("ix_tasks_status", "tasks", ["status"])
