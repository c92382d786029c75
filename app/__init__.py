"""taskfleet: a task dispatcher for fleets of GPU and worker servers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.config import Settings

if TYPE_CHECKING:
    from apiflask import APIFlask

    from app.services.context import Context, DispatchQueue

# Flask, Celery and SQLAlchemy are imported when an app is made, not with the package:
# the CLI's remote commands (``taskfleet tasks ls``) need none of them and start in a
# fraction of the time.


def create_app(
    settings: Settings | None = None,
    context: Context | None = None,
    queue: DispatchQueue | None = None,
) -> APIFlask:
    """The Flask app. ``context`` (or ``queue``) may be given by tests; otherwise they
    are built from ``settings`` with Celery as the dispatch queue."""
    from apiflask import APIFlask

    from app.api import (
        balancer,
        clients,
        docs_assets,
        events,
        jobs,
        limits,
        metrics,
        probes,
        servers,
        stats,
        tasks,
        tokens,
    )
    from app.api.auth import init_jwt
    from app.api.errors import register_error_handlers
    from app.api.schemas import ErrorOut
    from app.dashboard import bp as dashboard
    from app.extensions import CONTEXT, CeleryQueue, celery_init_app
    from app.logs import configure_logging
    from app.services.context import build_context
    from app.services.handoff import HandOffQueue

    settings = settings or (context.settings if context else Settings.from_env())
    settings.require_secret()
    configure_logging(settings.log_json, settings.log_level.upper())
    app = APIFlask("taskfleet", title="taskfleet", version="0.1.0", docs_path="/docs")
    app.config.update(settings.flask_config())
    app.config["SPEC_FORMAT"] = "json"
    app.config.update(docs_assets.docs_config())
    app.config["VALIDATION_ERROR_STATUS_CODE"] = 422
    app.config["HTTP_ERROR_SCHEMA"] = ErrorOut
    app.config["VALIDATION_ERROR_SCHEMA"] = ErrorOut
    app.security_schemes = {"BearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
    celery = celery_init_app(app, settings)
    if context is None:
        context = build_context(settings, HandOffQueue(queue or CeleryQueue(celery)))
    app.extensions[CONTEXT] = context
    init_jwt(app)
    register_error_handlers(app)
    blueprints = (
        tasks.bp,
        events.bp,
        jobs.bp,
        servers.bp,
        balancer.bp,
        limits.bp,
        clients.bp,
        stats.bp,
        probes.bp,
        metrics.bp,
        tokens.bp,
    )
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    app.register_blueprint(dashboard)
    app.register_blueprint(docs_assets.bp)  # the files /docs loads (no CDN)
    return app
