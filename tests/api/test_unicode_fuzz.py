"""Arbitrary Unicode in every string field a client or admin sends (surrogates, NUL,
controls, unassigned code points, in values and in keys): never a 500, and a 4xx writes
no row. Hypothesis, bounded; on fakeredis+SQLite and on Redis+Postgres (``ctx``)."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.store.models import Base

#: Examples per endpoint and store pair: enough to reach every field with each kind of
#: odd character, a few seconds in all.
MAX_EXAMPLES = 60

#: Any code point (surrogates included), and text with one of the characters that
#: break stores and logs put in on purpose, as often as ordinary text: a lone
#: surrogate, NUL, line breaks, a right-to-left override, a noncharacter.
ODD = st.one_of(
    st.characters(categories=["Cs"]),
    st.sampled_from(["\x00", "\n", "\r", "\u2028", "\u202e", "\ufffe", "\U0010ffff"]),
)
ANY = st.text(st.characters(exclude_categories=()), max_size=8)
TEXT = st.one_of(ANY, st.builds(lambda a, odd, b: a + odd + b, ANY, ODD, ANY))
NAME = TEXT.filter(bool)
#: Header values: what a WSGI server can hand over (bytes read as Latin-1).
HEADER = st.text(st.characters(max_codepoint=0xFF, exclude_characters="\r\n"), min_size=1, max_size=20)
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)


def maybe(strategy, ordinary):
    """A field that is usually ordinary, sometimes arbitrary."""
    return st.one_of(st.just(ordinary), strategy)


TASK = st.fixed_dictionaries(
    {"type": maybe(NAME, "echo")},
    optional={
        "payload": JSON_VALUE,
        "metadata": st.dictionaries(TEXT, JSON_VALUE, max_size=3),
        "capabilities": st.lists(maybe(NAME, "echo"), max_size=3),
        "group": maybe(NAME, "g1"),
        "region": maybe(NAME, "eu"),
        "dependsOn": st.lists(NAME, max_size=2),
        "mode": maybe(NAME, "sync"),
    },
)
JOB = st.one_of(
    st.fixed_dictionaries(
        {
            "tasks": st.lists(
                st.fixed_dictionaries({"type": maybe(NAME, "echo")}, optional={"key": NAME}),
                min_size=1,
                max_size=3,
            )
        },
        optional={"name": NAME},
    ),
    st.fixed_dictionaries(
        {
            "template": st.fixed_dictionaries({"type": maybe(NAME, "echo")}),
            "items": st.lists(JSON_VALUE, min_size=1, max_size=3),
        },
        optional={"name": NAME},
    ),
)
URL = st.one_of(
    st.just("http://127.0.0.1:9/p"),
    st.builds(lambda host: f"http://{host}:9/p", NAME),
    st.builds(lambda path: f"http://127.0.0.1:9/{path}", TEXT),
    NAME,
)
SERVER = st.fixed_dictionaries(
    {
        "name": maybe(NAME, "n"),
        "endpoints": st.fixed_dictionaries(
            {"predict": URL, "health": URL}, optional={"cancel": URL, "status": URL}
        ),
    },
    optional={
        "id": NAME,
        "apiKey": NAME,
        "capabilities": st.lists(maybe(NAME, "echo"), max_size=3),
        "groups": st.lists(NAME, max_size=2),
        "region": NAME,
    },
)
LIMIT = st.tuples(
    maybe(NAME, "echo"), st.fixed_dictionaries({"maxConcurrent": st.integers(1, 5)}, optional={})
)
#: Any extra top-level key, arbitrary too.
EXTRA = st.dictionaries(NAME, JSON_VALUE, max_size=1)


def rows(ctx) -> dict[str, int]:
    with ctx.db.session() as session:
        return {
            t.name: session.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables
        }


def send(client, method, path, body, headers):
    # json.dumps writes a lone surrogate as "\ud800", as any JSON encoder would.
    return getattr(client, method)(
        path, data=json.dumps(body), headers={**headers, "Content-Type": "application/json"}
    )


def check(ctx, client, method, path, body, headers):
    before = rows(ctx)
    r = send(client, method, path, body, headers)
    assert r.status_code < 500, (r.status_code, r.get_data(as_text=True))
    if 400 <= r.status_code < 500:
        assert rows(ctx) == before, r.get_json()
        assert set(r.get_json()) == {"error", "message", "details"}
    return r


FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(body=TASK, extra=EXTRA, key=st.none() | HEADER)
def test_any_text_in_a_task_is_an_answer(ctx, client, auth, body, extra, key):
    headers = auth("alice")
    if key is not None:
        headers["Idempotency-Key"] = key
    r = check(ctx, client, "post", "/api/task", {**body, **extra}, headers)
    if r.status_code == 201:  # what was stored reads back
        task_id = r.get_json()["id"]
        assert client.get(f"/api/task/{task_id}", headers=headers).status_code == 200
        assert client.get("/api/tasks", headers=headers).status_code == 200


@FUZZ
@given(body=JOB)
def test_any_text_in_a_job_is_an_answer(ctx, client, auth, body):
    r = check(ctx, client, "post", "/api/jobs", body, auth("alice"))
    if r.status_code == 201:
        assert client.get(f"/api/jobs/{r.get_json()['id']}", headers=auth("alice")).status_code == 200


@FUZZ
@given(body=SERVER, extra=EXTRA)
def test_any_text_in_a_server_registration_is_an_answer(ctx, client, auth, body, extra):
    ctx.backends.resolver = lambda host: ["10.0.0.7"]  # any name resolves: no DNS here
    admin = auth("root", ("admin",))
    r = check(ctx, client, "post", "/api/servers", {**body, **extra}, admin)
    if r.status_code == 201:
        server_id = r.get_json()["id"]
        assert client.get(f"/api/servers/{quote(server_id, safe='')}", headers=admin).status_code == 200


@FUZZ
@given(limit=LIMIT, extra=EXTRA)
def test_any_text_in_a_limit_is_an_answer(ctx, client, auth, limit, extra):
    limit_type, body = limit
    path = f"/api/limits/{quote(limit_type.encode('utf-8', 'surrogatepass'), safe='')}"
    r = check(ctx, client, "put", path, {**body, **extra}, auth("root", ("admin",)))
    assert r.status_code in (200, 201, 404, 422), r.get_json()


@pytest.mark.parametrize("field", ["type", "group", "region"])
def test_the_first_finding_a_lone_surrogate_in_a_task_is_422(ctx, client, auth, field):
    """Issue 17, item 9, as found: fixed before this file was written."""
    body = {"type": "echo", field: "\ud800"}
    r = check(ctx, client, "post", "/api/task", body, auth())
    assert r.status_code == 422
