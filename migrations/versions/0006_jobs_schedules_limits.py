"""Jobs, schedules, dependencies and per-type concurrency limits: a job's record and
its tasks' job id, a task's start time and dependencies (with the reverse edges, so
releasing dependents reads only theirs), and the limits that must survive Redis.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("owner", "idempotency_key", name="uq_jobs_owner_idempotency_key"),
    )
    op.create_index("ix_jobs_owner_created", "jobs", ["owner", "created_at", "id"])
    op.add_column("tasks", sa.Column("job_id", sa.String(36), nullable=True))
    op.add_column("tasks", sa.Column("job_key", sa.String(100), nullable=True))
    op.add_column("tasks", sa.Column("run_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tasks", sa.Column("depends_on", JSON, nullable=True))
    op.create_index("ix_tasks_job_status", "tasks", ["job_id", "status"])
    op.create_table(
        "task_dependencies",
        sa.Column("task_id", sa.String(36), sa.ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("depends_on_id", sa.String(36), primary_key=True),
    )
    op.create_index("ix_task_dependencies_depends_on", "task_dependencies", ["depends_on_id"])
    op.create_table(
        "concurrency_limits",
        sa.Column("type", sa.String(100), primary_key=True),
        sa.Column("max_concurrent", sa.Integer(), nullable=True),
        sa.Column("dynamic", JSON, nullable=True),
        sa.Column("current", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("change_reason", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("concurrency_limits")
    op.drop_index("ix_task_dependencies_depends_on", table_name="task_dependencies")
    op.drop_table("task_dependencies")
    op.drop_index("ix_tasks_job_status", table_name="tasks")
    # Plain DROP COLUMN (SQLite 3.35+): a batch copy of tasks would cascade-delete its
    # attempts and transitions through SQLite's foreign keys.
    op.drop_column("tasks", "depends_on")
    op.drop_column("tasks", "run_at")
    op.drop_column("tasks", "job_key")
    op.drop_column("tasks", "job_id")
    op.drop_index("ix_jobs_owner_created", table_name="jobs")
    op.drop_table("jobs")
