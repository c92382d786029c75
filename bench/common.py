"""Small helpers shared by the benchmark parts: percentiles, clients, the profiler."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from bench.stack import BenchStack

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank on sorted values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def summary_ms(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": percentile(values, 50),
        "p90_ms": percentile(values, 90),
        "p99_ms": percentile(values, 99),
        "max_ms": max(values) if values else float("nan"),
        "mean_ms": sum(values) / len(values) if values else float("nan"),
    }


class ApiClient:
    """One ``requests.Session`` per thread, all with the same bearer token."""

    def __init__(self, stack: BenchStack, subject: str, roles: list[str]) -> None:
        self.api = stack.api
        self.token = stack.token(subject, roles)
        self.local = threading.local()

    def session(self) -> requests.Session:
        s = getattr(self.local, "session", None)
        if s is None:
            s = requests.Session()
            s.headers["Authorization"] = f"Bearer {self.token}"
            self.local.session = s
        return s

    def submit(self, body: dict[str, Any], attempts: int = 20) -> str:
        """POST /api/task; the new task's id (a 503 is retried, anything else fails)."""
        for _ in range(attempts):
            r = self.session().post(f"{self.api}/task", json=body, timeout=30)
            if r.status_code == 201:
                return str(r.json()["id"])
            if r.status_code != 503:
                break
            time.sleep(0.2)
        raise RuntimeError(f"submission failed: HTTP {r.status_code} {r.text[:300]}")

    def submit_many(self, bodies: Iterable[dict[str, Any]], threads: int) -> list[str]:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(self.submit, bodies))


def admin_call(stack: BenchStack, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    s = stack.session("bench-admin", ["admin"])
    r = s.request(method, f"{stack.api}{path}", json=body, timeout=30)
    if r.status_code >= 300:
        raise RuntimeError(f"{method} {path}: HTTP {r.status_code} {r.text[:300]}")
    return r.json() if r.content else None


def register_server(stack: BenchStack, backend: Any, **fields: Any) -> None:
    """POST /api/servers for one benchmark backend; ``fields`` are added to the body
    (``endpoints`` merged into the predict and health ones), e.g. ``batch={...}``."""
    endpoints = {"predict": f"{backend.url}/predict", "health": f"{backend.url}/health"}
    endpoints.update(fields.pop("endpoints", {}))
    admin_call(
        stack,
        "POST",
        "/servers",
        {
            "id": backend.name,
            "name": backend.name,
            "maxConcurrent": backend.max_concurrent,
            "capabilities": [backend.capability],
            "endpoints": endpoints,
            **fields,
        },
    )


def ensure_registered(stack: BenchStack, backend: Any) -> None:
    """``register_server`` unless the server is registered already (by an earlier part)."""
    s = stack.session("bench-admin", ["admin"])
    r = s.get(f"{stack.api}/servers/{backend.name}", timeout=30)
    if r.status_code == 404:
        register_server(stack, backend)
    elif r.status_code != 200:
        raise RuntimeError(f"GET /servers/{backend.name}: HTTP {r.status_code} {r.text[:300]}")


def wait_until(
    check: Callable[[], bool], timeout_s: float, what: str, stack: BenchStack, every_s: float = 0.25
) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        stack.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(every_s)


# -- py-spy -------------------------------------------------------------------------


class PySpy:
    """``py-spy record`` of some processes while a block runs (when py-spy is
    installed and asked for); writes collapsed stacks and a summary of the hottest
    taskfleet functions under bench/results/profile-<name>-*.txt."""

    def __init__(self, enabled: bool, name: str, pids: dict[str, int], rate: int = 100) -> None:
        beside = Path(sys.executable).parent / "py-spy"
        self.binary = str(beside) if beside.exists() else shutil.which("py-spy")
        self.enabled = enabled and self.binary is not None
        self.name = name
        self.pids = pids
        self.rate = rate
        self.procs: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        self.summaries: dict[str, list[tuple[str, float]]] = {}

    def __enter__(self) -> PySpy:
        if not self.enabled:
            return self
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        for proc_name, pid in self.pids.items():
            out = RESULTS_DIR / f"profile-{self.name}-{proc_name}.txt"
            argv = [
                str(self.binary),
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(self.rate),
                "--format",
                "raw",
            ]
            argv += ["--output", str(out), "--subprocesses", "--nonblocking"]
            proc = subprocess.Popen(
                argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
            )
            self.procs.append((proc_name, proc, out))
        time.sleep(0.5)
        return self

    def __exit__(self, *_exc: object) -> None:
        for _, proc, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc_name, proc, out in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if out.exists():
                self.summaries[proc_name] = summarize_collapsed(out)
                top = RESULTS_DIR / f"profile-{self.name}-{proc_name}-top.txt"
                top.write_text(
                    "\n".join(f"{share:6.1%}  {frame}" for frame, share in self.summaries[proc_name]) + "\n"
                )


def summarize_collapsed(path: Path, top: int = 40) -> list[tuple[str, float]]:
    """Inclusive share of samples per frame (each frame counted once per stack),
    the hottest first; frames of the benchmark's own idle loops are left in."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        for frame in set(stack.split(";")):
            inclusive[frame] += count
    if not total:
        return []
    return [(frame, n / total) for frame, n in inclusive.most_common(top)]
