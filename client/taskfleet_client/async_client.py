"""The asynchronous client: the same methods as :class:`~taskfleet_client.Client`, awaited."""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar, Unpack

import httpx

from taskfleet_client import _http, calls
from taskfleet_client import events as sse
from taskfleet_client.calls import Call, HeartbeatLoad, ServerFields, SubmitFields
from taskfleet_client.errors import NoEventStream, WaitTimeout
from taskfleet_client.events import Event, Reconnect
from taskfleet_client.job_models import Job, JobPage
from taskfleet_client.limit_models import Limit
from taskfleet_client.models import (
    Algorithm,
    Attempt,
    ErrorEntry,
    Hour,
    Server,
    ServerStats,
    Stats,
    Task,
    TaskPage,
)
from taskfleet_client.retrying import RetryPolicy, retry_after_s, retry_on_error, retry_on_status
from taskfleet_client.token_models import Revocation, Revocations
from taskfleet_client.waiting import Backoff, after_first_async, poll_async, timed_out

T = TypeVar("T")


class AsyncClient:
    """:class:`~taskfleet_client.Client` on ``httpx.AsyncClient``: every method is a
    coroutine, ``iter_tasks`` and ``watch`` are async iterators. Use it as an async
    context manager, or await :meth:`aclose`."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        backoff: Backoff | None = None,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        reconnect: Reconnect | None = None,
    ) -> None:
        self.retry_policy = retry or RetryPolicy()
        self.backoff = backoff or Backoff()
        self.reconnect = reconnect or Reconnect()
        self._streams = True
        self._http = httpx.AsyncClient(
            base_url=_http.api_root(base_url),
            headers=_http.headers(token, headers),
            timeout=timeout_s,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # Sending

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Any API request (``path`` below ``/api``); returns the answer's JSON."""
        request = self._http.build_request(
            method, _http.path(path), params=params, json=json, content=content, headers=headers
        )
        return await self._exchange(request, method.upper() in _http.IDEMPOTENT_METHODS)

    async def send(self, call: Call[T]) -> T:
        """Send one :class:`~taskfleet_client.calls.Call` and read its answer."""
        request = self._http.build_request(
            call.method, _http.path(call.path), params=call.params, json=call.json, headers=call.headers
        )
        return call.parse(await self._exchange(request, call.idempotent))

    async def _exchange(self, request: httpx.Request, idempotent: bool) -> Any:
        attempt = 0
        while True:
            attempt += 1
            retry_left = attempt <= self.retry_policy.retries
            try:
                response = await self._http.send(request)
            except httpx.TransportError as exc:
                if retry_left and retry_on_error(exc, idempotent):
                    await asyncio.sleep(self.retry_policy.delay_s(attempt, None))
                    continue
                raise _http.transport_error(request, exc) from exc
            if retry_left and retry_on_status(response.status_code):
                await response.aclose()
                await asyncio.sleep(self.retry_policy.delay_s(attempt, retry_after_s(response.headers)))
                continue
            return _http.read_answer(response)

    # Tasks

    async def submit(self, type: str, payload: Any = None, **fields: Unpack[SubmitFields]) -> Task:
        """Submit a task; see :meth:`Client.submit`."""
        return await self.send(calls.submit(type, payload, fields))

    async def get(self, task_id: str) -> Task:
        return await self.send(calls.get_task(task_id))

    async def list(
        self,
        status: str | None = None,
        type: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> TaskPage:
        """One page of tasks, newest first; see :meth:`Client.list`."""
        return await self.send(calls.list_tasks(status, type, limit, cursor))

    async def iter_tasks(
        self, status: str | None = None, type: str | None = None, page_size: int = 100
    ) -> AsyncIterator[Task]:
        """Every task that matches, page after page."""
        cursor: str | None = None
        while True:
            page = await self.list(status, type, page_size, cursor)
            for task in page.tasks:
                yield task
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def cancel(self, task_id: str) -> Task:
        return await self.send(calls.cancel_task(task_id))

    async def retry(self, task_id: str) -> Task:
        return await self.send(calls.retry_task(task_id))

    async def attempts(self, task_id: str) -> builtins.list[Attempt]:
        return await self.send(calls.task_attempts(task_id))

    def events(self, task_id: str, last_event_id: str | None = None) -> AsyncIterator[Event]:
        """The task's events as they happen; see :meth:`Client.events`."""
        return self._events(task_id, last_event_id, None)

    async def _events(
        self, task_id: str, last_id: str | None, deadline: float | None
    ) -> AsyncIterator[Event]:
        failures = 0
        while True:
            try:
                async for event in self._stream_once(task_id, last_id, deadline):
                    failures = 0
                    last_id = event.id or last_id
                    yield event
                    if event.name == sse.RESULT:
                        return
            except httpx.TransportError as exc:
                if sse.past(deadline, time.monotonic()):
                    raise WaitTimeout(f"task {task_id} not final before the deadline", None) from exc
            if sse.past(deadline, time.monotonic()):
                raise WaitTimeout(f"task {task_id} not final before the deadline", None)
            failures += 1
            delay = self.reconnect.delay_s(failures)
            if delay is None:
                raise sse.dropped(task_id, failures - 1)
            await asyncio.sleep(delay)

    async def _stream_once(
        self, task_id: str, last_id: str | None, deadline: float | None
    ) -> AsyncIterator[Event]:
        timeout = sse.stream_timeout(self._http.timeout, deadline, time.monotonic())
        request = self._http.build_request(
            "GET", sse.path(task_id), headers=sse.request_headers(last_id), timeout=timeout
        )
        response = await self._http.send(request, stream=True)
        try:
            if retry_on_status(response.status_code):
                return
            if response.status_code in sse.NO_STREAM_STATUSES:
                raise sse.no_stream(task_id, response.status_code)
            if not response.is_success:
                await response.aread()
                _http.read_answer(response)
            if not sse.is_event_stream(response.headers.get("content-type")):
                raise sse.no_stream(task_id, response.status_code)
            decoder = sse.SSEDecoder()
            async for line in response.aiter_lines():
                found = decoder.line(line)
                if found is not None:
                    yield sse.event_of(*found)
                if sse.past(deadline, time.monotonic()):
                    return
        finally:
            await response.aclose()

    async def follow(self, task_id: str, timeout: float | None = None) -> AsyncIterator[Task | Event]:
        """:meth:`watch`'s snapshots and the ``chunk`` events between them; see
        :meth:`Client.follow`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        first = await self.get(task_id)
        yield first
        if first.done:
            return
        snapshots = sse.Snapshots(first)
        if self._streams:
            try:
                async for event in self._events(task_id, None, deadline):
                    shown = event if event.name == sse.CHUNK else snapshots.apply(event)
                    if shown is not None:
                        yield shown
                return
            except NoEventStream:
                self._streams = False
            except WaitTimeout:
                raise timed_out(task_id, timeout, snapshots.task) from None
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        async for task in after_first_async(
            first, poll_async(lambda: self.get(task_id), task_id, left, self.backoff)
        ):
            yield task

    async def watch(self, task_id: str, timeout: float | None = None) -> AsyncIterator[Task]:
        """The task each time its status or progress changes, ending with its final
        state; reads the event stream, polls a server that has none."""
        async for item in self.follow(task_id, timeout):
            if isinstance(item, Task):
                yield item

    async def wait(self, task_id: str, timeout: float | None = None) -> Task:
        """The task once final; ``WaitTimeout`` after ``timeout`` seconds."""
        last: Task | None = None
        async for task in self.watch(task_id, timeout):
            last = task
        assert last is not None
        return last

    # Jobs

    async def submit_job(
        self,
        tasks: Sequence[Mapping[str, Any]] | None = None,
        *,
        template: Mapping[str, Any] | None = None,
        items: Sequence[Any] | None = None,
        name: str | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Submit many tasks at once; see :meth:`Client.submit_job`."""
        return await self.send(calls.submit_job(tasks, template, items, name, idempotency_key))

    async def job(self, job_id: str) -> Job:
        """The job now, with live ``counts`` and ``progress``."""
        return await self.send(calls.get_job(job_id))

    async def jobs(self, limit: int | None = None, cursor: str | None = None) -> JobPage:
        """One page of your jobs (every job, for an admin), newest first."""
        return await self.send(calls.list_jobs(limit, cursor))

    async def iter_jobs(self, page_size: int = 100) -> AsyncIterator[Job]:
        """Every job, page after page."""
        cursor: str | None = None
        while True:
            page = await self.jobs(page_size, cursor)
            for job in page.jobs:
                yield job
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def job_tasks(
        self, job_id: str, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> TaskPage:
        """One page of the job's tasks (up to 1,000), in item order."""
        return await self.send(calls.job_tasks(job_id, status, limit, cursor))

    async def iter_job_tasks(
        self, job_id: str, status: str | None = None, page_size: int = 1000
    ) -> AsyncIterator[Task]:
        """Every task of the job that matches, in item order."""
        cursor: str | None = None
        while True:
            page = await self.job_tasks(job_id, status, page_size, cursor)
            for task in page.tasks:
                yield task
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def cancel_job(self, job_id: str) -> Job:
        """Cancel every unfinished task of the job; the job is CANCELLED."""
        return await self.send(calls.cancel_job(job_id))

    def watch_job(self, job_id: str, timeout: float | None = None) -> AsyncIterator[Job]:
        """The job each time its status or progress changes, ending once it no longer
        runs; ``WaitTimeout`` if that takes longer than ``timeout`` seconds."""
        return poll_async(lambda: self.job(job_id), job_id, timeout, self.backoff, kind="job")

    async def wait_job(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once it no longer runs (COMPLETED, FAILED or CANCELLED: check
        ``job.ok``); ``WaitTimeout`` after ``timeout`` seconds."""
        last: Job | None = None
        async for job in self.watch_job(job_id, timeout):
            last = job
        assert last is not None
        return last

    # Servers (admin)

    async def servers(
        self, status: str | None = None, group: str | None = None, capability: str | None = None
    ) -> builtins.list[Server]:
        return await self.send(calls.list_servers(status, group, capability))

    async def server(self, server_id: str) -> Server:
        return await self.send(calls.get_server(server_id))

    async def register_server(
        self, name: str, endpoints: Mapping[str, str], **fields: Unpack[ServerFields]
    ) -> Server:
        return await self.send(calls.register_server(name, endpoints, fields))

    async def remove_server(self, server_id: str) -> Server:
        return await self.send(calls.remove_server(server_id))

    async def set_maintenance(self, server_id: str, enabled: bool) -> Server:
        return await self.send(calls.set_maintenance(server_id, enabled))

    async def heartbeat(self, server_id: str, **load: Unpack[HeartbeatLoad]) -> Server:
        return await self.send(calls.heartbeat(server_id, load))

    # Statistics and the balancer (admin)

    async def stats(self, start: datetime | str | None = None, end: datetime | str | None = None) -> Stats:
        return await self.send(calls.stats(start, end))

    async def hourly(self) -> builtins.list[Hour]:
        return await self.send(calls.hourly())

    async def server_stats(self, server_id: str) -> ServerStats:
        return await self.send(calls.server_stats(server_id))

    async def errors(self, type: str | None = None, limit: int | None = None) -> builtins.list[ErrorEntry]:
        return await self.send(calls.errors(type, limit))

    async def algorithm(self) -> Algorithm:
        return await self.send(calls.get_algorithm())

    async def set_algorithm(self, name: str) -> Algorithm:
        return await self.send(calls.set_algorithm(name))

    # Concurrency limits (admin)

    async def limits(self) -> builtins.list[Limit]:
        """Every concurrency limit: its value now, in flight, waiting, last change."""
        return await self.send(calls.list_limits())

    async def limit(self, type: str) -> Limit:
        """The limit of one task type (``*``: all tasks together)."""
        return await self.send(calls.get_limit(type))

    async def set_limit(
        self, type: str, *, max_concurrent: int | None = None, dynamic: Mapping[str, int] | None = None
    ) -> Limit:
        """Create or replace a type's limit: static (``max_concurrent``), or scaling
        (``dynamic``: a :class:`~taskfleet_client.DynamicLimit`, e.g.
        ``DynamicLimit.of(10, 50, 5, 60, 180)``); exactly one."""
        return await self.send(calls.set_limit(type, max_concurrent, dynamic))

    async def remove_limit(self, type: str) -> None:
        """Remove a type's limit: its tasks run as slots allow."""
        await self.send(calls.remove_limit(type))

    # Token revocation (admin)

    async def revoke_token(
        self, jti: str, *, sub: str | None = None, expires_at: datetime | str | None = None
    ) -> Revocation:
        """Revoke one token by its ``jti`` claim: it gets 401 from then on (within 5 s on
        every API process). ``expires_at`` (the token's ``exp``) lets the record go once
        the token has expired anyway."""
        return await self.send(calls.revoke_token(jti, sub, expires_at))

    async def revoke_subject(self, sub: str, *, issued_before: datetime | str | None = None) -> Revocation:
        """Revoke every token of ``sub`` issued before ``issued_before`` (default: now,
        as the server's clock has it)."""
        return await self.send(calls.revoke_subject(sub, issued_before))

    async def revocations(self) -> Revocations:
        """Every token revoked by ``jti`` and every subject cutoff."""
        return await self.send(calls.revocations())
