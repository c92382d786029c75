"""Jobs through the client on the real stack: submit, wait, list, page, cancel; sync and async."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

import pytest
from taskfleet_client import (
    AsyncClient,
    Client,
    Job,
    NotFound,
    Task,
    Unprocessable,
    WaitTimeout,
    job_task,
    job_template,
)


@pytest.fixture
def alice(fleet):
    with Client(fleet.url, fleet.alice) as client:
        yield client


def test_a_fan_out_job_runs_every_item_and_is_waited_for_until_completed(alice):
    items = [{"i": i} for i in range(6)]
    job = alice.submit_job(template=job_template("echo", capabilities=["echo"]), items=items, name="fan")
    assert isinstance(job, Job) and (job.name, job.total, job.status) == ("fan", 6, "RUNNING")
    assert len(job.task_ids) == 6 and isinstance(job.created_at, datetime)

    done = alice.wait_job(job.id, timeout=60)
    assert done.ok and done.done and (done.status, done.progress) == ("COMPLETED", 100)
    assert done.counts == {"COMPLETED": 6} and done.finished == 6 and done.finished_at is not None

    tasks = alice.iter_job_tasks(job.id, page_size=4)
    assert [(t.id, t.job_id, t.payload) for t in tasks] == list(
        zip(job.task_ids, [job.id] * 6, items, strict=True)
    )
    first = alice.job_tasks(job.id, limit=2)
    assert [t.id for t in first.tasks] == job.task_ids[:2] and first.next_cursor
    assert all(isinstance(t, Task) and t.ok for t in first.tasks)


def test_a_job_with_a_failing_task_ends_failed_and_its_tasks_are_filtered_by_status(alice):
    job = alice.submit_job(
        [
            job_task("echo", {"n": 1}, key="good", capabilities=["echo"]),
            job_task("echo", {"fail": 500}, key="bad", capabilities=["echo"], max_retries=0),
        ]
    )
    seen = list(alice.watch_job(job.id, timeout=60))
    assert (
        seen[-1].status == "FAILED" and not seen[-1].ok and seen[-1].counts == {"COMPLETED": 1, "FAILED": 1}
    )
    assert len(seen) == len({(j.status, j.progress) for j in seen})  # only changes are reported
    failed = alice.job_tasks(job.id, status="FAILED").tasks
    assert [(t.id, t.key, t.status) for t in failed] == [(job.task_ids[1], "bad", "FAILED")]
    assert alice.get(job.task_ids[0]).key == "good"


def test_the_same_idempotency_key_returns_the_first_job(alice):
    key = f"job-{uuid.uuid4()}"
    first = alice.submit_job([job_task("echo", capabilities=["nowhere"])], idempotency_key=key)
    again = alice.submit_job([job_task("echo", capabilities=["nowhere"])] * 2, idempotency_key=key)
    assert again.id == first.id and again.total == 1
    alice.cancel_job(first.id)


def test_cancelling_a_job_cancels_its_unfinished_tasks(alice):
    job = alice.submit_job(template=job_template("echo", capabilities=["nowhere"]), items=[1, 2, 3])
    cancelled = alice.cancel_job(job.id)
    assert cancelled.status == "CANCELLED" and cancelled.done and not cancelled.ok
    assert alice.wait_job(job.id, timeout=10).counts == {"CANCELLED": 3}
    assert alice.cancel_job(job.id).status == "CANCELLED"  # again: the same job, no error
    assert {t.status for t in alice.iter_job_tasks(job.id)} == {"CANCELLED"}


def test_wait_job_gives_up_at_its_timeout_with_the_last_state(alice):
    job = alice.submit_job([job_task("echo", capabilities=["nowhere"])])
    with pytest.raises(WaitTimeout) as caught:
        alice.wait_job(job.id, timeout=0.5)
    assert isinstance(caught.value.task, Job) and caught.value.task.status == "RUNNING"
    assert str(caught.value) == f"job {job.id} is still RUNNING after 0.5 s"
    alice.cancel_job(job.id)


def test_a_bad_item_refuses_the_whole_job_naming_its_index(alice):
    good = job_task("echo", capabilities=["echo"])
    with pytest.raises(Unprocessable) as caught:
        alice.submit_job([good, {"payload": 1}, good, job_task("echo", priority=99)])
    assert set(caught.value.details["json"]["tasks"]) == {"1", "3"}
    with pytest.raises(ValueError, match="not both"):
        alice.submit_job([good], template=job_template("echo"), items=[1])


def test_jobs_are_listed_newest_first_and_only_to_their_owner(alice, fleet):
    ids = [alice.submit_job([job_task("echo", capabilities=["nowhere"])]).id for _ in range(3)]
    page = alice.jobs(limit=2)
    assert [j.id for j in page.jobs] == ids[::-1][:2] and page.next_cursor
    assert page.jobs[0].task_ids == []  # a listed job has no taskIds
    assert [j.id for j in alice.iter_jobs(page_size=2)][:3] == ids[::-1]
    with Client(fleet.url, fleet.bob) as bob:
        assert not set(ids) & {j.id for j in bob.iter_jobs()}
        with pytest.raises(NotFound):
            bob.job(ids[0])
    for job_id in ids:
        alice.cancel_job(job_id)


def test_the_async_client_submits_waits_lists_and_cancels_jobs(fleet):
    async def flow() -> None:
        async with AsyncClient(fleet.url, fleet.alice) as tf:
            template = job_template("echo", capabilities=["echo"])
            jobs = await asyncio.gather(
                *(tf.submit_job(template=template, items=[i, i + 1]) for i in range(2))
            )
            done = await asyncio.gather(*(tf.wait_job(job.id, timeout=60) for job in jobs))
            assert [job.counts for job in done] == [{"COMPLETED": 2}] * 2
            assert (await tf.job(jobs[0].id)).task_ids == jobs[0].task_ids
            tasks = [t async for t in tf.iter_job_tasks(jobs[1].id, page_size=1)]
            assert [t.result["echo"] for t in tasks] == [1, 2]
            assert (await tf.job_tasks(jobs[1].id, status="FAILED")).tasks == []
            assert {j.id for j in (await tf.jobs(limit=2)).jobs} == {j.id for j in jobs}
            listed = [j.id async for j in tf.iter_jobs(page_size=1)]
            assert set(listed) >= {j.id for j in jobs}

            parked = await tf.submit_job([job_task("echo", capabilities=["nowhere"])])
            assert (await tf.cancel_job(parked.id)).status == "CANCELLED"
            assert [j.status async for j in tf.watch_job(parked.id)] == ["CANCELLED"]

    asyncio.run(flow())
