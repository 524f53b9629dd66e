"""An index directory written before the index had its own log record format (format 2:
the log holds landmark.v1.ImageEntry messages) loads, answers as before, and becomes
format 5 as it changes. tests/data/index-format2 was written by that code: three images
sealed into a segment, two more in the log, and one sealed image removed in the log."""

import json
import shutil

import numpy as np
import pytest

from landmark.wire import Features
from search_service.errors import IndexCorrupt
from search_service.index import records
from search_service.index.compact import (
    dequantize_descriptors,
    dequantize_locations,
    quantize_descriptors,
    quantize_locations,
)
from search_service.index.store_settings import StoreSettings
from search_service.index.wal import scan
from search_service.index.wiring import Index
from tests.conftest import REPO

FIXTURE = REPO / "tests" / "data" / "index-format2"
QUIET = StoreSettings(n_trees=2, seal_descriptors=10**9, seal_seconds=10**9, idle_merge_seconds=0)


def features(i: int) -> Features:
    """The features the fixture was written with."""
    rng = np.random.default_rng(i)
    d = rng.normal(size=(16, 128)).astype("f4")
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return Features("sift", rng.uniform(0, 100, size=(16, 2)).astype("f4"), d, (100, 80))


@pytest.fixture
def old_index(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "index")
    return tmp_path / "index"


def _kinds(index):
    return {payload[:1] for wal in index.glob("wal-*.log") for payload in scan(wal).records}


def test_a_format_2_directory_loads_with_its_logged_changes(old_index):
    assert _kinds(old_index) == {records.LEGACY_IMAGE, records.REMOVE}
    index = Index(old_index, QUIET, background=False)
    store = index.store
    view = store.view
    assert sorted(view.by_id) == ["logged-0", "logged-1", "sealed-0", "sealed-2"]
    d, loc = view.features_of(view.by_id["sealed-2"])  # a float32 segment, read as written
    np.testing.assert_array_equal(d, features(2).descriptors)
    np.testing.assert_array_equal(loc, features(2).locations)
    d, loc = view.features_of(view.by_id["logged-1"])  # a logged add, as a seal will keep it
    f = features(11)
    np.testing.assert_array_equal(d, dequantize_descriptors(quantize_descriptors(f.descriptors)))
    np.testing.assert_array_equal(
        loc, dequantize_locations(quantize_locations(f.locations, f.image_size), f.image_size)
    )
    np.testing.assert_allclose(d, f.descriptors, atol=0.01)
    np.testing.assert_allclose(loc, f.locations, atol=0.01)
    meta = view.images[view.by_id["sealed-0"]]
    assert (meta.label, meta.metadata, meta.width, meta.height) == ("label-0", {"n": "0"}, 100, 80)
    index.close()


def test_it_becomes_format_5_as_it_changes_and_keeps_everything(old_index):
    index = Index(old_index, QUIET, background=False)
    store = index.store
    assert json.loads((old_index / "MANIFEST").read_text())["format"] == 5
    store.apply([], [("new", "label-new", {"k": "v"}, features(20))])
    index.close()
    # the new add is in the index's own record format, beside the old records
    assert records.IMAGE in _kinds(old_index) and records.LEGACY_IMAGE in _kinds(old_index)
    index = Index(old_index, QUIET, background=False)
    store = index.store
    assert sorted(store.view.by_id) == ["logged-0", "logged-1", "new", "sealed-0", "sealed-2"]
    assert index.sealer.seal()  # the old log's adds move into a segment; the old log is deleted
    index.close()
    assert records.LEGACY_IMAGE not in _kinds(old_index)
    index = Index(old_index, QUIET, background=False)
    store = index.store
    assert sorted(store.view.by_id) == ["logged-0", "logged-1", "new", "sealed-0", "sealed-2"]
    index.close()


def test_an_unknown_format_is_refused_with_its_number(old_index):
    manifest = json.loads((old_index / "MANIFEST").read_text())
    (old_index / "MANIFEST").write_text(json.dumps({**manifest, "format": 9}))
    with pytest.raises(IndexCorrupt, match="index format 9"):
        Index(old_index, QUIET, background=False)


def test_image_records_round_trip_and_damage_is_named():
    f = features(3)
    payload = records.image_record("id/1", "label", {"a": "b"}, f)
    added = records.decode(payload)
    assert (added.image_id, added.label, added.metadata) == ("id/1", "label", {"a": "b"})
    np.testing.assert_array_equal(added.features.descriptors, f.descriptors)
    np.testing.assert_array_equal(added.features.locations, f.locations)
    assert added.features.image_size == (100, 80) and added.features.backend == "sift"
    assert records.decode(records.remove_record(["x", "y"])).image_ids == ["x", "y"]
    with pytest.raises(IndexCorrupt, match="cannot be read"):
        records.decode(payload[:-4])
    with pytest.raises(IndexCorrupt, match="unknown"):
        records.decode(b"Z{}")


def test_a_merge_rewrites_format_2_segments_in_the_compact_format(old_index):
    index = Index(old_index, QUIET, background=False)
    store = index.store
    assert [s.compact for s in store.segments] == [False]  # the fixture's float32 segment
    before = {i: store.view.features_of(n) for i, n in store.view.by_id.items()}
    index.sealer.seal()  # the logged images become a compact segment beside the old one
    assert index.merger.merge()
    assert [s.compact for s in store.segments] == [True]
    meta = json.loads((store.segments[0].path / "meta.json").read_text())
    assert meta["format"] == 4 and "projected_dimension" in meta
    view = store.view
    assert sorted(view.by_id) == sorted(before)
    for image_id, (d, loc) in before.items():
        d2, loc2 = view.features_of(view.by_id[image_id])
        assert np.einsum("ij,ij->i", d, d2).min() > 0.999
        assert np.abs(loc - loc2).max() < 0.01
    index.close()
