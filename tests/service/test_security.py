"""Bearer-token roles, TLS and mutual TLS, with real servers on loopback."""

from __future__ import annotations

import threading
import time

import grpc
import numpy as np
import pytest

from extractor_service.config import ExtractorConfig
from extractor_service.server import create_server as create_extractor
from landmark_client import (
    Connection,
    ExtractorClient,
    Features,
    ImageToAdd,
    LandmarkError,
    SearchClient,
)
from search_service.config import SearchConfig
from search_service.server import create_server as create_search
from tests.conftest import sample_photo
from tests.tls import make_pki

READ_TOKEN = "read-token-0123"
WRITE_TOKEN = "write-token-4567"


def features(seed: int = 0, n: int = 60) -> Features:
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 128)).astype(np.float32)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    loc = rng.uniform(0, 300, size=(n, 2)).astype(np.float32)
    return Features("sift", loc, d, (300, 300))


@pytest.fixture()
def guarded_search(tmp_path):
    cfg = SearchConfig(
        port=0,
        metrics_port=-1,
        index_dir=str(tmp_path / "index"),
        read_tokens=(READ_TOKEN,),
        write_tokens=(WRITE_TOKEN,),
    )
    running, port, engine = create_search(cfg)
    yield f"127.0.0.1:{port}"
    running.stop(0)
    engine.close()


def _client(address: str, token: str | None) -> SearchClient:
    return SearchClient(address, timeout=10, connection=Connection(token=token))


def test_missing_or_wrong_token_is_unauthenticated(guarded_search):
    for token in (None, "not-a-valid-token"):
        with _client(guarded_search, token) as client:
            with pytest.raises(LandmarkError) as err:
                client.index_info()
            assert err.value.code is grpc.StatusCode.UNAUTHENTICATED
            assert "token" in err.value.details or "credentials" in err.value.details
            assert client.health() == "SERVING"  # probes need no token


def test_read_token_reads_but_cannot_write(guarded_search):
    with _client(guarded_search, WRITE_TOKEN) as writer:
        writer.add_images([ImageToAdd("a", "alpha", features(0))])
    with _client(guarded_search, READ_TOKEN) as reader:
        assert reader.index_info().images == 1
        assert reader.search(features(0), top_k=1).candidates[0].image_id == "a"
        with pytest.raises(LandmarkError) as err:
            reader.add_images([ImageToAdd("b", "beta", features(1))])
        assert err.value.code is grpc.StatusCode.PERMISSION_DENIED
        assert "write token" in err.value.details
        with pytest.raises(LandmarkError) as err:
            reader.remove_images(["a"])
        assert err.value.code is grpc.StatusCode.PERMISSION_DENIED
        assert reader.index_info().images == 1


def test_token_from_the_environment(guarded_search, monkeypatch):
    monkeypatch.setenv("LANDMARK_TOKEN", READ_TOKEN)
    with SearchClient(guarded_search, timeout=10) as client:
        assert client.index_info().images == 0


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def _tls_extractor(pki, mutual: bool):
    cfg = ExtractorConfig(
        port=0,
        metrics_port=-1,
        host="127.0.0.1",
        tls_cert=str(pki.server_cert),
        tls_key=str(pki.server_key),
        tls_client_ca=str(pki.ca) if mutual else "",
        backend="sift",
    )
    return create_extractor(cfg)


def test_tls_round_trip(pki):
    running, port, _ = _tls_extractor(pki, mutual=False)
    try:
        conn = Connection(tls=True, ca=pki.ca.read_bytes())
        with ExtractorClient(f"localhost:{port}", timeout=20, connection=conn) as client:
            assert len(client.extract(sample_photo(), max_features=20)) == 20
        # a plaintext client cannot talk to a TLS server
        with ExtractorClient(f"127.0.0.1:{port}", timeout=3, connection=Connection()) as plain:
            with pytest.raises(LandmarkError) as err:
                plain.info()
            assert err.value.code is grpc.StatusCode.UNAVAILABLE
    finally:
        running.stop(0)


def test_mutual_tls_needs_a_client_certificate(pki):
    running, port, _ = _tls_extractor(pki, mutual=True)
    try:
        ca = pki.ca.read_bytes()
        anonymous = Connection(tls=True, ca=ca, retries=0)
        with ExtractorClient(f"localhost:{port}", timeout=5, connection=anonymous) as client:
            with pytest.raises(LandmarkError) as err:
                client.info()
            assert err.value.code is grpc.StatusCode.UNAVAILABLE
        known = Connection(
            tls=True, ca=ca, cert=pki.client_cert.read_bytes(), key=pki.client_key.read_bytes()
        )
        with ExtractorClient(f"localhost:{port}", timeout=20, connection=known) as client:
            assert client.info().backend == "sift"
    finally:
        running.stop(0)


def test_tls_files_are_checked_at_start(tmp_path):
    with pytest.raises(ValueError, match="both a certificate"):
        ExtractorConfig(port=0, tls_cert="x.pem")
    with pytest.raises(OSError, match="cannot read the TLS key"):
        create_extractor(
            ExtractorConfig(
                port=0, metrics_port=-1, tls_cert=str(tmp_path / "c"), tls_key=str(tmp_path / "k")
            )
        )


def test_without_tls_the_default_bind_is_loopback():
    assert ExtractorConfig().bind_host == "127.0.0.1"
    assert SearchConfig().bind_host == "127.0.0.1"
    assert SearchConfig(tls_cert="c", tls_key="k").bind_host == "0.0.0.0"
    # metrics have no auth: loopback, whatever gRPC binds
    assert SearchConfig(tls_cert="c", tls_key="k").metrics_host == "127.0.0.1"


def test_index_file_names_never_come_from_requests(search, tmp_path):
    hostile = ["../../escape", "/etc/passwd", "a/b\\c", "..", "nul\0byte", "x" * 1000]
    search.add_images([ImageToAdd(i, "evil", features(k)) for k, i in enumerate(hostile)])
    assert {r.image_id for r in search.list_images()} == set(hostile)
    names = {p.name for p in tmp_path.rglob("*")}
    assert not any("escape" in n or "passwd" in n for n in names)
    assert not (tmp_path.parent / "escape").exists()


def test_half_sent_unauthenticated_calls_cannot_starve_the_server(guarded_search):
    """100 calls without a token that send their headers and never finish their request
    body: health and an authorised search still answer within a second."""
    release = threading.Event()

    def never_finished():  # a request stream whose first message never comes
        release.wait(30)
        yield from ()

    channel = grpc.insecure_channel(guarded_search)
    half_sent = channel.stream_unary("/landmark.v1.Search/Search")
    calls = [half_sent.future(never_finished(), timeout=30) for _ in range(100)]
    try:
        time.sleep(0.5)  # let every call reach the server
        start = time.monotonic()
        with _client(guarded_search, READ_TOKEN) as client:
            assert client.health() == "SERVING"
            client.search(features(), top_k=1)
        assert time.monotonic() - start < 1.0
        refused = [c.exception(timeout=5) for c in calls]
        assert all(e is not None and e.code() is grpc.StatusCode.UNAUTHENTICATED for e in refused)
    finally:
        release.set()
        channel.close()


def test_the_call_limit_is_decided_before_the_body_and_never_leaks(tmp_path):
    """With max_rpcs 2, two callers that never finish their request hold the two places:
    a third is refused at once (not queued behind them), health still answers, and once
    they give up their places come back."""
    cfg = SearchConfig(port=0, metrics_port=-1, index_dir=str(tmp_path / "i"), max_rpcs=2)
    running, port, engine = create_search(cfg)
    address = f"127.0.0.1:{port}"
    release = threading.Event()

    def never_finished():
        release.wait(30)
        yield from ()

    channel = grpc.insecure_channel(address)
    half_sent = channel.stream_unary("/landmark.v1.Search/Search")
    try:
        held = [half_sent.future(never_finished(), timeout=30) for _ in range(2)]
        time.sleep(0.5)
        with SearchClient(address, timeout=5, connection=Connection(retries=0)) as client:
            start = time.monotonic()
            with pytest.raises(LandmarkError) as err:
                client.search(features(), top_k=1)
            assert err.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert client.health() == "SERVING"
            assert time.monotonic() - start < 1.0
            for call in held:
                call.cancel()
            time.sleep(0.5)
            for _ in range(3):  # both places are free again
                assert client.search(features(), top_k=1).best is None
    finally:
        release.set()
        channel.close()
        running.stop(0)
        engine.close()
