"""The synchronous client."""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator, Mapping, Sequence
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
from taskfleet_client.waiting import Backoff, after_first, poll, timed_out

T = TypeVar("T")


class Client:
    """A client of one taskfleet API.

    ``base_url`` is the server's URL (``http://127.0.0.1:8000``; a trailing ``/api`` is
    fine too) and ``token`` a bearer JWT (``taskfleet token``). Errors are raised as the
    classes in :mod:`taskfleet_client.errors`; 429 and 503 answers and failed
    connections are retried first as ``retry`` says. Use it as a context manager, or
    call :meth:`close`.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        backoff: Backoff | None = None,
        headers: dict[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        reconnect: Reconnect | None = None,
    ) -> None:
        self.retry_policy = retry or RetryPolicy()
        #: The polling intervals of :meth:`watch` and :meth:`wait` (on a server without
        #: event streams).
        self.backoff = backoff or Backoff()
        #: How a dropped event stream is resumed.
        self.reconnect = reconnect or Reconnect()
        #: False once the server answered that it has no event streams.
        self._streams = True
        self._http = httpx.Client(
            base_url=_http.api_root(base_url),
            headers=_http.headers(token, headers),
            timeout=timeout_s,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # Sending

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Any API request (``path`` below ``/api``), with the same retries and errors;
        returns the answer's JSON. For endpoints this client has no method for."""
        request = self._http.build_request(
            method, _http.path(path), params=params, json=json, content=content, headers=headers
        )
        return self._exchange(request, method.upper() in _http.IDEMPOTENT_METHODS)

    def send(self, call: Call[T]) -> T:
        """Send one :class:`~taskfleet_client.calls.Call` and read its answer."""
        request = self._http.build_request(
            call.method, _http.path(call.path), params=call.params, json=call.json, headers=call.headers
        )
        return call.parse(self._exchange(request, call.idempotent))

    def _exchange(self, request: httpx.Request, idempotent: bool) -> Any:
        attempt = 0
        while True:
            attempt += 1
            retry_left = attempt <= self.retry_policy.retries
            try:
                response = self._http.send(request)
            except httpx.TransportError as exc:
                if retry_left and retry_on_error(exc, idempotent):
                    time.sleep(self.retry_policy.delay_s(attempt, None))
                    continue
                raise _http.transport_error(request, exc) from exc
            if retry_left and retry_on_status(response.status_code):
                response.close()
                time.sleep(self.retry_policy.delay_s(attempt, retry_after_s(response.headers)))
                continue
            return _http.read_answer(response)

    # Tasks

    def submit(self, type: str, payload: Any = None, **fields: Unpack[SubmitFields]) -> Task:
        """Submit a task; ``fields`` are the task fields in snake_case (``capabilities``,
        ``priority``, ``mode``, ``timeout``, ``max_retries``, ``region``, ``group``,
        ``poll_interval``, ``poll_max_attempts``; ``run_at`` or ``delay`` to start it
        later, ``depends_on`` to start it after other tasks COMPLETED, ``stream=True`` to have
        the backend stream its output), plus
        ``idempotency_key``: the same key again returns the task it first created."""
        return self.send(calls.submit(type, payload, fields))

    def get(self, task_id: str) -> Task:
        """The task now."""
        return self.send(calls.get_task(task_id))

    def list(
        self,
        status: str | None = None,
        type: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> TaskPage:
        """One page of your tasks (all tasks for an admin), newest first; pass the page's
        ``next_cursor`` as ``cursor`` for the next one."""
        return self.send(calls.list_tasks(status, type, limit, cursor))

    def iter_tasks(
        self, status: str | None = None, type: str | None = None, page_size: int = 100
    ) -> Iterator[Task]:
        """Every task that matches, page after page."""
        cursor: str | None = None
        while True:
            page = self.list(status, type, page_size, cursor)
            yield from page.tasks
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def cancel(self, task_id: str) -> Task:
        """Cancel an unfinished task (a final one is a Conflict)."""
        return self.send(calls.cancel_task(task_id))

    def retry(self, task_id: str) -> Task:
        """Start a FAILED or TIMEOUT task again, with a fresh budget of attempts."""
        return self.send(calls.retry_task(task_id))

    def attempts(self, task_id: str) -> builtins.list[Attempt]:
        """The task's attempts, oldest first: server, start and end, outcome, error,
        duration and the backend's metadata."""
        return self.send(calls.task_attempts(task_id))

    def events(self, task_id: str, last_event_id: str | None = None) -> Iterator[Event]:
        """The task's events as they happen (``GET /api/task/{id}/events``): ``status``,
        ``progress``, ``chunk`` and, last, ``result``; from the start, or after
        ``last_event_id``. A dropped connection is resumed after the last event read
        (``Last-Event-ID``), ``reconnect`` times in a row at most. ``NoEventStream`` (a
        ``NotFound``) when the server has no stream for it."""
        return self._events(task_id, last_event_id, None)

    def _events(self, task_id: str, last_id: str | None, deadline: float | None) -> Iterator[Event]:
        """:meth:`events`; ``WaitTimeout`` (with no task) once past ``deadline``."""
        failures = 0
        while True:
            try:
                for event in self._stream_once(task_id, last_id, deadline):
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
            time.sleep(delay)

    def _stream_once(self, task_id: str, last_id: str | None, deadline: float | None) -> Iterator[Event]:
        """One connection's events, until the server or the network ends it."""
        timeout = sse.stream_timeout(self._http.timeout, deadline, time.monotonic())
        request = self._http.build_request(
            "GET", sse.path(task_id), headers=sse.request_headers(last_id), timeout=timeout
        )
        response = self._http.send(request, stream=True)
        try:
            if retry_on_status(response.status_code):
                return  # not now: reconnect after the backoff
            if response.status_code in sse.NO_STREAM_STATUSES:
                raise sse.no_stream(task_id, response.status_code)
            if not response.is_success:
                response.read()
                _http.read_answer(response)
            if not sse.is_event_stream(response.headers.get("content-type")):
                raise sse.no_stream(task_id, response.status_code)
            decoder = sse.SSEDecoder()
            for line in response.iter_lines():
                found = decoder.line(line)
                if found is not None:
                    yield sse.event_of(*found)
                if sse.past(deadline, time.monotonic()):
                    return
        finally:
            response.close()

    def follow(self, task_id: str, timeout: float | None = None) -> Iterator[Task | Event]:
        """:meth:`watch`'s snapshots, and each ``chunk`` event of streamed output between
        them as it comes (none when the server has no event stream: it is polled)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        first = self.get(task_id)
        yield first
        if first.done:
            return
        snapshots = sse.Snapshots(first)
        if self._streams:
            try:
                for event in self._events(task_id, None, deadline):
                    shown = event if event.name == sse.CHUNK else snapshots.apply(event)
                    if shown is not None:
                        yield shown
                return
            except NoEventStream:
                self._streams = False  # an older server: poll it from now on
            except WaitTimeout:
                raise timed_out(task_id, timeout, snapshots.task) from None
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        yield from after_first(first, poll(lambda: self.get(task_id), task_id, left, self.backoff))

    def watch(self, task_id: str, timeout: float | None = None) -> Iterator[Task]:
        """The task each time its status or progress changes, ending with its final
        state; ``WaitTimeout`` if that takes longer than ``timeout`` seconds. Reads the
        task's event stream; polls a server that has none."""
        return (item for item in self.follow(task_id, timeout) if isinstance(item, Task))

    def wait(self, task_id: str, timeout: float | None = None) -> Task:
        """The task once final (COMPLETED, FAILED, TIMEOUT or CANCELLED: check
        ``task.ok``); ``WaitTimeout`` after ``timeout`` seconds."""
        last: Task | None = None
        for task in self.watch(task_id, timeout):
            last = task
        assert last is not None
        return last

    # Jobs

    def submit_job(
        self,
        tasks: Sequence[Mapping[str, Any]] | None = None,
        *,
        template: Mapping[str, Any] | None = None,
        items: Sequence[Any] | None = None,
        name: str | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Submit many tasks at once, all or nothing: ``tasks`` (task bodies in the API's
        JSON, e.g. :func:`~taskfleet_client.job_task`), or ``template``
        (:func:`~taskfleet_client.job_template`) and ``items``: one task per item, the item
        as its payload. Sends a random Idempotency-Key unless given one."""
        return self.send(calls.submit_job(tasks, template, items, name, idempotency_key))

    def job(self, job_id: str) -> Job:
        """The job now, with live ``counts`` and ``progress``."""
        return self.send(calls.get_job(job_id))

    def jobs(self, limit: int | None = None, cursor: str | None = None) -> JobPage:
        """One page of your jobs (every job, for an admin), newest first."""
        return self.send(calls.list_jobs(limit, cursor))

    def iter_jobs(self, page_size: int = 100) -> Iterator[Job]:
        """Every job, page after page."""
        cursor: str | None = None
        while True:
            page = self.jobs(page_size, cursor)
            yield from page.jobs
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def job_tasks(
        self, job_id: str, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> TaskPage:
        """One page of the job's tasks (up to 1,000), in item order."""
        return self.send(calls.job_tasks(job_id, status, limit, cursor))

    def iter_job_tasks(self, job_id: str, status: str | None = None, page_size: int = 1000) -> Iterator[Task]:
        """Every task of the job that matches, in item order."""
        cursor: str | None = None
        while True:
            page = self.job_tasks(job_id, status, page_size, cursor)
            yield from page.tasks
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def cancel_job(self, job_id: str) -> Job:
        """Cancel every unfinished task of the job; the job is CANCELLED."""
        return self.send(calls.cancel_job(job_id))

    def watch_job(self, job_id: str, timeout: float | None = None) -> Iterator[Job]:
        """The job each time its status or progress changes, ending once it no longer
        runs; ``WaitTimeout`` if that takes longer than ``timeout`` seconds."""
        return poll(lambda: self.job(job_id), job_id, timeout, self.backoff, kind="job")

    def wait_job(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once it no longer runs (COMPLETED, FAILED or CANCELLED: check
        ``job.ok``); ``WaitTimeout`` after ``timeout`` seconds."""
        last: Job | None = None
        for job in self.watch_job(job_id, timeout):
            last = job
        assert last is not None
        return last

    # Servers (admin)

    def servers(
        self, status: str | None = None, group: str | None = None, capability: str | None = None
    ) -> builtins.list[Server]:
        """Registered servers, optionally only those with a status, group or capability."""
        return self.send(calls.list_servers(status, group, capability))

    def server(self, server_id: str) -> Server:
        """A server with its live ``metrics``."""
        return self.send(calls.get_server(server_id))

    def register_server(
        self, name: str, endpoints: Mapping[str, str], **fields: Unpack[ServerFields]
    ) -> Server:
        """Register a server (``endpoints``: ``predict`` and ``health``, optionally
        ``status`` and ``cancel``); the same ``id`` again updates it."""
        return self.send(calls.register_server(name, endpoints, fields))

    def remove_server(self, server_id: str) -> Server:
        """Drain a server: no new tasks; it is removed once what runs there is done."""
        return self.send(calls.remove_server(server_id))

    def set_maintenance(self, server_id: str, enabled: bool) -> Server:
        """Take a server out of selection (running tasks finish), or bring it back."""
        return self.send(calls.set_maintenance(server_id, enabled))

    def heartbeat(self, server_id: str, **load: Unpack[HeartbeatLoad]) -> Server:
        """A sign of life, optionally with ``in_flight``, ``queue_depth``, ``gpu_utilization``."""
        return self.send(calls.heartbeat(server_id, load))

    # Statistics and the balancer (admin)

    def stats(self, start: datetime | str | None = None, end: datetime | str | None = None) -> Stats:
        """Totals over ``[start, end)`` (all time by default)."""
        return self.send(calls.stats(start, end))

    def hourly(self) -> builtins.list[Hour]:
        """The last 24 hours, oldest first."""
        return self.send(calls.hourly())

    def server_stats(self, server_id: str) -> ServerStats:
        """One server's attempts over all time."""
        return self.send(calls.server_stats(server_id))

    def errors(self, type: str | None = None, limit: int | None = None) -> builtins.list[ErrorEntry]:
        """Failures by (error type, message), most recent first."""
        return self.send(calls.errors(type, limit))

    def algorithm(self) -> Algorithm:
        """The load-balancing algorithm in use, and those available."""
        return self.send(calls.get_algorithm())

    def set_algorithm(self, name: str) -> Algorithm:
        """Switch the load-balancing algorithm (an unknown name is Unprocessable)."""
        return self.send(calls.set_algorithm(name))

    # Concurrency limits (admin)

    def limits(self) -> builtins.list[Limit]:
        """Every concurrency limit: its value now, in flight, waiting, last change."""
        return self.send(calls.list_limits())

    def limit(self, type: str) -> Limit:
        """The limit of one task type (``*``: all tasks together)."""
        return self.send(calls.get_limit(type))

    def set_limit(
        self, type: str, *, max_concurrent: int | None = None, dynamic: Mapping[str, int] | None = None
    ) -> Limit:
        """Create or replace a type's limit: static (``max_concurrent``), or scaling
        (``dynamic``: a :class:`~taskfleet_client.DynamicLimit`, e.g.
        ``DynamicLimit.of(10, 50, 5, 60, 180)``); exactly one."""
        return self.send(calls.set_limit(type, max_concurrent, dynamic))

    def remove_limit(self, type: str) -> None:
        """Remove a type's limit: its tasks run as slots allow."""
        self.send(calls.remove_limit(type))

    # Token revocation (admin)

    def revoke_token(
        self, jti: str, *, sub: str | None = None, expires_at: datetime | str | None = None
    ) -> Revocation:
        """Revoke one token by its ``jti`` claim: it gets 401 from then on (within 5 s on
        every API process). ``expires_at`` (the token's ``exp``) lets the record go once
        the token has expired anyway."""
        return self.send(calls.revoke_token(jti, sub, expires_at))

    def revoke_subject(self, sub: str, *, issued_before: datetime | str | None = None) -> Revocation:
        """Revoke every token of ``sub`` issued before ``issued_before`` (default: now,
        as the server's clock has it)."""
        return self.send(calls.revoke_subject(sub, issued_before))

    def revocations(self) -> Revocations:
        """Every token revoked by ``jti`` and every subject cutoff."""
        return self.send(calls.revocations())
