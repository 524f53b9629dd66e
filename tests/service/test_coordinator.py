"""The coordinator over real shard servers in this process (loopback, port 0)."""

from __future__ import annotations

import time

import grpc
import pytest

from landmark_client import ImageToAdd, LandmarkError, SearchClient
from search_service.config import SearchConfig
from search_service.coordinator import CoordinatorConfig, create_server
from search_service.coordinator import shards as coordinator_mod
from search_service.server import create_server as create_search
from search_service.sharding import shard_of
from tests.service.test_security import READ_TOKEN, WRITE_TOKEN, features


def test_shard_of_is_stable_and_spreads():
    # fixed values (the first 8 bytes of SHA-256, big-endian, modulo the shard count): a
    # change here would move every stored image to another shard
    assert [shard_of(f"img-{i}", 3) for i in range(8)] == [1, 2, 2, 2, 0, 1, 2, 1]
    assert [shard_of(f"img-{i}", 5) for i in range(8)] == [2, 4, 0, 4, 1, 2, 0, 0]
    assert [shard_of("eiffel/1.jpg", n) for n in (1, 2, 3, 4, 7)] == [0, 1, 1, 3, 0]
    counts = [0, 0, 0]
    for i in range(3000):
        counts[shard_of(f"photo-{i}.jpg", 3)] += 1
    assert min(counts) > 900


def start_shards(folder, numbers: list[int]) -> list:  # noqa: ANN001
    """Search servers in this process serving the given shard numbers (one folder each,
    the tokens of test_security); (server, port, engine) each."""
    running = []
    for n, i in enumerate(numbers):
        cfg = SearchConfig(
            port=0,
            metrics_port=-1,
            index_dir=str(folder / f"s{n}"),
            shard_index=i,
            read_tokens=(READ_TOKEN,),
            write_tokens=(WRITE_TOKEN,),
        )
        running.append(create_search(cfg))
    return running


def stop_shards(running: list) -> None:
    for server, _, engine in running:
        server.stop(0)
        engine.close()


@pytest.fixture()
def shards(tmp_path):
    running = start_shards(tmp_path, [0, 1, 2])
    yield [f"127.0.0.1:{port}" for _, port, _ in running]
    stop_shards(running)


def test_shards_found_by_dns_are_ordered_by_their_own_index(shards, monkeypatch):
    # DNS is the one thing faked: the name "resolves" to the shards in a shuffled order
    monkeypatch.setattr(coordinator_mod, "resolve", lambda name: [shards[2], shards[0], shards[1]])
    cfg = CoordinatorConfig(
        port=0,
        metrics_port=-1,
        shards_dns="search.example:50052",
        shard_count=3,
        shard_token=READ_TOKEN,
    )
    running, port, servicer = create_server(cfg)
    try:
        assert [servicer.shards.address(i) for i in range(3)] == shards
        # two landmarks, each with photos on several shards
        images = [ImageToAdd(f"img-{k}", f"l{k % 2}", features(k)) for k in range(9)]
        from landmark_client import Connection

        with SearchClient(
            f"127.0.0.1:{port}", timeout=20, connection=Connection(token=WRITE_TOKEN)
        ) as client:
            assert client.add_images(images).added == 9
            for i, address in enumerate(shards):
                with SearchClient(address, connection=Connection(token=READ_TOKEN)) as one:
                    held = {r.image_id for r in one.list_images()}
                assert held == {im.image_id for im in images if shard_of(im.image_id, 3) == i}
            info = client.index_info()
            assert (info.images, info.shards) == (9, 3)
            assert info.labels == 2  # distinct across shards, not summed per shard
            deadline = time.monotonic() + 30  # every shard seals its buffer (nothing to merge)
            while not client.index_info().settled and time.monotonic() < deadline:
                time.sleep(0.1)
            assert client.index_info().settled
            assert [r.image_id for r in client.list_images(page_size=4)] == sorted(
                im.image_id for im in images
            )
            assert client.search(features(4), top_k=1).best.image_id == "img-4"
        # the halves of a search (landmark.v1.Shard) are asked of shards; a coordinator
        # does not offer that service at all
        from landmark.v1 import search_pb2, search_pb2_grpc, shard_pb2, shard_pb2_grpc

        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = search_pb2_grpc.SearchStub(channel)
        shard = shard_pb2_grpc.ShardStub(channel)
        for method, request in [
            ("Neighbours", shard_pb2.NeighboursRequest()),
            ("Match", shard_pb2.MatchRequest()),
            ("Labels", shard_pb2.LabelsRequest()),
        ]:
            with pytest.raises(grpc.RpcError) as err:
                getattr(shard, method)(
                    request, timeout=10, metadata=(("authorization", f"Bearer {READ_TOKEN}"),)
                )
            assert err.value.code() is grpc.StatusCode.UNIMPLEMENTED, method
        # Compare is answered by the coordinator itself (no shard holds anything it needs)
        from landmark.wire import features_to_proto as to_proto

        compared = stub.Compare(
            search_pb2.CompareRequest(query=to_proto(features(4)), reference=to_proto(features(4))),
            timeout=10,
            metadata=(("authorization", f"Bearer {READ_TOKEN}"),),
        )
        assert compared.match and compared.inliers >= compared.min_inliers
        # a write answers the whole index's info: the written shard's own answer plus
        # the other shards' GetIndexInfo
        from landmark.wire import features_to_proto

        write = (("authorization", f"Bearer {WRITE_TOKEN}"),)
        added = stub.AddImages(
            search_pb2.AddImagesRequest(
                images=[
                    search_pb2.ImageEntry(
                        image_id="img-extra", label="x", features=features_to_proto(features(9))
                    )
                ]
            ),
            timeout=10,
            metadata=write,
        )
        assert (added.added, added.index.images, added.index.shards) == (1, 10, 3)
        assert not added.index.settled  # one shard holds it in its buffer: not all settled
        removed = stub.RemoveImages(
            search_pb2.RemoveImagesRequest(image_ids=["img-extra"]), timeout=10, metadata=write
        )
        assert (removed.removed, removed.index.images, removed.index.shards) == (1, 9, 3)
        # the caller's token is passed on: a read token cannot write through it
        with SearchClient(
            f"127.0.0.1:{port}", timeout=20, connection=Connection(token=READ_TOKEN)
        ) as reader:
            with pytest.raises(LandmarkError) as err:
                reader.remove_images(["img-1"])
            assert err.value.code is grpc.StatusCode.PERMISSION_DENIED
    finally:
        running.stop(0)
        servicer.shards.close()


def test_the_coordinator_reaches_tls_shards(tmp_path, monkeypatch):
    from tests.tls import make_pki

    pki = make_pki(tmp_path)
    running = []
    for i in range(2):
        cfg = SearchConfig(
            port=0,
            metrics_port=-1,
            host="127.0.0.1",
            index_dir=str(tmp_path / f"s{i}"),
            shard_index=i,
            tls_cert=str(pki.server_cert),
            tls_key=str(pki.server_key),
        )
        running.append(create_search(cfg))
    monkeypatch.setenv("LANDMARK_TLS_CA", str(pki.ca))
    shards = tuple(f"localhost:{port}" for _, port, _ in running)
    co, port, _ = create_server(CoordinatorConfig(port=0, metrics_port=-1, shards=shards))
    monkeypatch.delenv("LANDMARK_TLS_CA")  # the caller talks plaintext to the coordinator
    try:
        with SearchClient(f"127.0.0.1:{port}", timeout=20) as client:
            client.add_images([ImageToAdd(f"img-{k}", "x", features(k)) for k in range(4)])
            assert client.index_info().images == 4
            assert client.search(features(3), top_k=1).best.image_id == "img-3"
    finally:
        co.stop(0)
        for server, _, engine in running:
            server.stop(0)
            engine.close()


def test_a_shards_full_buffer_reaches_the_caller_with_its_retry_hint(tmp_path):
    cfg = SearchConfig(
        port=0,
        metrics_port=-1,
        index_dir=str(tmp_path / "s0"),
        shard_index=0,
        max_growing_descriptors=100,
        seal_seconds=3600,
        seal_descriptors=1_000_000,
    )
    shard, shard_port, engine = create_search(cfg)
    co, port, _ = create_server(
        CoordinatorConfig(port=0, metrics_port=-1, shards=(f"127.0.0.1:{shard_port}",))
    )
    try:
        with SearchClient(f"127.0.0.1:{port}", timeout=20) as client:
            client.add_images([ImageToAdd("a", "x", features(1))])  # 60 descriptors
            with pytest.raises(LandmarkError) as refused:
                client.add_images([ImageToAdd("b", "x", features(2))])
            assert refused.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert refused.value.retry_after == 0.5  # the ingest waits, then sends it again
    finally:
        co.stop(0)
        shard.stop(0)
        engine.close()


def test_every_address_dns_gives_for_one_shard_is_one_of_its_replicas(tmp_path, monkeypatch):
    running = start_shards(tmp_path, [0, 1, 0, 1])  # two replicas of each of two shards
    addresses = [f"127.0.0.1:{port}" for _, port, _ in running]
    monkeypatch.setattr(coordinator_mod, "resolve", lambda name: addresses[::-1])
    cfg = CoordinatorConfig(
        port=0, metrics_port=-1, shards_dns="search:50052", shard_count=2, shard_token=READ_TOKEN
    )
    server, _, servicer = create_server(cfg)
    try:
        assert sorted(servicer.shards.replicas(0)) == sorted(addresses[0::2])
        assert sorted(servicer.shards.replicas(1)) == sorted(addresses[1::2])
    finally:
        server.stop(0)
        stop_shards(running)
