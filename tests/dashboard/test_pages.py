"""The dashboard's pages and files as the API process serves them: no data in them, no
request to another host, every file shipped in the package."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import fakeredis
import pytest

from app import create_app
from app.dashboard import CONTENT_SECURITY_POLICY
from app.services.context import build_context
from app.store.db import Database
from tests.conftest import ROOT, RecordingQueue, make_settings

DASHBOARD = ROOT / "app" / "dashboard"
PAGES = [
    "/dashboard",
    "/dashboard/fleet",
    "/dashboard/tasks",
    "/dashboard/tasks/abc",
    "/dashboard/stats",
]
#: The one absolute URL the files may hold: the SVG namespace, a name that is never fetched.
SVG_NAMESPACE = "http://www.w3.org/2000/svg"


@pytest.fixture(scope="module")
def pages():
    context = build_context(
        make_settings("sqlite://"),
        RecordingQueue(),
        redis_client=fakeredis.FakeRedis(decode_responses=True),
        db=Database("sqlite://"),
    )
    return create_app(context=context).test_client()


def shipped_files() -> list[Path]:
    return sorted(
        p for p in DASHBOARD.rglob("*") if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts
    )


@pytest.mark.parametrize("path", PAGES)
def test_each_page_is_served_without_a_token_and_locked_to_its_own_origin(pages, path):
    response = pages.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    html = response.get_data(as_text=True)
    assert "<script>" not in html and " style=" not in html  # nothing inline: the CSP forbids it
    for asset in re.findall(r'(?:src|href)="(/dashboard/static/[^"]+)"', html):
        served = pages.get(asset)
        assert served.status_code == 200, asset


def test_the_dashboard_with_a_slash_is_the_dashboard(pages):
    response = pages.get("/dashboard/")
    assert response.status_code == 302 and response.headers["Location"] == "/dashboard"


def test_the_scripts_and_styles_are_served_with_their_types(pages):
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for path in shipped_files():
        if path.suffix in types:
            relative = path.relative_to(DASHBOARD / "static").as_posix()
            assert pages.get(f"/dashboard/static/{relative}").mimetype == types[path.suffix], relative


def test_a_task_id_is_escaped_into_the_page(pages):
    html = pages.get("/dashboard/tasks/%22%3E%3Cb%3Ex").get_data(as_text=True)  # the id '"><b>x'
    assert '"><b>x' not in html and "&#34;&gt;&lt;b&gt;x" in html


def test_no_file_of_the_dashboard_names_another_host():
    for path in shipped_files():
        text = path.read_text()
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.\w+[^\s\"'`)]*", text)) - {SVG_NAMESPACE}
        assert not urls, f"{path.relative_to(ROOT)} refers to {urls}"
        if path.suffix == ".js":
            imports = re.findall(r'^import .* from "([^"]+)";$', text, re.MULTILINE)
            assert all(name.startswith("./") for name in imports), (path.name, imports)


def test_every_file_of_the_dashboard_is_package_data():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    patterns = [p.strip() for p in config["options.package_data"]["app.dashboard"].split(",")]
    for path in shipped_files():
        relative = path.relative_to(DASHBOARD)
        assert any(relative.match(pattern) for pattern in patterns), f"{relative} is not in setup.cfg"


def test_the_dashboard_is_not_part_of_the_api_document(pages):
    paths = pages.get("/openapi.json").get_json()["paths"]
    assert not [path for path in paths if path.startswith("/dashboard")]
