"""Times in input: an offset that carries a time past the years Python holds, or a time
at the ends of them, is a 422 that writes nothing, not an overflow (found by the fuzz)."""

from __future__ import annotations

import pytest

EDGES = [
    "0001-01-01T01:01:01+03:04",  # before year 1 in UTC
    "9999-12-31T23:59:59-03:04",  # after 9999 in UTC
    "9999-12-31T23:59:59Z",  # one hour more does not fit
    "0001-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
]


@pytest.mark.parametrize("when", EDGES)
def test_a_task_or_job_starting_at_the_edge_of_time_is_422(client, auth, when):
    for path, body in [
        ("/api/task", {"type": "e", "runAt": when}),
        ("/api/jobs", {"tasks": [{"type": "e", "runAt": when}]}),
        ("/api/jobs", {"template": {"type": "e", "runAt": when}, "items": [1]}),
    ]:
        r = client.post(path, json=body, headers=auth())
        assert r.status_code == 422, (path, r.get_data(as_text=True))
    assert client.get("/api/tasks", headers=auth()).get_json()["items"] == []


@pytest.mark.parametrize("query", [f"from={w}" for w in EDGES] + [f"to={w}" for w in EDGES])
def test_a_statistics_range_at_the_edge_of_time_is_422(client, auth, query):
    r = client.get("/api/stats", query_string=dict([query.split("=", 1)]), headers=auth("root", ("admin",)))
    assert r.status_code == 422, r.get_data(as_text=True)


def test_times_within_range_keep_working(client, auth):
    r = client.post("/api/task", json={"type": "e", "runAt": "2030-01-01T09:00:00+02:00"}, headers=auth())
    assert r.status_code == 201 and r.get_json()["runAt"].startswith("2030-01-01T07:00:00")
    past = client.post("/api/task", json={"type": "e", "runAt": "1970-01-01T00:00:00Z"}, headers=auth())
    assert past.status_code == 201 and past.get_json()["status"] == "PENDING"
    r = client.get(
        "/api/stats?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z", headers=auth("root", ("admin",))
    )
    assert r.status_code == 200
