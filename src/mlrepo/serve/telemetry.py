"""Prometheus metrics of the service, in a registry of its own (one per app, so tests can build
several apps in one process), and the ASGI middleware that times every request."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Sub-millisecond to seconds: the single-record budget is a few milliseconds.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0
)  # fmt: skip
CONTENT_TYPE = CONTENT_TYPE_LATEST
OTHER = "other"
# A label takes its value from a closed set: a client choosing the method (any token is valid
# HTTP) or the path must not be able to add series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Telemetry:
    """Every metric the service exports."""

    def __init__(self, endpoints: Iterable[str]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.endpoints = frozenset(endpoints)
        r = self.registry
        self.requests = Counter(
            "mlrepo_http_requests", "HTTP requests", ["endpoint", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "mlrepo_http_request_duration_seconds",
            "Time from request received to response started",
            ["endpoint", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "mlrepo_predictions", "Predicted records by predicted class", ["class"], registry=r
        )
        self.model_info = Gauge(
            "mlrepo_model_info",
            "The model being served (value 1)",
            ["name", "version", "backend", "rev", "fallback"],
            registry=r,
        )
        self.drift_share = Gauge(
            "mlrepo_model_drift_share",
            "Share of features the monitor stage found drifted for the served model's revision "
            "(metrics/drift.json share_drifted); NaN when unknown",
            registry=r,
        )
        self.dataset_drift = Gauge(
            "mlrepo_model_dataset_drift",
            "1 if the monitor stage found dataset drift for the served model's revision, 0 if "
            "not (metrics/drift.json dataset_drift); NaN when unknown",
            registry=r,
        )
        self.set_drift(None)
        self.log_queue = Gauge(
            "mlrepo_prediction_log_queue_rows",
            "Predictions waiting to be written to the prediction log",
            registry=r,
        )
        self.log_written = Counter(
            "mlrepo_prediction_log_written_rows", "Predictions written to the log", registry=r
        )
        self.log_dropped = Counter(
            "mlrepo_prediction_log_dropped_rows",
            "Predictions never logged: the buffer was full (oldest dropped), the database was "
            "still unreachable when the shutdown timeout ran out, or the writer process exited "
            "holding them (an upper bound)",
            ["reason"],
            registry=r,
        )
        self.log_spilled = Counter(
            "mlrepo_prediction_log_spilled_rows",
            "Predictions that did not fit in the memory buffer, saved to the spill file",
            registry=r,
        )
        self.log_spill_rows = Gauge(
            "mlrepo_prediction_log_spill_file_rows",
            "Predictions in the spill file, waiting to be written back to the database",
            registry=r,
        )
        self.log_errors = Counter(
            "mlrepo_prediction_log_write_errors",
            "Failed attempts to reach the database",
            registry=r,
        )
        self.log_db_up = Gauge(
            "mlrepo_prediction_log_database_up",
            "1 if the last attempt to reach the prediction-log database succeeded",
            registry=r,
        )
        self.reloads = Counter(
            "mlrepo_model_reloads",
            "Model reloads (POST /admin/reload or SIGHUP) by outcome",
            ["outcome"],
            registry=r,
        )
        for outcome in ("ok", "failed"):
            self.reloads.labels(outcome)
        for reason in ("buffer_full", "shutdown", "writer_exit"):
            self.log_dropped.labels(reason)

    def endpoint(self, path: str) -> str:
        """The label for ``path``: the route, or 'other' (unknown paths must not add series)."""
        return path if path in self.endpoints else OTHER

    @staticmethod
    def method(method: str) -> str:
        return method if method in METHODS else OTHER

    def count_predictions(self, classes: Iterable[object], counts: Iterable[int]) -> None:
        for cls, count in zip(classes, counts, strict=True):
            if count:
                self.predictions.labels(str(cls)).inc(count)

    def set_drift(self, drift: dict[str, Any] | None) -> None:
        """Show the drift verdict of the served model's revision (None or a bad value: NaN)."""
        drift = drift or {}
        self.drift_share.set(_number(drift.get("share_drifted"), 0, 1))
        verdict = drift.get("dataset_drift")  # 0/1, or False/True
        if isinstance(verdict, int | float) and verdict in (0, 1):
            self.dataset_drift.set(float(verdict))
        else:
            self.dataset_drift.set(math.nan)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _number(value: Any, low: float, high: float) -> float:
    """``value`` as a float if it is a real number in [low, high], else NaN."""
    # NaN fails the comparison; a bool is no share.
    if isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high:
        return float(value)
    return math.nan


class MetricsMiddleware:
    """Counts and times each HTTP request by endpoint, method and status (pure ASGI: no
    per-request task or body buffering, unlike Starlette's BaseHTTPMiddleware)."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        started = False

        async def send_and_time(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                self._observe(scope, int(message["status"]), time.perf_counter() - start)
            await send(message)

        try:
            await self.app(scope, receive, send_and_time)
        except Exception:
            if not started:  # the server error middleware outside answers 500
                self._observe(scope, 500, time.perf_counter() - start)
            raise

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        endpoint = self.telemetry.endpoint(scope["path"])
        method = self.telemetry.method(scope["method"])
        self.telemetry.requests.labels(endpoint, method, str(status)).inc()
        self.telemetry.latency.labels(endpoint, str(status)).observe(seconds)
