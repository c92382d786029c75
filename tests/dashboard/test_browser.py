"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) against the
real stack: the Procfile's processes on real Redis and Postgres, and a demo backend.

It signs in through the form, sees the servers and tasks this test made, watches a task
reach COMPLETED without a reload, flips a server's maintenance switch (checked through
the API), sees the hourly chart, the recorded error and a firing alert, retries and
cancels a task with the buttons, and as a client sees its own tasks only. Every request
the pages make goes to the stack's own origin and succeeds. Each page is saved as a
screenshot: to ``$TASKFLEET_SCREENSHOTS`` when set (``make screenshots`` writes
docs/screenshots/), else to the test's temporary folder.

No Chromium (or no playwright package) skips locally and fails in CI (CI=true).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import _unavailable
from tests.test_stack import stack, wait_final  # noqa: F401 - `stack` is a fixture

CHROMIUM = "/usr/bin/chromium"
#: Headless as root, and no background traffic of Chromium's own (updates, sync, safe
#: browsing): the only network here is loopback.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
#: How long the page may take to show what the stack did (it polls every 3 s).
SHOWN_MS = 20_000


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for this module (closed after it)."""
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable("chromium", FileNotFoundError(f"{CHROMIUM} (apt-get install chromium)"))
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _unavailable("playwright", exc)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def screenshots(tmp_path) -> Path:
    folder = Path(os.environ.get("TASKFLEET_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Traffic:
    """Everything a browser context asked for, and what went wrong."""

    def __init__(self, context) -> None:
        self.urls: list[str] = []
        self.failed: list[str] = []
        self.errors: list[str] = []
        context.on("request", lambda r: self.urls.append(r.url))
        context.on("requestfailed", lambda r: self.failed.append(f"{r.url}: {r.failure}"))
        context.on("response", lambda r: r.status >= 400 and self.failed.append(f"{r.url}: {r.status}"))
        context.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        context.on("weberror", lambda e: self.errors.append(str(e.error)))

    def check(self, origin: str) -> None:
        assert self.urls, "no request recorded"
        others = {
            url
            for url in self.urls
            if urlsplit(url)._replace(path="", query="", fragment="").geturl() != origin
        }
        assert not others, f"requests to other origins: {others}"
        assert not self.failed, f"failed requests: {self.failed}"
        assert not self.errors, f"errors on the page: {self.errors}"


def register(api, admin, server_id, port, max_concurrent, capabilities=("echo",)):
    server = {
        "id": server_id,
        "name": server_id.upper(),
        "maxConcurrent": max_concurrent,
        "capabilities": list(capabilities),
        "region": "eu-west",
        "endpoints": {
            "predict": f"http://127.0.0.1:{port}/predict",
            "health": f"http://127.0.0.1:{port}/health",
        },
    }
    assert requests.post(f"{api}/servers", json=server, headers=admin, timeout=10).status_code == 201


def submit(api, headers, payload=None, **fields):
    body = {"type": "echo", "capabilities": ["echo"], "payload": payload, **fields}
    answer = requests.post(f"{api}/task", json=body, headers=headers, timeout=10)
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def sign_in(page, origin, token):
    page.goto(f"{origin}/dashboard")
    page.fill("#token", token)
    page.click("#login button[type=submit]")


def wait_attempts(api, headers, task_id, attempts, timeout_s=30):
    """The task once it is final after ``attempts`` attempts."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        task = requests.get(f"{api}/task/{task_id}", headers=headers, timeout=10).json()
        if task["attempts"] == attempts and task["status"] in ("COMPLETED", "FAILED", "TIMEOUT", "CANCELLED"):
            return task
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} not final after {attempts} attempts: {task}")


def maintenance_via_api(api, admin, server_id):
    return requests.get(f"{api}/servers/{server_id}", headers=admin, timeout=10).json()["metrics"][
        "maintenance"
    ]


@pytest.mark.timeout(300)
def test_the_dashboard_shows_the_stack_live_in_a_real_browser(browser, stack, backend, token, screenshots):  # noqa: F811
    from playwright.sync_api import expect

    api = stack[0]
    origin = api.removesuffix("/api")
    _, port = backend
    admin_token, alice_token = token("root", ("admin",)), token("alice")
    admin = {"Authorization": f"Bearer {admin_token}"}
    alice = {"Authorization": f"Bearer {alice_token}"}
    bob = {"Authorization": f"Bearer {token('bob')}"}
    register(api, admin, "gpu-1", port, 4)
    register(api, admin, "gpu-2", port, 2)
    done = [submit(api, alice, {"prompt": f"hello {i}"}) for i in range(4)]
    failed = submit(api, alice, {"fail": 500}, maxRetries=0)
    bobs = submit(api, bob, {"prompt": "not alice's"})
    submit(api, alice, {"sleep": 25}, type="render")  # in flight while the fleet is shown
    waiting = submit(api, alice, capabilities=["tpu"], type="train")  # no server offers it: an alert
    for task_id in [*done, failed, bobs]:
        wait_final(api, alice if task_id != bobs else bob, task_id)

    context = browser.new_context(viewport=VIEWPORT)
    traffic = Traffic(context)
    page = context.new_page()
    page.goto(f"{origin}/dashboard")
    expect(page.locator("#token")).to_be_visible()
    page.screenshot(path=screenshots / "sign-in.png")
    sign_in(page, origin, admin_token)

    # Fleet: both servers with their metrics; one call in flight.
    page.wait_for_url(f"{origin}/dashboard/fleet")
    for server_id in ("gpu-1", "gpu-2"):
        expect(page.get_by_test_id(f"server-{server_id}")).to_contain_text("online", timeout=SHOWN_MS)
    expect(page.locator("#fleet-summary")).to_contain_text("1 / 6", timeout=SHOWN_MS)

    # The maintenance switch reaches the API, and back.
    switch = page.get_by_test_id("maintenance-gpu-2")
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "true", timeout=SHOWN_MS)
    assert maintenance_via_api(api, admin, "gpu-2") is True
    page.screenshot(path=screenshots / "fleet.png", full_page=True)
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "false", timeout=SHOWN_MS)
    assert maintenance_via_api(api, admin, "gpu-2") is False

    # A task page follows the task to COMPLETED by polling: no reload.
    slow = submit(api, alice, {"sleep": 6})
    page.goto(f"{origin}/dashboard/tasks/{slow}")
    status = page.get_by_test_id("task-status")
    expect(status).to_have_text(re.compile("PENDING|PROCESSING"), timeout=SHOWN_MS)
    page.evaluate("window.notReloaded = true")
    expect(status).to_have_text("COMPLETED", timeout=30_000)
    assert page.evaluate("window.notReloaded") is True
    expect(page.locator("#attempts tbody")).to_contain_text("COMPLETED", timeout=SHOWN_MS)
    expect(page.locator("#transitions tbody tr")).to_have_count(3, timeout=SHOWN_MS)
    expect(page.locator("#result")).to_contain_text('"sleep": 6')
    page.screenshot(path=screenshots / "task.png", full_page=True)

    # Tasks: the admin sees everyone's; the status filter narrows the list.
    page.goto(f"{origin}/dashboard/tasks")
    for task_id in [*done, failed, bobs]:
        expect(page.get_by_test_id(f"task-{task_id}")).to_be_visible(timeout=SHOWN_MS)
    page.screenshot(path=screenshots / "tasks.png", full_page=True)
    page.select_option("#filters select[name=status]", "FAILED")
    page.click("#filters button[type=submit]")
    expect(page.locator("#tasks tbody tr")).to_have_count(1, timeout=SHOWN_MS)
    expect(page.get_by_test_id(f"task-{failed}")).to_be_visible()
    assert "status=FAILED" in page.url

    # Stats: totals, the 24-hour chart, the error, and the alert once beat's check (every
    # 30 s) has seen the waiting task that no server can serve.
    page.goto(f"{origin}/dashboard/stats")
    expect(page.locator("#totals")).to_contain_text("submitted", timeout=SHOWN_MS)
    expect(page.locator("#hourly svg rect.bar-successful")).to_have_count(24)
    expect(page.locator("#errors tbody")).to_contain_text("backend answered HTTP 500", timeout=SHOWN_MS)
    expect(page.get_by_test_id("alert-no_server:tpu|")).to_be_visible(timeout=60_000)
    page.screenshot(path=screenshots / "stats.png", full_page=True)

    # The retry and cancel buttons reach the API.
    page.goto(f"{origin}/dashboard/tasks?status=FAILED")
    page.get_by_test_id(f"task-{failed}").get_by_role("button", name="Retry").click()
    assert wait_attempts(api, alice, failed, 2)["status"] == "FAILED"  # asked to fail again
    page.goto(f"{origin}/dashboard/tasks/{waiting}")
    expect(page.locator("#cancel")).to_be_enabled(timeout=SHOWN_MS)
    page.click("#cancel")
    expect(page.get_by_test_id("task-status")).to_have_text("CANCELLED", timeout=SHOWN_MS)
    assert requests.get(f"{api}/task/{waiting}", headers=alice, timeout=10).json()["status"] == "CANCELLED"
    traffic.check(origin)
    context.close()

    # A client sees its own tasks, and neither the fleet nor the statistics.
    context = browser.new_context(viewport=VIEWPORT)
    traffic = Traffic(context)
    page = context.new_page()
    sign_in(page, origin, alice_token)
    page.wait_for_url(f"{origin}/dashboard/tasks")
    expect(page.get_by_test_id(f"task-{done[0]}")).to_be_visible(timeout=SHOWN_MS)
    expect(page.get_by_test_id(f"task-{bobs}")).to_have_count(0)
    expect(page.get_by_role("link", name="Fleet", exact=True)).to_be_hidden()
    expect(page.locator("#filters input[name=owner]")).to_be_hidden()
    traffic.check(origin)
    context.close()
