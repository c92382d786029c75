"""``/docs`` in a real browser (Debian's Chromium, driven by Playwright): Swagger UI
renders the operations list from files the app serves itself, with no request to any
other host (most GPU clusters have no internet access)."""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

import pytest
from werkzeug.serving import make_server

from tests.dashboard.test_browser import VIEWPORT, Traffic, browser  # noqa: F401 - fixture


@pytest.fixture
def served(app):
    """The app (on fakeredis+SQLite or Redis+Postgres) on a real HTTP port."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.mark.parametrize("ctx", ["fakeredis+sqlite"], indirect=True)
def test_docs_render_the_operations_list_with_no_request_elsewhere(browser, served):  # noqa: F811
    context = browser.new_context(viewport=VIEWPORT)
    traffic = Traffic(context)
    page = context.new_page()
    page.goto(f"{served}/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=20_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/api/task" in paths and "/api/servers/{server_id}" in paths
    assert len(paths) >= 20
    context.close()
    hosts = {urlsplit(url).netloc for url in traffic.urls if not url.startswith("data:")}
    assert hosts == {urlsplit(served).netloc}, hosts
    assert not traffic.failed and not traffic.errors, (traffic.failed, traffic.errors)
