"""The extractor over real gRPC on loopback."""

import re

import grpc
import numpy as np
import pytest

from extractor_service.config import ExtractorConfig
from extractor_service.server import create_server
from landmark.v1 import extractor_pb2, extractor_pb2_grpc
from landmark_client import ExtractorClient, LandmarkError
from tests.conftest import encode, sample_photo
from tests.unit.test_decode import _png_header_only


def test_extract_a_photo(extractor, photo):
    f = extractor.extract(sample_photo(), max_features=300)
    assert f.backend == "sift" and f.dimension == 128 and len(f) == 300
    assert f.image_size == (photo.shape[1], photo.shape[0])
    np.testing.assert_allclose(np.linalg.norm(f.descriptors, axis=1), 1.0, atol=1e-3)
    assert f.scales is not None and f.strengths is not None


def test_locations_are_in_original_pixels_after_server_side_resize(extractor, photo):
    big = np.repeat(np.repeat(photo, 3, axis=0), 3, axis=1)  # 1536 x 1536
    f = extractor.extract(encode(big, "PNG"), max_image_size=512)
    assert f.image_size == (1536, 1536)
    assert f.locations[:, 0].max() > 1000 and f.locations[:, 1].max() > 1000
    small = extractor.extract(encode(photo, "PNG"), max_image_size=512)
    # the same 512-px image reaches the backend, so keypoints agree up to the 3x scale
    np.testing.assert_allclose(
        np.sort(f.locations[:, 0])[:50],
        np.sort((small.locations[:, 0] + 0.5) * 3 - 0.5)[:50],
        atol=3,
    )


def test_image_without_keypoints_is_a_valid_empty_answer(extractor):
    f = extractor.extract(np.full((64, 64, 3), 200, np.uint8))
    assert len(f) == 0 and f.descriptors.shape == (0, 128)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "image is empty"),
        (b"GIF89a" + b"\0" * 20, "not a recognised format|unsupported"),
        (b"\xff\xd8\xff\xe0garbage", "corrupt|not a recognised"),
        (encode(np.zeros((8, 8, 3), np.uint8), "GIF"), "unsupported image format GIF"),
        (_png_header_only(60_000, 60_000), "above this service's limit"),
    ],
)
def test_bad_images_get_invalid_argument_and_the_server_stays_up(extractor, data, message):
    with pytest.raises(LandmarkError) as err:
        extractor.extract(data)
    assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert re.search(message, err.value.details)
    assert extractor.health() == "SERVING"
    assert len(extractor.extract(sample_photo(), max_features=10)) == 10


@pytest.mark.parametrize(
    "options, message",
    [
        ({"max_features": 10**6}, "above this service's limit"),
        ({"max_features": -1}, "must not be negative"),
        ({"max_image_size": 8}, "between 16 and"),
    ],
)
def test_bad_options(extractor, options, message):
    with pytest.raises(LandmarkError, match=message) as err:
        extractor.extract(sample_photo(), **options)
    assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT


def test_stream_answers_in_order_and_reports_bad_items(extractor):
    items = list(
        extractor.extract_many(
            [("a", sample_photo()), ("bad", b"nope"), ("c", sample_photo("coffee.png"))],
            max_features=50,
        )
    )
    assert [i.request_id for i in items] == ["a", "bad", "c"]
    assert len(items[0].features) == 50 and len(items[2].features) == 50
    assert items[1].features is None
    assert items[1].error.code is grpc.StatusCode.INVALID_ARGUMENT


def test_info_and_standard_health(extractor, extractor_server):
    info = extractor.info()
    assert info.backend == "sift" and info.dimension == 128 and "WEBP" in info.formats
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(extractor_server) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for name in ("", "landmark.v1.Extractor"):
            r = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert r.status == health_pb2.HealthCheckResponse.SERVING


def test_oversized_upload_is_refused_with_the_limit():
    server, port, _ = create_server(ExtractorConfig(port=0, metrics_port=0, max_image_bytes=5000))
    try:
        with ExtractorClient(f"127.0.0.1:{port}", timeout=10) as client:
            with pytest.raises(LandmarkError, match="above this service's limit of 5000"):
                client.extract(sample_photo())
    finally:
        server.stop(0)


def test_not_serving_until_the_backend_is_loaded():
    import threading

    gate = threading.Event()

    def slow_backend():
        gate.wait(10)
        from extractor_service.backends.sift import SiftBackend

        return SiftBackend()

    server, port, servicer = create_server(
        ExtractorConfig(port=0, metrics_port=0), slow_backend, wait=False
    )
    try:
        with ExtractorClient(f"127.0.0.1:{port}", timeout=5) as client:
            assert client.health() == "NOT_SERVING"
            with pytest.raises(LandmarkError) as err:
                client.extract(sample_photo())
            assert err.value.code is grpc.StatusCode.UNAVAILABLE
            gate.set()
            client.wait_ready(20)
            assert len(client.extract(sample_photo(), max_features=5)) == 5
    finally:
        server.stop(0)


def test_timeout_is_honoured(extractor_server):
    with grpc.insecure_channel(extractor_server) as ch:
        stub = extractor_pb2_grpc.ExtractorStub(ch)
        with pytest.raises(grpc.RpcError) as err:
            big = encode(np.random.default_rng(0).integers(0, 255, (2000, 2000, 3), np.uint8))
            stub.Extract(extractor_pb2.ExtractRequest(image=big), timeout=0.001)
        assert err.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED


def test_a_dead_replica_is_skipped_with_a_retry(extractor_server):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    with ExtractorClient(f"{dead},{extractor_server}", timeout=20) as client:
        for _ in range(4):  # every other call first meets the dead replica
            assert len(client.extract(sample_photo(), max_features=10)) == 10
        with pytest.raises(LandmarkError) as err:  # writes and health are not retried
            client.health(timeout=2)
            client.health(timeout=2)
        assert err.value.code is grpc.StatusCode.UNAVAILABLE
