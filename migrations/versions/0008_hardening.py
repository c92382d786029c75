"""Hardening: per-client limits and fair-share weights, token revocation, servers that
demand signed callbacks, and an index for retention's batched deletes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "client_limits",
        sa.Column("sub", sa.String(255), primary_key=True),
        sa.Column("submits_per_second", sa.Float(), nullable=True),
        sa.Column("burst", sa.Integer(), nullable=True),
        sa.Column("max_unfinished", sa.Integer(), nullable=True),
        sa.Column("weight", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "revoked_tokens",
        sa.Column("jti", sa.String(255), primary_key=True),
        sa.Column("sub", sa.String(255), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_revoked_tokens_expires_at", "revoked_tokens", ["expires_at"])
    op.create_table(
        "token_cutoffs",
        sa.Column("sub", sa.String(255), primary_key=True),
        sa.Column("issued_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.add_column("servers", sa.Column("callback_signature", sa.String(16), nullable=True))
    op.create_index("ix_tasks_finished_at", "tasks", ["finished_at"])
    op.create_index("ix_tasks_owner_status", "tasks", ["owner", "status"])


def downgrade() -> None:
    op.drop_index("ix_tasks_owner_status", table_name="tasks")
    op.drop_index("ix_tasks_finished_at", table_name="tasks")
    # Plain DROP COLUMN (SQLite 3.35+), as in 0006: a batch copy would cascade-delete.
    op.drop_column("servers", "callback_signature")
    op.drop_table("token_cutoffs")
    op.drop_index("ix_revoked_tokens_expires_at", table_name="revoked_tokens")
    op.drop_table("revoked_tokens")
    op.drop_table("client_limits")
