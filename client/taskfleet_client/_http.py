"""What both clients do around httpx: the API root, the headers, reading an answer."""

from __future__ import annotations

from typing import Any

import httpx

from taskfleet_client._version import __version__
from taskfleet_client.errors import TaskfleetError, TransportError, error_for
from taskfleet_client.retrying import retry_after_s

#: Methods whose request may be sent twice to the same effect (for ``request``).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def api_root(base_url: str) -> str:
    """``http://host:8000`` or ``http://host:8000/api`` -> ``http://host:8000/api/``."""
    root = base_url.strip().rstrip("/")
    if not root.startswith(("http://", "https://")):
        raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
    return (root if root.endswith("/api") else root + "/api") + "/"


def headers(token: str | None, extra: dict[str, str] | None) -> dict[str, str]:
    found = {"Accept": "application/json", "User-Agent": f"taskfleet-client/{__version__}"}
    if token:
        found["Authorization"] = f"Bearer {token}"
    return {**found, **(extra or {})}


def path(value: str) -> str:
    """A path below the API root, without the leading slash httpx would resolve from
    the host."""
    return value.lstrip("/")


def read_answer(response: httpx.Response) -> Any:
    """The JSON of a 2xx answer; the typed error of any other."""
    try:
        body = response.json() if response.content else None
    except ValueError:
        body = None
    if response.is_success:
        if body is None and response.content:
            raise TaskfleetError(f"answer of {response.request.url} is not JSON", status=response.status_code)
        return body
    raise error_for(response.status_code, body, response.text, retry_after_s(response.headers))


def transport_error(request: httpx.Request, exc: httpx.TransportError) -> TaskfleetError:
    never_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
    what = "cannot connect to" if never_sent else "no answer from"
    return TransportError(f"{what} {request.url}: {str(exc) or type(exc).__name__}")
