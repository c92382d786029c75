"""Token revocation through the client on the real stack (admin), and heartbeats only
from the server a server token names."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from taskfleet_client import (
    AsyncClient,
    Client,
    Forbidden,
    Revocation,
    Revocations,
    Unauthorized,
    Unprocessable,
)

from tests.client_fleet import token
from tests.conftest import JWT_SECRET

#: Seconds every API process takes at most to see a revocation (REFRESH_S), and more.
SPREAD_S = 10


@pytest.fixture
def admin(fleet):
    with Client(fleet.url, fleet.admin) as client:
        yield client


def refused(fleet, leaked: str) -> str:
    """The message every API process answers the token with, once they all refuse it."""
    deadline = time.monotonic() + SPREAD_S
    with Client(fleet.url, leaked) as client:
        while True:
            messages = set()
            for _ in range(4):  # the stack has two API processes
                try:
                    client.list()
                    messages.add("accepted")
                except Unauthorized as exc:
                    messages.add(str(exc))
            if "accepted" not in messages or time.monotonic() > deadline:
                return "|".join(sorted(messages))
            time.sleep(0.5)


def test_a_token_revoked_by_jti_is_refused_and_listed(admin, fleet):
    sub = f"leaky-{uuid.uuid4().hex[:8]}"
    leaked = token(sub, "client")
    claims = jwt.decode(leaked, JWT_SECRET, algorithms=["HS256"])
    expires = datetime.fromtimestamp(claims["exp"], UTC)
    done = admin.revoke_token(claims["jti"], sub=sub, expires_at=expires)
    assert isinstance(done, Revocation) and done.subject is None and done.token is not None
    assert (done.token.jti, done.token.sub, done.token.expires_at) == (claims["jti"], sub, expires)
    assert refused(fleet, leaked) == "token revoked (401)"
    listed = admin.revocations()
    assert isinstance(listed, Revocations)
    assert claims["jti"] in {revoked.jti for revoked in listed.tokens}


def test_every_token_of_a_subject_issued_before_a_time_is_refused(admin, fleet):
    sub = f"leaky-{uuid.uuid4().hex[:8]}"
    old = token(sub, "client")
    done = admin.revoke_subject(sub, issued_before=datetime.now(UTC) + timedelta(seconds=2))
    assert done.token is None and done.subject is not None and done.subject.sub == sub
    assert refused(fleet, old).startswith("token revoked: every token of its subject")
    assert sub in {cut.sub for cut in admin.revocations().subjects}
    with pytest.raises(ValueError, match="timezone"):
        admin.revoke_subject(sub, issued_before=datetime(2030, 1, 1))


def test_revocation_is_for_admins_and_checks_its_input(fleet, admin):
    with Client(fleet.url, fleet.alice) as alice, pytest.raises(Forbidden):
        alice.revoke_subject("alice")
    with pytest.raises(Unprocessable):
        admin.revoke_token("")


def test_the_async_client_revokes_and_lists(fleet):
    sub = f"leaky-{uuid.uuid4().hex[:8]}"

    async def flow() -> None:
        async with AsyncClient(fleet.url, fleet.admin) as admin:
            done = await admin.revoke_token(f"jti-{sub}", sub=sub)
            assert done.token is not None and done.token.expires_at is None
            cut = await admin.revoke_subject(sub)
            assert cut.subject is not None and cut.subject.sub == sub
            listed = await admin.revocations()
            assert f"jti-{sub}" in {t.jti for t in listed.tokens} and sub in {c.sub for c in listed.subjects}

    asyncio.run(flow())


def test_a_server_token_beats_only_its_own_server(fleet, admin):
    with Client(fleet.url, token("echo-1", "server")) as own:
        assert own.heartbeat("echo-1", in_flight=0).id == "echo-1"
    with Client(fleet.url, token("other-1", "server")) as other, pytest.raises(Forbidden):
        other.heartbeat("echo-1", in_flight=0)
