"""Prometheus metrics of one server, in a registry of its own, served over HTTP."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """RPC counts, latency and in-flight calls by method; services add their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "landmark_rpc_requests",
            "RPCs finished, by method and status code",
            ["method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "landmark_rpc_duration_seconds",
            "RPC duration in seconds, by method and status code",
            ["method", "code"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "landmark_rpc_in_flight",
            "RPCs in progress, by method",
            ["method"],
            registry=self.registry,
        )
        self._http: Any = None

    def histogram(self, name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
        return Histogram(name, doc, buckets=buckets, registry=self.registry)

    def counter(self, name: str, doc: str) -> Counter:
        return Counter(name, doc, registry=self.registry)

    def gauges(self, read: Callable[[], dict[str, float]], prefix: str, docs: dict[str, str]):
        """Gauges read at scrape time: ``read()`` returns {name: value} for names in docs."""
        self.registry.register(_Gauges(read, prefix, docs))

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics on ``host:port`` (0 = any free port); returns the port."""
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        self._http = server
        return int(server.server_port)

    def stop(self) -> None:
        if self._http is not None:
            http, self._http = self._http, None
            threading.Thread(target=http.shutdown, daemon=True).start()


class _Gauges(Collector):
    def __init__(self, read: Callable[[], dict[str, float]], prefix: str, docs: dict[str, str]):
        self.read, self.prefix, self.docs = read, prefix, docs

    def collect(self):
        values = self.read()
        for name, doc in self.docs.items():
            yield GaugeMetricFamily(f"{self.prefix}_{name}", doc, value=float(values[name]))
