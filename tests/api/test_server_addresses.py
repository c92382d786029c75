"""Registration resolves backend names now: a name that does not resolve, or resolves to
a metadata or link-local address (in any IPv6 disguise), is a 422 and registers nothing.
The resolver is injected: no test here needs DNS."""

from __future__ import annotations

import pytest

from app.backends import BackendClient

#: What the injected resolver knows; any other name does not resolve.
ZONE = {
    "gpu1.fleet": ["10.0.0.7"],
    "gpu2.fleet": ["fd12::7", "10.0.0.8"],
    "imds.evil": ["169.254.169.254"],
    "nat64.evil": ["64:ff9b::a9fe:a9fe"],
    "compat.evil": ["::a9fe:a9fe"],
    "azure.evil": ["10.0.0.9", "168.63.129.16"],
}


def fake_resolver(host):
    if host not in ZONE:
        raise OSError(f"{host}: Name or service not known")
    return ZONE[host]


@pytest.fixture
def offline(ctx):
    ctx.backends.resolver = fake_resolver
    return ctx


def server(host, port=8000):
    return {
        "id": "s1",
        "name": "n",
        "endpoints": {"predict": f"http://{host}:{port}/p", "health": f"http://{host}:{port}/h"},
    }


@pytest.mark.parametrize("host", ["gpu1.fleet", "gpu2.fleet", "gpu1.fleet.", "10.0.0.7"])
def test_a_name_that_resolves_to_a_fleet_address_registers(offline, client, auth, host):
    r = client.post("/api/servers", json=server(host), headers=auth("root", ("admin",)))
    assert r.status_code == 201, r.get_data(as_text=True)


@pytest.mark.parametrize(
    "host, words",
    [
        ("gpu3.fleet", "does not resolve"),
        ("no-such-host.invalid", "does not resolve"),
        ("imds.evil", "metadata"),
        ("nat64.evil", "metadata"),
        ("compat.evil", "metadata"),
        ("azure.evil", "metadata"),
    ],
)
def test_a_name_that_does_not_resolve_or_resolves_to_metadata_is_422(offline, client, auth, host, words):
    admin = auth("root", ("admin",))
    r = client.post("/api/servers", json=server(host), headers=admin)
    assert r.status_code == 422, r.get_data(as_text=True)
    body = r.get_json()
    assert words in body["message"] and body["message"].startswith("endpoints.predict")
    assert body["details"] == {"endpoints.predict": f"http://{host}:8000/p"}
    assert client.get("/api/servers", headers=admin).get_json()["items"] == []


def test_a_name_in_etc_hosts_resolves_without_a_network(client, auth):
    """The system resolver reads /etc/hosts first: a demo fleet on localhost works offline."""
    r = client.post("/api/servers", json=server("localhost"), headers=auth("root", ("admin",)))
    assert r.status_code == 201, r.get_data(as_text=True)


@pytest.mark.parametrize("host", ["imds.evil", "nat64.evil", "compat.evil", "azure.evil"])
def test_a_name_pointed_at_metadata_later_is_refused_when_called(host):
    client = BackendClient(5, resolver=fake_resolver)
    assert client.allowed("http://gpu1.fleet/p")
    assert not client.allowed(f"http://{host}/p")


def test_the_alert_webhook_is_not_called_at_a_name_pointed_at_metadata():
    client = BackendClient(5, resolver=fake_resolver)
    assert client.notify("http://nat64.evil/hook", {"alert": "x"}) is False
