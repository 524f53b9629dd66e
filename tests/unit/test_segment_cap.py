"""The bound on a build: no segment holds more than max_segment_rows rows, whether it is
written by a large add or by a merge; merges pick the segments that fit, and reading the
old segments for a merge does not map their pages into the process."""

import numpy as np

from landmark_client import Features
from search_service.index.segment import load_segment
from search_service.index.segment_writer import build_segment
from search_service.index.store import IndexStore
from search_service.index.store_settings import StoreSettings
from search_service.index.wiring import Index
from search_service.index.writing import OnConflict, Writer
from search_service.search import lookup

from .test_compact import images as segment_images

CAP = 2000


def image(i: int, n: int = 500) -> tuple[str, str, dict, Features]:
    rng = np.random.default_rng(i)
    d = rng.random((n, 64), dtype=np.float32)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    loc = (rng.random((n, 2)) * [640, 480]).astype(np.float32)
    return f"img-{i}", f"label-{i % 3}", {}, Features("aliked", loc, d, (640, 480))


def add(store: IndexStore, entries: list) -> None:
    """Add as the service does: a batch of seal_descriptors or more is built as segments."""
    Writer(store).add(entries, ("aliked", 64), OnConflict.ERROR)


def store_at(path, **kw) -> Index:
    kw = {"max_segment_rows": CAP, **kw}
    settings = StoreSettings(
        n_trees=2,
        seal_descriptors=1000,  # an add of two images or more is written as segments
        idle_merge_seconds=0,
        **kw,
    )
    return Index(path, settings, background=False)


def test_a_large_add_is_written_as_segments_under_the_cap(tmp_path):
    index = store_at(tmp_path / "index")
    store = index.store
    generation = store.generation
    add(store, [image(i) for i in range(10)])  # 5,000 rows
    assert store.generation == generation + 1  # one manifest write for the whole add
    assert [s.rows for s in store.segments] == [2000, 2000, 1000]
    assert sorted(store.view.by_id) == sorted(f"img-{i}" for i in range(10))
    index.close()
    again = store_at(tmp_path / "index")
    assert [s.rows for s in again.store.segments] == [2000, 2000, 1000]
    d, _ = again.store.view.features_of(again.store.view.by_id["img-9"])
    assert np.einsum("ij,ij->i", d, image(9)[3].descriptors).min() > 0.999
    again.close()


def test_merges_combine_the_small_segments_and_never_pass_the_cap(tmp_path):
    index = store_at(tmp_path / "index", max_segments=2)
    store = index.store
    for batch in range(5):
        add(store, [image(2 * batch), image(2 * batch + 1)])  # 1,000 rows each
    assert len(store.segments) == 5
    merges = 0
    while index.merger.needs_merge():
        assert index.merger.merge()
        merges += 1
    assert merges == 2
    assert sorted(s.rows for s in store.segments) == [1000, 2000, 2000]
    assert len(store.view.by_id) == 10
    # more segments than max_segments, but none left that fit together: nothing to merge
    assert len(store.segments) > store.settings.max_segments
    assert not index.merger.merge()
    index.close()


def test_a_large_segment_is_not_rewritten_for_a_small_one(tmp_path):
    index = store_at(tmp_path / "index", max_segment_rows=100_000)
    store = index.store
    add(store, [image(i) for i in range(10)])  # 5,000 rows
    add(store, [image(10), image(11)])  # 1,000
    assert not index.merger.merge()  # 5,000 rows rewritten for 1,000: more than fourfold
    add(store, [image(12), image(13)])  # 1,000 more: now 5,000 <= 4 x 2,000
    assert index.merger.merge()
    assert [s.rows for s in store.segments] == [7000]
    index.close()


def test_a_small_segment_does_not_keep_larger_ones_apart(tmp_path):
    index = store_at(tmp_path / "index", max_segment_rows=100_000)
    store = index.store
    add(store, [image(0, n=600), image(1, n=600)])  # 1,200 rows
    add(store, [image(i) for i in range(2, 12)])  # 5,000
    add(store, [image(i) for i in range(12, 22)])  # 5,000
    assert index.merger.merge()  # the two of 5,000, though the smallest is far smaller
    assert sorted(s.rows for s in store.segments) == [1200, 10_000]
    index.close()


def test_a_full_segment_with_removed_images_is_rewritten_alone(tmp_path):
    index = store_at(tmp_path / "index", max_dead_fraction=0.1)
    store = index.store
    add(store, [image(i) for i in range(8)])  # two full segments
    full = [s.name for s in store.segments]
    store.apply(["img-0"], [])
    assert index.merger.needs_merge()
    assert index.merger.merge()
    assert sorted(s.rows for s in store.segments) == [1500, 2000]
    assert full[1] in [s.name for s in store.segments]  # the other one untouched
    assert "img-0" not in store.view.by_id and len(store.view.by_id) == 7
    assert not index.merger.needs_merge()
    index.close()


def mapped_kib(path) -> int:
    """Resident KiB of this process's mappings of ``path``."""
    total, inside = 0, False
    with open("/proc/self/smaps") as fh:
        for line in fh:
            if "-" in line.split(" ", 1)[0]:
                inside = line.rstrip().endswith(str(path))
            elif inside and line.startswith("Rss:"):
                total += int(line.split()[1])
    return total


def test_a_merge_reads_old_segments_without_mapping_their_pages(tmp_path):
    """A merge of millions of rows would otherwise count every old row it read as the
    process's resident memory."""
    build_segment(segment_images(40), 128, 2, tmp_path / "t", tmp_path / "seg")
    seg = load_segment(tmp_path / "seg")  # 20,000 rows, 2.5 MB of int8 descriptors
    rows = np.concatenate([seg.image_data(i).descriptors for i in range(len(seg.images))])
    assert rows.shape == (20_000, 128)
    assert mapped_kib(seg.path / "descriptors.npy") == 0
    d, _ = seg.features(39)  # a search reads through the mapping
    assert np.array_equal(d, rows[-500:])
    assert mapped_kib(seg.path / "descriptors.npy") > 0


def test_segments_share_the_search_budget_by_their_rows(tmp_path, monkeypatch):
    """Each segment is looked up for every query descriptor; the nodes inspected are shared
    by rows, so several segments cost about what one of all their rows would."""
    index = store_at(tmp_path / "index", max_segment_rows=4000)
    store = index.store
    add(store, [image(i, n=1000) for i in range(8)] + [image(8, n=400), image(9, n=600)])
    assert [s.rows for s in store.segments] == [4000, 4000, 1000]
    asked: dict[int, int] = {}
    real_lookup = lookup.segment_lookup

    def spy(seg, queries, n, search_k, pool=None):
        asked[seg.rows] = search_k
        return real_lookup(seg, queries, n, search_k, pool)

    monkeypatch.setattr(lookup, "segment_lookup", spy)
    query = image(3, n=1000)[3].descriptors
    rows, images, _ = lookup.knn(store.view, query, 5, 900)
    assert asked == {4000: 400, 1000: 100}
    assert (images[:, 0] == store.view.by_id["img-3"]).mean() > 0.99  # still its own rows
    lookup.knn(store.view, query, 5, 90)  # a small budget: each at least 6 per neighbour
    assert asked == {4000: 40, 1000: 30}
    index.close()
