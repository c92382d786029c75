"""A demo backend that does real inference: a scikit-learn classifier trained at start on
a data set that scikit-learn ships inside its wheel (the iris flowers, or the 8x8
handwritten digits), served with the seed protocol. Nothing is downloaded at run time.

POST /predict  sync: ``{"task_id", "request": {"type", "payload": {"features": [...]}}}``
               answers ``{"label", "probabilities", "model", "server"}``. Features that
               are not a list of the model's numbers: 400 (not retried).
               ``{"batch": [<predict body>, ...]}``: one vectorised prediction for all;
               answers ``{"results": [...]}``, each item a callback body (an item with
               bad features is FAILED, the others COMPLETED).
               Callback and poll modes: 400, this backend answers synchronously only.
GET  /health   ``{"status": "healthy", "serverId": name, "model": {...}}``

Needs the ``demo`` extra (``pip install 'taskfleet[demo]'``): scikit-learn, NumPy, SciPy.
"""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DATASETS = ("iris", "digits")
#: A versicolor of the iris data set (sepal length, sepal width, petal length, petal width
#: in cm): what ``taskfleet up`` asks the model backend to classify.
IRIS_EXAMPLE = [6.1, 2.8, 4.7, 1.2]


def available() -> bool:
    """Whether scikit-learn is installed (the ``demo`` extra)."""
    return importlib.util.find_spec("sklearn") is not None


class BadFeatures(ValueError):
    """The payload does not hold one row of the model's features."""


@dataclass
class Model:
    """A fitted classifier with what a reader needs to use it."""

    name: str
    dataset: str
    classes: list[str]
    feature_names: list[str]
    accuracy: float
    train_size: int
    estimator: Any

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": f"logistic regression on {self.dataset}, held-out accuracy {self.accuracy:.2f}",
            "classes": self.classes,
            "features": len(self.feature_names),
            "trainedOn": self.train_size,
            "heldOutAccuracy": round(self.accuracy, 4),
        }

    def row(self, payload: Any) -> list[float]:
        """The feature row of a task's payload: ``{"features": [n numbers]}``."""
        features = payload.get("features") if isinstance(payload, dict) else None
        n = len(self.feature_names)
        if (
            not isinstance(features, list)
            or len(features) != n
            or not all(_is_number(value) for value in features)
        ):
            shown = ", ".join(self.feature_names[:4]) + (", ..." if n > 4 else "")
            raise BadFeatures(f"payload.features must be a list of {n} finite numbers ({shown})")
        return [float(value) for value in features]

    def predict(self, rows: list[list[float]]) -> list[dict[str, Any]]:
        """Label and class probabilities of each row, in one call to the estimator."""
        if not rows:
            return []
        answers = []
        for row in self.estimator.predict_proba(rows):
            probabilities = {label: round(float(p), 4) for label, p in zip(self.classes, row, strict=True)}
            label = self.classes[int(row.argmax())]
            answers.append({"label": label, "probabilities": probabilities, "model": self.name})
        return answers


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def train(dataset: str = "iris") -> Model:
    """Fit a scaled logistic regression on 75 % of ``dataset`` (fixed seed, so the same
    model every start) and measure it on the other 25 %. Under a second on one core."""
    from sklearn.datasets import load_digits, load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    loaders = {"iris": load_iris, "digits": load_digits}
    if dataset not in loaders:
        raise ValueError(f"unknown dataset {dataset!r}: one of {', '.join(DATASETS)}")
    data = loaders[dataset]()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, stratify=data.target, random_state=0
    )
    estimator = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    estimator.fit(x_train, y_train)
    return Model(
        name=f"{dataset}-logreg",
        dataset=dataset,
        classes=[str(label) for label in data.target_names],
        feature_names=[str(name) for name in data.feature_names],
        accuracy=float(estimator.score(x_test, y_test)),
        train_size=len(x_train),
        estimator=estimator,
    )


class ModelBackend:
    """Serves one fitted model over HTTP, sync calls and sync batches."""

    def __init__(self, name: str, model: Model, api_key: str | None = None) -> None:
        self.name = name
        self.model = model
        self.api_key = api_key
        #: Sizes of the batches it answered (for tests).
        self.batches: list[int] = []
        self.server: ThreadingHTTPServer | None = None

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The HTTP status and JSON answer to one predict body (single or batch)."""
        items = body.get("batch") if "batch" in body else [body]
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            return 400, {"error": "batch must be a list of predict bodies"}
        if "batch" in body:
            self.batches.append(len(items))
        calls = [item.get("request") if isinstance(item.get("request"), dict) else {} for item in items]
        if any(call.get("async") or call.get("mode", "sync") != "sync" for call in calls):
            return 400, {"error": "this backend answers sync calls only (no callback or poll mode)"}
        rows: list[list[float]] = []
        errors: list[str | None] = []
        for call in calls:
            try:
                rows.append(self.model.row(call.get("payload")))
                errors.append(None)
            except BadFeatures as exc:
                errors.append(str(exc))
        predictions = iter(self.model.predict(rows))
        if "batch" not in body:
            if errors[0] is not None:
                return 400, {"error": errors[0]}
            return 200, {**next(predictions), "server": self.name}
        results = [
            {"status": "FAILED", "error": error}
            if error is not None
            else {"status": "COMPLETED", "result": {**next(predictions), "server": self.name}}
            for error in errors
        ]
        return 200, {"results": results}

    def serve(self, host: str, port: int) -> ThreadingHTTPServer:
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                return

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/health":
                    self._send(
                        200,
                        {"status": "healthy", "serverId": backend.name, "model": backend.model.describe()},
                    )
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path != "/predict":
                    self._send(404, {"error": "not found"})
                    return
                if backend.api_key and self.headers.get("Authorization") != f"Bearer {backend.api_key}":
                    self._send(401, {"error": "bad api key"})
                    return
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    self._send(400, {"error": "body is not JSON"})
                    return
                if not isinstance(body, dict):
                    self._send(400, {"error": "body must be a JSON object"})
                    return
                self._send(*backend.answer(body))

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        return self.server


def run(host: str, port: int, name: str, dataset: str, api_key: str | None) -> None:
    model = train(dataset)
    print(f"model backend {name}: {model.describe()['description']}", flush=True)
    server = ModelBackend(name, model, api_key).serve(host, port)
    print(f"model backend {name} on http://{host}:{port}/predict", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
