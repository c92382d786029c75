"""Every error status with its JSON body; auth by JWT roles."""

import base64
import json

import jwt
import pytest

TASK = {"type": "echo", "payload": {"a": 1}}


def assert_error(response, status, code=None):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error", "message", "details"}
    if code:
        assert body["error"] == code
    return body


def test_malformed_json_is_400(client, auth):
    r = client.post("/api/task", data="{not json", headers={**auth(), "Content-Type": "application/json"})
    assert_error(r, 400, "malformed_json")


def test_a_missing_token_is_401(client):
    assert_error(client.post("/api/task", json=TASK), 401, "unauthorized")


def test_a_forged_token_is_401(client):
    forged = jwt.encode({"sub": "alice", "roles": ["admin"]}, "not-the-secret-" * 3, algorithm="HS256")
    r = client.post("/api/task", json=TASK, headers={"Authorization": f"Bearer {forged}"})
    assert_error(r, 401)


def test_an_expired_token_is_401(client, token):
    expired = token(ttl_s=-60)  # beyond CLOCK_LEEWAY_S
    r = client.post("/api/task", json=TASK, headers={"Authorization": f"Bearer {expired}"})
    assert_error(r, 401)


def test_an_alg_none_token_is_401(client):
    def b64(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    claims = {"sub": "alice", "roles": ["admin"], "type": "access", "exp": 4102444800}
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
    r = client.get("/api/servers", headers={"Authorization": f"Bearer {unsigned}"})
    assert_error(r, 401)


def test_the_wrong_role_is_403(client, auth):
    assert_error(client.get("/api/servers", headers=auth(roles=("client",))), 403, "forbidden")
    assert_error(client.post("/api/task", json=TASK, headers=auth(roles=("server",))), 403)


def test_an_unknown_task_is_404_never_pending(client, auth):
    assert_error(client.get("/api/task/does-not-exist", headers=auth()), 404, "not_found")
    assert_error(client.post("/api/task/does-not-exist/cancel", headers=auth()), 404)


def test_another_owners_task_is_404(client, auth):
    task_id = client.post("/api/task", json=TASK, headers=auth("alice")).get_json()["id"]
    assert_error(client.get(f"/api/task/{task_id}", headers=auth("bob")), 404)
    assert_error(client.post(f"/api/task/{task_id}/cancel", headers=auth("bob")), 404)
    assert client.get(f"/api/task/{task_id}", headers=auth("root", ("admin",))).status_code == 200


def test_an_illegal_transition_is_409(client, auth):
    task_id = client.post("/api/task", json=TASK, headers=auth()).get_json()["id"]
    assert_error(client.post(f"/api/task/{task_id}/retry", headers=auth()), 409, "conflict")
    assert client.post(f"/api/task/{task_id}/cancel", headers=auth()).status_code == 200
    body = assert_error(client.post(f"/api/task/{task_id}/cancel", headers=auth()), 409)
    assert body["details"]["currentStatus"] == "CANCELLED"


def test_an_oversize_body_is_413_and_stores_nothing(client, auth, ctx):
    big = {"type": "echo", "payload": "x" * (ctx.settings.max_body_bytes + 10)}
    assert_error(client.post("/api/task", json=big, headers=auth()), 413, "payload_too_large")
    assert client.get("/api/tasks", headers=auth()).get_json()["items"] == []


def test_a_2_mib_payload_is_under_the_default_limit(client, auth):
    payload = {"blob": "x" * (2 * 1024 * 1024)}
    r = client.post("/api/task", json={"type": "echo", "payload": payload}, headers=auth())
    assert r.status_code == 201, r.get_json()
    task_id = r.get_json()["id"]
    assert client.get(f"/api/task/{task_id}", headers=auth()).get_json()["payload"] == payload


def test_a_body_that_is_not_json_is_415(client, auth):
    r = client.post("/api/task", data="type=echo", headers={**auth(), "Content-Type": "text/plain"})
    assert_error(r, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "text/plain; charset=utf-8", "application/octet-stream", None],
)
def test_a_json_object_body_is_accepted_whatever_its_content_type(client, auth, content_type):
    """curl -d '{...}' without -H 'Content-Type: application/json' sends form-urlencoded."""
    headers = {**auth(), **({"Content-Type": content_type} if content_type else {})}
    r = client.post("/api/task", data='{"type": "echo", "payload": {"a": 1}}', headers=headers)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["payload"] == {"a": 1}
    invalid = client.post("/api/task", data='{"type": 5}', headers=headers)
    assert_error(invalid, 422, "validation_error")


@pytest.mark.parametrize(
    "body, content_type",
    [
        ("type=echo", "application/x-www-form-urlencoded"),
        ('["type", "echo"]', "application/x-www-form-urlencoded"),
        ('"echo"', "text/plain"),
        ('{"type": "echo"', "text/plain"),
        (b'{"type": "\xff"}', "application/octet-stream"),
        ("[" * 10_000 + "]" * 10_000, "text/plain"),
    ],
)
def test_a_body_that_is_not_a_json_object_keeps_its_415(client, auth, body, content_type):
    r = client.post("/api/task", data=body, headers={**auth(), "Content-Type": content_type})
    assert_error(r, 415, "unsupported_media_type")
    assert client.get("/api/tasks", headers=auth()).get_json()["items"] == []


def test_every_json_endpoint_takes_a_form_typed_json_object(client, auth):
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    admin = {**auth("root", ("admin",)), **form}
    endpoints = {"predict": "http://10.0.0.1/p", "health": "http://10.0.0.1/h"}
    server = json.dumps({"id": "s1", "name": "s1", "endpoints": endpoints})
    assert client.post("/api/servers", data=server, headers=admin).status_code == 201
    maintenance = client.put("/api/servers/s1/maintenance", data='{"enabled": true}', headers=admin)
    assert maintenance.status_code == 200
    algorithm = client.put("/api/loadbalancer/algorithm", data='{"algorithm": "random"}', headers=admin)
    assert algorithm.status_code == 200 and algorithm.get_json()["algorithm"] == "random"


@pytest.mark.parametrize(
    "body",
    [
        {"type": "echo", "bogus": 1},
        {"type": 5},
        {"payload": {}},
        {"type": "echo", "priority": 11},
        {"type": "echo", "priority": "5"},
        {"type": "echo", "timeout": 0},
        {"type": "echo", "maxRetries": -1},
        {"type": "echo", "capabilities": "gpu"},
        {"type": "echo", "mode": "poll-forever"},
        {"type": "echo", "async": True, "mode": "sync"},
        [],
    ],
)
def test_wrong_types_and_unknown_fields_are_422_and_store_nothing(client, auth, body):
    assert_error(client.post("/api/task", json=body, headers=auth()), 422, "validation_error")
    assert client.get("/api/tasks", headers=auth()).get_json()["items"] == []


def test_a_bad_list_cursor_is_422(client, auth):
    assert_error(client.get("/api/tasks?cursor=garbage", headers=auth()), 422)


def test_server_urls_are_checked_and_api_keys_never_returned(client, auth, caplog):
    admin = auth("root", ("admin",))
    server = {
        "id": "g1",
        "name": "gpu",
        "apiKey": "top-secret-key-123",
        "endpoints": {
            "predict": "http://10.1.2.3:8080/predict",
            "health": "http://10.1.2.3:8080/h",
        },
    }
    r = client.post("/api/servers", json=server, headers=admin)
    assert r.status_code == 201
    assert "top-secret-key-123" not in r.get_data(as_text=True)
    assert r.get_json()["hasApiKey"] is True
    listed = client.get("/api/servers", headers=admin)
    assert "top-secret-key-123" not in listed.get_data(as_text=True)
    assert "top-secret-key-123" not in caplog.text
    bad = {
        **server,
        "endpoints": {"predict": "http://169.254.169.254/latest", "health": "http://10.0.0.1/h"},
    }
    assert_error(client.post("/api/servers", json=bad, headers=admin), 422)


def test_authentication_comes_before_validation(client):
    assert_error(client.post("/api/task", json={"bogus": 1}), 401)
    assert_error(client.put("/api/task/some-id", json={"bogus": 1}), 401)
    assert_error(client.put("/api/task/some-id?token=forged", json={"bogus": 1}), 401)


def test_deeply_nested_json_is_400_not_500(client, auth):
    deep = "[" * 100_000 + "]" * 100_000
    r = client.post("/api/task", data=deep, headers={**auth(), "Content-Type": "application/json"})
    assert_error(r, 400, "malformed_json")


@pytest.mark.parametrize(
    "method, path, body, status",
    [
        ("post", "/api/task", {"type": "echo\x00"}, 422),
        ("post", "/api/task", {"type": "echo", "payload": {"a": ["\x00"]}}, 422),
        ("post", "/api/task", {"type": "echo", "payload": {"k\x00": 1}}, 422),
        ("get", "/api/tasks?type=e%00", None, 422),
        ("get", "/api/servers?group=g%00", None, 422),
        ("get", "/api/task/a%00b", None, 404),
        ("post", "/api/task/a%00b/cancel", None, 404),
        ("get", "/api/servers/a%00b", None, 404),
    ],
)
def test_a_nul_character_is_refused_not_a_500(client, auth, method, path, body, status):
    """Postgres stores no NUL in text or JSONB: such input is an answer, not a crash."""
    r = getattr(client, method)(path, json=body, headers=auth("root", ("admin",)))
    assert_error(r, status)
    assert client.get("/api/tasks", headers=auth("root", ("admin",))).get_json()["items"] == []


@pytest.mark.parametrize("cursor", ["WzFlMzAwLCAieCJd", "Wzk5OTk5OTk5OTk5OTk5OTk5OSwgIngiXQ"])
def test_absurd_cursors_are_422(client, auth, cursor):
    assert_error(client.get(f"/api/tasks?cursor={cursor}", headers=auth()), 422)


@pytest.mark.parametrize("roles", [5, {"admin": 1}, "admin", [1]])
def test_a_roles_claim_that_is_not_a_list_of_names_is_401(client, roles):
    from tests.conftest import JWT_SECRET

    signed = jwt.encode(
        {"sub": "x", "roles": roles, "type": "access", "exp": 4102444800}, JWT_SECRET, algorithm="HS256"
    )
    assert_error(client.get("/api/servers", headers={"Authorization": f"Bearer {signed}"}), 401)


def test_database_errors_never_log_statement_parameters(ctx, client, auth, caplog, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from app.store import servers_repo

    def broken(session, *args):
        session.execute(
            __import__("sqlalchemy").text("SELECT * FROM no_such_table WHERE k = :k"),
            {"k": "top-secret-key-123"},
        )

    monkeypatch.setattr(servers_repo, "put", broken)
    server = {
        "id": "g1",
        "name": "gpu",
        "apiKey": "top-secret-key-123",
        "endpoints": {"predict": "http://10.1.2.3/p", "health": "http://10.1.2.3/h"},
    }
    r = client.post("/api/servers", json=server, headers=auth("root", ("admin",)))
    assert r.status_code in (500, 503)
    assert "top-secret-key-123" not in caplog.text and "top-secret-key-123" not in r.get_data(as_text=True)
    assert OperationalError  # the driver error class the store translates
