"""Settings from the environment; Flask and Celery configuration both derive from them."""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field
from pathlib import Path

from app.backends import MAX_EVENT_BYTES, MAX_RESPONSE_BYTES
from app.core import signatures
from app.core.errors import InvalidInput
from app.core.urls import check_backend_url

#: The Celery queues: dispatch jobs, and periodic and fleet jobs, apart so a backlog of
#: one never delays the other (app.extensions routes to them; /api/status reads them).
DISPATCH_QUEUE = "dispatch"
MAINTENANCE_QUEUE = "maintenance"
QUEUES = (DISPATCH_QUEUE, MAINTENANCE_QUEUE)

#: Where the embedded defaults (SQLite file, Redis data) live when nothing else is set.
DEFAULT_VAR_DIR = Path(os.environ.get("TASKFLEET_HOME", ".taskfleet"))


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _positive(env: dict[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 1:
        raise ValueError(f"{name} must be a positive whole number, got {value}")
    return value


def _positive_float(env: dict[str, str], name: str, default: float, unit: str) -> float:
    """A positive, finite number (``unit``: what the error message calls it)."""
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise ValueError(f"{name} must be a positive number {unit}, got {raw!r}")
    return value


def _rate(env: dict[str, str], name: str, default: float) -> float:
    return _positive_float(env, name, default, "per second")


def _non_negative(env: dict[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 0:
        raise ValueError(f"{name} must be 0 or more, got {value}")
    return value


def _seconds(env: dict[str, str], name: str, default: float) -> float:
    return _positive_float(env, name, default, "of seconds")


def _fraction(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be a fraction from 0 to 1, got {raw!r}")
    return value


def _costs(raw: str) -> dict[str, int]:
    """'video=4,image=2' -> {'video': 4, 'image': 2}."""
    costs: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit() or int(value) < 1:
            raise ValueError(f"SLOT_COSTS entries look like type=2, got {item!r}")
        costs[name.strip()] = int(value)
    return costs


#: What ``LOG_LEVEL`` may be.
LOG_LEVELS = ("debug", "info", "warning", "error")


def _choice(env: dict[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    value = raw.strip().lower()
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return value


def _generated_secret(env: dict[str, str]) -> str | None:
    """The secret ``taskfleet up`` generated into $TASKFLEET_HOME/jwt_secret, so
    ``taskfleet token`` mints tokens the running stack accepts."""
    path = Path(env.get("TASKFLEET_HOME") or DEFAULT_VAR_DIR) / "jwt_secret"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with the defaults documented in ``.env.example``."""

    database_url: str = f"sqlite:///{DEFAULT_VAR_DIR.resolve() / 'taskfleet.db'}"
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: No default: a known secret would let anyone mint an admin token. ``taskfleet up``
    #: generates one into $TASKFLEET_HOME/jwt_secret, which the other commands read.
    jwt_secret_key: str = field(default="", repr=False)
    port: int = 8000
    public_url: str = ""
    #: Bytes; request bodies above this get 413. 32 MiB: room for the images, audio and
    #: documents inference payloads carry inline, still a bound on what one request holds.
    max_body_bytes: int = 32 * 1024 * 1024
    #: Seconds a client's JWT from ``taskfleet token`` lives by default.
    token_ttl_s: int = 86_400
    #: Per client (a token's ``sub``), unless an admin set its own
    #: (``PUT /api/clients/{sub}/limits``): submissions (tasks) per second its bucket
    #: regains; tasks the bucket holds (a job of that many passes at once); tasks it may
    #: have unfinished at once. Far above what one honest user sends.
    client_submits_per_s: float = 1000.0
    client_burst: int = 20_000
    client_max_unfinished: int = 100_000
    #: Seconds ``taskfleet token --ttl`` may ask for at most: 30 days, so a token that
    #: leaks unnoticed stops working within a month even if no one revokes it.
    token_max_ttl_s: int = 30 * 86_400
    #: Seconds of clock difference between processes that JWTs and callback tokens
    #: forgive (``exp``, ``nbf``, ``iat``).
    clock_leeway_s: int = 30
    #: "required": callbacks for every server with an apiKey must be signed with it
    #: (``app.core.signatures``); "optional": the URL token suffices, as in the original
    #: protocol. A server's own ``callbackSignature`` overrides it.
    callback_signature: str = "optional"
    #: Seconds to open a connection to a backend; the answer may take as long as the
    #: attempt's timeout (or the server's own timeoutSeconds, if lower).
    connect_timeout_s: int = 5
    #: Bytes of a backend's answer (sync result, poll status, a whole streamed answer)
    #: read at most; past it the attempt fails, not retried (``app.backends``).
    backend_max_response_bytes: int = MAX_RESPONSE_BYTES
    #: Bytes one event of a streamed answer holds at most.
    backend_max_event_bytes: int = MAX_EVENT_BYTES
    #: Seconds a finished task's hot state stays in Redis (the database keeps it forever).
    hot_state_ttl_s: int = 300
    #: Concurrent greenlets per dispatch worker process.
    worker_concurrency: int = 200
    log_json: bool = False
    #: The ``taskfleet`` loggers' level: at INFO a task that runs once writes one line
    #: (its end); DEBUG adds every other transition.
    log_level: str = "info"
    #: Slots a task of a given type takes on a server (types not listed take 1).
    slot_costs: dict[str, int] = field(default_factory=dict)
    #: Seconds a slot in Redis and a running attempt in the database may disagree before
    #: it counts as slot drift (``taskfleet_slot_drift``) and ``reconcile`` repairs it: a
    #: dispatch between its reservation and its database write is not drift, nor is the
    #: slot kept for a minute after a predict timeout or a cancel (the backend may still
    #: be working; ``maintenance.RECLAIM_AFTER_S``), hence a minute.
    slot_drift_grace_s: int = 60
    #: Seconds an offline server is kept before it is removed from the registry.
    server_removal_grace_s: int = 3600
    #: Where alerts (and their resolutions) are POSTed as JSON; empty: the log only.
    alert_webhook_url: str = ""
    #: Percent of tasks finished in the window that failed or timed out, to alert.
    alert_failure_percent: int = 50
    #: Fewest tasks finished in the window before the failure rate can alert.
    alert_failure_min: int = 20
    #: Seconds over which the failure rate is measured.
    alert_window_s: int = 300
    #: PENDING tasks above which the backlog alerts.
    alert_backlog: int = 1000
    #: Fractions (0..1) of cpu, memory, disk and network in use that alert when a
    #: server reports more in a heartbeat under a minute old.
    alert_cpu: float = 0.8
    alert_memory: float = 0.85
    alert_disk: float = 0.9
    alert_network: float = 0.8
    #: Fair sharing of freed slots between clients (a token's ``sub``), by weight; off:
    #: one global order by priority then age.
    fair_share: bool = True
    #: Distinct requirement profiles (capabilities + group) that may wait at once; a
    #: task that no server can serve and that would add one more is refused with 429.
    max_waiting_profiles: int = 10_000
    #: Seconds of silence after which an open event stream sends a keep-alive comment
    #: (``app.core.events.KEEPALIVE_S``; tests shorten it).
    events_keepalive_s: float = 15.0
    #: Seconds a /metrics answer is reused (scrapes within it share one computation).
    metrics_max_age_s: float = 5.0
    #: When set, /metrics wants ``Authorization: Bearer <metrics_token>``.
    metrics_token: str = field(default="", repr=False)
    #: Days a finished task stays in the database; 0 keeps every task forever.
    retention_days: int = 30

    def __post_init__(self) -> None:
        if not self.public_url:
            object.__setattr__(self, "public_url", f"http://127.0.0.1:{self.port}")
        if self.alert_webhook_url:
            # Called like a backend, so held to a backend URL's rules (no metadata address).
            try:
                check_backend_url(self.alert_webhook_url, "ALERT_WEBHOOK_URL")
            except InvalidInput as exc:
                raise ValueError(f"{exc.message}, got {self.alert_webhook_url!r}") from exc
        for name in ("backend_max_response_bytes", "backend_max_event_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.upper()} must be a positive number of bytes")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        defaults = cls()
        port = _int(env, "PORT", defaults.port)
        return cls(
            database_url=env.get("DATABASE_URL") or defaults.database_url,
            redis_url=env.get("REDIS_URL") or defaults.redis_url,
            jwt_secret_key=env.get("JWT_SECRET_KEY") or _generated_secret(env) or defaults.jwt_secret_key,
            port=port,
            public_url=(env.get("PUBLIC_URL") or f"http://127.0.0.1:{port}").rstrip("/"),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", defaults.max_body_bytes),
            token_ttl_s=_int(env, "TOKEN_TTL_S", defaults.token_ttl_s),
            token_max_ttl_s=_int(env, "TOKEN_MAX_TTL_S", defaults.token_max_ttl_s),
            clock_leeway_s=_int(env, "CLOCK_LEEWAY_S", defaults.clock_leeway_s),
            client_submits_per_s=_rate(env, "CLIENT_SUBMITS_PER_S", defaults.client_submits_per_s),
            client_burst=_positive(env, "CLIENT_BURST", defaults.client_burst),
            client_max_unfinished=_positive(env, "CLIENT_MAX_UNFINISHED", defaults.client_max_unfinished),
            callback_signature=_choice(
                env, "CALLBACK_SIGNATURE", defaults.callback_signature, signatures.MODES
            ),
            connect_timeout_s=_int(env, "CONNECT_TIMEOUT_S", defaults.connect_timeout_s),
            backend_max_response_bytes=_int(
                env, "BACKEND_MAX_RESPONSE_BYTES", defaults.backend_max_response_bytes
            ),
            backend_max_event_bytes=_int(env, "BACKEND_MAX_EVENT_BYTES", defaults.backend_max_event_bytes),
            hot_state_ttl_s=_int(env, "HOT_STATE_TTL_S", defaults.hot_state_ttl_s),
            worker_concurrency=_int(env, "WORKER_CONCURRENCY", defaults.worker_concurrency),
            log_json=env.get("LOG_JSON", "").lower() in ("1", "true", "yes"),
            log_level=_choice(env, "LOG_LEVEL", defaults.log_level, LOG_LEVELS),
            slot_costs=_costs(env.get("SLOT_COSTS", "")),
            slot_drift_grace_s=_int(env, "SLOT_DRIFT_GRACE_S", defaults.slot_drift_grace_s),
            server_removal_grace_s=_int(env, "SERVER_REMOVAL_GRACE_S", defaults.server_removal_grace_s),
            alert_webhook_url=env.get("ALERT_WEBHOOK_URL", ""),
            alert_failure_percent=_int(env, "ALERT_FAILURE_PERCENT", defaults.alert_failure_percent),
            alert_failure_min=_int(env, "ALERT_FAILURE_MIN", defaults.alert_failure_min),
            alert_window_s=_int(env, "ALERT_WINDOW_S", defaults.alert_window_s),
            alert_backlog=_int(env, "ALERT_BACKLOG", defaults.alert_backlog),
            alert_cpu=_fraction(env, "ALERT_CPU", defaults.alert_cpu),
            alert_memory=_fraction(env, "ALERT_MEMORY", defaults.alert_memory),
            alert_disk=_fraction(env, "ALERT_DISK", defaults.alert_disk),
            alert_network=_fraction(env, "ALERT_NETWORK", defaults.alert_network),
            fair_share=env.get("FAIR_SHARE", "on").strip().lower() not in ("off", "0", "false", "no"),
            max_waiting_profiles=_int(env, "MAX_WAITING_PROFILES", defaults.max_waiting_profiles),
            events_keepalive_s=_seconds(env, "EVENTS_KEEPALIVE_S", defaults.events_keepalive_s),
            metrics_max_age_s=_seconds(env, "METRICS_MAX_AGE_S", defaults.metrics_max_age_s),
            metrics_token=env.get("METRICS_TOKEN", ""),
            retention_days=_non_negative(env, "RETENTION_DAYS", defaults.retention_days),
        )

    def slot_cost(self, task_type: str) -> int:
        return self.slot_costs.get(task_type, 1)

    def require_secret(self) -> None:
        """Refuse to serve or sign anything without a real JWT secret."""
        if len(self.jwt_secret_key) < 32:
            raise RuntimeError(
                "JWT_SECRET_KEY must be set to at least 32 characters "
                "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )

    @property
    def callback_secret(self) -> bytes:
        """Key for callback-URL tokens, derived from the JWT secret so one secret suffices."""
        return hmac.new(self.jwt_secret_key.encode(), b"taskfleet-callback", hashlib.sha256).digest()

    def flask_config(self) -> dict[str, object]:
        return {
            "JWT_SECRET_KEY": self.jwt_secret_key,
            "JWT_ALGORITHM": "HS256",
            "JWT_DECODE_ALGORITHMS": ["HS256"],
            "JWT_TOKEN_LOCATION": ["headers"],
            # exp, nbf and iat are checked with this much forgiveness for clock skew.
            "JWT_DECODE_LEEWAY": self.clock_leeway_s,
            "MAX_CONTENT_LENGTH": self.max_body_bytes,
            "JSON_SORT_KEYS": False,
        }

    def celery_config(self) -> dict[str, object]:
        return {
            "broker_url": self.redis_url,
            "task_ignore_result": True,
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "worker_prefetch_multiplier": 4,
            "broker_connection_retry_on_startup": True,
            # Every greenlet acks through the broker pool: size it for the concurrency, or
            # acks fail with MaxConnectionsError under load.
            "broker_transport_options": {
                "visibility_timeout": 3600,
                "max_connections": self.worker_concurrency + 50,
            },
            "broker_pool_limit": self.worker_concurrency + 50,
            "task_serializer": "json",
            "accept_content": ["json"],
            "worker_hijack_root_logger": False,
        }
