"""SQLAlchemy models: the durable records. Tables are created only by Alembic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

JsonType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class TaskRow(Base):
    """A task as submitted, plus a snapshot of its hot state at ``version``."""

    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("owner", "idempotency_key", name="uq_tasks_owner_idempotency_key"),
        Index("ix_tasks_owner_created", "owner", "created_at", "id"),
        Index("ix_tasks_created_at", "created_at"),
        Index("ix_tasks_status_type", "status", "type"),
        Index("ix_tasks_status_id", "status", "id"),
        Index("ix_tasks_job_status", "job_id", "status"),
        Index("ix_tasks_finished_at", "finished_at"),
        Index("ix_tasks_owner_status", "owner", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(100))
    priority: Mapped[int] = mapped_column(Integer, default=5)
    payload: Mapped[Any] = mapped_column(JsonType, nullable=True)
    #: The client's free-form object (column ``metadata``, a name Declarative reserves).
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JsonType, nullable=True)
    capabilities: Mapped[list[str]] = mapped_column(JsonType, default=list)
    mode: Mapped[str] = mapped_column(String(16))
    region: Mapped[str | None] = mapped_column(String(64), nullable=True)
    server_group: Mapped[str | None] = mapped_column(String(100), nullable=True)
    max_retries: Mapped[int] = mapped_column(Integer)
    timeout_s: Mapped[int] = mapped_column(Integer)
    #: Poll mode: seconds between polls and how many at most (None: the defaults).
    poll_interval_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    poll_max_attempts: Mapped[int | None] = mapped_column(Integer, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    #: The job the task was submitted in, and its item's ``key`` there (if it had one).
    job_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    job_key: Mapped[str | None] = mapped_column(String(100), nullable=True)
    #: Not dispatched before this time (SCHEDULED until then).
    run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: Ids of the tasks it waits for (WAITING until all are COMPLETED); the edges are
    #: also in ``task_dependencies``, read from the other end.
    depends_on: Mapped[list[str] | None] = mapped_column(JsonType, nullable=True)
    #: The backend was asked to stream its output (``"stream": true`` in the request).
    stream: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: A task was submitted that depends on this one: its end looks up its WAITING
    #: dependents (else it skips that query). Set in the dependent's own transaction,
    #: which takes this row's lock to do it, and never cleared.
    has_dependents: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    status: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(BigInteger, default=1)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    retry_base: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    server_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    result: Mapped[Any] = mapped_column(JsonType, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class TaskAttemptRow(Base):
    """One attempt of a task on one server: when, where, and how it ended."""

    __tablename__ = "task_attempts"
    __table_args__ = (
        UniqueConstraint("task_id", "attempt", name="uq_task_attempts_task_attempt"),
        Index("ix_task_attempts_finished_at", "finished_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    server_id: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Poll mode: the URL this attempt's status is read from.
    poll_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: The latest ``metadata`` the backend reported for this attempt (column ``metadata``).
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JsonType, nullable=True)


class TaskTransitionRow(Base):
    """Every state change of a task, one row per version: the audit trail."""

    __tablename__ = "task_transitions"
    __table_args__ = (
        UniqueConstraint("task_id", "version", name="uq_task_transitions_version"),
        Index("ix_task_transitions_at", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(BigInteger)
    from_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_status: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: What the transition's event shows (app/core/events.py), so it can be rebuilt from
    #: here when Redis lost it: the server, the progress, the error (None before 0007).
    server_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    progress: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class JobRow(Base):
    """Many tasks submitted in one request. Its status and counts are read from its
    tasks (``tasks.job_id``), so a task's transition never writes the job."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("owner", "idempotency_key", name="uq_jobs_owner_idempotency_key"),
        Index("ix_jobs_owner_created", "owner", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    total: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class TaskDependencyRow(Base):
    """An edge: ``task_id`` waits for ``depends_on_id`` to complete. Indexed from the
    dependency's end, so a task that finishes finds its dependents without a scan."""

    __tablename__ = "task_dependencies"
    __table_args__ = (Index("ix_task_dependencies_depends_on", "depends_on_id"),)

    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    depends_on_id: Mapped[str] = mapped_column(String(36), primary_key=True)


class ConcurrencyLimitRow(Base):
    """A cap on the running tasks of one type (``*``: all tasks): static
    (``max_concurrent``) or scaling (``dynamic``: initial, max, step, upEverySeconds,
    downEverySeconds). ``current`` is the cap in force; Redis holds a copy."""

    __tablename__ = "concurrency_limits"

    type: Mapped[str] = mapped_column(String(100), primary_key=True)
    max_concurrent: Mapped[int | None] = mapped_column(Integer, nullable=True)
    dynamic: Mapped[dict[str, int] | None] = mapped_column(JsonType, nullable=True)
    current: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    change_reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ServerRow(Base):
    """A registered backend server. ``api_key`` never leaves the store except to call it."""

    __tablename__ = "servers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    endpoints: Mapped[dict[str, str]] = mapped_column(JsonType)
    api_key: Mapped[str | None] = mapped_column(String(512), nullable=True)
    max_concurrent: Mapped[int] = mapped_column(Integer, default=10)
    capabilities: Mapped[list[str]] = mapped_column(JsonType, default=list)
    groups: Mapped[list[str]] = mapped_column(JsonType, default=list)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    region: Mapped[str | None] = mapped_column(String(64), nullable=True)
    weight: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="online")
    maintenance: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Seconds a call to it may take at most (None: the attempt's own timeout).
    timeout_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: {"max_size", "max_wait_ms"} when it takes tasks in batches.
    batch: Mapped[dict[str, int] | None] = mapped_column(JsonType, nullable=True)
    #: "required": a callback must carry a valid signature (None: the deployment default).
    callback_signature: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ClientLimitRow(Base):
    """An admin's limits for one client (a token's ``sub``); None: the default setting."""

    __tablename__ = "client_limits"

    sub: Mapped[str] = mapped_column(String(255), primary_key=True)
    submits_per_second: Mapped[float | None] = mapped_column(Float, nullable=True)
    burst: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_unfinished: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: The client's share of freed slots relative to others (default 1).
    weight: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RevokedTokenRow(Base):
    """A JWT revoked by its ``jti``; dropped once ``expires_at`` is past."""

    __tablename__ = "revoked_tokens"
    __table_args__ = (Index("ix_revoked_tokens_expires_at", "expires_at"),)

    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    sub: Mapped[str | None] = mapped_column(String(255), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TokenCutoffRow(Base):
    """Every token of ``sub`` issued before ``issued_before`` is revoked."""

    __tablename__ = "token_cutoffs"

    sub: Mapped[str] = mapped_column(String(255), primary_key=True)
    issued_before: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SettingRow(Base):
    """Run-time choices that must survive Redis (e.g. the load-balancing algorithm)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


class StatsCountersMixin:
    """The statistics counters (``app.core.tally.METRICS``), one column each."""

    created: Mapped[int] = mapped_column(BigInteger, default=0)
    completed: Mapped[int] = mapped_column(BigInteger, default=0)
    failed: Mapped[int] = mapped_column(BigInteger, default=0)
    timeout: Mapped[int] = mapped_column(BigInteger, default=0)
    cancelled: Mapped[int] = mapped_column(BigInteger, default=0)
    retried: Mapped[int] = mapped_column(BigInteger, default=0)
    duration_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    attempts_ok: Mapped[int] = mapped_column(BigInteger, default=0)
    attempts_failed: Mapped[int] = mapped_column(BigInteger, default=0)
    attempt_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    last_active_ms: Mapped[int] = mapped_column(BigInteger, default=0)


class StatsHourlyRow(StatsCountersMixin, Base):
    """Statistics counters of one hour, for all tasks (scope 'a'), one task type ('t')
    or one server ('s'); metrics as in ``app.core.tally``."""

    __tablename__ = "stats_hourly"
    __table_args__ = (Index("ix_stats_hourly_scope_hour", "scope", "hour"),)

    scope: Mapped[str] = mapped_column(String(1), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)


class StatsTotalRow(StatsCountersMixin, Base):
    """All-time counters per (scope, key): the sum of that key's ``stats_hourly`` rows,
    kept in the same transactions, so all-time figures read one row per key."""

    __tablename__ = "stats_totals"

    scope: Mapped[str] = mapped_column(String(1), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)


class StatsFlushRow(Base):
    """A batch of Redis counters added to ``stats_hourly``: a batch is applied once."""

    __tablename__ = "stats_flushes"
    __table_args__ = (Index("ix_stats_flushes_cut_ms", "cut_ms"),)

    batch_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    cut_ms: Mapped[int] = mapped_column(BigInteger)
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StatsDirtyHourRow(Base):
    """An hour whose Redis counters may be incomplete (Redis lost data, or a counter
    could not be written): its figures are recounted from the task records."""

    __tablename__ = "stats_dirty_hours"

    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    marked_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ErrorLogRow(Base):
    """Failures aggregated by (error type, message)."""

    __tablename__ = "error_log"
    __table_args__ = (UniqueConstraint("error_type", "message", name="uq_error_log_type_message"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    error_type: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(String(500))
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime)
