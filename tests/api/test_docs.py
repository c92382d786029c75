"""``/docs`` works offline (every file it loads comes from the app), and
``/openapi.json`` is a valid OpenAPI document."""

from __future__ import annotations

import re

import pytest
from openapi_spec_validator import validate

from app import create_app
from tests.conftest import make_settings

#: What each kind of file must be served as (Python before 3.12 and some mime.types
#: files still name JavaScript application/javascript).
CONTENT_TYPES = {
    ".css": {"text/css"},
    ".js": {"text/javascript", "application/javascript"},
    ".png": {"image/png"},
}


@pytest.fixture(scope="module")
def client():  # type: ignore[no-untyped-def]
    return create_app(make_settings("sqlite://")).test_client()


@pytest.fixture(scope="module")
def docs_html(client) -> str:  # type: ignore[no-untyped-def]
    response = client.get("/docs")
    assert response.status_code == 200
    return response.get_data(as_text=True)


#: A ``src`` or ``href`` attribute, or a CSS ``url()``.
REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\(\s*["']?([^"')]+)""")


def referenced(html: str) -> list[str]:
    """Every URL the page loads."""
    return [attribute or css for attribute, css in REFERENCE.findall(html)]


def test_the_docs_page_loads_nothing_from_outside_the_app(docs_html):
    urls = referenced(docs_html)
    assert len(urls) >= 4  # the stylesheet, the icon, the two scripts
    assert all(url.startswith("/") and not url.startswith("//") for url in urls), urls
    # Nor anywhere else on the page (the template's JavaScript comments name a web page
    # for readers; comments load nothing).
    code = re.sub(r"^\s*//.*$", "", docs_html, flags=re.MULTILINE)
    assert not re.findall(r"https?://[^\s\"'<>]+", code)


def test_every_file_the_docs_page_loads_is_served_with_its_content_type(client, docs_html):
    for url in referenced(docs_html):
        response = client.get(url)
        assert response.status_code == 200, url
        kind = response.mimetype
        assert kind in CONTENT_TYPES[url[url.rindex(".") :]], (url, kind)
        assert len(response.data) > 100, url
        response.close()


def test_the_docs_page_loads_swagger_ui_itself(client, docs_html):
    bundle = client.get("/docs/assets/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in bundle.get_data(as_text=True)
    bundle.close()
    assert "/docs/assets/swagger-ui-bundle.js" in docs_html


def test_the_swagger_ui_licence_is_served_beside_its_files(client):
    licence = client.get("/docs/assets/LICENSE")
    assert licence.status_code == 200 and b"Apache License" in licence.data
    licence.close()


def test_the_docs_files_are_not_operations_of_the_api(client):
    spec = client.get("/openapi.json").get_json()
    assert not [path for path in spec["paths"] if path.startswith("/docs")]


def test_the_openapi_document_is_valid(client):
    spec = client.get("/openapi.json").get_json()
    validate(spec)  # raises on any error, e.g. a tag declared twice
    names = [tag["name"] for tag in spec["tags"]]
    assert len(names) == len(set(names))
