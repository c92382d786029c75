"""The alert check: each condition announced once when it starts and once when it
resolves, to the log and the webhook, however many beats check it."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.config import Settings
from app.core.clock import ManualClock
from app.devstack import free_port
from app.services import alerts, control, servers
from app.services.context import build_context
from tests.services.helpers import drain, register_backend, submit_task


@pytest.fixture
def webhook():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args):
            pass

        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{port}/hook", received
    server.shutdown()
    server.server_close()


@pytest.fixture
def actx(ctx, webhook):
    url, _ = webhook
    settings = Settings(**{**ctx.settings.__dict__, "alert_webhook_url": url, "alert_failure_min": 4})
    return build_context(settings, ctx.queue, clock=ManualClock(), redis_client=ctx.redis, db=ctx.db)


def test_waiting_tasks_no_healthy_server_offers_alert_once_then_resolve_once(actx, webhook, backend):
    _, received = webhook
    task_id = submit_task(actx, capabilities=("gpu",))
    drain(actx)  # parked: nobody offers "gpu"
    assert alerts.check(actx) == {"started": 1, "resolved": 0, "firing": 1}
    assert alerts.check(actx) == {"started": 0, "resolved": 0, "firing": 1}  # not again
    assert [(r["status"], r["alert"]) for r in received] == [("firing", "no_server:gpu|")]

    _, port = backend
    register_backend(actx, port, "g1", capabilities=("gpu",))
    assert alerts.check(actx)["resolved"] == 1
    assert alerts.check(actx)["resolved"] == 0
    assert [r["status"] for r in received] == ["firing", "resolved"]
    assert received[1]["since"] == received[0]["at"]
    control.cancel(actx, task_id, None)


def test_a_cancelled_waiting_task_does_not_keep_an_alert_alive(actx):
    task_id = submit_task(actx, capabilities=("gpu",))
    drain(actx)
    control.cancel(actx, task_id, None)  # its waiting-line entry stays until taken
    assert alerts.check(actx)["firing"] == 0


def test_failure_rate_fires_once_and_two_concurrent_checks_announce_it_once(actx, webhook, backend):
    _, received = webhook
    _, port = backend
    register_backend(actx, port, max_concurrent=50)
    for _ in range(4):
        submit_task(actx, {"fail": 400})
    drain(actx)
    results: list[dict] = []
    threads = [threading.Thread(target=lambda: results.append(alerts.check(actx))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r["started"] for r in results) == 1
    assert [(r["status"], r["alert"]) for r in received] == [("firing", "failure_rate")]
    actx.clock.advance(actx.settings.alert_window_s + 1)  # the failures leave the window
    assert alerts.check(actx)["resolved"] == 1


def test_a_reported_resource_above_its_threshold_fires_once_and_resolves_once(actx, webhook, backend):
    _, received = webhook
    _, port = backend
    register_backend(actx, port, "s1")
    register_backend(actx, port, "s2")
    servers.heartbeat(actx, "s1", {"cpu": 0.95, "memory": 0.85, "disk": 0.91, "network": 0.2})
    servers.heartbeat(actx, "s2", {"cpu": 0.8, "gpu_utilization": 1.0})  # at the threshold: fine
    assert alerts.check(actx) == {"started": 2, "resolved": 0, "firing": 2}
    assert alerts.check(actx) == {"started": 0, "resolved": 0, "firing": 2}
    assert sorted((r["status"], r["alert"]) for r in received) == [
        ("firing", "resource:s1:cpu"),
        ("firing", "resource:s1:disk"),
    ]
    assert "server s1 reports cpu at 95% (threshold 80%)" in {r["message"] for r in received}

    servers.heartbeat(actx, "s1", {"cpu": 0.5, "disk": 0.95})  # cpu fine again; disk still full
    assert alerts.check(actx) == {"started": 0, "resolved": 1, "firing": 1}
    assert alerts.check(actx)["resolved"] == 0
    assert received[-1]["status"] == "resolved" and received[-1]["alert"] == "resource:s1:cpu"
    actx.clock.advance(61)  # no heartbeat for a minute: its figures no longer count
    assert alerts.check(actx) == {"started": 0, "resolved": 1, "firing": 0}
    assert [r["status"] for r in received] == ["firing", "firing", "resolved", "resolved"]


def test_resource_thresholds_come_from_the_settings(ctx, backend):
    _, port = backend
    settings = Settings(**{**ctx.settings.__dict__, "alert_network": 0.5})
    actx = build_context(settings, ctx.queue, clock=ManualClock(), redis_client=ctx.redis, db=ctx.db)
    register_backend(actx, port)
    servers.heartbeat(actx, "s1", {"network": 0.6})
    assert set(ctx.alerts.all()) == set()
    assert alerts.check(actx)["started"] == 1 and set(actx.alerts.all()) == {"resource:s1:network"}


def test_an_unreachable_webhook_is_logged_and_does_not_break_the_check(ctx, caplog):
    settings = Settings(**{**ctx.settings.__dict__, "alert_webhook_url": f"http://127.0.0.1:{free_port()}/x"})
    actx = build_context(settings, ctx.queue, redis_client=ctx.redis, db=ctx.db)
    submit_task(actx, capabilities=("gpu",))
    drain(actx)
    assert alerts.check(actx)["started"] == 1
    assert "alert webhook did not accept" in caplog.text


def test_an_alert_cannot_write_lines_of_its_own_into_a_plain_text_log(actx, webhook):
    """A capability is any client's text; the no-server alert quotes it. In the plain log
    its newline is written as \\n: one record, one line, nothing forged."""
    import io
    import logging

    from app.logs import PlainFormatter

    forged = "gpu\n2026-11-29 08:00:00,000 WARNING taskfleet.api all is well\x1b[2K"
    submit_task(actx, capabilities=(forged,))
    drain(actx)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(PlainFormatter())
    logger = logging.getLogger("taskfleet.alerts")
    logger.addHandler(handler)
    try:
        assert alerts.check(actx)["started"] == 1
    finally:
        logger.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert "gpu\\n2026-11-29 08:00:00,000 WARNING taskfleet.api all is well\\x1b[2K" in lines[0]
    _, received = webhook
    assert received[0]["message"].count("\n") == 1  # the webhook's JSON keeps the text as it is
