"""The async client on the real stack: the same flow as the sync one."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from taskfleet_client import AsyncClient, Conflict, Forbidden, NotFound, Task


def test_the_async_client_submits_waits_lists_cancels_and_retries(fleet):
    async def flow() -> None:
        async with AsyncClient(fleet.url, fleet.alice) as tf:
            kind = f"async-{uuid.uuid4().hex[:8]}"
            submits = (tf.submit(kind, {"i": i}, capabilities=["echo"]) for i in range(3))
            tasks = await asyncio.gather(*submits)
            done = await asyncio.gather(*(tf.wait(t.id, timeout=30) for t in tasks))
            assert [t.status for t in done] == ["COMPLETED"] * 3
            assert sorted(t.result["echo"]["i"] for t in done) == [0, 1, 2]

            page = await tf.list(type=kind, limit=2)
            assert len(page.tasks) == 2 and page.next_cursor
            listed = [t.id async for t in tf.iter_tasks(type=kind, page_size=2)]
            assert sorted(listed) == sorted(t.id for t in tasks)

            watched = [t async for t in tf.watch(tasks[0].id)]
            assert [t.status for t in watched] == ["COMPLETED"] and isinstance(watched[0], Task)

            parked = await tf.submit(kind, capabilities=["no-such-capability"])
            assert (await tf.cancel(parked.id)).status == "CANCELLED"
            with pytest.raises(Conflict):
                await tf.cancel(parked.id)
            with pytest.raises(Conflict):
                await tf.retry(tasks[0].id)  # COMPLETED: not retryable
            failed = await tf.submit(kind, {"fail": 500}, capabilities=["echo"], max_retries=0)
            assert (await tf.wait(failed.id, timeout=30)).status == "FAILED"
            assert (await tf.retry(failed.id)).id == failed.id
            with pytest.raises(NotFound):
                await tf.get("no-such-task")
            with pytest.raises(Forbidden):
                await tf.servers()

        async with AsyncClient(fleet.url, fleet.admin) as admin:
            assert "echo-1" in {s.id for s in await admin.servers()}
            assert (await admin.server("echo-1")).metrics is not None
            assert (await admin.stats()).total_tasks >= 3
            assert len(await admin.hourly()) == 24
            assert (await admin.algorithm()).algorithm

    asyncio.run(flow())
