"""Replicas of one shard over a real changelog: three nats-server processes with
JetStream on loopback, search servers in this process (port 0) following it."""

from __future__ import annotations

import shutil
import time

import grpc
import pytest

from landmark_client import ImageToAdd, LandmarkError, SearchClient
from search_service.config import SearchConfig
from search_service.server import start_server
from tests.nats_cluster import NatsCluster
from tests.service.test_security import features


@pytest.fixture()
def cluster(tmp_path):
    nats = NatsCluster(tmp_path / "nats")
    yield nats
    nats.stop()


class Replica:
    def __init__(self, cluster: NatsCluster, folder) -> None:  # noqa: ANN001
        self.folder = folder
        self.config = SearchConfig(
            port=0, metrics_port=-1, index_dir=str(folder), changelog=",".join(cluster.urls)
        )
        self.start()

    def start(self) -> None:
        self.server, self.port, self.loading = start_server(self.config)
        assert self.loading.done.wait(60) and self.loading.error is None
        self.client = SearchClient(f"127.0.0.1:{self.port}", timeout=30)

    def held(self) -> set[str]:
        return {r.image_id for r in self.client.list_images()}

    def stop(self) -> None:
        self.client.close()
        self.server.stop(0)
        self.loading.writes.close()
        self.loading.engine.close()


def eventually(check, seconds: float = 20.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.05)


def test_a_write_to_either_replica_is_read_there_at_once_and_reaches_the_other(cluster, tmp_path):
    a, b = Replica(cluster, tmp_path / "a"), Replica(cluster, tmp_path / "b")
    try:
        images = [ImageToAdd(f"img-{k}", f"l{k % 2}", features(k)) for k in range(4)]
        assert a.client.add_images(images[:3]).added == 3
        assert a.held() == {"img-0", "img-1", "img-2"}  # read-your-writes
        assert b.client.add_images(images[3:]).added == 1
        assert "img-3" in b.held()
        eventually(lambda: a.held() == b.held() == {f"img-{k}" for k in range(4)})
        b.loading.writes.follower.close()  # b applies nothing from here on ...
        a.client.add_images([ImageToAdd("img-5", "l", features(5))])
        with pytest.raises(LandmarkError) as err:  # ... and still sees img-5 taken
            b.client.add_images([ImageToAdd("img-5", "l", features(6))])
        assert err.value.code == grpc.StatusCode.ALREADY_EXISTS
        assert "img-5" not in b.held()
        assert a.client.add_images(images[:2], on_conflict="skip").skipped == 2
        assert a.client.remove_images(["img-1", "nope"]) == (1, ["nope"])
        assert a.held() == {"img-0", "img-2", "img-3", "img-5"}
    finally:
        a.stop()
        b.stop()


def test_a_replica_that_lost_its_folder_rebuilds_from_the_changelog(cluster, tmp_path):
    a, b = Replica(cluster, tmp_path / "a"), Replica(cluster, tmp_path / "b")
    try:
        images = [ImageToAdd(f"img-{k}", "l", features(k)) for k in range(6)]
        a.client.add_images(images)
        a.client.remove_images(["img-4"])
        eventually(lambda: b.held() == a.held())
        b.stop()
        shutil.rmtree(b.folder)
        b.start()  # serving once caught up: no waiting here
        assert b.held() == a.held() == {f"img-{k}" for k in (0, 1, 2, 3, 5)}
    finally:
        a.stop()
        b.stop()


def test_adds_go_on_with_one_nats_server_down_and_stop_cleanly_with_two(cluster, tmp_path):
    a = Replica(cluster, tmp_path / "a")
    try:
        cluster.kill(0)
        for k in range(3):
            a.client.add_images([ImageToAdd(f"img-{k}", "l", features(k))])
        assert a.held() == {"img-0", "img-1", "img-2"}
        cluster.kill(1)
        with pytest.raises(LandmarkError) as err:
            a.client.add_images([ImageToAdd("img-9", "l", features(9))], timeout=15)
        assert err.value.code == grpc.StatusCode.UNAVAILABLE
        assert "changelog" in err.value.details and "again" in err.value.details
        cluster.start(1)
        eventually(lambda: _added(a, "img-10"), 60)
        # img-9's write reached one server: it may be committed once a quorum is back
        assert a.held() - {"img-9"} == {"img-0", "img-1", "img-2", "img-10"}
    finally:
        a.stop()


def _added(replica: Replica, image_id: str) -> bool:
    try:
        replica.client.add_images([ImageToAdd(image_id, "l", features(10))], on_conflict="skip")
        return True
    except LandmarkError:
        return False
