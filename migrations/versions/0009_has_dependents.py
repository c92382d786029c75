"""A flag on each task that some task depends on, so that the end of one nothing depends
on (nearly every task) skips the query for WAITING dependents.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "tasks", sa.Column("has_dependents", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.execute(
        "UPDATE tasks SET has_dependents = true WHERE id IN (SELECT depends_on_id FROM task_dependencies)"
    )


def downgrade() -> None:
    op.drop_column("tasks", "has_dependents")
