"""``/api/limits``: concurrency limits per task type (admin)."""

import pytest

DYNAMIC = {"initial": 10, "max": 50, "step": 5, "upEverySeconds": 60, "downEverySeconds": 180}


@pytest.fixture
def admin(auth):
    return auth("root", ("admin",))


def test_a_static_and_a_dynamic_limit_are_set_read_listed_and_removed(client, admin):
    r = client.put("/api/limits/llm", json={"maxConcurrent": 2}, headers=admin)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["type"] == "llm" and body["maxConcurrent"] == 2 and "dynamic" not in body
    assert (body["current"], body["inFlight"], body["waiting"]) == (2, 0, 0)
    assert body["lastChange"]["from"] is None and body["lastChange"]["to"] == 2
    assert body["lastChange"]["reason"] == "created" and body["lastChange"]["at"]
    r = client.put("/api/limits/*", json={"dynamic": DYNAMIC}, headers=admin)
    assert r.status_code == 200 and r.get_json()["dynamic"] == DYNAMIC and r.get_json()["current"] == 10
    listed = client.get("/api/limits", headers=admin).get_json()["items"]
    assert [item["type"] for item in listed] == ["*", "llm"]
    replaced = client.put("/api/limits/llm", json={"maxConcurrent": 3}, headers=admin).get_json()
    assert replaced["current"] == 3 and replaced["lastChange"]["reason"] == "replaced"
    assert client.get("/api/limits/llm", headers=admin).get_json()["current"] == 3
    assert client.delete("/api/limits/llm", headers=admin).status_code == 204
    assert client.get("/api/limits/llm", headers=admin).status_code == 404
    assert client.delete("/api/limits/llm", headers=admin).status_code == 404
    assert [item["type"] for item in client.get("/api/limits", headers=admin).get_json()["items"]] == ["*"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"maxConcurrent": 0},
        {"maxConcurrent": 2.5},
        {"maxConcurrent": "2"},
        {"maxConcurrent": True},
        {"maxConcurrent": 2, "dynamic": DYNAMIC},
        {"maxConcurrent": 2, "burst": 3},
        {"dynamic": {**DYNAMIC, "initial": 60}},
        {"dynamic": {**DYNAMIC, "step": 0}},
        {"dynamic": {**DYNAMIC, "upEverySeconds": 0}},
        {"dynamic": {**DYNAMIC, "downEverySeconds": 0}},
        {"dynamic": {k: v for k, v in DYNAMIC.items() if k != "max"}},
        {"dynamic": {**DYNAMIC, "extra": 1}},
        {"dynamic": 5},
    ],
)
def test_an_invalid_limit_is_refused_with_details_and_nothing_is_stored(client, admin, body):
    r = client.put("/api/limits/llm", json=body, headers=admin)
    assert r.status_code == 422, r.get_json()
    assert r.get_json()["details"]
    assert client.get("/api/limits/llm", headers=admin).status_code == 404


def test_a_type_longer_than_a_task_type_is_refused(client, admin):
    r = client.put(f"/api/limits/{'x' * 101}", json={"maxConcurrent": 1}, headers=admin)
    assert r.status_code == 422 and "type" in r.get_json()["details"]


def test_only_an_admin_reads_or_sets_limits(client, auth):
    user = auth("alice")
    assert client.get("/api/limits", headers=user).status_code == 403
    assert client.put("/api/limits/llm", json={"maxConcurrent": 1}, headers=user).status_code == 403
    assert client.delete("/api/limits/llm", headers=user).status_code == 403
    assert client.get("/api/limits").status_code == 401


def test_status_and_metrics_show_each_limit(ctx, client, admin, backend):
    from app.core.states import TaskMode
    from tests.api.test_metrics import scrape
    from tests.services.helpers import drain, register_backend, submit_task

    _, port = backend
    register_backend(ctx, port, max_concurrent=10)
    client.put("/api/limits/echo", json={"maxConcurrent": 1}, headers=admin)
    for _ in range(3):
        submit_task(ctx, mode=TaskMode.CALLBACK)
    drain(ctx)
    status = client.get("/api/status", headers=admin).get_json()
    assert status["limits"] == [{"type": "echo", "current": 1, "inFlight": 1, "waiting": 2}]
    samples = scrape(client)
    labels = (("type", "echo"),)
    assert samples[("taskfleet_limit_current", labels)] == 1
    assert samples[("taskfleet_limit_in_flight", labels)] == 1
    assert samples[("taskfleet_limit_waiting", labels)] == 2


@pytest.mark.parametrize("path", ["/api/limits/vision/ocr", "/api/limits/vision%2Focr"])
def test_a_type_with_a_slash_is_addressable_as_is_or_percent_encoded(client, admin, path):
    r = client.put(path, json={"maxConcurrent": 2}, headers=admin)
    assert r.status_code == 200 and r.get_json()["type"] == "vision/ocr", r.get_json()
    assert client.get(path, headers=admin).get_json()["maxConcurrent"] == 2
    listed = client.get("/api/limits", headers=admin).get_json()["items"]
    assert [item["type"] for item in listed] == ["vision/ocr"]
    assert client.delete(path, headers=admin).status_code == 204
