"""A small backend that speaks the seed protocol, for the demo, the tests and benchmarks.

POST /predict   sync: answers ``{"echo": payload, "server": name}`` after ``delay_s``;
                async (``request.async``): answers 202, then PUTs progress and the result
                to ``callback_url`` (signed with X-Taskfleet-Signature when it has an
                apiKey). A payload may ask for trouble: ``{"fail": 500}``,
                ``{"sleep": 2.5}``, ``{"garbage": true}``, and in async mode
                ``{"duplicate": true}`` (the final callback twice) and ``{"late": true}``
                (a progress update after the final one).
                poll (``request.mode == "poll"``): answers 202 ``{"jobId"}`` (or
                ``{"statusUrl"}`` when the payload says ``{"poll_via": "statusUrl"}``)
                and works ``delay_s`` in the background.
                ``{"batch": [<predict body>, ...]}``: each task as above; a sync batch
                answers ``{"results": [...]}``, each item a callback body.
                streaming (``request.stream``): sync answers ``text/event-stream``, one
                event per token (the payload's ``tokens``, else three) spread over
                ``delay_s``, then a ``result`` event (none when the payload says
                ``{"no_result_event": true}``); async PUTs each token as a ``chunk``
                before the result. A backend with fault 'cut' drops the connection
                after two tokens (a chunked body never ended).
GET  /status/<job>  a poll-mode job: PROCESSING with progress, then COMPLETED or FAILED.
POST /cancel    ``{"task_id"}``: stops counting the task as in flight; 200.
GET  /health    ``{"status": "healthy"}``, with ``"serverId"`` when it was told the id it is
                registered under (taskfleet fails a check whose serverId is another's)
GET  /stats     calls, in_flight, max_in_flight, batches (sizes) and cancelled.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from app.core import signatures

log = logging.getLogger("taskfleet.demo_backend")


class _Server(ThreadingHTTPServer):
    """socketserver listens with a backlog of 5: a fleet that opens a few hundred calls
    at once on a busy host overflowed it, the refused calls failed, and five failures
    opened the server's circuit for a minute (the soak test of 200 calls of 32 s)."""

    request_queue_size = 1024


class DemoBackend:
    """Counts its own concurrent calls so tests can check taskfleet's slot limits."""

    def __init__(
        self,
        name: str,
        delay_s: float = 0.2,
        api_key: str | None = None,
        fault: str | None = None,
        server_id: str | None = None,
    ) -> None:
        self.name = name
        #: The id taskfleet knows it by, named in its health answer (None: not named).
        self.server_id = server_id
        #: A broken backend for fault tests: '500' (always), 'hang' (answers after 30 s),
        #: 'garbage' (not JSON), 'silent' (accepts callback tasks, never calls back), 'cut'
        #: (a streamed answer dropped after two tokens).
        self.fault = fault
        self.delay_s = delay_s
        self.api_key = api_key
        self.healthy = True
        self.lock = threading.Lock()
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        #: Single calls in flight now and at most, by task type.
        self.in_flight_by_type: dict[str, int] = {}
        self.max_in_flight_by_type: dict[str, int] = {}
        #: Sizes of the batches it was sent, task ids it was asked to cancel.
        self.batches: list[int] = []
        self.cancelled: list[str] = []
        #: Poll-mode jobs: job id -> (done at, task id, payload).
        self.jobs: dict[str, tuple[float, str, Any]] = {}
        self.polls = 0
        #: How many times each task id was sent to it (one call or in a batch).
        self.predicted: dict[str, int] = {}
        #: HTTP status of each callback taskfleet answered, in order.
        self.callback_answers: list[int] = []
        self.server: ThreadingHTTPServer | None = None

    def enter(self, task_type: str | None = None) -> None:
        with self.lock:
            self.calls += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if task_type is not None:
                now = self.in_flight_by_type[task_type] = self.in_flight_by_type.get(task_type, 0) + 1
                self.max_in_flight_by_type[task_type] = max(self.max_in_flight_by_type.get(task_type, 0), now)

    def leave(self, task_type: str | None = None) -> None:
        with self.lock:
            self.in_flight -= 1
            if task_type is not None:
                self.in_flight_by_type[task_type] -= 1

    def stats(self) -> dict[str, int]:
        with self.lock:
            return {
                "calls": self.calls,
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "max_in_flight_by_type": dict(self.max_in_flight_by_type),
                "batches": list(self.batches),
                "cancelled": list(self.cancelled),
                "polls": self.polls,
                "predicted": dict(self.predicted),
                "callback_answers": list(self.callback_answers),
            }

    def sent(self, task_ids: list[str]) -> None:
        with self.lock:
            for task_id in task_ids:
                self.predicted[task_id] = self.predicted.get(task_id, 0) + 1

    def start_job(self, task_id: str, payload: Any) -> str:
        """A poll-mode job: done ``delay_s`` (or the payload's sleep) from now."""
        trouble = payload if isinstance(payload, dict) else {}
        job_id = f"job-{task_id}"
        with self.lock:
            self.jobs[job_id] = (
                time.monotonic() + float(trouble.get("sleep", self.delay_s)),
                task_id,
                payload,
            )
        return job_id

    def job_status(self, job_id: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.polls += 1
            job = self.jobs.get(job_id)
        if job is None:
            return 404, {"error": "no such job"}
        done_at, _task_id, payload = job
        left = done_at - time.monotonic()
        if left > 0:
            progress = max(0, min(99, int(100 - left / max(self.delay_s, 0.001) * 100)))
            return 200, {"status": "PROCESSING", "progress": progress}
        trouble = payload if isinstance(payload, dict) else {}
        if "fail" in trouble:
            return 200, {"status": "FAILED", "error": f"asked to fail ({trouble['fail']})"}
        result = {"echo": payload, "server": self.name}
        return 200, {"status": "COMPLETED", "result": result, "metadata": {"model_version": "demo-1"}}

    def serve(self, host: str, port: int) -> ThreadingHTTPServer:
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                return

            def _send(self, status: int, body: Any, raw: bytes | None = None) -> None:
                data = raw if raw is not None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.startswith("/status/"):
                    self._send(*backend.job_status(self.path.rsplit("/", 1)[1]))
                elif self.path == "/health":
                    named = {"serverId": backend.server_id} if backend.server_id else {}
                    if backend.healthy:
                        self._send(200, {"status": "healthy", **named})
                    else:
                        self._send(503, {"status": "unhealthy", **named})
                elif self.path == "/stats":
                    self._send(200, backend.stats())
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path not in ("/predict", "/cancel"):
                    self._send(404, {"error": "not found"})
                    return
                if backend.api_key and self.headers.get("Authorization") != f"Bearer {backend.api_key}":
                    self._send(401, {"error": "bad api key"})
                    return
                if self.path == "/cancel":
                    with backend.lock:
                        backend.cancelled.append(str(body.get("task_id")))
                    self._send(200, {"cancelled": True})
                elif "batch" in body:
                    backend.sent([str(item.get("task_id")) for item in body["batch"]])
                    self._batch(body["batch"])
                else:
                    backend.sent([str(body.get("task_id"))])
                    # left when the work is done, before the answer goes out
                    backend.enter((body.get("request") or {}).get("type"))
                    self._predict(body)

            def _stream(self, payload: Any, task_type: str | None) -> None:
                """A streamed answer, chunked: one SSE event per token, then the result."""
                tokens = backend.tokens(payload)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

                def write(text: str) -> None:
                    data = text.encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()

                try:
                    for i, token in enumerate(tokens):
                        if backend.fault == "cut" and i == 2:
                            self.close_connection = True
                            return  # the connection closes with the chunked body unended
                        time.sleep(backend.delay_s / max(1, len(tokens)))
                        write(f"data: {json.dumps(token)}\n\n")
                    if not (isinstance(payload, dict) and payload.get("no_result_event")):
                        result = {"echo": payload, "server": backend.name, "text": "".join(map(str, tokens))}
                        write(f"event: result\ndata: {json.dumps(result)}\n\n")
                    self.wfile.write(b"0\r\n\r\n")
                finally:
                    backend.leave(task_type)

            def _batch(self, items: list[dict[str, Any]]) -> None:
                """Every task of the batch at once: one wait, one answer (sync)."""
                with backend.lock:
                    backend.batches.append(len(items))
                if backend.fault == "500":
                    self._send(500, {"error": "asked to fail"})
                    return
                for _ in items:
                    backend.enter()
                request = (items[0].get("request") or {}) if items else {}
                if request.get("mode") == "poll":
                    jobs = [
                        backend.start_job(i["task_id"], (i.get("request") or {}).get("payload"))
                        for i in items
                    ]
                    for _ in items:
                        backend.leave()
                    self._send(202, {"results": [{"jobId": job} for job in jobs]})
                    return
                if request.get("async"):
                    for item in items:
                        payload = (item.get("request") or {}).get("payload")
                        threading.Thread(
                            target=backend.finish_async, args=(item["callback_url"], payload), daemon=True
                        ).start()
                    self._send(202, {"status": "accepted"})
                    return
                time.sleep(backend.delay_s)
                results = []
                for item in items:
                    backend.leave()
                    payload = (item.get("request") or {}).get("payload")
                    trouble = payload if isinstance(payload, dict) else {}
                    if "fail" in trouble:
                        results.append({"status": "FAILED", "error": f"asked to fail ({trouble['fail']})"})
                    elif trouble.get("garbage"):
                        results.append("<not a result>")
                    else:
                        results.append(
                            {"status": "COMPLETED", "result": {"echo": payload, "server": backend.name}}
                        )
                self._send(200, {"results": results})

            def _predict(self, body: dict[str, Any]) -> None:
                request = body.get("request") or {}
                payload = request.get("payload")
                trouble = dict(payload) if isinstance(payload, dict) else {}
                fault = backend.fault
                if fault == "silent" and request.get("async"):
                    backend.leave(request.get("type"))  # accepted, and forgotten: its deadline will expire
                    self._send(202, {"status": "accepted"})
                    return
                trouble.update(
                    {"500": {"fail": 500}, "hang": {"sleep": 30}, "garbage": {"garbage": True}}.get(
                        fault or "", {}
                    )
                )
                if request.get("mode") == "poll":
                    job_id = backend.start_job(body["task_id"], payload)
                    backend.leave(request.get("type"))  # its work is counted by its job, not a call
                    host = self.headers.get("Host", "")
                    via_url = trouble.get("poll_via") == "statusUrl"
                    self._send(
                        202, {"statusUrl": f"http://{host}/status/{job_id}"} if via_url else {"jobId": job_id}
                    )
                    return
                if request.get("async"):
                    threading.Thread(
                        target=backend.finish_async,
                        args=(
                            body["callback_url"],
                            payload,
                            request.get("type"),
                            bool(request.get("stream")),
                        ),
                        daemon=True,
                    ).start()
                    self._send(202, {"status": "accepted"})
                    return
                if request.get("stream") and not {"fail", "sleep", "garbage"} & trouble.keys():
                    self._stream(payload, request.get("type"))
                    return
                time.sleep(float(trouble.get("sleep", backend.delay_s)))
                backend.leave(request.get("type"))
                if "fail" in trouble:
                    self._send(int(trouble["fail"]), {"error": "asked to fail"})
                elif trouble.get("garbage"):
                    self._send(200, None, raw=b"<html>not json")
                else:
                    self._send(200, {"echo": payload, "server": backend.name})

        self.server = _Server((host, port), Handler)
        self.server.daemon_threads = True
        return self.server

    def _put(self, url: str, update: dict[str, Any]) -> None:
        """PUT a callback; signed with the apiKey when the backend has one."""
        body = json.dumps(update).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers[signatures.HEADER] = signatures.sign(self.api_key, int(time.time()), body)
        answer = requests.put(url, data=body, headers=headers, timeout=10)
        with self.lock:
            self.callback_answers.append(answer.status_code)

    @staticmethod
    def tokens(payload: Any) -> list[Any]:
        """What a streamed answer sends: the payload's ``tokens``, else three."""
        tokens = payload.get("tokens") if isinstance(payload, dict) else None
        return list(tokens) if isinstance(tokens, list) else ["Hello", ", ", "world"]

    def finish_async(
        self, callback_url: str, payload: Any, task_type: str | None = None, stream: bool = False
    ) -> None:
        """Report progress (or stream tokens), then the result; the call counts as in
        flight until the work is done (the predict handler entered it)."""
        done = False
        put = self._put
        try:
            time.sleep(self.delay_s / 2)
            put(callback_url, {"status": "PROCESSING", "progress": 50})
            for token in self.tokens(payload) if stream else []:
                put(callback_url, {"status": "PROCESSING", "chunk": token})
            time.sleep(self.delay_s / 2)
            self.leave(task_type)
            done = True
            final = {"status": "COMPLETED", "result": {"echo": payload, "server": self.name}}
            trouble = payload if isinstance(payload, dict) else {}
            if "fail" in trouble:
                final = {"status": "FAILED", "error": f"asked to fail ({trouble['fail']})"}
            put(callback_url, final)
            if trouble.get("duplicate"):  # a backend that retries its callback
                put(callback_url, final)
            if trouble.get("late"):  # and one that reports progress after the end
                put(callback_url, {"status": "PROCESSING", "progress": 99})
        except requests.RequestException as exc:
            log.warning("callback to taskfleet failed: %s", type(exc).__name__)
        finally:
            if not done:
                self.leave(task_type)


def run(
    host: str, port: int, name: str, delay_s: float, api_key: str | None, server_id: str | None = None
) -> None:
    server = DemoBackend(name, delay_s, api_key, server_id=server_id).serve(host, port)
    try:
        server.serve_forever()
    finally:
        server.server_close()
