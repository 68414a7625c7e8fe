"""Prometheus metrics of the service, on their own registry and port.

The names are a contract with the config repo's alert rules and dashboards: change them there
in the same release. ``route`` labels are the route templates (never raw paths), so a scan of
random URLs cannot explode the series count.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from collections.abc import Iterable

import numpy as np
import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

# Why a protective limit refused a request (guard.py, http_limits.py).
REJECT_REASONS = (
    "overload",
    "timeout",
    "body_too_large",
    "body_budget",
    "body_timeout",
    "header_timeout",
    "headers_too_large",
    "too_many_headers",
)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 … 0.95, then +Inf

prometheus_client.disable_created_metrics()


class ScoreHistogram(Collector):
    """``prediction_score``: a histogram fed a whole batch of scores per call.

    A 10,000-row batch would cost ~10 ms through ``Histogram.observe`` row by row; NumPy
    bins it in microseconds.
    """

    def __init__(self, name: str, documentation: str, buckets: Iterable[float]):
        self.name = name
        self.documentation = documentation
        self.bounds = np.array(list(buckets), dtype=np.float64)
        self._bounds = self.bounds.tolist()
        self.counts = np.zeros(len(self.bounds) + 1, dtype=np.int64)
        self.total = 0.0
        self.lock = threading.Lock()

    def observe_many(self, scores: np.ndarray) -> None:
        if len(scores) == 1:  # the common single-row request: skip the array machinery
            value = float(scores[0])
            index = bisect.bisect_left(self._bounds, value)
            with self.lock:
                self.counts[index] += 1
                self.total += value
            return
        # side="left": a score equal to a bound falls in that bucket (le is inclusive).
        binned = np.bincount(
            np.searchsorted(self.bounds, scores, side="left"), minlength=len(self.counts)
        )
        total = float(scores.sum())
        with self.lock:
            self.counts += binned
            self.total += total

    def collect(self) -> Iterable[HistogramMetricFamily]:
        with self.lock:
            cumulative = np.cumsum(self.counts).tolist()
            total = self.total
        family = HistogramMetricFamily(self.name, self.documentation)
        bounds = [*(repr(float(b)) for b in self.bounds), "+Inf"]
        family.add_metric([], list(zip(bounds, cumulative, strict=True)), total)
        return [family]

    def describe(self) -> Iterable[HistogramMetricFamily]:
        return [HistogramMetricFamily(self.name, self.documentation)]


class RequestMetrics(Collector):
    """``http_requests_total{route,method,status}`` and ``http_request_duration_seconds``.

    prometheus_client's Counter and Histogram take a lock per value (three for one request):
    a tenth of a one-row prediction's own cost. Plain counters under one lock do the same job
    and expose the same series.
    """

    def __init__(self, buckets: Iterable[float]):
        self.bounds = [float(b) for b in buckets]
        self.lock = threading.Lock()
        self.counts: dict[tuple[str, str, int], int] = {}
        # per (route, method): a count per bucket, one for +Inf, then the sum of seconds
        self.latency: dict[tuple[str, str], list[float]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        index = bisect.bisect_left(self.bounds, seconds)  # le is inclusive
        key = (route, method, status)
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1
            cell = self.latency.get(key[:2])
            if cell is None:
                cell = self.latency[key[:2]] = [0] * (len(self.bounds) + 2)
            cell[index] += 1
            cell[-1] += seconds

    def collect(self) -> Iterable[Metric]:
        with self.lock:
            counts = dict(self.counts)
            latency = {key: list(cell) for key, cell in self.latency.items()}
        requests = CounterMetricFamily(
            "http_requests", "HTTP requests answered", labels=["route", "method", "status"]
        )
        for (route, method, status), count in counts.items():
            requests.add_metric([route, method, str(status)], count)
        duration = HistogramMetricFamily(
            "http_request_duration_seconds",
            "Time from the first byte of the request to the end of the response",
            labels=["route", "method"],
        )
        bounds = [*(floatToGoString(b) for b in self.bounds), "+Inf"]
        for (route, method), cell in latency.items():
            cumulative = zip(bounds, itertools.accumulate(cell[:-1]), strict=True)
            duration.add_metric([route, method], list(cumulative), cell[-1])
        return [requests, duration]

    def describe(self) -> Iterable[Metric]:
        return [
            CounterMetricFamily("http_requests", "HTTP requests answered"),
            HistogramMetricFamily("http_request_duration_seconds", ""),
        ]


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = RequestMetrics(LATENCY_BUCKETS)
        r.register(self.requests)
        self.in_flight = Gauge("http_requests_in_flight", "HTTP requests being served", registry=r)
        self.rejected = Counter(
            "http_requests_rejected",
            "Requests refused by a protective limit, by reason",
            ["reason"],
            registry=r,
        )
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        self.score = ScoreHistogram(
            "prediction_score", "Predicted probability p_hat", SCORE_BUCKETS
        )
        r.register(self.score)
        self.model_info = Gauge(
            "model_info", "The served model (value is always 1)", ["version", "sha256"], registry=r
        )
        self.model_ready = Gauge("model_ready", "1 when the model is loaded and warmed", registry=r)
        self.observe_request = self.requests.observe

    def set_model(self, version: str, sha256: str) -> None:
        self.model_info.clear()
        self.model_info.labels(version, sha256).set(1)

    def start_server(self, port: int, host: str) -> None:
        """Serve ``/metrics`` from a daemon thread: it answers even when the event loop is busy."""
        prometheus_client.start_http_server(port, addr=host, registry=self.registry)
