"""Property-based fuzzing (hypothesis) of image decoding and of Search and AddImages.

Whatever arrives, the answer is a decoded image or a clear refusal; over gRPC, a status
from the expected set (never INTERNAL or UNKNOWN), and the server keeps serving.
"""

from __future__ import annotations

import io
import struct

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from extractor_service.decode import ImageError, decode_image
from landmark.v1 import features_pb2, search_pb2, search_pb2_grpc
from landmark.wire import features_to_proto
from landmark_client import ImageToAdd, SearchClient
from search_service.config import SearchConfig
from search_service.server import create_server
from tests.service.test_security import features

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _valid_images() -> list[bytes]:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 255, size=(48, 64, 3), dtype=np.uint8)
    out = []
    for fmt in ("PNG", "JPEG", "WEBP", "BMP", "TIFF"):
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format=fmt)
        out.append(buf.getvalue())
    return out


VALID = _valid_images()


def _check_decode(data: bytes) -> None:
    try:
        image = decode_image(data, max_pixels=4_000_000)
    except ImageError as exc:
        assert str(exc)  # a message a person can act on
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.shape[0] * image.shape[1] <= 4_000_000


@FUZZ
@given(st.binary(max_size=4096))
def test_decode_arbitrary_bytes(data):
    _check_decode(data)


@FUZZ
@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=12),
    st.integers(0, 10**6),
)
def test_decode_mutated_images(original, flips, cut):
    data = bytearray(original)
    for pos, value in flips:
        data[pos % len(data)] = value
    _check_decode(bytes(data[: max(1, cut % (len(data) + 1))]))


@FUZZ
@given(st.integers(0, 70000), st.integers(0, 70000))
def test_decode_lying_png_header(width, height):
    png = VALID[0]
    data = png[:16] + struct.pack(">II", width, height) + png[24:]
    _check_decode(data)


# -- gRPC ------------------------------------------------------------------------------

ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
}


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    running, port, engine = create_server(
        SearchConfig(port=0, metrics_port=-1, index_dir=str(folder / "index"), max_top_k=50)
    )
    address = f"127.0.0.1:{port}"
    with SearchClient(address) as client:
        client.add_images([ImageToAdd(f"seed{k}", "seed", features(k)) for k in range(4)])
    channel = grpc.insecure_channel(address)
    yield search_pb2_grpc.SearchStub(channel), address
    channel.close()
    running.stop(0)
    engine.close()


def matrices():
    shape = st.lists(st.integers(-3, 300), max_size=4)
    return st.builds(
        lambda s, d: features_pb2.Float32Matrix(shape=s, data=d),
        shape,
        st.one_of(
            st.binary(max_size=2048),
            st.integers(0, 200).map(
                lambda n: np.random.default_rng(n).normal(size=n * 2).astype("<f4").tobytes()
            ),
        ),
    )


def raw_features():
    return st.builds(
        features_pb2.Features,
        backend=st.sampled_from(["sift", "delf", "", "x" * 300]),
        dimension=st.sampled_from([128, 40, 0, -1, 2, 10**6]),
        locations=matrices(),
        descriptors=matrices(),
        scales=st.one_of(st.none(), matrices()),
        image_width=st.integers(-5, 100000),
        image_height=st.integers(-5, 100000),
    )


def near_valid_features():
    """Valid features with one field broken: deeper paths than random bytes reach."""

    def build(seed, n, what, value):
        msg = features_to_proto(features(seed, n))
        if what == "nan":
            arr = np.frombuffer(msg.descriptors.data, "<f4").copy()
            if arr.size:
                arr[value % arr.size] = np.nan
            msg.descriptors.data = arr.tobytes()
        elif what == "inf location":
            arr = np.frombuffer(msg.locations.data, "<f4").copy()
            if arr.size:
                arr[value % arr.size] = np.inf
            msg.locations.data = arr.tobytes()
        elif what == "size":
            msg.image_width = value - 50
        elif what == "count":
            msg.locations.shape[0] = value
        return msg

    return st.builds(
        build,
        st.integers(0, 50),
        st.integers(0, 80),
        st.sampled_from(["none", "nan", "inf location", "size", "count"]),
        st.integers(0, 100),
    )


def _expect_allowed(call, request):
    try:
        call(request, timeout=20)
    except grpc.RpcError as err:
        assert err.code() in ALLOWED, (err.code(), err.details())
        assert err.details()


@FUZZ
@given(
    st.one_of(raw_features(), near_valid_features()),
    st.integers(-5, 200),
    st.integers(-5, 200),
    st.integers(-5, 200),
    st.lists(st.text(max_size=20), max_size=5),
    st.booleans(),
)
def test_fuzz_search(fuzz_server, feats, top_k, shortlist, min_inliers, exclude, matches):
    stub, _ = fuzz_server
    request = search_pb2.SearchRequest(
        features=feats,
        top_k=top_k,
        options=search_pb2.SearchOptions(
            shortlist=shortlist,
            min_inliers=min_inliers,
            exclude_image_ids=exclude,
            include_matches=matches,
        ),
    )
    _expect_allowed(stub.Search, request)


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.text(max_size=40),
            st.text(max_size=20),
            st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3),
            st.one_of(raw_features(), near_valid_features()),
        ),
        max_size=4,
    ),
    st.integers(-2, 5),
)
def test_fuzz_add_images(fuzz_server, entries, on_conflict):
    stub, _ = fuzz_server
    request = search_pb2.AddImagesRequest(on_conflict=on_conflict)
    for image_id, label, metadata, feats in entries:
        request.images.add(image_id=image_id, label=label, metadata=metadata, features=feats)
    _expect_allowed(stub.AddImages, request)


def test_the_fuzzed_server_still_answers(fuzz_server):
    _, address = fuzz_server
    with SearchClient(address, timeout=20) as client:
        assert client.health() == "SERVING"
        result = client.search(features(2), top_k=3)
        assert result.candidates and result.candidates[0].image_id == "seed2"
