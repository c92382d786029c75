"""Property-based fuzzing of the whole API from its own /openapi.json (schemathesis).

Every operation is called in process (WSGI), on fakeredis+SQLite and on Redis+Postgres,
with an admin JWT and with data generated from its schema, valid and invalid. Every
answer goes through schemathesis' default checks: no 5xx, a documented status code,
content type and headers, a body that matches the documented schema, invalid input
refused, valid input accepted, authentication enforced, a correct 405 for other methods.

Strings are any Unicode text (schemathesis' utf-8 codec: every code point that can be
encoded, NUL included). Lone UTF-16 surrogates cannot be encoded, so schemathesis never
draws one; a hook puts one (or a NUL) into a string or key of about half the JSON
bodies, where it must be a 4xx whatever the rest of the body (``app.core.text``).

A server and a few tasks (one of them running on that server) are registered first, and
path parameters (and the callback's token) are sometimes drawn from them, so that reads
and writes reach real records and not only 404s. Seeded and derandomized: a run is
repeatable; a failure prints a curl command that reproduces it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig

from app import create_app
from app.core.text import unstorable_fields
from app.services.context import Context, build_context
from app.store.db import Database
from tests.conftest import RecordingQueue, make_settings
from tests.services.helpers import start_attempt

#: Generated cases per operation in the fuzzing phase (the examples and coverage phases
#: add their own): enough to reach every field of every schema, few enough for CI.
MAX_EXAMPLES = 30
SEED = 20240601

SERVER = {
    "id": "s1",
    "name": "fuzz target",
    "apiKey": "k-fuzz",
    "maxConcurrent": 50,
    "capabilities": ["echo"],
    "endpoints": {"predict": "http://127.0.0.1:9/predict", "health": "http://127.0.0.1:9/health"},
}
TASKS = (
    {"type": "echo", "capabilities": ["echo"], "async": True},
    {"type": "echo", "payload": {"a": [1, "b"]}},
    {"type": "other", "priority": 9, "region": "eu"},
)


#: The few answers that are right although a default check counts them as failures, by
#: operation, each with its reason. All checks stay on for every operation.
SEMANTIC_422 = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
OPERATIONS = [
    # A readiness probe answers 503 by contract when no worker is alive (none is here);
    # its body is still checked against the documented 503 schema.
    {
        "include-path": "/api/ready",
        "checks": {"not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503"]}},
    },
    # Schema-valid requests that break a rule JSON Schema cannot state are a 422: an
    # opaque page cursor the API never issued, a backend URL on a link-local or metadata
    # address, a statistics range whose start is not before its end, two job items with
    # one key, a concurrency limit with both or neither of maxConcurrent and dynamic or an
    # initial above its max, a limit type longer than a task type.
    {
        "include-path": "/api/jobs",
        "checks": {"positive_data_acceptance": {"expected-statuses": SEMANTIC_422}},
    },
    {
        "include-path": "/api/tasks",
        "checks": {"positive_data_acceptance": {"expected-statuses": SEMANTIC_422}},
    },
    {
        "include-path": "/api/jobs",
        "include-method": "GET",
        "checks": {"positive_data_acceptance": {"expected-statuses": SEMANTIC_422}},
    },
    # ... and a task's dependsOn naming tasks that do not exist.
    {
        "include-path": "/api/task",
        "include-method": "POST",
        "checks": {"positive_data_acceptance": {"expected-statuses": SEMANTIC_422}},
    },
    # ... and a NUL in free-form JSON (a callback's result, chunk or metadata, keys too),
    # which JSON Schema allows and no store holds (app.core.text).
    {
        "include-path": "/api/task/{task_id}",
        "include-method": "PUT",
        "checks": {"positive_data_acceptance": {"expected-statuses": SEMANTIC_422}},
    },
    {
        "include-path": "/api/servers",
        "include-method": "POST",
        "checks": {"positive_data_acceptance": {"expected-statuses": SEMANTIC_422}},
    },
    {
        "include-path": "/api/stats",
        "checks": {"positive_data_acceptance": {"expected-statuses": SEMANTIC_422}},
    },
    {
        "include-path-regex": "^/api/limits/",
        "checks": {"positive_data_acceptance": {"expected-statuses": SEMANTIC_422}},
    },
    # ... and a revocation with neither jti nor sub, fields that do not go together, or
    # a time before 1970.
    {
        "include-path": "/api/tokens/revoke",
        "checks": {"positive_data_acceptance": {"expected-statuses": SEMANTIC_422}},
    },
]


def _schema() -> Any:
    """The schema as the app serves it at /openapi.json. The spec depends on the code
    only, so an app on throwaway stores serves it at collection time, and each test calls
    its own app from the ``app`` fixture (``call_and_validate(app=...)``).
    (``schemathesis.pytest.from_fixture`` would load it from that fixture instead, but
    fails on pytest 9.2, which no longer has the ``Node._nodeid`` it sets.)"""
    context = build_context(
        make_settings("sqlite://"),
        RecordingQueue(),
        redis_client=fakeredis.FakeRedis(decode_responses=True),
        db=Database("sqlite://"),
    )
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            # The admin JWT is sent on every call (see the test), not generated or mutated.
            # Any encodable text, NUL included (the defaults, said out loud).
            "generation": {
                "deterministic": True,
                "with-security-parameters": False,
                "codec": "utf-8",
                "allow-x00": True,
            },
            "operations": OPERATIONS,
        }
    )
    return schemathesis.openapi.from_wsgi("/openapi.json", create_app(context=context), config=config)


schema = _schema()
#: Ids of the records that ``records`` registers for the current test, and the token of
#: the running task's callback (module state, since the hooks below are the schema's).
real: dict[str, list[str]] = {}


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> st.SearchStrategy:
    """The generated ids, or sometimes the id of a registered record. A task's event
    stream is fuzzed with generated ids only (404s): on a registered task it stays open
    until the task ends, which none does here (tests/api/test_events_api.py covers it)."""
    choices = [st.just(path_parameters)]
    if context.operation.label == "GET /api/task/{task_id}/events":
        return st.just(path_parameters)
    for name, value in (path_parameters or {}).items():
        if isinstance(value, str) and real.get(name):
            choices.append(st.sampled_from(real[name]).map(lambda v, n=name: {**path_parameters, n: v}))
    return st.one_of(choices)


#: What schemathesis cannot draw, put in by ``flatmap_case``: lone surrogates, and NUL.
UNSTORABLE = st.one_of(st.characters(categories=["Cs"]), st.just("\x00"))


def _text_slots(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, bool]]:
    """Where a body holds text: (path, is_key) for every string value and object key."""
    if isinstance(value, str):
        yield path, False
    elif isinstance(value, dict):
        for key, child in value.items():
            yield (*path, key), True
            yield from _text_slots(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _text_slots(child, (*path, index))


def _with_char(body: Any, slot: tuple[tuple, bool], char: str) -> Any:
    """A copy of ``body`` with ``char`` appended to the string (or key) at ``slot``."""
    (*parents, last), is_key = slot
    body = copy.deepcopy(body)
    container = body
    for step in parents:
        container = container[step]
    if is_key:
        container[last + char] = container.pop(last)
    else:
        container[last] += char
    return body


#: Cases drawn with such a body: id -> (the case, the body to send). The case itself is
#: left as schemathesis made it: it re-validates an edited body with a JSON Schema
#: validator that cannot encode a lone surrogate.
unstorable: dict[int, tuple[Any, Any]] = {}


def _unstorable_body(case: Any) -> st.SearchStrategy:
    """The case as drawn, or with a lone surrogate or NUL in one of its body's strings."""
    slots = list(_text_slots(case.body)) if isinstance(case.body, dict | list) else []
    if not slots:
        return st.just(case)

    def inject(slot: tuple[tuple, bool], char: str) -> Any:
        unstorable[id(case)] = (case, _with_char(case.body, slot, char))
        return case

    return st.one_of(st.just(case), st.builds(inject, st.sampled_from(slots), UNSTORABLE))


@schema.hook
def flatmap_case(context: Any, case: Any) -> st.SearchStrategy:
    """For the backends' callback, sometimes the running task with its valid token, so
    that generated updates reach the task and not only the token check; for any body,
    sometimes a lone surrogate or NUL in it."""
    if context.operation.label != "PUT /api/task/{task_id}" or not real:
        return _unstorable_body(case)

    def running(use: bool) -> Any:
        if use:
            case.path_parameters = {**case.path_parameters, "task_id": real["running"][0]}
            case.query = {**(case.query or {}), "token": real["token"][0]}
        return case

    return st.booleans().map(running).flatmap(_unstorable_body)


@pytest.fixture
def records(client: Any, ctx: Context, auth: Callable[..., dict[str, str]]) -> Iterator[None]:
    admin = auth("root", ("admin",))
    assert client.post("/api/servers", json=SERVER, headers=admin).status_code == 201
    task_ids = []
    for body in TASKS:
        response = client.post("/api/task", json=body, headers=admin)
        assert response.status_code == 201, response.get_json()
        task_ids.append(response.get_json()["id"])
    start_attempt(ctx, task_ids[0])  # running on s1 as attempt 1: its callbacks count
    real.update(
        task_id=task_ids,
        server_id=[SERVER["id"]],
        running=task_ids[:1],
        token=[ctx.tokens.issue(task_ids[0], 1)],
    )
    yield
    real.clear()
    unstorable.clear()


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    # The app and its records are made once per operation, not per example (on purpose:
    # state builds up); generation speed depends on the machine, not on the API.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_operation_answers_within_its_schema(
    case: Any, app: Any, records: None, auth: Callable[..., dict[str, str]]
) -> None:
    headers = auth("root", ("admin",))
    drawn, body = unstorable.pop(id(case), (None, None))
    if drawn is not case:
        case.call_and_validate(app=app, headers=headers)
        return
    # Text no store can hold: a 4xx error answer, however valid the rest of the body.
    assert unstorable_fields({"body": body})
    response = app.test_client().open(
        case.formatted_path,
        method=case.method,
        query_string=case.query or {},
        data=json.dumps(body),  # a lone surrogate as its escape, "\ud800"
        headers={**(case.headers or {}), **headers, "Content-Type": "application/json"},
    )
    assert 400 <= response.status_code < 500, (
        case.method,
        case.formatted_path,
        response.get_data(as_text=True),
    )
    assert set(response.get_json()) == {"error", "message", "details"}
