"""The operators' dashboard at ``/dashboard``: server-rendered page shells plus small
static scripts that read the API with the bearer token pasted at sign-in.

The pages hold no data and need no login to load: the scripts fetch everything from
``/api`` with ``Authorization: Bearer <token>``, the token kept in the browser tab's
``sessionStorage`` only, so the API's roles apply unchanged (a client sees its own
tasks; fleet and statistics are for admins). No build step, no third-party files and
no request to any other host: the Content-Security-Policy below lets a page load and
connect to its own origin only.
"""

from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template, request, url_for

bp = Blueprint(
    "dashboard",
    __name__,
    url_prefix="/dashboard",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

#: How often the pages poll the API, in milliseconds: fresh enough to watch a task
#: move, cheap enough for a tab left open (a handful of small reads per poll).
POLL_INTERVAL_MS = 3000

#: Same origin only, no inline script or style, not framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

#: The pages, in the navigation's order: (endpoint, label, admins only).
NAVIGATION = (
    ("dashboard.fleet", "Fleet", True),
    ("dashboard.tasks", "Tasks", False),
    ("dashboard.stats", "Stats", True),
)


def _page(template: str, page: str, **context: object) -> str:
    return render_template(
        f"dashboard/{template}",
        page=page,
        navigation=NAVIGATION,
        api_base=request.script_root + "/api",
        poll_interval_ms=POLL_INTERVAL_MS,
        **context,
    )


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if response.mimetype == "text/html":
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("")
def home() -> str:
    """Signs in, then sends an admin to the fleet and a client to its tasks."""
    return _page("login.html", "login")


@bp.get("/")
def slash() -> Response:
    return redirect(url_for("dashboard.home"))


@bp.get("/fleet")
def fleet() -> str:
    return _page("fleet.html", "fleet")


@bp.get("/tasks")
def tasks() -> str:
    return _page("tasks.html", "tasks")


@bp.get("/tasks/<task_id>")
def task(task_id: str) -> str:
    return _page("task.html", "task", task_id=task_id)


@bp.get("/stats")
def stats() -> str:
    return _page("stats.html", "stats")
