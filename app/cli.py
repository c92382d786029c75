"""The ``taskfleet`` command: tokens, migrations, the one-machine stack, a demo backend;
and (``app.remote_cli``) submit, tasks, jobs, servers, limits and stats against a running API."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
import requests

from app import remote_cli
from app.config import DEFAULT_VAR_DIR, Settings

ROLE_CHOICE = click.Choice(["admin", "client", "server"])


def mint_token(settings: Settings, subject: str, roles: list[str], ttl_s: int) -> str:
    """An HS256 JWT with ``sub`` and ``roles``, signed with ``JWT_SECRET_KEY``."""
    from flask import Flask
    from flask_jwt_extended import JWTManager, create_access_token

    app = Flask("taskfleet-token")
    app.config.update(settings.flask_config())
    JWTManager(app)
    with app.app_context():
        return create_access_token(
            identity=subject,
            additional_claims={"roles": roles},
            expires_delta=timedelta(seconds=ttl_s),
        )


@click.group()
def main() -> None:
    """taskfleet: dispatch tasks to a fleet of backend servers."""


remote_cli.register(main)


@main.command()
@click.option("--role", "roles", type=ROLE_CHOICE, multiple=True, default=["client"], show_default=True)
@click.option("--sub", "subject", required=True, help="Who the token is for (owner of their tasks).")
@click.option(
    "--ttl",
    "ttl_s",
    type=int,
    default=None,
    help="Seconds until it expires [TOKEN_TTL_S]; at most TOKEN_MAX_TTL_S (30 days by default).",
)
def token(roles: tuple[str, ...], subject: str, ttl_s: int | None) -> None:
    """Print a bearer token (with exp, iat and a jti by which it can be revoked:
    ``taskfleet tokens revoke``)."""
    settings = Settings.from_env()
    try:
        settings.require_secret()
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(mint_token(settings, subject, list(roles), token_lifetime(settings, ttl_s)))


def token_lifetime(settings: Settings, ttl_s: int | None) -> int:
    """``--ttl`` (or TOKEN_TTL_S), refused unless from 1 second to TOKEN_MAX_TTL_S."""
    source = "--ttl" if ttl_s is not None else "TOKEN_TTL_S"
    ttl_s = settings.token_ttl_s if ttl_s is None else ttl_s
    if ttl_s < 1:
        raise click.ClickException(f"{source} must be a positive number of seconds, got {ttl_s}")
    if ttl_s > settings.token_max_ttl_s:
        raise click.ClickException(
            f"{source} {ttl_s} is above the maximum of {settings.token_max_ttl_s} seconds "
            "(TOKEN_MAX_TTL_S); mint a shorter-lived token, or raise TOKEN_MAX_TTL_S"
        )
    return ttl_s


@main.command()
def migrate() -> None:
    """Apply database migrations (the Procfile's release step)."""
    from migrations import upgrade

    settings = Settings.from_env()
    upgrade(settings.database_url)
    click.echo("database is at the latest migration")


@main.command("demo-backend")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=9001, show_default=True)
@click.option("--name", default="demo-1", show_default=True)
@click.option("--delay", "delay_s", type=float, default=0.5, show_default=True)
@click.option("--api-key", default=None, help="Require this bearer key on /predict.")
@click.option("--server-id", default=None, help="The id it is registered under, named in /health.")
def demo_backend(
    host: str, port: int, name: str, delay_s: float, api_key: str | None, server_id: str | None
) -> None:
    """Serve a backend that speaks the seed protocol (sync and callback modes)."""
    from app.demo_backend import run

    click.echo(f"demo backend {name} on http://{host}:{port}/predict")
    run(host, port, name, delay_s, api_key, server_id)


@main.command("demo-model")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=9002, show_default=True)
@click.option("--name", default="model-1", show_default=True)
@click.option("--dataset", type=click.Choice(["iris", "digits"]), default="iris", show_default=True)
@click.option("--api-key", default=None, help="Require this bearer key on /predict.")
def demo_model(host: str, port: int, name: str, dataset: str, api_key: str | None) -> None:
    """Serve a backend that classifies with a scikit-learn model trained at start (sync calls)."""
    from app.demo_model import available, run

    if not available():
        raise click.ClickException("scikit-learn is missing: pip install 'taskfleet[demo]'")
    run(host, port, name, dataset, api_key)


@main.command()
@click.option("--procfile", type=click.Path(exists=True, path_type=Path), default="Procfile")
@click.option("--home", type=click.Path(path_type=Path), default=DEFAULT_VAR_DIR, show_default=True)
@click.option("--demo/--no-demo", default=True, show_default=True, help="Start the demo backends and tasks.")
@click.option("--flower/--no-flower", default=True, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes (each a gevent pool of WORKER_CONCURRENCY); one per core to use them all.",
)
def up(procfile: Path, home: Path, demo: bool, flower: bool, workers: int) -> None:
    """Run api, worker, beat and flower from the Procfile on this machine; Ctrl-C stops all."""
    from app.devstack import (
        Supervisor,
        embedded_redis,
        flower_line,
        masked_url,
        read_procfile,
        stack_env,
        stop_on_sigterm,
        wait_for_port,
    )

    stop_on_sigterm()
    env = stack_env(home)
    entries = read_procfile(procfile)
    log_dir = home.resolve() / "logs"
    supervisor = Supervisor(env=env, cwd=procfile.resolve().parent, log_dir=log_dir)
    try:
        with embedded_redis(supervisor, home) if "REDIS_URL" not in env else _given(env["REDIS_URL"]) as url:
            env["REDIS_URL"] = url
            click.echo(f"redis    {masked_url(url)}")
            click.echo(f"database {env['DATABASE_URL']}")
            supervisor.run("release", entries["release"])
            for name in ("web", "beat") + (("flower",) if flower else ()):
                supervisor.start(name, entries[name])
            for i in range(1, workers + 1):
                node = f" --hostname w{i}@%h" if workers > 1 else ""  # Celery wants distinct names
                supervisor.start("worker" if i == 1 else f"worker-{i}", entries["worker"] + node)
            port = int(env["PORT"])
            wait_for_port(port, 30)
            settings = Settings.from_env(env)
            admin = mint_token(settings, "admin", ["admin", "client"], settings.token_ttl_s)
            if demo:
                _demo(supervisor, settings, admin)
            base = settings.public_url
            click.echo(f"\nAPI      {base}/api   (docs: {base}/docs)")
            if flower:
                click.echo(flower_line(env))
            click.echo(f"Logs     {log_dir}/<process>.log")
            click.echo(f"Admin token:\n{admin}\n\nCtrl-C stops everything.")
            while not (dead := supervisor.dead()):
                time.sleep(1)
            raise click.ClickException(f"{', '.join(dead)} exited; stopping the stack")
    except KeyboardInterrupt:
        click.echo("\nstopping...")
    finally:
        supervisor.stop_all()


class _given:
    def __init__(self, url: str) -> None:
        self.url = url

    def __enter__(self) -> str:
        return self.url

    def __exit__(self, *_exc: Any) -> None:
        return None


def _demo(supervisor: Any, settings: Settings, admin: str) -> None:
    from app.devstack import free_port, wait_for_port

    model = _start_demo_model(supervisor)  # it imports scikit-learn while the echo tasks run
    port = free_port()
    supervisor.start("demo-backend", f"taskfleet demo-backend --port {port} --delay 1.0 --server-id demo-1")
    wait_for_port(port)
    api = f"{settings.public_url}/api"
    headers = {"Authorization": f"Bearer {admin}"}
    server = {
        "id": "demo-1",
        "name": "demo backend",
        "endpoints": {
            "predict": f"http://127.0.0.1:{port}/predict",
            "health": f"http://127.0.0.1:{port}/health",
        },
        "maxConcurrent": 4,
        "capabilities": ["echo"],
    }
    requests.post(f"{api}/servers", json=server, headers=headers, timeout=10).raise_for_status()
    click.echo(f"demo backend registered: demo-1 at 127.0.0.1:{port} (capability 'echo')")
    for mode in ("sync", "callback"):
        task = {
            "type": "echo",
            "payload": {"hello": "fleet"},
            "capabilities": ["echo"],
            "mode": mode,
        }
        created = requests.post(f"{api}/task", json=task, headers=headers, timeout=10)
        created.raise_for_status()
        _watch(api, created.json()["id"], headers, mode)
    if model is not None:
        _demo_model(api, headers, *model)


def _start_demo_model(supervisor: Any) -> tuple[int, Any] | None:
    """Start the backend that does real inference (scikit-learn, the ``demo`` extra), if
    installed: (port, process)."""
    from app.demo_model import available
    from app.devstack import free_port

    if not available():
        click.echo("model backend skipped: scikit-learn is missing (pip install -e '.[demo]')")
        return None
    port = free_port()
    return port, supervisor.start("demo-model", f"taskfleet demo-model --port {port} --name model-1")


def _demo_model(api: str, headers: dict[str, str], port: int, process: Any) -> None:
    """Register the model backend and give it one task: an iris flower to classify."""
    from app.demo_model import IRIS_EXAMPLE
    from app.devstack import wait_for_port

    wait_for_port(port, 120, process=process)  # importing scikit-learn takes seconds
    base = f"http://127.0.0.1:{port}"
    model = requests.get(f"{base}/health", timeout=10).json()["model"]
    server = {
        "id": "model-1",
        "name": "demo model backend",
        "endpoints": {"predict": f"{base}/predict", "health": f"{base}/health"},
        "maxConcurrent": 4,
        "capabilities": ["classify"],
    }
    requests.post(f"{api}/servers", json=server, headers=headers, timeout=10).raise_for_status()
    click.echo(
        f"model backend registered: model-1 at 127.0.0.1:{port} "
        f"(capability 'classify'; {model['description']})"
    )
    task = {"type": "classify", "payload": {"features": IRIS_EXAMPLE}, "capabilities": ["classify"]}
    created = requests.post(f"{api}/task", json=task, headers=headers, timeout=10)
    created.raise_for_status()
    click.echo(f"  classify {IRIS_EXAMPLE} (sepal length, sepal width, petal length, petal width in cm)")
    _watch(api, created.json()["id"], headers, "classify")


def _watch(api: str, task_id: str, headers: dict[str, str], mode: str) -> None:
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        task = requests.get(f"{api}/task/{task_id}", headers=headers, timeout=10).json()
        label = task["status"] + (f" {task['progress']}%" if task["status"] == "PROCESSING" else "")
        if not seen or seen[-1] != label:
            seen.append(label)
            click.echo(f"  {mode} task {task_id[:8]}: {label}")
        if task["status"] in ("COMPLETED", "FAILED", "TIMEOUT", "CANCELLED"):
            click.echo(f"  result: {task['result'] if task['status'] == 'COMPLETED' else task['error']}")
            return
        time.sleep(0.1)
    raise click.ClickException(f"demo task {task_id} did not finish in 60 s")
