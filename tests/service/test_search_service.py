"""The search service over real gRPC on loopback, with a real Annoy index in tmp_path."""

import threading

import grpc
import numpy as np
import pytest

from landmark.v1 import features_pb2, search_pb2, search_pb2_grpc, shard_pb2, shard_pb2_grpc
from landmark.wire import features_to_proto, matrix_to_proto
from landmark_client import Features, ImageToAdd, LandmarkError, SearchClient
from search_service.config import SearchConfig
from search_service.server import create_server
from tests.conftest import sample_photo

PHOTOS = {"astronaut": "astronaut.png", "coffee": "coffee.png", "cat": "chelsea.png"}


@pytest.fixture(scope="module")
def gallery_features(extractor_server):
    from landmark_client import ExtractorClient

    with ExtractorClient(extractor_server) as ex:
        return {label: ex.extract(sample_photo(name)) for label, name in PHOTOS.items()}


@pytest.fixture()
def filled(search, gallery_features):
    search.add_images(
        [
            ImageToAdd(f"{label}.png", label, f, {"k": label})
            for label, f in gallery_features.items()
        ]
    )
    return search


def test_add_search_info_list(filled, landmark):
    info = filled.index_info()
    assert (info.images, info.backend, info.dimension, info.labels) == (3, "sift", 128, 3)
    assert info.descriptors > 1000 and info.bytes_on_disk > 0
    rec = landmark.recognize(sample_photo("coffee.png"), include_matches=True)
    assert rec.label == "coffee" and rec.best.image_id == "coffee.png"
    assert rec.best.metadata == {"k": "coffee"}
    assert rec.best.query_locations.shape == rec.best.database_locations.shape
    assert rec.best.query_locations.shape[0] >= rec.best.inliers
    assert rec.best.transform.shape == (2, 3)
    assert [r.image_id for r in filled.list_images(page_size=2)] == [
        "astronaut.png",
        "cat.png",
        "coffee.png",
    ]


def test_an_unrelated_photo_gets_no_match(filled, landmark):
    rec = landmark.recognize(sample_photo("rocket.jpg"))
    assert not rec.result.match and rec.label is None


def test_remove(filled, landmark):
    assert filled.remove_images(["coffee.png", "ghost"]) == (1, ["ghost"])
    assert landmark.recognize(sample_photo("coffee.png")).label != "coffee"
    assert filled.index_info().images == 2


def test_adding_twice(filled, gallery_features):
    entry = ImageToAdd("coffee.png", "coffee", gallery_features["coffee"])
    with pytest.raises(LandmarkError) as err:
        filled.add_images([entry])
    assert err.value.code is grpc.StatusCode.ALREADY_EXISTS
    assert filled.add_images([entry], on_conflict="skip").skipped == 1
    assert filled.index_info().images == 3


def test_the_index_survives_a_restart(tmp_path, gallery_features):
    cfg = SearchConfig(port=0, metrics_port=0, index_dir=str(tmp_path / "persist"))
    server, port, engine = create_server(cfg)
    with SearchClient(f"127.0.0.1:{port}") as c:
        c.add_images([ImageToAdd("a", "astronaut", gallery_features["astronaut"])])
        before = c.search(gallery_features["astronaut"])
    server.stop(0)
    engine.close()
    server, port, engine = create_server(cfg)
    with SearchClient(f"127.0.0.1:{port}") as c:
        after = c.search(gallery_features["astronaut"])
        assert c.index_info().images == 1
    server.stop(0)
    engine.close()
    assert [(m.image_id, m.inliers) for m in after.candidates] == [
        (m.image_id, m.inliers) for m in before.candidates
    ]


def _raw(search_server):
    return search_pb2_grpc.SearchStub(grpc.insecure_channel(search_server))


def _expect(code, fn, *args, match=""):
    with pytest.raises(grpc.RpcError) as err:
        fn(*args, timeout=10)
    assert err.value.code() is code, err.value.details()
    assert match in err.value.details()
    return err.value.details()


def test_bad_requests_get_clear_statuses_and_the_server_stays_up(
    search_server, filled, gallery_features
):
    stub = _raw(search_server)
    good = features_to_proto(gallery_features["cat"])
    inv = grpc.StatusCode.INVALID_ARGUMENT

    wrong_dim = features_pb2.Features()
    wrong_dim.CopyFrom(good)
    wrong_dim.dimension = 40
    wrong_dim.descriptors.CopyFrom(matrix_to_proto(np.ones((5, 40), np.float32) / 40**0.5))
    wrong_dim.locations.CopyFrom(matrix_to_proto(np.zeros((5, 2), np.float32)))
    wrong_dim.ClearField("scales")
    wrong_dim.ClearField("strengths")
    _expect(
        grpc.StatusCode.FAILED_PRECONDITION,
        stub.Search,
        search_pb2.SearchRequest(features=wrong_dim, top_k=5),
        match="holds sift",
    )
    _expect(
        grpc.StatusCode.FAILED_PRECONDITION,
        stub.AddImages,
        search_pb2.AddImagesRequest(
            images=[search_pb2.ImageEntry(image_id="d", label="x", features=wrong_dim)]
        ),
        match="holds sift",
    )

    nan = features_pb2.Features()
    nan.CopyFrom(good)
    arr = np.frombuffer(nan.descriptors.data, "<f4").copy()
    arr[0] = np.nan
    nan.descriptors.data = arr.tobytes()
    _expect(inv, stub.Search, search_pb2.SearchRequest(features=nan, top_k=5), match="NaN")
    _expect(
        inv,
        stub.AddImages,
        search_pb2.AddImagesRequest(
            images=[search_pb2.ImageEntry(image_id="n", label="x", features=nan)]
        ),
        match="images[0] ('n')",
    )

    short = features_pb2.Features()
    short.CopyFrom(good)
    short.locations.CopyFrom(matrix_to_proto(np.zeros((3, 2), np.float32)))
    _expect(inv, stub.Search, search_pb2.SearchRequest(features=short, top_k=5), match="locations")
    for k in (0, -3):
        _expect(inv, stub.Search, search_pb2.SearchRequest(features=good, top_k=k), match="top_k")
    _expect(inv, stub.Search, search_pb2.SearchRequest(top_k=5), match="features are missing")
    _expect(
        inv,
        stub.AddImages,
        search_pb2.AddImagesRequest(
            images=[search_pb2.ImageEntry(image_id="", label="x", features=good)]
        ),
        match="image_id",
    )
    _expect(inv, stub.ListImages, search_pb2.ListImagesRequest(page_size=-1), match="page_size")

    assert filled.health() == "SERVING"
    assert filled.index_info().images == 3  # nothing half-added


def test_zero_features_answer_no_match(filled):
    empty = Features(
        "sift", np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32), (100, 100)
    )
    result = filled.search(empty)
    assert not result.match and result.candidates == []


def test_search_on_an_empty_index_is_no_match(search, gallery_features):
    assert not search.search(gallery_features["cat"]).match
    assert search.index_info().images == 0 and search.index_info().backend == ""


def test_unreachable_service_raises_landmark_error():
    with SearchClient("127.0.0.1:1", timeout=2) as c:
        with pytest.raises(LandmarkError) as err:
            c.index_info()
    assert err.value.code is grpc.StatusCode.UNAVAILABLE
    assert "is it running" in err.value.details


def test_match_answers_exact_matches_for_the_named_images(search_server, filled, gallery_features):
    """The second half of a coordinated search, asked of one shard directly."""
    stub = shard_pb2_grpc.ShardStub(grpc.insecure_channel(search_server))
    cat = gallery_features["cat"]
    answer = stub.Match(
        shard_pb2.MatchRequest(
            features=features_to_proto(cat), image_ids=["cat.png", "coffee.png", "nowhere.png"]
        ),
        timeout=10,
    )
    got = {m.image_id: m for m in answer.images}
    assert set(got) == {"cat.png", "coffee.png"}  # unknown ids are left out
    same = np.frombuffer(got["cat.png"].query_indices, "<i4")
    # the same photo matches itself keypoint for keypoint, in query order
    assert same.size > 0.9 * len(cat) and (np.diff(same) > 0).all()
    located = np.frombuffer(got["cat.png"].locations.data, "<f4").reshape(-1, 2)
    # stored in steps of 1.5 sides / 65,535 (compact.py): within 0.01 px for this photo
    np.testing.assert_allclose(located, cat.locations[same], atol=0.01)
    assert np.frombuffer(got["coffee.png"].query_indices, "<i4").size < same.size / 5

    inv = grpc.StatusCode.INVALID_ARGUMENT
    _expect(inv, stub.Match, shard_pb2.MatchRequest(image_ids=["cat.png"]), match="missing")
    _expect(
        inv,
        stub.Match,
        shard_pb2.MatchRequest(features=features_to_proto(cat), image_ids=["x"] * 5000),
        match="at most",
    )
    assert filled.health() == "SERVING"


def test_a_full_buffer_refuses_small_adds_with_a_retry_hint(tmp_path, gallery_features):
    config = SearchConfig(
        port=0,
        metrics_port=0,
        index_dir=str(tmp_path / "index"),
        max_growing_descriptors=2500,
        seal_seconds=3600,  # nothing is sealed in this test
        seal_descriptors=1_000_000,
    )
    server, port, engine = create_server(config)
    try:
        with SearchClient(f"127.0.0.1:{port}") as client:
            f = gallery_features["coffee"]
            assert 2 * len(f) <= 2500 < 3 * len(f)  # two fit in the buffer, three do not
            client.add_images([ImageToAdd("one", "coffee", f)])
            client.add_images([ImageToAdd("two", "coffee", f)])
            with pytest.raises(LandmarkError) as refused:
                client.add_images([ImageToAdd("three", "coffee", f)])
            assert refused.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert refused.value.retry_after == 0.5 and "retry" in refused.value.details
            assert [r.image_id for r in client.list_images()] == ["one", "two"]
            assert client.remove_images(["one"]) == (1, [])  # removes are never refused
    finally:
        server.stop(0)
        engine.close()


def test_eval_leaves_out_only_the_photos_whose_features_are_refused(tmp_path):
    from landmark_client.evaluation import add_each_refused_alone
    from tests.service.test_security import features

    config = SearchConfig(
        port=0, metrics_port=0, index_dir=str(tmp_path / "index"), max_add_features=1500
    )
    server, port, engine = create_server(config)
    try:
        with SearchClient(f"127.0.0.1:{port}") as client:
            entries = [ImageToAdd(f"small-{i}", "x", features(i)) for i in range(3)]
            entries.insert(1, ImageToAdd("big", "x", features(9, n=2000)))
            refused = add_each_refused_alone(client, entries)
            assert [i for i, _ in refused] == ["big"]
            assert "above this service's limit of 1500" in refused[0][1]
            assert sorted(r.image_id for r in client.list_images()) == [
                "small-0",
                "small-1",
                "small-2",
            ]
    finally:
        server.stop(0)
        engine.close()


def test_listens_while_the_index_loads_and_serves_once_it_is_loaded(tmp_path, gallery_features):
    from search_service.server import open_engine, start_server

    config = SearchConfig(port=0, metrics_port=-1, index_dir=str(tmp_path / "index"))
    go = threading.Event()

    def slow_load(cfg: SearchConfig):  # noqa: ANN202
        go.wait(30)  # the real load, held back so that the probe sees it in progress
        return open_engine(cfg)

    running, port, loading = start_server(config, load=slow_load)
    try:
        with SearchClient(f"127.0.0.1:{port}", timeout=10) as client:
            assert client.health() == "NOT_SERVING"  # bound: a probe gets an answer
            for call in (client.index_info, lambda: client.search(gallery_features["cat"])):
                with pytest.raises(LandmarkError) as err:
                    call()
                assert err.value.code is grpc.StatusCode.UNAVAILABLE
                assert "is still loading" in err.value.details, err.value.details
            go.set()
            client.wait_ready(timeout=30)
            assert client.health() == "SERVING" and loading.engine is not None
            client.add_images([ImageToAdd("cat.png", "cat", gallery_features["cat"])])
            assert client.search(gallery_features["cat"]).label == "cat"
    finally:
        running.stop(0)
        loading.done.wait(30)
        if loading.engine is not None:
            loading.engine.close()
