"""Statistics rollups (hourly, and all-time totals), flushed batches, hours to recount,
the error log; indexes for recounting an hour from the task records and for counting
tasks by status and type.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from app.store.models import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COUNTERS = (
    "created",
    "completed",
    "failed",
    "timeout",
    "cancelled",
    "retried",
    "duration_ms",
    "attempts_ok",
    "attempts_failed",
    "attempt_ms",
    "last_active_ms",
)


def upgrade() -> None:
    op.create_table(
        "stats_hourly",
        sa.Column("scope", sa.String(1), primary_key=True),
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("hour", UTCDateTime(), primary_key=True),
        *(sa.Column(name, sa.BigInteger(), nullable=False, server_default="0") for name in COUNTERS),
    )
    op.create_index("ix_stats_hourly_scope_hour", "stats_hourly", ["scope", "hour"])
    op.create_table(
        "stats_totals",
        sa.Column("scope", sa.String(1), primary_key=True),
        sa.Column("key", sa.String(100), primary_key=True),
        *(sa.Column(name, sa.BigInteger(), nullable=False, server_default="0") for name in COUNTERS),
    )
    op.create_table(
        "stats_flushes",
        sa.Column("batch_id", sa.String(36), primary_key=True),
        sa.Column("cut_ms", sa.BigInteger(), nullable=False),
        sa.Column("applied_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "stats_dirty_hours",
        sa.Column("hour", UTCDateTime(), primary_key=True),
        sa.Column("marked_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "error_log",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("error_type", sa.String(64), nullable=False),
        sa.Column("message", sa.String(500), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("first_seen", UTCDateTime(), nullable=False),
        sa.Column("last_seen", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("error_type", "message", name="uq_error_log_type_message"),
    )
    op.create_index("ix_stats_flushes_cut_ms", "stats_flushes", ["cut_ms"])
    op.create_index("ix_tasks_created_at", "tasks", ["created_at"])
    op.create_index("ix_tasks_status_type", "tasks", ["status", "type"])
    op.create_index("ix_task_transitions_at", "task_transitions", ["at"])
    op.create_index("ix_task_attempts_finished_at", "task_attempts", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_tasks_status_type", "tasks")
    op.drop_index("ix_task_attempts_finished_at", "task_attempts")
    op.drop_index("ix_task_transitions_at", "task_transitions")
    op.drop_index("ix_tasks_created_at", "tasks")
    op.drop_table("error_log")
    op.drop_index("ix_stats_flushes_cut_ms", "stats_flushes")
    op.drop_table("stats_dirty_hours")
    op.drop_table("stats_flushes")
    op.drop_table("stats_totals")
    op.drop_index("ix_stats_hourly_scope_hour", "stats_hourly")
    op.drop_table("stats_hourly")
