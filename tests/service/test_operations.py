"""What operators rely on: reflection, metrics, request logs, the in-flight limit,
deadlines and graceful shutdown, against real servers on loopback."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from extractor_service.backends.sift import SiftBackend
from extractor_service.config import ExtractorConfig
from extractor_service.server import create_server as create_extractor
from landmark_client import ExtractorClient, ImageToAdd, LandmarkError, SearchClient
from search_service.config import SearchConfig
from search_service.server import create_server as create_search
from serving.logs import JsonFormatter
from tests.conftest import sample_photo
from tests.service.test_security import features


class GatedSift(SiftBackend):
    """SIFT that waits for a gate before each extraction and counts what it ran."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.started = threading.Semaphore(0)
        self.runs = 0

    def extract(self, *args, **kw):
        self.started.release()
        self.gate.wait(30)
        self.runs += 1
        return super().extract(*args, **kw)


@pytest.fixture()
def gated():
    backend = GatedSift()
    backend.gate.set()  # let the warm-up through
    cfg = ExtractorConfig(port=0, metrics_port=0, max_rpcs=2, max_concurrent=1)
    running, port, _ = create_extractor(cfg, lambda: backend)
    backend.gate.set()  # warm-up passed; from here on extractions wait for the gate
    backend.runs = 0
    backend.started = threading.Semaphore(0)
    backend.gate.clear()
    yield backend, running, f"127.0.0.1:{port}"
    backend.gate.set()
    running.stop(0)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {labels} not in metrics")


def test_reflection_lists_the_services(extractor_server, search_server):
    for address, name in [
        (extractor_server, "landmark.v1.Extractor"),
        (search_server, "landmark.v1.Search"),
    ]:
        with grpc.insecure_channel(address) as channel:
            services = ProtoReflectionDescriptorDatabase(channel).get_services()
            assert name in services and "grpc.health.v1.Health" in services
            db = ProtoReflectionDescriptorDatabase(channel)
            assert db.FindFileContainingSymbol(name).name.startswith("landmark/v1/")


def test_metrics_count_requests_by_method_and_status(tmp_path):
    running, port, engine = create_search(
        SearchConfig(port=0, metrics_port=0, index_dir=str(tmp_path / "i"))
    )
    try:
        with SearchClient(f"127.0.0.1:{port}", timeout=10) as client:
            client.add_images([ImageToAdd(f"i{k}", "x", features(k)) for k in range(3)])
            client.search(features(1), top_k=3)
            with pytest.raises(LandmarkError):
                client.search(features(1), top_k=0)
        text = scrape(running.metrics_port)
        search = "/landmark.v1.Search/Search"
        assert metric(text, "landmark_rpc_requests_total", method=search, code="OK") == 1
        bad = metric(text, "landmark_rpc_requests_total", method=search, code="INVALID_ARGUMENT")
        assert bad == 1
        assert metric(text, "landmark_rpc_duration_seconds_count", method=search, code="OK") == 1
        assert metric(text, "landmark_rpc_in_flight", method=search) == 0
        assert metric(text, "landmark_index_images") == 3
        assert metric(text, "landmark_index_descriptors") == 180
        assert metric(text, "landmark_search_candidates_verified_count") == 1
    finally:
        running.stop(0)
        engine.close()


def test_extractor_metrics_and_one_log_line_per_request(extractor_server, caplog):
    caplog.set_level(logging.INFO, logger="landmark.rpc")
    with ExtractorClient(extractor_server, timeout=20) as client:
        client.extract(sample_photo(), max_features=42)
        with pytest.raises(LandmarkError):
            client.extract(b"nope")
    lines = [r for r in caplog.records if r.name == "landmark.rpc"]
    assert [r.code for r in lines] == ["OK", "INVALID_ARGUMENT"]
    for r in lines:
        assert r.method == "/landmark.v1.Extractor/Extract"
        assert r.duration_ms >= 0 and r.peer.startswith("ipv")
        assert re.match(r"rpc method=\S+ code=\w+ duration_ms=[\d.]+ peer=\S+", r.getMessage())
    entry = json.loads(JsonFormatter().format(lines[0]))
    assert {"time", "level", "message", "method", "code", "duration_ms", "peer"} <= set(entry)


def test_calls_beyond_the_limit_are_refused_at_once(gated):
    backend, running, address = gated
    with ExtractorClient(address, timeout=30) as client:
        results: list = []
        threads = [
            threading.Thread(target=lambda: results.append(client.extract(sample_photo())))
            for _ in range(2)
        ]
        for t in threads:
            t.start()
        assert backend.started.acquire(timeout=10)  # one extracting, one waiting for a slot
        time.sleep(0.3)
        start = time.monotonic()
        with pytest.raises(LandmarkError) as err:
            client.extract(sample_photo())
        assert err.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert time.monotonic() - start < 2
        assert client.health() == "SERVING"  # probes are never refused
        backend.gate.set()
        for t in threads:
            t.join(30)
        assert len(results) == 2
    text = scrape(running.metrics_port)
    extract = "/landmark.v1.Extractor/Extract"
    assert metric(text, "landmark_rpc_requests_total", method=extract, code="OK") == 2
    assert (
        metric(text, "landmark_rpc_requests_total", method=extract, code="RESOURCE_EXHAUSTED") == 1
    )


def test_an_expired_call_stops_its_work(gated):
    backend, running, address = gated
    with ExtractorClient(address, timeout=30) as client:
        busy = threading.Thread(target=lambda: client.extract(sample_photo()))
        busy.start()
        assert backend.started.acquire(timeout=10)
        with pytest.raises(LandmarkError) as err:
            client.extract(sample_photo(), timeout=0.5)  # waits for the only slot
        assert err.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
        time.sleep(0.3)
        backend.gate.set()
        busy.join(30)
    time.sleep(0.5)
    assert backend.runs == 1  # the expired call never reached the backend
    text = scrape(running.metrics_port)
    code = metric(
        text,
        "landmark_rpc_requests_total",
        method="/landmark.v1.Extractor/Extract",
        code="DEADLINE_EXCEEDED",
    )
    assert code == 1


def test_a_cancelled_search_stops(tmp_path):
    from search_service.engine import SearchEngine
    from search_service.errors import Cancelled

    engine = SearchEngine(tmp_path / "i", background=False)
    try:
        engine.add([(f"i{k}", "x", {}, features(k)) for k in range(3)])
        with pytest.raises(Cancelled):
            engine.search(features(1), alive=lambda: False)
    finally:
        engine.close()


def test_graceful_shutdown_finishes_calls_in_progress(gated):
    backend, running, address = gated
    with ExtractorClient(address, timeout=30) as client:
        results: list = []
        busy = threading.Thread(target=lambda: results.append(client.extract(sample_photo())))
        busy.start()
        assert backend.started.acquire(timeout=10)
        with grpc.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            request = health_pb2.HealthCheckRequest(service="landmark.v1.Extractor")
            assert health.Check(request, timeout=5).status == health_pb2.HealthCheckResponse.SERVING
            stopped = running.stop(grace=20)
            with pytest.raises(grpc.RpcError) as err:  # new calls are refused
                health.Check(request, timeout=5)
            assert err.value.code() is grpc.StatusCode.UNAVAILABLE
        assert running.health.Check(request, None).status == (
            health_pb2.HealthCheckResponse.NOT_SERVING
        )
        backend.gate.set()
        busy.join(30)
        assert stopped.wait(30)
        assert len(results) == 1 and len(results[0]) > 0  # the call in progress finished


def test_an_unexpected_error_is_internal_and_logged(tmp_path, caplog):
    running, port, engine = create_search(
        SearchConfig(port=0, metrics_port=-1, index_dir=str(tmp_path / "i"))
    )

    def broken():
        raise RuntimeError("disk on fire")

    try:
        engine.info = broken
        with SearchClient(f"127.0.0.1:{port}", timeout=10) as client:
            with pytest.raises(LandmarkError) as err:
                client.index_info()
            assert err.value.code is grpc.StatusCode.INTERNAL
            assert "disk on fire" not in err.value.details  # internals stay in the log
            assert client.health() == "SERVING"
        assert "disk on fire" in caplog.text
    finally:
        running.stop(0)
        engine.close()


def test_a_second_server_on_a_taken_port_refuses_to_start(tmp_path):
    """No SO_REUSEPORT: two search processes never share a port (and split the writes)."""
    from search_service.config import SearchConfig
    from search_service.server import create_server

    first, port, engine = create_server(
        SearchConfig(port=0, metrics_port=-1, index_dir=str(tmp_path / "a"))
    )
    try:
        with pytest.raises(OSError, match="is the port in use"):
            create_server(SearchConfig(port=port, metrics_port=-1, index_dir=str(tmp_path / "b")))
    finally:
        first.stop(0)
        engine.close()
