"""Shards that share one codebook rank like one index holding the same images with it:
real search servers and a coordinator on loopback, every image sealed into segments with
words (shortlisted by them, not by Annoy's trees)."""

from __future__ import annotations

import time

import grpc
import numpy as np
import pytest

from landmark_client import Features, ImageToAdd, LandmarkError, SearchClient
from search_service.config import SearchConfig
from search_service.coordinator import CoordinatorConfig, create_server
from search_service.index import vocabulary
from search_service.index.store_settings import StoreSettings
from search_service.index.wiring import Index
from search_service.index.writing import OnConflict, Writer
from search_service.server import create_server as create_search

LANDMARKS = 12
POINTS = 150


def photo(landmark: int, view: int) -> Features:
    """One view of a synthetic landmark: its points' descriptors with a little noise, at
    their places shifted and scaled a little (a similarity verification recovers)."""
    base = np.random.default_rng(landmark)
    d = base.normal(size=(POINTS, 128)).astype(np.float32)
    loc = base.uniform(20, 280, size=(POINTS, 2)).astype(np.float32)
    rng = np.random.default_rng(1000 * landmark + view)
    d = d + rng.normal(scale=0.25, size=d.shape).astype(np.float32)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    loc = loc * (1 + 0.02 * view) + rng.normal(scale=0.5, size=loc.shape) + 3 * view
    return Features("sift", loc.astype(np.float32), d, (400, 400))


def gallery() -> list[ImageToAdd]:
    return [
        ImageToAdd(f"l{k}-v{v}", f"l{k}", photo(k, v)) for k in range(LANDMARKS) for v in range(2)
    ]


def fitted_codebook(folder, words: int = 16) -> str:
    """A codebook fitted by the command operators use, on an index of the gallery."""
    sample = folder / f"sample-{words}"
    index = Index(sample, StoreSettings(codebook_min_rows=10**9), background=False)
    Writer(index.store).add(
        [(im.image_id, im.label, {}, im.features) for im in gallery()],
        ("sift", 128),
        OnConflict.ERROR,
    )
    index.sealer.seal()
    index.close()
    out = folder / f"words-{words}"
    assert vocabulary.main([str(sample), str(out), "--words", str(words)]) == 0
    return str(out)


def serve(folder, name: str, codebook: str, shard: int = -1):
    cfg = SearchConfig(
        port=0,
        metrics_port=-1,
        index_dir=str(folder / name),
        shard_index=shard,
        codebook=codebook,
        seal_descriptors=POINTS,  # a segment per photo or two: everything sealed, with words
        idle_merge_seconds=0,
    )
    return create_search(cfg)


def settle(client: SearchClient) -> None:
    deadline = time.monotonic() + 60
    while not client.index_info().settled:
        assert time.monotonic() < deadline, "the index never settled"
        time.sleep(0.1)


def ranking(client: SearchClient, query: Features) -> list[tuple[str, int]]:
    return [(c.image_id, c.inliers) for c in client.search(query, top_k=5).candidates]


@pytest.fixture()
def servers():
    running = []
    yield running
    for server, _, engine in running:
        server.stop(0)
        engine.close()


def test_shards_with_one_codebook_rank_like_one_index(tmp_path, servers):
    words = fitted_codebook(tmp_path)
    servers += [serve(tmp_path, f"s{i}", words, shard=i) for i in range(2)]
    servers.append(serve(tmp_path, "single", words))
    shards = [f"127.0.0.1:{port}" for _, port, _ in servers[:2]]
    coordinator, port, servicer = create_server(
        CoordinatorConfig(port=0, metrics_port=-1, shards=tuple(shards))
    )
    try:
        with (
            SearchClient(f"127.0.0.1:{port}", timeout=30) as co,
            SearchClient(f"127.0.0.1:{servers[2][1]}", timeout=30) as one,
        ):
            assert co.add_images(gallery()).added == one.add_images(gallery()).added == 24
            for client in (one, *(SearchClient(a) for a in shards)):
                settle(client)
            info = one.index_info()
            assert info.growing_descriptors == 0 and info.codebook_version
            # in memory: an inverted file entry (4 + 16 bytes) per image and word at most,
            # and the codebook; the int8 rows and locations (132 bytes each) stay on disk
            assert info.memory_bytes_per_descriptor <= 32 < info.bytes_per_descriptor
            assert co.index_info().codebook_version == info.codebook_version
            # every segment is shortlisted by its words: no trees were written
            engine = servers[2][2]
            assert all(s.annoy is None and s.inverted for s in engine.store.view.segments)
            for k in range(LANDMARKS):
                query = photo(k, 7)
                expected = ranking(one, query)
                assert {i for i, _ in expected[:2]} == {f"l{k}-v0", f"l{k}-v1"}
                assert ranking(co, query) == expected, k
    finally:
        coordinator.stop(0)
        servicer.shards.close()


def test_a_coordinator_refuses_shards_whose_codebooks_differ(tmp_path, servers):
    servers += [
        serve(tmp_path, f"s{i}", fitted_codebook(tmp_path, 8 * (i + 1)), i) for i in range(2)
    ]
    shards = [f"127.0.0.1:{port}" for _, port, _ in servers]
    coordinator, port, servicer = create_server(
        CoordinatorConfig(port=0, metrics_port=-1, shards=tuple(shards))
    )
    try:
        with SearchClient(f"127.0.0.1:{port}", timeout=30) as co:
            co.add_images(gallery())
            for address in shards:
                settle(SearchClient(address))
            with pytest.raises(LandmarkError) as err:
                co.search(photo(0, 7))
            assert err.value.code is grpc.StatusCode.FAILED_PRECONDITION
            assert "same --codebook" in err.value.details
    finally:
        coordinator.stop(0)
        servicer.shards.close()


def test_an_index_with_other_words_than_the_codebook_given_is_refused(tmp_path):
    first, second = fitted_codebook(tmp_path, 8), fitted_codebook(tmp_path, 16)
    server, port, engine = serve(tmp_path, "index", first)
    with SearchClient(f"127.0.0.1:{port}", timeout=30) as client:
        client.add_images(gallery()[:4])
        settle(client)
    server.stop(0)
    engine.close()
    with pytest.raises(Exception, match="--codebook"):
        serve(tmp_path, "index", second)
