"""The registry and balancer endpoints."""

import pytest

SERVER = {
    "id": "gpu-1",
    "name": "GPU 1",
    "apiKey": "k-secret-123",
    "maxConcurrent": 4,
    "capabilities": ["llm", "gpu"],
    "groups": ["prod"],
    "region": "eu",
    "endpoints": {"predict": "http://10.0.0.5:8080/predict", "health": "http://10.0.0.5:8080/health"},
}


@pytest.fixture
def admin(auth):
    return auth("root", ("admin",))


def test_register_list_filter_and_read_a_server_with_live_metrics(client, admin):
    assert client.post("/api/servers", json=SERVER, headers=admin).status_code == 201
    other = {**SERVER, "id": "cpu-1", "capabilities": ["cpu"], "groups": []}
    assert client.post("/api/servers", json=other, headers=admin).status_code == 201
    ids = lambda q: [s["id"] for s in client.get(f"/api/servers{q}", headers=admin).get_json()["items"]]  # noqa: E731
    assert ids("") == ["cpu-1", "gpu-1"]
    assert ids("?capability=llm") == ["gpu-1"]
    assert ids("?group=prod") == ["gpu-1"]
    assert ids("?status=online") == ["cpu-1", "gpu-1"]
    assert ids("?status=offline") == []
    detail = client.get("/api/servers/gpu-1", headers=admin).get_json()
    assert detail["metrics"]["inFlight"] == 0 and detail["metrics"]["circuitState"] == "closed"
    assert detail["metrics"]["successRate"] is None and detail["metrics"]["healthScore"] == 100
    assert "k-secret-123" not in str(detail)
    assert client.get("/api/servers/nope", headers=admin).status_code == 404


def test_the_list_carries_each_servers_live_metrics_when_asked(client, admin):
    client.post("/api/servers", json=SERVER, headers=admin)
    client.put("/api/servers/gpu-1/maintenance", json={"enabled": True}, headers=admin)
    plain = client.get("/api/servers", headers=admin).get_json()["items"]
    assert "metrics" not in plain[0]
    [listed] = client.get("/api/servers?metrics=true", headers=admin).get_json()["items"]
    detail = client.get("/api/servers/gpu-1", headers=admin).get_json()
    assert listed == detail and listed["metrics"]["maintenance"] is True
    assert client.get("/api/servers?metrics=false", headers=admin).get_json()["items"] == plain


def test_re_registering_the_same_id_updates_it(client, admin):
    client.post("/api/servers", json=SERVER, headers=admin)
    updated = client.post("/api/servers", json={**SERVER, "maxConcurrent": 9}, headers=admin).get_json()
    assert updated["maxConcurrent"] == 9
    assert len(client.get("/api/servers", headers=admin).get_json()["items"]) == 1


def test_heartbeat_needs_the_server_or_admin_role(client, admin, auth):
    client.post("/api/servers", json=SERVER, headers=admin)
    beat = {"inFlight": 2, "queueDepth": 5}
    assert (
        client.post("/api/servers/gpu-1/heartbeat", json=beat, headers=auth("gpu-1", ("server",))).status_code
        == 200
    )
    assert (
        client.post("/api/servers/gpu-1/heartbeat", json=beat, headers=auth("x", ("client",))).status_code
        == 403
    )
    assert client.post("/api/servers/nope/heartbeat", json={}, headers=admin).status_code == 404
    assert client.post("/api/servers/gpu-1/heartbeat", json={"bogus": 1}, headers=admin).status_code == 422


def test_heartbeat_figures_show_in_the_metrics_and_a_new_heartbeat_replaces_them(client, admin):
    client.post("/api/servers", json=SERVER, headers=admin)
    reported = client.get("/api/servers/gpu-1", headers=admin).get_json()["metrics"]["reported"]
    assert set(reported.values()) == {None}  # nothing reported yet
    beat = {"cpu": 0.5, "memory": 0.25, "disk": 0.9, "network": 0, "gpuUtilization": 1, "gpuMemory": 0.75}
    r = client.post(
        "/api/servers/gpu-1/heartbeat", json={**beat, "inFlight": 3, "queueDepth": 7}, headers=admin
    )
    assert r.status_code == 200
    reported = r.get_json()["metrics"]["reported"]
    assert {k: reported[k] for k in beat} == beat
    assert (reported["inFlight"], reported["queueDepth"]) == (3, 7)
    assert reported["reportedAt"].endswith("Z")
    again = client.post("/api/servers/gpu-1/heartbeat", json={"cpu": 0.1}, headers=admin)
    reported = again.get_json()["metrics"]["reported"]
    assert reported["cpu"] == 0.1 and reported["memory"] is None and reported["inFlight"] is None
    alive = client.post("/api/servers/gpu-1/heartbeat", json={}, headers=admin)  # no figures: kept
    assert alive.get_json()["metrics"]["reported"] == reported


@pytest.mark.parametrize(
    "beat",
    [
        {"cpu": 1.5},
        {"memory": -0.1},
        {"disk": "0.5"},
        {"network": True},
        {"gpuUtilization": "high"},
        {"gpuMemory": [0.5]},
    ],
)
def test_heartbeat_figures_are_fractions_from_0_to_1(client, admin, beat):
    client.post("/api/servers", json=SERVER, headers=admin)
    r = client.post("/api/servers/gpu-1/heartbeat", json=beat, headers=admin)
    assert r.status_code == 422 and r.get_json()["error"] == "validation_error"


def test_maintenance_and_drain(client, admin):
    client.post("/api/servers", json=SERVER, headers=admin)
    on = client.put("/api/servers/gpu-1/maintenance", json={"enabled": True}, headers=admin)
    assert on.status_code == 200 and on.get_json()["metrics"]["maintenance"] is True
    assert client.put("/api/servers/gpu-1/maintenance", json={}, headers=admin).status_code == 422
    gone = client.delete("/api/servers/gpu-1", headers=admin)
    assert gone.status_code == 202 and gone.get_json()["status"] == "draining"
    assert client.delete("/api/servers/nope", headers=admin).status_code == 404


def test_the_algorithm_is_switchable_at_run_time_and_unknown_ones_are_422(client, admin, auth):
    current = client.get("/api/loadbalancer/algorithm", headers=admin).get_json()
    assert current["algorithm"] == "weighted-round-robin" and "p2c-ewma" in current["available"]
    r = client.put("/api/loadbalancer/algorithm", json={"algorithm": "p2c-ewma"}, headers=admin)
    assert r.status_code == 200 and r.get_json()["algorithm"] == "p2c-ewma"
    assert client.get("/api/loadbalancer/algorithm", headers=admin).get_json()["algorithm"] == "p2c-ewma"
    aware = client.put("/api/loadbalancer/algorithm", json={"algorithm": "resource-aware"}, headers=admin)
    assert aware.status_code == 200 and aware.get_json()["algorithm"] == "resource-aware"
    bad = client.put("/api/loadbalancer/algorithm", json={"algorithm": "fastest"}, headers=admin)
    assert bad.status_code == 422 and bad.get_json()["error"] == "validation_error"
    assert client.get("/api/loadbalancer/algorithm", headers=auth()).status_code == 403


@pytest.mark.parametrize(
    "endpoints",
    [
        {"predict": "http://169.254.169.254/x", "health": "http://10.0.0.1/h"},
        {"predict": "http://10.0.0.1/p", "health": "http://metadata.google.internal/h"},
        {"predict": "gopher://10.0.0.1/p", "health": "http://10.0.0.1/h"},
        {**SERVER["endpoints"], "metrics": "http://169.254.169.254/metrics"},
        {**SERVER["endpoints"], "metrics": "ftp://10.0.0.5/metrics"},
        {**SERVER["endpoints"], "metrics": ""},
    ],
)
def test_link_local_metadata_and_odd_urls_are_refused(client, admin, endpoints):
    r = client.post("/api/servers", json={**SERVER, "endpoints": endpoints}, headers=admin)
    assert r.status_code == 422
    assert client.get("/api/servers", headers=admin).get_json()["items"] == []


def test_a_metrics_endpoint_is_stored_and_shown(client, admin):
    endpoints = {**SERVER["endpoints"], "metrics": "http://10.0.0.5:9100/metrics"}
    created = client.post("/api/servers", json={**SERVER, "endpoints": endpoints}, headers=admin)
    assert created.status_code == 201 and created.get_json()["endpoints"] == endpoints
    assert client.get("/api/servers/gpu-1", headers=admin).get_json()["endpoints"] == endpoints
    listed = client.get("/api/servers", headers=admin).get_json()["items"]
    assert listed[0]["endpoints"]["metrics"] == "http://10.0.0.5:9100/metrics"
    again = client.post("/api/servers", json=SERVER, headers=admin).get_json()
    assert "metrics" not in again["endpoints"]  # a registration sets the endpoints it gives


def test_an_unknown_endpoint_name_is_422(client, admin):
    endpoints = {**SERVER["endpoints"], "stats": "http://10.0.0.5:9100/stats"}
    r = client.post("/api/servers", json={**SERVER, "endpoints": endpoints}, headers=admin)
    assert r.status_code == 422 and r.get_json()["error"] == "validation_error"


def test_the_metrics_show_why_the_last_health_check_failed(client, admin, ctx, backend):
    from app.services import fleet_health

    demo, port = backend
    demo.server_id = "someone-else"  # another server answers at this address
    endpoints = {"predict": f"http://127.0.0.1:{port}/predict", "health": f"http://127.0.0.1:{port}/health"}
    client.post("/api/servers", json={**SERVER, "endpoints": endpoints}, headers=admin)
    fleet_health.check(ctx, "gpu-1")
    metrics = client.get("/api/servers/gpu-1", headers=admin).get_json()["metrics"]
    assert metrics["lastCheckError"] == "server_id_mismatch" and metrics["lastCheckTime"].endswith("Z")
    assert client.get("/api/servers/gpu-1", headers=admin).get_json()["status"] == "degraded"


def test_a_server_demands_signed_callbacks_and_keeps_the_demand_until_told_otherwise(client, admin):
    made = client.post("/api/servers", json=SERVER, headers=admin).get_json()
    assert made["callbackSignature"] is None  # the deployment's CALLBACK_SIGNATURE
    demanded = client.post("/api/servers", json={**SERVER, "callbackSignature": "required"}, headers=admin)
    assert demanded.status_code == 201 and demanded.get_json()["callbackSignature"] == "required"
    assert "k-secret-123" not in demanded.get_data(as_text=True)
    without_field = {key: value for key, value in SERVER.items() if key != "apiKey"}
    kept = client.post("/api/servers", json=without_field, headers=admin).get_json()
    assert kept["callbackSignature"] == "required" and kept["hasApiKey"] is True
    detail = client.get("/api/servers/gpu-1", headers=admin).get_json()
    assert detail["callbackSignature"] == "required"
    optional = client.post("/api/servers", json={**SERVER, "callbackSignature": "optional"}, headers=admin)
    assert optional.get_json()["callbackSignature"] == "optional"
    default = client.post("/api/servers", json={**SERVER, "callbackSignature": None}, headers=admin)
    assert default.get_json()["callbackSignature"] is None


def test_demanding_signed_callbacks_without_an_api_key_is_422(client, admin):
    keyless = {key: value for key, value in SERVER.items() if key != "apiKey"}
    refused = client.post("/api/servers", json={**keyless, "callbackSignature": "required"}, headers=admin)
    assert refused.status_code == 422
    body = refused.get_json()
    assert body["error"] == "validation_error" and "apiKey" in body["message"]
    assert "callbackSignature" in body["details"]["json"]
    assert client.get("/api/servers/gpu-1", headers=admin).status_code == 404
    bad = client.post("/api/servers", json={**SERVER, "callbackSignature": "always"}, headers=admin)
    assert bad.status_code == 422 and "callbackSignature" in str(bad.get_json()["details"])
    assert (
        client.post(
            "/api/servers", json={**keyless, "callbackSignature": "optional"}, headers=admin
        ).status_code
        == 201
    )
