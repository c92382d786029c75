"""JWTs: clock leeway, ``exp`` required, revocation by jti or by subject (admin), and
heartbeats only from the server a token names."""

from __future__ import annotations

import time

import jwt
import pytest

from app.core.clock import ManualClock
from app.core.tokens import REFRESH_S
from app.services import tokens
from app.store import revocations_repo
from tests.conftest import JWT_SECRET

SERVER = {
    "id": "gpu-1",
    "name": "GPU 1",
    "maxConcurrent": 4,
    "capabilities": ["llm"],
    "endpoints": {"predict": "http://10.0.0.5:8080/predict", "health": "http://10.0.0.5:8080/health"},
}


def signed(**claims):
    """A token signed with the right secret, with exactly these claims (times relative
    to now in seconds for exp, iat and nbf)."""
    now = int(time.time())
    body = {"sub": "alice", "roles": ["client"], "type": "access"}
    for name in ("exp", "iat", "nbf"):
        if name in claims:
            claims[name] = now + claims[name]
    body.update(claims)
    return {"Authorization": f"Bearer {jwt.encode(body, JWT_SECRET, algorithm='HS256')}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims_of(token: str) -> dict:
    return jwt.decode(token, JWT_SECRET, algorithms=["HS256"])


@pytest.fixture
def admin(auth):
    return auth("root", ("admin",))


def status(client, headers) -> int:
    return client.get("/api/tasks", headers=headers).status_code


def message(client, headers) -> str:
    response = client.get("/api/tasks", headers=headers)
    assert response.status_code == 401
    return response.get_json()["message"]


# Leeway and exp


def test_a_token_expired_within_the_leeway_is_accepted_and_beyond_it_refused(client, token):
    assert status(client, bearer(token(ttl_s=-10))) == 200
    assert message(client, bearer(token(ttl_s=-60))) == "token expired"


def test_iat_and_nbf_a_little_in_the_future_are_accepted(client):
    assert status(client, signed(exp=600, iat=10)) == 200
    assert status(client, signed(exp=600, nbf=10)) == 200
    assert status(client, signed(exp=600, nbf=60)) == 401


def test_a_token_without_exp_is_401_with_a_clear_error(client):
    response = client.get("/api/tasks", headers=signed(iat=0, jti="no-exp"))
    assert response.status_code == 401
    body = response.get_json()
    assert body["error"] == "unauthorized" and "exp" in body["message"]
    assert status(client, signed(exp=600, iat=0)) == 200


def test_minted_tokens_carry_exp_iat_and_a_jti(token):
    claims = claims_of(token(ttl_s=600))
    assert claims["exp"] - claims["iat"] == 600 and claims["jti"]
    assert claims_of(token())["jti"] != claims["jti"]


# Revocation


def test_a_token_revoked_by_jti_is_401_and_others_of_the_subject_still_work(client, admin, token):
    leaked, other = token("alice"), token("alice")
    claims = claims_of(leaked)
    assert status(client, bearer(leaked)) == 200
    r = client.post("/api/tokens/revoke", json={"jti": claims["jti"], "sub": "alice"}, headers=admin)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["token"]["jti"] == claims["jti"] and r.get_json()["subject"] is None
    assert message(client, bearer(leaked)) == "token revoked"
    assert status(client, bearer(other)) == 200


def test_every_token_of_a_subject_issued_before_the_cutoff_is_401(client, admin):
    old, new = signed(exp=600, iat=-100, jti="old"), signed(exp=600, iat=0, jti="new")
    bob = signed(sub="bob", exp=600, iat=-100, jti="bob")
    cutoff = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 50))
    r = client.post("/api/tokens/revoke", json={"sub": "alice", "issuedBefore": cutoff}, headers=admin)
    assert r.status_code == 200 and r.get_json()["subject"]["sub"] == "alice"
    assert "issued before" in message(client, old)
    assert status(client, new) == 200 and status(client, bob) == 200
    no_iat = signed(exp=600, jti="no-iat")
    assert status(client, no_iat) == 401  # cannot show it was issued after the cutoff


def test_revoking_a_subject_defaults_to_now(client, admin, token):
    before = token("carol")
    assert client.post("/api/tokens/revoke", json={"sub": "carol"}, headers=admin).status_code == 200
    assert status(client, bearer(before)) == 401
    assert status(client, signed(sub="carol", exp=600, iat=2)) == 200


def test_an_admin_can_revoke_their_own_token(client, token):
    mine = token("root", ("admin",))
    r = client.post("/api/tokens/revoke", json={"jti": claims_of(mine)["jti"]}, headers=bearer(mine))
    assert r.status_code == 200
    assert client.get("/api/tokens/revocations", headers=bearer(mine)).status_code == 401


def test_the_list_shows_revoked_tokens_and_subject_cutoffs(client, admin):
    body = {"jti": "j-1", "sub": "alice", "expiresAt": "2031-01-01T00:00:00Z"}
    client.post("/api/tokens/revoke", json=body, headers=admin)
    client.post("/api/tokens/revoke", json={"jti": "j-2"}, headers=admin)
    cutoff = {"sub": "bob", "issuedBefore": "2030-01-01T00:00:00Z"}
    client.post("/api/tokens/revoke", json=cutoff, headers=admin)
    listed = client.get("/api/tokens/revocations", headers=admin).get_json()
    assert [(t["jti"], t["sub"], t["expiresAt"]) for t in listed["tokens"]] == [
        ("j-1", "alice", "2031-01-01T00:00:00+00:00"),
        ("j-2", None, None),
    ]
    [cutoff] = listed["subjects"]
    assert cutoff["sub"] == "bob" and cutoff["issuedBefore"].startswith("2030-01-01T00:00:00")


def test_a_subject_cutoff_only_moves_forward(client, admin):
    for when in ("2030-01-01T00:00:00Z", "2020-01-01T00:00:00Z"):
        client.post("/api/tokens/revoke", json={"sub": "bob", "issuedBefore": when}, headers=admin)
    [cutoff] = client.get("/api/tokens/revocations", headers=admin).get_json()["subjects"]
    assert cutoff["issuedBefore"].startswith("2030-01-01")


def test_revocation_is_for_admins(client, auth):
    for roles in (("client",), ("server",)):
        headers = auth("alice", roles)
        assert client.post("/api/tokens/revoke", json={"sub": "alice"}, headers=headers).status_code == 403
        assert client.get("/api/tokens/revocations", headers=headers).status_code == 403
    assert client.post("/api/tokens/revoke", json={"sub": "alice"}).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"issuedBefore": "2030-01-01T00:00:00Z"},
        {"jti": "x", "issuedBefore": "2030-01-01T00:00:00Z"},
        {"sub": "x", "expiresAt": "2030-01-01T00:00:00Z"},
        {"sub": "x", "issuedBefore": "2030-01-01T00:00:00"},  # no timezone
        {"sub": "x", "issuedBefore": "1969-12-31T23:59:59Z"},
        {"sub": "x", "issuedBefore": "soon"},
        {"jti": ""},
        {"jti": "x" * 256},
        {"jti": 5},
        {"sub": "x", "bogus": 1},
    ],
)
def test_bad_revocations_are_422(client, admin, body):
    r = client.post("/api/tokens/revoke", json=body, headers=admin)
    assert r.status_code == 422, r.get_json()
    assert r.get_json()["error"] == "validation_error"


def test_another_processs_revocation_takes_effect_within_the_refresh_interval(ctx, client, token):
    clock = ManualClock(int(time.time() * 1000))
    ctx.clock = clock
    leaked = token("alice")
    assert status(client, bearer(leaked)) == 200  # this process read the revocations now
    with ctx.db.session() as session:  # as another API process would record it
        revocations_repo.revoke_token(session, claims_of(leaked)["jti"], "alice", None, clock.now_ms())
    assert status(client, bearer(leaked)) == 200
    clock.advance(REFRESH_S)
    assert status(client, bearer(leaked)) == 401


def test_expired_revocations_are_dropped_past_the_leeway(ctx):
    clock = ManualClock(1_800_000_000_000)
    ctx.clock = clock
    tokens.revoke_token(ctx, "gone", "a", expires_ms=clock.now_ms() - 31_000)
    tokens.revoke_token(ctx, "in-leeway", "a", expires_ms=clock.now_ms() - 29_000)
    tokens.revoke_token(ctx, "unknown-expiry", "a")
    assert tokens.drop_expired(ctx) == 1
    assert [t.jti for t in tokens.revocations(ctx).tokens] == ["in-leeway", "unknown-expiry"]


# Heartbeats


def test_a_server_token_beats_only_its_own_server(client, admin, auth):
    client.post("/api/servers", json=SERVER, headers=admin)
    client.post("/api/servers", json={**SERVER, "id": "gpu-2"}, headers=admin)
    beat = {"inFlight": 1}
    own = client.post("/api/servers/gpu-1/heartbeat", json=beat, headers=auth("gpu-1", ("server",)))
    assert own.status_code == 200
    other = client.post("/api/servers/gpu-2/heartbeat", json=beat, headers=auth("gpu-1", ("server",)))
    assert other.status_code == 403 and other.get_json()["error"] == "forbidden"
    unknown = client.post("/api/servers/nope/heartbeat", json=beat, headers=auth("gpu-1", ("server",)))
    assert unknown.status_code == 403  # says nothing about which servers exist
    assert client.post("/api/servers/gpu-2/heartbeat", json=beat, headers=admin).status_code == 200


def test_the_last_copy_read_stays_in_force_while_the_database_is_down(ctx, client, admin, token, monkeypatch):
    from app.core.errors import StoreUnavailable

    leaked = token("alice")
    client.post("/api/tokens/revoke", json={"jti": claims_of(leaked)["jti"]}, headers=admin)
    assert status(client, bearer(leaked)) == 401
    ctx.revocations.forget()

    def down(*_args):
        raise StoreUnavailable("database unavailable")

    monkeypatch.setattr(revocations_repo, "in_force", down)
    assert status(client, bearer(leaked)) == 401
