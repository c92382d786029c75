"""``/openapi.json`` is a valid OpenAPI document."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate

from app import create_app
from tests.conftest import make_settings


@pytest.fixture(scope="module")
def client():  # type: ignore[no-untyped-def]
    return create_app(make_settings("sqlite://")).test_client()


def test_the_openapi_document_is_valid(client):
    spec = client.get("/openapi.json").get_json()
    validate(spec)  # raises on any error, e.g. a tag declared twice
    names = [tag["name"] for tag in spec["tags"]]
    assert len(names) == len(set(names))
