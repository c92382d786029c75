"""Delayed and dependent tasks through the client on the real stack (issue 13 §2-3):
runAt, delay, dependsOn, in single submits and inside jobs. Needs the server side of
runAt/delay/dependsOn (and, for the job chain, sibling keys in dependsOn)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from taskfleet_client import AsyncClient, Client, Unprocessable, job_task, job_template

#: How late a due task may start: "PENDING within about a second", plus dispatch.
LATE = timedelta(seconds=2.5)


@pytest.fixture
def alice(fleet):
    with Client(fleet.url, fleet.alice) as client:
        yield client


def started(client, task_id):
    return client.attempts(task_id)[0].started_at


def test_a_task_with_run_at_or_delay_is_scheduled_then_runs_on_time_never_early(alice):
    run_at = datetime.now(UTC) + timedelta(seconds=2)
    at = alice.submit("echo", {"at": 1}, capabilities=["echo"], run_at=run_at)
    delayed = alice.submit("echo", {"delay": 1}, capabilities=["echo"], delay=1.5)
    assert at.status == delayed.status == "SCHEDULED" and not at.done
    assert abs(at.run_at - run_at) < timedelta(milliseconds=1)
    assert delayed.run_at is not None and delayed.run_at - delayed.created_at >= timedelta(seconds=1.4)
    for task in (at, delayed):
        done = alice.wait(task.id, timeout=20)
        assert done.ok and done.run_at <= started(alice, task.id) < done.run_at + LATE


def test_a_scheduled_task_can_be_cancelled_before_it_is_due(alice):
    task = alice.submit(
        "echo", capabilities=["echo"], run_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat()
    )
    assert task.status == "SCHEDULED" and alice.get(task.id).status == "SCHEDULED"
    assert task.id in {t.id for t in alice.iter_tasks(status="SCHEDULED", type="echo")}
    assert alice.cancel(task.id).status == "CANCELLED"


def test_run_at_with_delay_is_refused_and_a_naive_time_is_never_sent(alice):
    soon = datetime.now(UTC) + timedelta(minutes=1)
    with pytest.raises(Unprocessable) as caught:
        alice.submit("echo", run_at=soon, delay=5)
    assert "runAt" in str(caught.value.details)
    with pytest.raises(ValueError, match="run_at must have a timezone"):
        alice.submit("echo", run_at=datetime.now())  # noqa: DTZ005 - naive on purpose
    with pytest.raises(Unprocessable):
        alice.submit("echo", delay=31 * 24 * 3600)  # more than 30 days


def test_a_dependent_task_waits_until_its_dependency_completed(alice):
    first = alice.submit("echo", {"step": 1}, capabilities=["echo"])
    second = alice.submit("echo", {"step": 2}, capabilities=["echo"], depends_on=[first.id])
    assert second.status == "WAITING" and second.depends_on == [first.id]
    done = [alice.wait(task.id, timeout=30) for task in (first, second)]
    assert [task.status for task in done] == ["COMPLETED", "COMPLETED"]
    assert done[0].finished_at <= started(alice, second.id)
    late = alice.submit("echo", capabilities=["echo"], depends_on=[first.id])  # already satisfied
    assert late.status != "WAITING" and alice.wait(late.id, timeout=30).ok


def test_an_upstream_failure_fails_its_dependents_two_levels_down(alice):
    bad = alice.submit("echo", {"fail": 500}, capabilities=["echo"], max_retries=0)
    child = alice.submit("echo", capabilities=["echo"], depends_on=[bad.id])
    grandchild = alice.submit("echo", capabilities=["echo"], depends_on=[child.id])
    assert alice.wait(bad.id, timeout=30).status == "FAILED"
    for task, upstream in ((child, bad), (grandchild, child)):
        ended = alice.wait(task.id, timeout=30)
        assert ended.status == "FAILED" and ended.attempts == 0
        assert (
            ended.error is not None
            and ended.error.startswith("upstream_failed")
            and upstream.id in ended.error
        )


def test_an_unknown_another_owners_or_failed_dependency_is_refused(alice, fleet):
    with pytest.raises(Unprocessable):
        alice.submit("echo", depends_on=["no-such-task"])
    with Client(fleet.url, fleet.bob) as bob:
        theirs = bob.submit("echo", capabilities=["nowhere"])
        with pytest.raises(Unprocessable):
            alice.submit("echo", depends_on=[theirs.id])
        bob.cancel(theirs.id)
    with pytest.raises(Unprocessable):
        alice.submit("echo", depends_on=[theirs.id])  # cancelled: it can never complete


def test_a_job_runs_a_three_step_chain_named_by_sibling_keys(alice):
    job = alice.submit_job(
        [
            job_task("echo", {"step": "a"}, key="a", capabilities=["echo"]),
            job_task("echo", {"step": "b"}, key="b", capabilities=["echo"], depends_on=["a"]),
            job_task("echo", {"step": "c"}, key="c", capabilities=["echo"], depends_on=["b"]),
        ]
    )
    assert job.counts.get("WAITING") == 2
    assert alice.wait_job(job.id, timeout=60).counts == {"COMPLETED": 3}
    a, b, c = alice.iter_job_tasks(job.id)
    assert (b.depends_on, c.depends_on) == ([a.id], [b.id])
    assert a.finished_at <= started(alice, b.id) and b.finished_at <= started(alice, c.id)


def test_a_delayed_fan_out_job_is_scheduled_then_completes(alice):
    job = alice.submit_job(template=job_template("echo", capabilities=["echo"], delay=1), items=[1, 2])
    assert job.counts == {"SCHEDULED": 2} and job.status == "RUNNING"
    done = alice.wait_job(job.id, timeout=30)
    assert done.ok and all(task.run_at is not None for task in alice.iter_job_tasks(job.id))


def test_the_async_client_sends_delay_and_dependencies(fleet):
    async def flow() -> None:
        async with AsyncClient(fleet.url, fleet.alice) as tf:
            first = await tf.submit("echo", {"n": 1}, capabilities=["echo"], delay=0.5)
            then = await tf.submit("echo", {"n": 2}, capabilities=["echo"], depends_on=[first.id])
            assert (first.status, then.status) == ("SCHEDULED", "WAITING")
            done = await asyncio.gather(tf.wait(first.id, timeout=30), tf.wait(then.id, timeout=30))
            assert [task.status for task in done] == ["COMPLETED", "COMPLETED"]

    asyncio.run(flow())
