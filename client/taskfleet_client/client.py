"""The synchronous client."""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar, Unpack

import httpx

from taskfleet_client import _http, calls
from taskfleet_client.calls import Call, HeartbeatLoad, ServerFields, SubmitFields
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
from taskfleet_client.waiting import Backoff, poll

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
    ) -> None:
        self.retry_policy = retry or RetryPolicy()
        #: The polling intervals of :meth:`watch` and :meth:`wait`.
        self.backoff = backoff or Backoff()
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
        ``poll_interval``, ``poll_max_attempts``), plus ``idempotency_key``: the same key
        again returns the task it first created."""
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

    def watch(self, task_id: str, timeout: float | None = None) -> Iterator[Task]:
        """The task each time its status or progress changes, ending with its final
        state; ``WaitTimeout`` if that takes longer than ``timeout`` seconds."""
        return poll(lambda: self.get(task_id), task_id, timeout, self.backoff)

    def wait(self, task_id: str, timeout: float | None = None) -> Task:
        """The task once final (COMPLETED, FAILED, TIMEOUT or CANCELLED: check
        ``task.ok``); ``WaitTimeout`` after ``timeout`` seconds."""
        last: Task | None = None
        for task in self.watch(task_id, timeout):
            last = task
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
