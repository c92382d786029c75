"""The demo backend that does real inference: a scikit-learn model trained at start on
data scikit-learn ships. It answers real predictions over the seed protocol, in-process;
on the Procfile's real stack it takes batches of classify tasks; and ``taskfleet up``
starts it, registers it and prints a classify task completing."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import suppress

import pytest
import requests

from app.demo_model import IRIS_EXAMPLE, ModelBackend, available, train
from app.devstack import free_port
from tests.conftest import ROOT, _unavailable
from tests.test_stack import stack, wait_final  # noqa: F401 - the fixture is used by name

SETOSA = [5.1, 3.5, 1.4, 0.2]
VIRGINICA = [6.7, 3.0, 5.2, 2.3]


@pytest.fixture(scope="module")
def iris():
    if not available():
        _unavailable("scikit-learn (the demo extra)", RuntimeError("not installed"))
    return train("iris")


@pytest.fixture
def model_backend(iris) -> Iterator[tuple[ModelBackend, str]]:
    """The model backend on a real HTTP server in a thread: (backend, base URL)."""
    backend = ModelBackend("model-test", iris)
    port = free_port()
    server = backend.serve("127.0.0.1", port)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield backend, f"http://127.0.0.1:{port}"
    server.shutdown()
    server.server_close()


def predict_body(features, **request):
    return {
        "task_id": "t-1",
        "request": {"type": "classify", "payload": {"features": features}, "mode": "sync", **request},
        "callback_url": "http://127.0.0.1:1/unused",
    }


def test_the_model_backend_answers_real_predictions(model_backend):
    _backend, base = model_backend
    health = requests.get(f"{base}/health", timeout=5).json()
    assert health["status"] == "healthy" and health["serverId"] == "model-test"
    assert health["model"]["classes"] == ["setosa", "versicolor", "virginica"]
    assert health["model"]["features"] == 4 and health["model"]["heldOutAccuracy"] >= 0.9
    for features, label in ((SETOSA, "setosa"), (IRIS_EXAMPLE, "versicolor"), (VIRGINICA, "virginica")):
        r = requests.post(f"{base}/predict", json=predict_body(features), timeout=5)
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["label"] == label and answer["server"] == "model-test"
        assert answer["model"] == "iris-logreg"
        probabilities = answer["probabilities"]
        assert set(probabilities) == {"setosa", "versicolor", "virginica"}
        assert max(probabilities, key=probabilities.get) == label
        assert abs(sum(probabilities.values()) - 1) < 1e-3


def test_a_batch_is_one_prediction_and_a_bad_item_fails_alone(model_backend):
    _backend, base = model_backend
    items = [predict_body(SETOSA), predict_body([1, 2]), predict_body(VIRGINICA)]
    r = requests.post(f"{base}/predict", json={"batch": items}, timeout=5)
    assert r.status_code == 200, r.text
    first, bad, last = r.json()["results"]
    assert first["status"] == "COMPLETED" and first["result"]["label"] == "setosa"
    assert bad == {"status": "FAILED", "error": bad["error"]} and "list of 4 finite numbers" in bad["error"]
    assert last["status"] == "COMPLETED" and last["result"]["label"] == "virginica"


@pytest.mark.parametrize(
    "body",
    [
        predict_body([1, 2, 3]),
        predict_body([1, 2, 3, "4"]),
        predict_body([1, 2, 3, True]),
        {"task_id": "t", "request": {"type": "classify", "payload": None}},
        '{"task_id": "t", "request": {"type": "classify", "payload": {"features": [1, NaN, 1, 1]}}}',
        '{"task_id": "t", "request": {"type": "classify", "payload": {"features": [1, 1, Infinity, 1]}}}',
        predict_body(SETOSA, mode="poll"),
        predict_body(SETOSA, mode="callback", **{"async": True}),
        {"batch": "not a list"},
    ],
)
def test_what_the_model_cannot_answer_is_a_400_not_retried(model_backend, body):
    _backend, base = model_backend
    sent = {"data": body} if isinstance(body, str) else {"json": body}  # raw: NaN is not JSON
    r = requests.post(f"{base}/predict", **sent, timeout=5)
    assert r.status_code == 400 and r.json()["error"]


def test_the_api_key_is_required_when_set_and_bad_bodies_are_refused(model_backend):
    backend, base = model_backend
    backend.api_key = "model-key"
    assert requests.post(f"{base}/predict", json=predict_body(SETOSA), timeout=5).status_code == 401
    headers = {"Authorization": "Bearer model-key"}
    r = requests.post(f"{base}/predict", json=predict_body(SETOSA), headers=headers, timeout=5)
    assert r.status_code == 200 and r.json()["label"] == "setosa"
    r = requests.post(f"{base}/predict", data=b"<html>", headers=headers, timeout=5)
    assert r.status_code == 400
    assert requests.post(f"{base}/predict", json=[1], headers=headers, timeout=5).status_code == 400
    assert requests.get(f"{base}/nowhere", timeout=5).status_code == 404


def test_the_digits_model_reads_handwritten_digits(iris):
    from sklearn.datasets import load_digits

    digits = train("digits")
    assert digits.describe()["features"] == 64 and digits.describe()["heldOutAccuracy"] >= 0.9
    data = load_digits()
    rows = [digits.row({"features": list(image)}) for image in data.data[:50]]
    labels = [answer["label"] for answer in digits.predict(rows)]
    assert sum(label == str(truth) for label, truth in zip(labels, data.target[:50], strict=True)) >= 45


def test_a_batching_model_server_completes_classify_tasks_on_the_procfile_stack(stack, token, iris):  # noqa: F811
    """The real dispatcher sends batches of classify tasks to the model; one bad payload
    fails only its own task."""
    api = stack[0]
    admin = {"Authorization": f"Bearer {token('root', ('admin',))}"}
    client = {"Authorization": f"Bearer {token('alice')}"}
    backend = ModelBackend("model-1", iris, api_key="model-key")
    port = free_port()
    server = backend.serve("127.0.0.1", port)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        base = f"http://127.0.0.1:{port}"
        body = {
            "id": "model-1",
            "name": "model",
            "apiKey": "model-key",
            "capabilities": ["classify"],
            "maxConcurrent": 4,
            "batch": {"maxSize": 4, "maxWaitMs": 500},
            "endpoints": {"predict": f"{base}/predict", "health": f"{base}/health"},
        }
        assert requests.post(f"{api}/servers", json=body, headers=admin, timeout=5).status_code == 201
        flowers = [SETOSA, IRIS_EXAMPLE, VIRGINICA] * 3 + [[1, 2]]
        ids = []
        for features in flowers:
            task = {"type": "classify", "payload": {"features": features}, "capabilities": ["classify"]}
            r = requests.post(f"{api}/task", json={**task, "maxRetries": 0}, headers=client, timeout=5)
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        done = [wait_final(api, client, task_id, timeout_s=60) for task_id in ids]
        assert [task["status"] for task in done] == ["COMPLETED"] * 9 + ["FAILED"]
        labels = [task["result"]["label"] for task in done[:9]]
        assert labels == ["setosa", "versicolor", "virginica"] * 3
        assert all(task["result"]["server"] == "model-1" for task in done[:9])
        assert "list of 4 finite numbers" in str(done[-1]["error"])
        assert sum(backend.batches) == 10 and max(backend.batches) <= 4  # its free slots at most
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.timeout(300)
def test_taskfleet_up_starts_the_model_backend_and_prints_a_classify_task_completing(tmp_path, iris):
    """What ``make run`` shows: the real command, embedded Redis and SQLite, the Procfile's
    processes, both demo backends and their tasks; SIGTERM stops all it started."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("REDIS_URL", "DATABASE_URL", "JWT_SECRET_KEY", "TASKFLEET_HOME", "PUBLIC_URL")
    }
    env.update(PORT=str(free_port()), PYTHONUNBUFFERED="1", WORKER_CONCURRENCY="20", WEB_CONCURRENCY="1")
    command = [str(ROOT / ".venv" / "bin" / "taskfleet"), "up", "--no-flower", "--home", str(tmp_path)]
    if not os.path.exists(command[0]):
        command[0] = os.path.join(os.path.dirname(sys.executable), "taskfleet")
    up = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert up.stdout is not None
        for line in up.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Ctrl-C stops everything"):
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        ready.wait(240)
        output = "\n".join(lines)
        assert ready.is_set(), output
        assert "model backend registered: model-1" in output, output
        assert "(capability 'classify'; logistic regression on iris, held-out accuracy" in output
        classify = [line for line in lines if line.startswith("  classify task ")]
        assert classify and classify[-1].endswith(": COMPLETED"), output
        result = lines[lines.index(classify[-1]) + 1]
        assert result.startswith("  result: {") and "'label': 'versicolor'" in result, output
        assert "'server': 'model-1'" in result
        assert sum(line.endswith(": COMPLETED") for line in lines) == 3  # sync, callback, classify
        assert "demo-model.log" in os.listdir(tmp_path / "logs")
        # The embedded Redis wants a password: the stack got it, the output shows it masked.
        assert re.search(r"^redis    redis://:\*\*\*@127\.0\.0\.1:\d+/0$", output, re.M), output
    finally:
        with suppress(ProcessLookupError):
            up.send_signal(signal.SIGTERM)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(up.pid, signal.SIGKILL)
            up.wait()
        reader.join(5)
    assert up.returncode == 0 and "stopping..." in lines
    model_port = int(re.search(r"model-1 at 127\.0\.0\.1:(\d+)", output).group(1))
    for port in (int(env["PORT"]), model_port):  # the API and the model backend are gone
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
