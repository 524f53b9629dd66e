"""The write path keeps taking writes while segments are built: a seal, a small add and a
bulk add each finish while a merge is still building; a bulk add decides its conflicts
again when it commits; the growing buffer is bounded; a small add leaves the sealed part of
the view alone (its cost does not grow with the index)."""

import errno
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from landmark_client import Features
from search_service.errors import AlreadyExists, BufferFull, DiskFull
from search_service.index import disk, manifest
from search_service.index.store_settings import StoreSettings
from search_service.index.wiring import Index
from search_service.index.writing import OnConflict, Writer

KIND = ("aliked", 64)


def image(i: int, n: int = 500, label: str = "x") -> tuple[str, str, dict, Features]:
    rng = np.random.default_rng(i)
    d = rng.random((n, 64), dtype=np.float32)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    loc = (rng.random((n, 2)) * [640, 480]).astype(np.float32)
    return f"img-{i}", label, {}, Features("aliked", loc, d, (640, 480))


def store_at(path, **kw) -> Index:
    settings = StoreSettings(n_trees=2, seal_descriptors=1000, idle_merge_seconds=0, **kw)
    return Index(path, settings, background=False)


class Gate:
    """Holds the next segment build of ``builder`` (the real one) until ``open()``: a
    merge's ``build_apart`` (a child process) or a bulk add's ``build_segment``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, builder: str) -> None:
        self.entered, self._open = threading.Event(), threading.Event()
        real = getattr(disk, builder)

        def build(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            if not self.entered.is_set():
                self.entered.set()
                assert self._open.wait(30), "the gate was never opened"
            return real(*args, **kwargs)

        monkeypatch.setattr(disk, builder, build)

    def open(self) -> None:
        self._open.set()


def in_thread(fn) -> tuple[threading.Thread, list]:  # noqa: ANN001
    out: list = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    return thread, out


def test_seals_and_adds_go_on_while_a_merge_builds(tmp_path, monkeypatch):
    index = store_at(tmp_path / "index")
    store = index.store
    writer = Writer(store)
    for batch in range(3):  # three segments written directly (bulk adds)
        writer.add([image(10 * batch + i) for i in range(2)], KIND, OnConflict.ERROR)
    gate = Gate(monkeypatch, "build_apart")
    merging, merged = in_thread(index.merger.merge)
    assert gate.entered.wait(10)

    writer.add([image(100)], KIND, OnConflict.ERROR)  # small: through the log
    assert index.sealer.seal()  # the buffer sealed while the merge is still building
    writer.add([image(200), image(201)], KIND, OnConflict.ERROR)  # bulk: its own segment
    writer.remove(["img-0"])  # in a segment the merge is rewriting
    assert merging.is_alive() and len(store.segments) == 5

    gate.open()
    merging.join(30)
    assert merged == [True]
    expected = {f"img-{i}" for i in (1, 10, 11, 20, 21, 100, 200, 201)}
    assert set(store.view.by_id) == expected
    assert len(store.segments) == 3  # the merged one, the sealed one, the bulk one
    index.close()
    again = store_at(tmp_path / "index")
    assert set(again.store.view.by_id) == expected
    again.close()


def test_small_segments_are_merged_beside_a_large_merge(tmp_path, monkeypatch):
    index = store_at(tmp_path / "index", max_segments=3)
    store = index.store
    writer = Writer(store)
    for batch in range(2):  # two large segments (1,500 rows each)
        writer.add([image(10 * batch + i) for i in range(3)], KIND, OnConflict.ERROR)
    gate = Gate(monkeypatch, "build_apart")
    large, done = in_thread(index.merger.merge)  # takes the two large ones
    assert gate.entered.wait(10)
    for i in range(3):  # seals go on: three small segments, too many in all
        writer.add([image(100 + i, n=200)], KIND, OnConflict.ERROR)
        assert index.sealer.seal()
    busy = {s.name for s in store.segments if s.rows == 1500}
    assert index.merger.needs_merge(1000)
    assert index.merger.merge(1000)  # the small lane: the three small ones (at most 250 rows)
    assert large.is_alive() and {s.name for s in store.segments} >= busy
    assert sorted(s.rows for s in store.segments) == [600, 1500, 1500]
    gate.open()
    large.join(30)
    assert done == [True] and sorted(s.rows for s in store.segments) == [600, 3000]
    assert len(store.view.by_id) == 9
    index.close()


def test_a_bulk_add_decides_its_conflicts_when_it_commits(tmp_path, monkeypatch):
    index = store_at(tmp_path / "index")
    store = index.store
    writer = Writer(store)
    gate = Gate(monkeypatch, "build_segment")
    bulk = [image(1, label="bulk"), image(2, label="bulk")]
    building, result = in_thread(lambda: writer.add(bulk, KIND, OnConflict.SKIP))
    assert gate.entered.wait(10)
    writer.add([image(2, n=100, label="small")], KIND, OnConflict.ERROR)  # came first
    gate.open()
    building.join(30)
    assert (result[0].added, result[0].skipped) == (1, 1)
    view = store.view
    assert view.images[view.by_id["img-2"]].label == "small"
    assert view.images[view.by_id["img-1"]].label == "bulk"
    assert len(store.view.by_id) == 2

    gate = Gate(monkeypatch, "build_segment")
    clash = [image(3), image(4)]
    building, failed = in_thread(lambda: _error_of(writer.add, clash, KIND, OnConflict.ERROR))
    assert gate.entered.wait(10)
    writer.add([image(4, n=100)], KIND, OnConflict.ERROR)
    gate.open()
    building.join(30)
    assert isinstance(failed[0], AlreadyExists)
    assert "img-3" not in store.view.by_id  # all or nothing
    assert not [p for p in (tmp_path / "index").iterdir() if p.name.startswith(".tmp")]
    index.close()


def _error_of(fn, *args):  # noqa: ANN001, ANN202
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001 (returned for the assertion)
        return exc
    return None


def test_the_growing_buffer_is_bounded(tmp_path):
    index = store_at(tmp_path / "index", max_growing_descriptors=1200)
    store = index.store
    writer = Writer(store)
    writer.add([image(1)], KIND, OnConflict.ERROR)
    writer.add([image(2)], KIND, OnConflict.ERROR)  # 1,000 descriptors buffered
    with pytest.raises(BufferFull) as refused:
        writer.add([image(3)], KIND, OnConflict.ERROR)
    assert refused.value.retry_after > 0 and "retry" in str(refused.value)
    assert store.growing.descriptors == 1000 and "img-3" not in store.view.by_id
    writer.remove(["img-1"])  # removes are never refused
    assert index.sealer.seal()
    writer.add([image(3)], KIND, OnConflict.ERROR)  # room again
    assert set(store.view.by_id) == {"img-2", "img-3"}
    index.close()


def test_a_small_add_leaves_the_sealed_part_of_the_view_alone(tmp_path):
    index = store_at(tmp_path / "index")
    store = index.store
    writer = Writer(store)
    writer.add([image(i) for i in range(4)], KIND, OnConflict.ERROR)  # a segment
    sealed = store.view.sealed
    writer.add([image(10, n=50)], KIND, OnConflict.ERROR)
    writer.add([image(11, n=50)], KIND, OnConflict.ERROR)
    assert store.view.sealed is sealed  # not rebuilt: no loop over the stored images
    assert len(store.view.by_id) == 6
    writer.remove(["img-0"])  # a tombstone changes the sealed part
    assert store.view.sealed is not sealed and "img-0" not in store.view.by_id
    index.close()


def test_an_image_size_in_numpy_integers_seals_like_one_in_ints(tmp_path):
    """An in-process caller may give the size as numpy integers (an array's shape)."""
    index = store_at(tmp_path / "index")
    _, label, meta, f = image(1)
    size = np.array([640, 480], dtype=np.int64)
    f = Features(f.backend, f.locations, f.descriptors, (size[0], size[1]))
    Writer(index.store).add([("img-1", label, meta, f)], KIND, OnConflict.ERROR)
    assert index.sealer.seal()
    index.close()
    again = store_at(tmp_path / "index")
    view = again.store.view
    sealed = view.images[view.by_id["img-1"]]
    assert (sealed.label, sealed.width, sealed.height) == ("x", 640, 480)
    again.close()


def test_a_failed_manifest_write_leaves_the_index_as_it_was(tmp_path, monkeypatch):
    """A seal, a bulk add and a merge whose manifest write fails: DiskFull, the state as
    before (images served from where they were), the new segment's files gone; each
    succeeds once the disk has room."""
    index = store_at(tmp_path / "index")
    store, writer = index.store, Writer(index.store)
    writer.add([image(i) for i in range(3)], KIND, OnConflict.ERROR)  # a segment
    writer.add([image(10)], KIND, OnConflict.ERROR)  # in the buffer
    real = manifest.write
    full = OSError(errno.ENOSPC, "No space left on device")

    def no_room(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise full

    def attempt(step) -> None:  # noqa: ANN001
        before = ([s.name for s in store.segments], set(store.removed), dict(store.view.by_id))
        monkeypatch.setattr(manifest, "write", no_room)
        with pytest.raises(DiskFull):
            step()
        after = ([s.name for s in store.segments], set(store.removed), dict(store.view.by_id))
        assert after == before
        on_disk = {p.name for p in store.dir.iterdir() if p.name.startswith("seg-")}
        assert on_disk == set(before[0])  # the unlisted segment was deleted
        monkeypatch.setattr(manifest, "write", real)
        step()

    attempt(index.sealer.seal)
    assert not store.growing and len(store.segments) == 2
    attempt(lambda: writer.add([image(i) for i in range(20, 23)], KIND, OnConflict.ERROR))
    assert len(store.segments) == 3
    writer.remove(["img-0"])
    attempt(index.merger.merge)
    assert len(store.segments) == 1 and not store.removed
    assert set(store.view.by_id) == {"img-1", "img-2", "img-10", "img-20", "img-21", "img-22"}
    index.close()


def test_sealing_and_merging_run_below_searches_and_adds(tmp_path):
    settings = StoreSettings(n_trees=2, seal_descriptors=1000, idle_merge_seconds=0)
    index = Index(tmp_path / "index", settings, background=True)
    try:
        loops = [index.sealer._loop, *index.merger._loops]

        def nice_of(loop) -> int | None:  # noqa: ANN001
            tid = loop._thread.native_id
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            return int(fields[16])  # the nice column

        deadline = time.monotonic() + 5
        while [nice_of(loop) for loop in loops] != [5, 19, 19] and time.monotonic() < deadline:
            time.sleep(0.05)  # each thread sets its own as it starts
        assert [nice_of(loop) for loop in loops] == [5, 19, 19]  # sealer, the two merge lanes
    finally:
        index.close()


def test_too_many_segments_merge_the_smallest_removed_rows_first_only_past_their_share(
    tmp_path,
):
    index = store_at(tmp_path / "index", max_segments=3, max_dead_fraction=0.3)
    store = index.store
    writer = Writer(store)
    writer.add([image(i) for i in range(4)], KIND, OnConflict.ERROR)  # 2,000 rows
    for i in range(3):  # three small segments: four in all, one too many
        writer.add([image(10 + i, n=100)], KIND, OnConflict.ERROR)
        assert index.sealer.seal()
    writer.remove(["img-0"])  # 500 of 2,300 rows removed: below the share
    large = next(s.name for s in store.segments if s.rows == 2000)
    assert index.merger.needs_merge() and index.merger.merge()
    assert sorted(s.rows for s in store.segments) == [300, 2000]  # the small ones
    assert large in {s.name for s in store.segments}
    writer.remove(["img-1"])  # 1,000 of 2,300: past the share, so reclaimed first
    assert index.merger.needs_merge() and index.merger.merge()
    assert [s.rows for s in store.segments] == [1300] and len(store.view.by_id) == 5
    index.close()


def test_settled_means_nothing_is_left_to_do_in_the_background(tmp_path):
    """What an evaluation waits for: the buffer sealed, no merge running, due, or waiting
    for writes to pause (IndexInfo.settled)."""
    index = store_at(tmp_path / "index", max_segments=1)
    writer = Writer(index.store)
    assert index.settled()  # empty
    writer.add([image(0, n=100)], KIND, OnConflict.ERROR)
    assert not index.settled()  # in the buffer
    assert index.sealer.seal() and index.settled()
    writer.add([image(1, n=100)], KIND, OnConflict.ERROR)
    assert index.sealer.seal()
    assert not index.settled()  # two segments, one allowed: a merge is due
    assert index.merger.merge() and index.settled()
    index.close()

    settings = StoreSettings(n_trees=2, seal_descriptors=1000, idle_merge_seconds=60)
    idle = Index(tmp_path / "idle", settings, background=False)
    for i in range(2):
        Writer(idle.store).add([image(i, n=100)], KIND, OnConflict.ERROR)
        assert idle.sealer.seal()
    assert not idle.settled()  # two small segments wait for writes to pause, to merge
    assert idle.merger.merge(reclaim=True) and idle.settled()
    idle.close()


@pytest.mark.parametrize("small_merge_rows, idle", [(100, True), (1_000_000, False)])
def test_a_large_merge_builds_at_idle_priority_a_small_one_at_nice_19(
    tmp_path, monkeypatch, small_merge_rows, idle
):
    """The merger asks for the child's priority by the merge's size; what each priority is,
    seen from outside the child, is test_build_apart's."""
    from search_service.index import merging

    asked: list[bool] = []
    real = disk.build_apart

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        asked.append(args[7] if len(args) > 7 else kwargs["idle"])
        return real(*args, **kwargs)

    monkeypatch.setattr(disk, "build_apart", spy)
    monkeypatch.setattr(merging, "SMALL_MERGE_ROWS", small_merge_rows)
    index = store_at(tmp_path / "index", max_segments=1)
    for i in range(2):
        Writer(index.store).add([image(i)], KIND, OnConflict.ERROR)
        assert index.sealer.seal()
    assert index.merger.merge()
    assert asked == [idle]
    index.close()


def test_settled_makes_its_merge_plans_once_per_change_of_the_segments(tmp_path, monkeypatch):
    """Every add's answer carries the index's info, settled included: asked again with
    nothing changed, it plans no merge again (a plan walks every image's tombstones)."""
    from search_service.index.store import IndexStore

    planned = []
    real = IndexStore.snapshot
    monkeypatch.setattr(IndexStore, "snapshot", lambda self: planned.append(1) or real(self))
    index = store_at(tmp_path / "index", max_segments=8)
    writer = Writer(index.store)
    writer.add([image(0, n=100)], KIND, OnConflict.ERROR)
    assert index.sealer.seal() and index.settled()
    once = len(planned)
    assert once > 0 and all(index.settled() for _ in range(5)) and len(planned) == once
    writer.remove(["img-0"])  # a tombstone: the plans are made again, and a merge is due
    assert not index.settled() and len(planned) > once
    index.close()
