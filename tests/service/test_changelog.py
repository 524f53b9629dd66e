"""Replicas of one shard over a real changelog: three nats-server processes with
JetStream on loopback, search servers in this process (port 0) following it."""

from __future__ import annotations

import shutil
import time

import grpc
import pytest

from landmark_client import ImageToAdd, LandmarkError, SearchClient
from search_service.changelog import changes
from search_service.changelog.__main__ import main
from search_service.changelog.batches import BATCH_LIMIT
from search_service.changelog.copying import BadBackup
from search_service.changelog.follower import Follower
from search_service.changelog.stream import Changelog
from search_service.changelog.subjects import subject
from search_service.config import SearchConfig
from search_service.coordinator import CoordinatorConfig
from search_service.coordinator import create_server as create_coordinator
from search_service.engine import OnConflict, SearchEngine
from search_service.errors import BufferFull
from search_service.server import start_server
from search_service.sharding import shard_of
from tests.nats_cluster import NatsCluster, SlowLink
from tests.service.test_operations import metric, scrape
from tests.service.test_security import features


@pytest.fixture()
def cluster(tmp_path):
    nats = NatsCluster(tmp_path / "nats")
    yield nats
    nats.stop()


class Replica:
    def __init__(  # noqa: ANN001
        self, cluster: NatsCluster, folder, shard: int = -1, shards: int = 1, metrics: int = -1
    ) -> None:
        self.folder = folder
        self.config = SearchConfig(
            port=0,
            metrics_port=metrics,
            index_dir=str(folder),
            changelog=",".join(cluster.urls),
            shard_index=shard,
            shard_count=shards,
        )
        self.start()

    def start(self) -> None:
        self.server, self.port, self.loading = start_server(self.config)
        assert self.loading.done.wait(60) and self.loading.error is None
        self.client = SearchClient(f"127.0.0.1:{self.port}", timeout=30)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def held(self) -> set[str]:
        return {r.image_id for r in self.client.list_images()}

    def stop(self) -> None:
        self.client.close()
        self.server.stop(0)
        self.server = None
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
    a, b = Replica(cluster, tmp_path / "a"), Replica(cluster, tmp_path / "b", metrics=0)
    try:
        images = [ImageToAdd(f"img-{k}", "l", features(k)) for k in range(6)]
        a.client.add_images(images)
        a.client.remove_images(["img-4"])
        eventually(lambda: b.held() == a.held())
        b.stop()
        shutil.rmtree(b.folder)
        b.start()  # serving once caught up: no waiting here
        assert b.held() == a.held() == {f"img-{k}" for k in (0, 1, 2, 3, 5)}
        text = scrape(b.server.metrics_port)  # its progress, for the operators
        assert metric(text, "landmark_changelog_applied") == a.loading.writes.follower.applied
        assert metric(text, "landmark_changelog_behind") == 0
        assert metric(text, "landmark_changelog_caught_up") == 1
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
            a.client.add_images([ImageToAdd("img-9", "l", features(9))], timeout=60)
        assert err.value.code == grpc.StatusCode.UNAVAILABLE
        assert a.client.search(features(1), top_k=1).best.image_id == "img-1"  # searches go on
        assert "changelog" in err.value.details and "again" in err.value.details
        assert "is it running" not in err.value.details and err.value.retry_after == 1.0
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


def test_a_coordinator_over_two_replicas_per_shard_answers_whole_with_one_of_each_down(
    cluster, tmp_path
):

    sets = [[Replica(cluster, tmp_path / f"s{i}r{r}", i, 2) for r in range(2)] for i in range(2)]
    shards = tuple("|".join(r.address for r in replicas) for replicas in sets)
    running, port, _ = create_coordinator(CoordinatorConfig(port=0, metrics_port=-1, shards=shards))
    try:
        with SearchClient(f"127.0.0.1:{port}", timeout=30) as client:
            images = [ImageToAdd(f"img-{k}", f"l{k % 2}", features(k)) for k in range(8)]
            assert client.add_images(images).added == 8
            for replicas in sets:  # each shard's replicas converge on its images
                eventually(lambda rs=replicas: rs[0].held() == rs[1].held() != set())
            for replicas in sets:
                replicas[0].stop()  # one replica of each shard down
            for _ in range(4):  # whichever replica a call tries first
                assert client.index_info().images == 8
                r = client.search(features(3), top_k=1)
                assert not r.partial and r.best.image_id == "img-3"
            assert client.add_images([ImageToAdd("img-9", "l1", features(9))]).added == 1
            assert client.index_info().images == 9
    finally:
        running.stop(0)
        for replicas in sets:
            for r in replicas:
                if r.server is not None:
                    r.stop()


def test_backup_restore_and_resharding_work_from_the_changelog_alone(cluster, tmp_path):

    urls = ["--changelog", ",".join(cluster.urls)]
    one = Replica(cluster, tmp_path / "one")
    # more changes than a restore publishes at once (copying.BATCH)
    one.client.add_images([ImageToAdd(f"img-{k}", f"l{k % 2}", features(k)) for k in range(120)])
    one.client.remove_images(["img-4"])
    live = one.held()
    assert main([*urls, "backup", str(tmp_path / "backup")]) == 0
    assert main([*urls, "reshard", "--from-shards", "1", "--to-shards", "2"]) == 0
    two = [Replica(cluster, tmp_path / f"two-{i}", i, 2) for i in range(2)]
    shards = tuple(r.address for r in two)
    running, port, _ = create_coordinator(CoordinatorConfig(port=0, metrics_port=-1, shards=shards))
    try:
        for i, r in enumerate(two):  # each new shard holds its images, none extracted again
            assert r.held() == {x for x in live if shard_of(x, 2) == i}
        with SearchClient(f"127.0.0.1:{port}", timeout=30) as client:
            assert client.index_info().images == len(live) == 119
            for k in (0, 3, 7):  # answers like the one index did
                assert client.search(features(k), top_k=1).best.image_id == f"img-{k}"
        one.stop()
        assert main([*urls, "drop", "--shards", "1"]) == 0
        assert _held_by_a_new_replica(cluster, tmp_path / "dropped") == set()
        damaged = bytearray((tmp_path / "backup").read_bytes())
        damaged[-10] ^= 1  # in the last change: the first BATCH are whole
        (tmp_path / "damaged").write_bytes(damaged)
        with pytest.raises(BadBackup):
            main([*urls, "restore", str(tmp_path / "damaged")])
        assert _held_by_a_new_replica(cluster, tmp_path / "not-restored") == set()
        assert main([*urls, "restore", str(tmp_path / "backup")]) == 0
        assert _held_by_a_new_replica(cluster, tmp_path / "restored") == live
    finally:
        running.stop(0)
        for r in two:
            r.stop()


def _held_by_a_new_replica(cluster: NatsCluster, folder) -> set[str]:  # noqa: ANN001
    replica = Replica(cluster, folder)
    try:
        return replica.held()
    finally:
        replica.stop()


def test_a_change_that_failed_to_apply_is_applied_again_before_those_after_it(cluster, tmp_path):
    """The index refuses an add for a moment (a full buffer, a full disk) while the
    image's removal already waits behind it: the add is applied again first, then the
    removal, and the image is gone, as on every other replica."""

    changelog = Changelog(cluster.urls)
    engine = SearchEngine(tmp_path / "idx", threads=1, background=False)
    name = subject(0, 1, "x")
    follower = None
    removal, refused = [], []

    def add(entries):  # noqa: ANN001, ANN202
        if not refused:  # the first time: refused once the removal is queued behind it
            removal.append(changelog.publish([(name, changes.removed("x"), None)]))
            eventually(lambda: follower is not None and follower.received > 0)
            refused.append(follower.behind)  # this add, and the removal behind it
            raise BufferFull("the growing buffer is full", 0.5)
        return engine.add(entries, OnConflict.REPLACE)

    try:
        follower = Follower(changelog, 0, 1, tmp_path / "idx", add=add, remove=engine.remove)
        changelog.publish([(name, changes.added("x", "l", {}, features(1)), None)])
        eventually(lambda: bool(removal))
        last = removal[0]
        assert follower.wait(last, 30) and refused == [2]
        assert follower.progress() == {"applied": last, "behind": 0, "caught_up": 1.0}
        assert "x" not in engine.store.view.by_id
    finally:
        if follower is not None:
            follower.close()
        changelog.close()
        engine.close()


def test_a_write_whose_answer_was_held_up_is_made_again_and_stored_once(cluster, tmp_path):
    """The stream's answer to a write is late (a congested link): the write is made again
    with the same message ids, and the stream answers the second attempt as a duplicate
    of what the first stored, instead of storing it twice or refusing it as a conflict."""

    link = SlowLink(cluster.ports[0][0])
    changelog = Changelog([link.url], timeout=1.0)
    names = [subject(0, 1, f"img-{k}") for k in range(3)]
    try:
        for batch in ([names[0]], names[1:]):  # one message, then an atomic batch
            before = changelog.latest(names)
            link.hold(1.6)  # the first attempt's answer comes after its 1 s timeout
            last = changelog.publish(
                [(n, changes.added(n, "l", {}, features(k)), 0) for k, n in enumerate(batch)]
            )
            after = changelog.latest(names)
            assert set(after) - set(before) == set(batch)  # stored, once:
            assert [after[n][0] for n in batch] == list(range(last - len(batch) + 1, last + 1))
    finally:
        changelog.close()
        link.close()


def test_the_latest_change_of_more_images_than_one_read_takes(cluster):
    """Conflict checks read each image's latest change, up to BATCH_LIMIT per request."""

    changelog = Changelog(cluster.urls)
    try:
        names = [subject(0, 1, f"img-{k}") for k in range(BATCH_LIMIT + 5)]
        first = [(n, changes.removed(n), None) for n in names[:BATCH_LIMIT]]
        last = changelog.publish(first)
        tail = changelog.publish([(n, changes.removed(n), None) for n in names[BATCH_LIMIT:]])
        changed = changelog.publish([(names[3], changes.added("x", "l", {}, features(3)), None)])
        absent = [subject(0, 1, f"none-{k}") for k in range(7)]
        got = changelog.latest([*absent, *names, names[0]])
        expected = {n: last - BATCH_LIMIT + 1 + k for k, n in enumerate(names[:BATCH_LIMIT])}
        expected |= {n: tail - 4 + k for k, n in enumerate(names[BATCH_LIMIT:])}
        expected[names[3]] = changed
        assert {n: seq for n, (seq, _) in got.items()} == expected
        assert got[names[3]][1] == changes.added("x", "l", {}, features(3))
        assert got[names[4]][1] == changes.removed(names[4])
        assert changelog.latest(absent) == {}
    finally:
        changelog.close()
