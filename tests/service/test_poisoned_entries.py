"""Poisoned features are refused at the door, and a candidate whose verification fails is
skipped, never failing the search (real search server on loopback)."""

import grpc
import numpy as np
import pytest

from landmark_client import Features, ImageToAdd, LandmarkError, SearchClient
from search_service.config import SearchConfig
from search_service.engine import SearchEngine
from search_service.search import verify as verification
from search_service.server import create_server as create_search
from tests.e2e.test_durability import features


def poisoned(kind: str) -> Features:
    f = features(1)
    loc, desc, size = f.locations.copy(), f.descriptors.copy(), f.image_size
    if kind == "far locations":
        loc[:] = 1e37
    elif kind == "huge descriptors":
        desc *= 1e30
    elif kind == "no image size":
        size = (0, 0)
    elif kind == "absurd image size":
        size = (10**9, 480)
    return Features(f.backend, loc, desc, size)


@pytest.mark.parametrize(
    "kind, message",
    [
        ("far locations", "lies outside the 640x480 image"),
        ("huge descriptors", "must be L2-normalised"),
        ("no image size", "is not a photo's"),
        ("absurd image size", "is not a photo's"),
    ],
)
def test_poisoned_features_are_refused_at_the_door(search, kind, message):
    search.add_images([ImageToAdd("good", "a", features(0))])
    for call in (
        lambda: search.add_images([ImageToAdd("bad", "b", poisoned(kind))]),
        lambda: search.search(poisoned(kind)),
    ):
        with pytest.raises(LandmarkError, match=message) as err:
            call()
        assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [r.image_id for r in search.list_images()] == ["good"]
    assert search.search(features(0)).best.image_id == "good"


def test_a_candidate_whose_verification_raises_is_skipped(tmp_path, monkeypatch, caplog):
    server, port, engine = create_search(
        SearchConfig(port=0, metrics_port=0, index_dir=str(tmp_path / "index"))
    )
    other = SearchEngine(tmp_path / "other")  # another index in the same process
    try:
        with SearchClient(f"127.0.0.1:{port}", timeout=60) as search:
            _skipped_and_counted(search, engine, other, monkeypatch, caplog)
    finally:
        server.stop(0)
        engine.close()
        other.close()


def _skipped_and_counted(search, engine, other, monkeypatch, caplog):  # noqa: ANN001
    search.add_images([ImageToAdd(f"img-{i}", f"l{i}", features(i)) for i in range(3)])
    real = verification.verify

    def verify(src, dst, frames, params):
        # img-2's locations, as the index keeps them (uint16 steps of a fraction of a pixel)
        if len(src) and np.isclose(dst, features(2).locations[: len(dst)], atol=0.05).all():
            raise np.linalg.LinAlgError("SVD did not converge")
        return real(src, dst, frames, params)

    monkeypatch.setattr(verification, "verify", verify)
    # the query matches img-2 (whose verification raises) and img-0 by construction
    query = features(2)
    mixed = Features(
        query.backend,
        np.concatenate([query.locations[:75], features(0).locations[:75]]),
        np.concatenate([query.descriptors[:75], features(0).descriptors[:75]]),
        query.image_size,
    )
    result = search.search(mixed, top_k=3)
    assert result.best is not None and result.best.image_id == "img-0"
    assert engine.info()["verify_failures"] >= 1  # counted for the index that saw them
    assert other.info()["verify_failures"] == 0  # and for no other
    assert "verifying candidate 'img-2' failed" in caplog.text
