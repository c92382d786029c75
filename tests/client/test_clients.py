"""Limits per client through the Python client on the real stack (admin): set, read,
reset; a client past its burst gets TooManyRequests with the server's Retry-After."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from taskfleet_client import (
    AsyncClient,
    Client,
    ClientLimits,
    Forbidden,
    RetryPolicy,
    TooManyRequests,
    Unprocessable,
)

from tests.client_fleet import token


@pytest.fixture
def admin(fleet):
    with Client(fleet.url, fleet.admin) as client:
        yield client


def test_an_admin_sets_reads_and_resets_a_clients_limits_and_they_apply(admin, fleet):
    sub = f"limited/{uuid.uuid4().hex[:8]}@example.com"
    limits = admin.set_client_limits(sub, submits_per_second=0.01, burst=2, weight=3)
    assert isinstance(limits, ClientLimits) and limits.sub == sub
    assert (limits.stored.submits_per_second, limits.stored.burst, limits.stored.max_unfinished) == (
        0.01,
        2,
        None,
    )
    assert limits.effective.weight == 3 and limits.effective.max_unfinished == 100_000
    with Client(fleet.url, token(sub, "client"), retry=RetryPolicy(retries=0)) as limited:
        limited.submit_job(template={"type": "echo"}, items=[1, 2])
        with pytest.raises(TooManyRequests) as refused:
            limited.submit("echo")
    assert refused.value.retry_after is not None and 90 <= refused.value.retry_after <= 100
    read = admin.client_limits(sub)
    assert read.usage.unfinished == 2 and read.usage.tokens is not None and read.usage.tokens < 1
    kept = admin.set_client_limits(sub, burst=None)  # back to the default; the others kept
    assert kept.stored.burst is None and kept.stored.weight == 3 and kept.effective.burst == 20_000
    reset = admin.reset_client_limits(sub)
    assert reset.stored.weight is None and reset.effective.submits_per_second == 1000.0


def test_wrong_limits_are_unprocessable_and_clients_may_not_set_them(admin, fleet):
    with pytest.raises(Unprocessable):
        admin.set_client_limits("someone", weight=0)
    with Client(fleet.url, fleet.alice) as alice, pytest.raises(Forbidden):
        alice.client_limits("alice")


def test_the_async_client_reads_and_sets_client_limits(fleet):
    async def run() -> tuple[int | None, int | None]:
        async with AsyncClient(fleet.url, fleet.admin) as client:
            await client.set_client_limits("async-sub", max_unfinished=7)
            got = await client.client_limits("async-sub")
            await client.reset_client_limits("async-sub")
            return got.stored.max_unfinished, (await client.client_limits("async-sub")).stored.max_unfinished

    assert asyncio.run(run()) == (7, None)
