"""The HTTP side of the seed protocol: calling predict, and callback-URL tokens."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
import urllib3
from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

from app.core.clock import Clock
from app.core.errors import BackendBusy, BackendError, Forbidden, Unauthorized
from app.core.events import RESULT, SSEParser, sse_payload
from app.core.server_health import CHECK_TIMEOUT_S
from app.core.text import unstorable_fields
from app.core.urls import IPAddress, is_forbidden_address, literal_address

#: Statuses that mean "not now" rather than "broken": requeue without counting a failure.
BUSY_STATUSES = frozenset({429, 503})
#: 4xx answers that are worth another attempt (all other 4xx are the request's fault).
RETRYABLE_4XX = frozenset({408, 429})
#: Bytes read from a streamed answer at most at once (less when less has arrived).
STREAM_READ_BYTES = 64 * 1024

#: Bytes of a backend's answer read at most by default (BACKEND_MAX_RESPONSE_BYTES): a
#: result is stored in the database and Redis, and sent to clients; 16 MiB holds the
#: images and documents inference results carry inline, and bounds what one answer
#: costs. A streamed answer counts every byte it sends.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
#: Bytes one event of a streamed answer holds at most by default
#: (BACKEND_MAX_EVENT_BYTES): each chunk is relayed and kept in the task's event log.
MAX_EVENT_BYTES = 1024 * 1024
#: Bytes of a health check's answer read at most: it is only looked at for a serverId.
HEALTH_MAX_BYTES = 64 * 1024
#: Bytes of an error answer (4xx, 5xx) read to keep its connection; it is not used.
ERROR_BODY_BYTES = 64 * 1024

#: Called with the chunks of a streamed answer as they arrive (JSON values, in order).
ChunkSink = Callable[[list[Any]], None]


@dataclass(frozen=True)
class PredictCall:
    """One attempt's request to a backend's predict endpoint."""

    url: str
    api_key: str | None
    task_id: str
    request: dict[str, Any]
    callback_url: str
    #: Seconds the answer may take (what is left of the attempt, or the server's cap).
    timeout_s: float

    def body(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "request": self.request, "callback_url": self.callback_url}


def _retry_after_s(response: requests.Response) -> float | None:
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None


#: Seconds a host's resolved addresses are trusted by the call-time address check.
RESOLVE_TTL_S = 60.0

#: Looks a host name up: its addresses, as text; raises ``OSError`` when there are none.
Resolver = Callable[[str], list[str]]


def system_resolver(host: str) -> list[str]:
    """The system's answer: DNS, and /etc/hosts first (so names there resolve offline)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except UnicodeError as exc:  # a label IDNA cannot encode (too long, say)
        raise OSError(f"cannot look up {host!r}: {exc}") from exc
    return [str(info[4][0]).split("%")[0] for info in infos]  # without an IPv6 zone


#: A health check's failure reason: the answer named another server (``serverId``).
SERVER_ID_MISMATCH = "server_id_mismatch"


@dataclass(frozen=True)
class HealthAnswer:
    """What a health check found: healthy or not, and why not."""

    ok: bool
    #: Why it failed: 'forbidden_address', 'timeout', 'connection', 'http_<status>' or
    #: ``SERVER_ID_MISMATCH``; None when healthy.
    reason: str | None = None


def _answered_id(content: bytes) -> str | None:
    """The ``serverId`` a JSON object answer names, if any."""
    try:
        body = json.loads(content) if content else None
    except (ValueError, RecursionError):
        return None
    value = body.get("serverId") if isinstance(body, dict) else None
    return None if value is None else str(value)


class BackendClient:
    """Calls backends over one pooled, redirect-refusing ``requests`` session, and only
    at hosts that do not resolve to link-local or metadata addresses."""

    def __init__(
        self,
        connect_timeout_s: float,
        pool_size: int = 256,
        resolver: Resolver = system_resolver,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        max_event_bytes: int = MAX_EVENT_BYTES,
    ) -> None:
        self.connect_timeout_s = connect_timeout_s
        #: Bytes of an answer read at most (a streamed one: in all), and of one event.
        self.max_response_bytes = max_response_bytes
        self.max_event_bytes = max_event_bytes
        #: Looks names up, for the address checks (tests inject one that needs no DNS).
        self.resolver = resolver
        self._resolved: dict[str, tuple[float, bool]] = {}
        self.session = requests.Session()
        # Backends are called directly: no HTTP(S)_PROXY or .netrc from the environment
        # (a proxy would also defeat the address check of ``allowed``), and no per-call
        # lookup of them. A private CA bundle named the usual way still counts.
        self.session.trust_env = False
        self.session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        adapter = requests.adapters.HTTPAdapter(pool_connections=64, pool_maxsize=pool_size)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def predict(self, call: PredictCall, on_chunks: ChunkSink | None = None) -> Any:
        """POST the task; return the parsed JSON answer (the result in sync mode, the
        acknowledgement in callback mode, the job to poll in poll mode). Raises
        ``BackendBusy`` or ``BackendError``. With ``on_chunks``, an answer of type
        ``text/event-stream`` is read as it arrives (``read_stream``)."""
        return self.exchange(
            "POST", call.url, call.api_key, call.timeout_s, call.body(), "predict", on_chunks=on_chunks
        )

    def predict_batch(self, url: str, api_key: str | None, calls: list[PredictCall], timeout_s: float) -> Any:
        """POST several tasks in one call: ``{"batch": [<predict body>, ...]}``."""
        return self.exchange("POST", url, api_key, timeout_s, {"batch": [c.body() for c in calls]}, "predict")

    def poll(self, url: str, api_key: str | None, timeout_s: float) -> Any:
        """GET a poll-mode attempt's status; the parsed JSON answer."""
        return self.exchange("GET", url, api_key, timeout_s, None, "poll")

    def cancel(self, url: str, api_key: str | None, task_id: str, timeout_s: float) -> None:
        """POST ``{"task_id"}`` to a server's cancel endpoint; raises unless it says 2xx."""
        self.exchange("POST", url, api_key, timeout_s, {"task_id": task_id}, "cancel")

    def exchange(
        self,
        method: str,
        url: str,
        api_key: str | None,
        timeout_s: float,
        body: Any,
        what: str,
        on_chunks: ChunkSink | None = None,
    ) -> Any:
        """One JSON request to a backend, answers mapped to errors: 429/503 ->
        ``BackendBusy``; other failures -> ``BackendError`` by kind. With ``on_chunks``
        the answer is streamed, and read as events if it is ``text/event-stream``."""
        if not self.allowed(url):
            raise BackendError("backend host resolves to a forbidden address", "forbidden", retryable=False)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        try:
            response = self.session.request(
                method,
                url,
                data=None if body is None else json.dumps(body),
                headers=headers,
                timeout=(self.connect_timeout_s, timeout_s),
                allow_redirects=False,
                stream=True,  # read below, never past the caps
            )
        except requests.ConnectTimeout as exc:
            raise BackendError(f"no connection within {self.connect_timeout_s}s", "connection") from exc
        except requests.Timeout as exc:
            raise BackendError(f"{what} timed out after {round(timeout_s, 1):g}s", "timeout") from exc
        except requests.RequestException as exc:
            raise BackendError(f"{what} connection failed: {type(exc).__name__}", "connection") from exc
        with response:
            _raise_for_status(response)
            if on_chunks is not None and is_event_stream(response):
                caps = StreamCaps(self.max_response_bytes, self.max_event_bytes)
                return read_stream(response, on_chunks, what, timeout_s, caps)
            content = read_capped(response, self.max_response_bytes, what)
        if not content:
            return None
        try:
            answer = json.loads(content)
        except (ValueError, RecursionError) as exc:
            raise BackendError("backend answer is not JSON", "malformed") from exc
        check_storable(answer, what)
        return answer

    def allowed(self, url: str) -> bool:
        """False when the URL's host resolves to a link-local or metadata address (a
        name registered as harmless that DNS now points at one). Cached per host."""
        host = urlsplit(url).hostname or ""
        now = time.monotonic()
        cached = self._resolved.get(host)
        if cached and now - cached[0] < RESOLVE_TTL_S:
            return cached[1]
        try:
            ok = not any(is_forbidden_address(a) for a in self.addresses(host))
        except OSError:
            ok = True  # unresolvable: the call itself will fail as a connection error
        self._resolved[host] = (now, ok)
        return ok

    def addresses(self, host: str) -> list[IPAddress]:
        """The addresses ``host`` names or resolves to now (not cached); raises
        ``OSError`` when it resolves to none."""
        literal = literal_address(host)
        if literal is not None:
            return [literal]
        found = [a for text in self.resolver(host) if (a := literal_address(text)) is not None]
        if not found:
            raise OSError(f"{host} has no address")
        return found

    def health(self, url: str, server_id: str | None = None) -> HealthAnswer:
        """GET the health endpoint: healthy on a 2xx within ``CHECK_TIMEOUT_S``, unless
        its JSON names a ``serverId`` other than ``server_id`` (another server answers
        at that address). An answer that names none, or is not JSON, is healthy."""
        if not self.allowed(url):
            return HealthAnswer(False, "forbidden_address")
        try:
            with self.session.get(
                url, timeout=CHECK_TIMEOUT_S, allow_redirects=False, stream=True
            ) as response:
                if not 200 <= response.status_code < 300:
                    return HealthAnswer(False, f"http_{response.status_code}")
                content = read_capped(response, HEALTH_MAX_BYTES, "health")
        except requests.Timeout:
            return HealthAnswer(False, "timeout")
        except requests.RequestException:
            return HealthAnswer(False, "connection")
        except BackendError as exc:
            return HealthAnswer(False, exc.kind)
        answered = _answered_id(content)
        if server_id is not None and answered is not None and answered != server_id:
            return HealthAnswer(False, SERVER_ID_MISMATCH)
        return HealthAnswer(True)

    def notify(self, url: str, body: dict[str, Any], timeout_s: float = 5.0) -> bool:
        """POST ``body`` as JSON to an operator's webhook; True on a 2xx. Its host is
        checked when called, as a backend's is (``Settings`` checked the URL itself)."""
        if not self.allowed(url):
            return False
        try:
            # Streamed and closed unread: the webhook's answer body is not needed.
            with self.session.post(
                url, json=body, timeout=timeout_s, allow_redirects=False, stream=True
            ) as r:
                return 200 <= r.status_code < 300
        except requests.RequestException:
            return False


def _raise_for_status(response: requests.Response) -> None:
    """Map a status that is no answer to its ``BackendError`` (a 2xx passes). The
    error's own body is read first, if small, so that its connection is kept."""
    status = response.status_code
    if not 200 <= status < 300:
        with contextlib.suppress(BackendError):  # too large or cut: the connection closes
            read_capped(response, ERROR_BODY_BYTES, "error")
    if status in BUSY_STATUSES:
        raise BackendBusy(f"backend busy (HTTP {status})", _retry_after_s(response))
    if status >= 500:
        raise BackendError(f"backend answered HTTP {status}", "http_5xx")
    if status >= 400:
        retryable = status in RETRYABLE_4XX
        raise BackendError(f"backend answered HTTP {status}", "http_4xx", retryable=retryable)
    if status >= 300:
        raise BackendError(f"backend redirected (HTTP {status}); redirects are not followed", "redirect")


def too_large(what: str, limit: int, setting: str = "BACKEND_MAX_RESPONSE_BYTES") -> BackendError:
    """The error of an answer past its cap. Not retryable: the size is the task's own
    result's, which another server would send again, costing the transfer each time."""
    return BackendError(
        f"{what} answer is larger than {setting} ({limit} bytes)", "too_large", retryable=False
    )


def read_capped(response: requests.Response, limit: int, what: str) -> bytes:
    """The answer's body, read as it arrives and given up past ``limit`` bytes (after
    decompression, so a small gzip bomb counts at its real size), or at once when its
    Content-Length says it is larger."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(what, limit)
    body = bytearray()
    try:
        for piece in response.iter_content(STREAM_READ_BYTES):
            body += piece
            if len(body) > limit:
                raise too_large(what, limit)
    except requests.RequestException as exc:
        raise BackendError(f"{what} answer cut: {type(exc).__name__}", "connection") from exc
    return bytes(body)


def check_storable(answer: Any, what: str) -> None:
    """A ``BackendError`` for an answer with text no store can hold (a lone surrogate or
    NUL, ``app.core.text``): refused like an answer that is not JSON."""
    bad = unstorable_fields({"answer": answer})
    if bad:
        path, reason = next(iter(bad.items()))
        raise BackendError(f"{what} answer holds text that cannot be stored: {path} {reason}", "malformed")


@dataclass(frozen=True)
class StreamCaps:
    """Bytes a streamed answer may send in all, and in one event."""

    total_bytes: int
    event_bytes: int


def is_event_stream(response: requests.Response) -> bool:
    return response.headers.get("Content-Type", "").split(";")[0].strip().lower() == "text/event-stream"


def read_stream(
    response: requests.Response, on_chunks: ChunkSink, what: str, timeout_s: float, caps: StreamCaps
) -> Any:
    """Read a ``text/event-stream`` answer as it arrives: each event's data (JSON, or the
    text itself) goes to ``on_chunks`` at once, except an event named ``result``, which
    is the answer; without one the answer is ``{"chunks": [every chunk, in order]}``.
    The stream ended well when its body was read to its end; a read error or timeout
    before then (a connection dropped mid-way, a chunked body cut short) is a retryable
    ``BackendError``, like a dropped connection. A stream past ``caps`` (in all, or in
    one event, however far it has come) is a ``too_large`` one, as in ``read_capped``."""
    parser = SSEParser()
    chunks: list[Any] = []
    result: Any = None
    has_result = False
    received = 0
    try:
        while True:
            data = response.raw.read1(STREAM_READ_BYTES)
            if not data:
                break
            received += len(data)
            if received > caps.total_bytes:
                raise too_large(what, caps.total_bytes)
            new = []
            for message in parser.feed(data):
                if len(message.data) > caps.event_bytes:  # characters: at most as many as bytes
                    raise too_large(f"{what} event", caps.event_bytes, "BACKEND_MAX_EVENT_BYTES")
                payload = sse_payload(message)
                check_storable(payload, f"{what} event")
                if message.event == RESULT:
                    result, has_result = payload, True
                else:
                    new.append(payload)
            if parser.pending_bytes > caps.event_bytes:
                raise too_large(f"{what} event", caps.event_bytes, "BACKEND_MAX_EVENT_BYTES")
            if new:
                chunks.extend(new)
                on_chunks(new)
    except (TimeoutError, urllib3.exceptions.ReadTimeoutError) as exc:
        raise BackendError(f"{what} stream timed out after {round(timeout_s, 1):g}s", "timeout") from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise BackendError(
            f"{what} stream cut after {len(chunks)} chunks: {type(exc).__name__}", "connection"
        ) from exc
    return result if has_result else {"chunks": chunks}


class CallbackTokens:
    """Signed, expiring tokens binding a callback URL to one task attempt. Tokens are
    minted by whichever process dispatches (a worker) and checked by the API: a token
    stamped up to ``leeway_s`` in the future by a clock running ahead is accepted."""

    def __init__(self, secret: bytes, clock: Clock, leeway_s: int = 0) -> None:
        class ClockedSigner(TimestampSigner):
            def get_timestamp(self) -> int:
                return clock.now_ms() // 1000

        self._serializer = URLSafeTimedSerializer(secret, salt="taskfleet-callback", signer=ClockedSigner)
        self._clock = clock
        self._leeway_s = leeway_s

    def issue(self, task_id: str, attempt: int) -> str:
        return self._serializer.dumps([task_id, attempt])

    def url(self, public_url: str, task_id: str, attempt: int) -> str:
        query = urlencode({"token": self.issue(task_id, attempt)})
        return f"{public_url}/api/task/{task_id}?{query}"

    def verify(self, token: str, task_id: str, max_age_s: int) -> CallbackClaim:
        """What the token says: the attempt it was issued for, and when. Raises
        ``Unauthorized`` for a forged token, one older than ``max_age_s`` or stamped
        more than the leeway into the future, and ``Forbidden`` for another task's."""
        try:
            (token_task, attempt), issued = self._serializer.loads(token, return_timestamp=True)
        except (BadSignature, ValueError, TypeError) as exc:
            raise Unauthorized("callback token invalid") from exc
        issued_s = int(issued.timestamp())
        age_s = self._clock.now_ms() // 1000 - issued_s
        if age_s > max_age_s:
            raise Unauthorized("callback token expired")
        if age_s < -self._leeway_s:
            raise Unauthorized(
                f"callback token issued {-age_s}s in the future (clocks may differ by "
                f"{self._leeway_s}s at most: CLOCK_LEEWAY_S)"
            )
        if token_task != task_id:
            raise Forbidden("callback token belongs to another task")
        return CallbackClaim(int(attempt), issued_s)


@dataclass(frozen=True)
class CallbackClaim:
    """A verified callback token: the attempt it was issued for and when (unix s)."""

    attempt: int
    issued_s: int
