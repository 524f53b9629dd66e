from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from extractor_service.backends.sift import SiftBackend
from extractor_service.extractor import FeatureExtractor, Limits
from landmark.wire import Features
from search_service.engine import OnConflict, SearchEngine
from search_service.errors import AlreadyExists, FeatureMismatch, InvalidRequest
from tests.conftest import sample_photo

PHOTOS = ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg"]


@pytest.fixture(scope="module")
def feats() -> dict[str, Features]:
    core = FeatureExtractor(SiftBackend(), Limits())
    out = {}
    for name in PHOTOS:
        img = np.asarray(Image.open(sample_photo(name)).convert("RGB"))
        out[name] = core.extract_array(img, 800, 1024).features
        # a second view: the same photo scaled down and cropped
        view = np.ascontiguousarray(img[20:-20, 30:, :][::2, ::2])
        out["view:" + name] = core.extract_array(view, 800, 1024).features
    return out


@pytest.fixture()
def engine(tmp_path, feats):
    eng = SearchEngine(tmp_path / "idx", threads=1, background=False)
    eng.add([(n, n.split(".")[0], {"src": "skimage"}, feats[n]) for n in PHOTOS[:2]])
    eng.index.sealer.seal()  # two images in a sealed Annoy segment ...
    eng.add([(n, n.split(".")[0], {"src": "skimage"}, feats[n]) for n in PHOTOS[2:]])
    yield eng  # ... and two in the growing buffer, searched exactly
    eng.close()


def reopen(path):
    return SearchEngine(path, threads=1, background=False)


def test_each_view_finds_its_photo(engine, feats):
    for name in PHOTOS:
        r = engine.search(feats["view:" + name], top_k=3)
        assert r.best is not None and r.best.image.image_id == name
        assert r.best.inliers >= 20
        assert r.best.image.metadata == {"src": "skimage"}
        assert all(c.inliers >= r.min_inliers for c in r.candidates)


def test_exclusion_leaves_no_match(engine, feats):
    r = engine.search(feats["view:coffee.png"], exclude=["coffee.png"], include_rejected=True)
    assert r.best is None  # the other photos show something else
    assert r.candidates and "coffee.png" not in {c.image.image_id for c in r.candidates}


def test_both_sealed_and_growing_images_are_found(engine):
    info = engine.info()
    assert info["segments"] == 1 and info["growing_descriptors"] > 0 and info["images"] == 4


def test_index_reloads_from_disk_with_the_same_answers(tmp_path, engine, feats):
    before = engine.search(feats["view:rocket.jpg"])
    engine.close()  # the WAL holds the unsealed adds; they are replayed
    again = reopen(tmp_path / "idx")
    after = again.search(feats["view:rocket.jpg"])
    assert [(c.image.image_id, c.inliers) for c in after.candidates] == [
        (c.image.image_id, c.inliers) for c in before.candidates
    ]
    assert again.info()["images"] == 4
    again.close()


def test_a_second_process_cannot_open_the_same_directory(tmp_path, engine):
    from search_service.errors import IndexLocked

    with pytest.raises(IndexLocked, match="in use by another search process"):
        reopen(tmp_path / "idx")


def test_remove_takes_effect_at_once_persists_and_merge_reclaims(tmp_path, engine, feats):
    removed, missing = engine.remove(["chelsea.png", "astronaut.png", "nope.png"])
    assert removed == 2 and missing == ["nope.png"]
    for name in ("chelsea.png", "astronaut.png"):  # one was growing, one sealed
        r = engine.search(feats["view:" + name])
        assert all(c.image.image_id != name for c in r.candidates)
    rows_before = engine.info()["descriptors"]
    engine.close()
    engine = reopen(tmp_path / "idx")
    assert engine.info()["images"] == 2
    engine.index.sealer.seal()
    engine.index.merger.merge()
    info = engine.info()
    assert info["segments"] == 1 and info["images"] == 2
    assert info["descriptors"] < rows_before  # the removed rows are gone
    segs = [p.name for p in (tmp_path / "idx").iterdir() if p.name.startswith("seg-")]
    assert len(segs) == 1
    assert engine.search(feats["view:coffee.png"]).best.image.image_id == "coffee.png"
    engine.close()


def test_adding_again_follows_the_conflict_policy(engine, feats):
    with pytest.raises(AlreadyExists):
        engine.add([("coffee.png", "coffee", {}, feats["coffee.png"])])
    r = engine.add([("coffee.png", "coffee", {}, feats["coffee.png"])], OnConflict.SKIP)
    assert (r.added, r.skipped) == (0, 1)
    r = engine.add([("coffee.png", "tea", {}, feats["coffee.png"])], OnConflict.REPLACE)
    assert r.replaced == 1 and engine.info()["images"] == 4
    assert engine.search(feats["view:coffee.png"]).best.image.label == "tea"


def test_features_of_another_kind_are_refused(engine):
    delf = Features(
        "delf", np.zeros((3, 2), np.float32), np.ones((3, 40), np.float32) / 40**0.5, (10, 10)
    )
    with pytest.raises(FeatureMismatch, match="holds sift features"):
        engine.add([("x", "y", {}, delf)])
    with pytest.raises(FeatureMismatch, match="extract with the sift backend"):
        engine.search(delf)


def test_zero_features_answer_no_match(engine):
    empty = Features("sift", np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32), (10, 10))
    assert engine.search(empty).candidates == []


@pytest.mark.parametrize("top_k", [0, -1, 1001])
def test_bad_top_k(engine, feats, top_k):
    with pytest.raises(InvalidRequest, match="top_k"):
        engine.search(feats["coffee.png"], top_k=top_k)


def test_leftovers_of_an_interrupted_change_are_never_loaded(tmp_path, engine, feats):
    engine.close()
    idx = tmp_path / "idx"
    (idx / ".tmp-seg-000099").mkdir()
    (idx / ".tmp-seg-000099" / "meta.json").write_text("{ half")
    (idx / "seg-000098").mkdir()  # renamed, but the manifest never named it
    (idx / "wal-000097.log").write_bytes(b"\x05\x00\x00\x00junk")
    again = reopen(idx)
    assert again.info()["images"] == 4
    assert not (idx / "seg-000098").exists() and not (idx / "wal-000097.log").exists()
    again.close()


def test_a_torn_wal_tail_is_ignored(tmp_path, engine, feats):
    engine.close()
    idx = tmp_path / "idx"
    (wal,) = idx.glob("wal-*.log")
    with open(wal, "ab") as fh:
        fh.write(b"\xff\x00\x00\x00\x01\x02")  # a record cut short by a crash
    again = reopen(idx)
    assert again.info()["images"] == 4
    again.add([("late.png", "late", {}, feats["coffee.png"])])  # appends after the cut
    again.close()
    assert reopen(idx).info()["images"] == 5


def test_a_large_batch_becomes_a_segment_directly(tmp_path, feats):
    from search_service.index.store import StoreSettings

    eng = SearchEngine(
        tmp_path / "bulk",
        threads=1,
        background=False,
        store_settings=StoreSettings(seal_descriptors=1000),
    )
    eng.add([(n, n, {}, feats[n]) for n in PHOTOS])
    info = eng.info()
    assert info["segments"] == 1 and info["growing_descriptors"] == 0 and info["images"] == 4
    eng.add([("coffee.png", "tea", {}, feats["coffee.png"])], OnConflict.REPLACE)
    assert eng.search(feats["view:coffee.png"]).best.image.label == "tea"
    eng.close()
    again = SearchEngine(tmp_path / "bulk", threads=1, background=False)
    assert again.info()["images"] == 4
    assert again.search(feats["view:coffee.png"]).best.image.label == "tea"
    again.close()


def test_dead_copies_do_not_hide_the_live_image(tmp_path, feats):
    """Replacing an image with the same photo leaves a dead twin of every descriptor in
    the sealed segments until a merge; those twins must not crowd out the live copy."""
    eng = SearchEngine(tmp_path / "idx", threads=1, background=False)
    try:
        f = feats["coffee.png"]
        eng.add([("coffee", "coffee", {}, f)])
        for _ in range(12):  # 12 dead copies > k = 10 neighbours per descriptor
            eng.index.sealer.seal()
            eng.add([("coffee", "coffee", {}, f)], OnConflict.REPLACE)
        eng.index.sealer.seal()
        assert eng.info()["images"] == 1 and eng.info()["segments"] == 13
        r = eng.search(f, top_k=1)
        assert r.best is not None and r.best.image.image_id == "coffee"
        assert r.best.inliers > 100
    finally:
        eng.close()


def _answer(engine, query):  # noqa: ANN001, ANN202
    r = engine.search(query, top_k=4, include_matches=True, include_rejected=True)
    return [
        (c.image.image_id, c.inliers, c.putative, c.database_locations.tobytes())
        for c in r.candidates
    ]


def test_an_image_scores_the_same_before_and_after_its_seal(tmp_path, feats):
    eng = SearchEngine(tmp_path / "idx", threads=1, background=False)
    try:
        # rows a little off unit length, as the door lets through: stored as the seal keeps them
        shrunk = [
            (n, n, {}, replace(feats[n], descriptors=feats[n].descriptors * 0.995)) for n in PHOTOS
        ]
        eng.add(shrunk)
        queries = [feats["view:" + n] for n in PHOTOS]
        before = [_answer(eng, q) for q in queries]
        assert eng.index.sealer.seal() and eng.info()["growing_descriptors"] == 0
        assert [_answer(eng, q) for q in queries] == before
        assert all(answer[0][1] >= 20 for answer in before)
    finally:
        eng.close()


def test_fewer_lookups_vote_and_every_descriptor_is_matched(engine, feats):
    from search_service.search.search_params import SearchParams

    full = {n: engine.search(feats["view:" + n], top_k=1).best for n in PHOTOS}
    for name in PHOTOS:
        query = feats["view:" + name]
        half = len(query) // 2  # the strongest half looks up neighbours
        engine.params = SearchParams(lookup_features=half)
        _, hits, _ = engine.neighbours(query, 5)
        strongest = set(np.argsort(-query.strengths, kind="stable")[:half].tolist())
        assert set(hits.query.tolist()) == strongest
        best = engine.search(query, top_k=1).best
        # the same image, with the same inliers: exact matching used every descriptor
        assert (best.image.image_id, best.inliers) == (name, full[name].inliers)


def test_info_counts_distinct_labels_and_the_files_over_segments_and_buffer(engine, feats):
    """Counted from the view and the segments' sizes measured once, not by walking every
    image and file at each add (each AddImages answer carries the info)."""
    info = engine.info()
    assert (info["images"], info["labels"]) == (4, 4)
    engine.add([("again", "astronaut", {}, feats["view:astronaut.png"])])  # a sealed label
    engine.add([("new", "moon", {}, feats["view:coffee.png"])])  # a label of its own
    assert engine.info()["labels"] == 5
    engine.remove(["astronaut.png", "again"])
    assert engine.info()["labels"] == 4
    engine.index.sealer.seal()
    files = [p for p in engine.index_dir.rglob("*") if p.is_file() and p.name != "LOCK"]
    walked = sum(p.stat().st_size for p in files)
    assert engine.info()["bytes_on_disk"] == walked


def test_images_with_and_without_words_are_found_alike(tmp_path, feats):
    """Segments written before the index had words are shortlisted by their rows' votes,
    later ones by their words, the buffer by exact votes: each view finds its photo with
    the inliers it has in an index of one kind only."""
    from search_service.index.store_settings import StoreSettings

    settings = StoreSettings(n_trees=2, codebook_words=256, codebook_min_rows=1500)
    eng = SearchEngine(tmp_path / "idx", threads=1, store_settings=settings, background=False)
    try:
        eng.add([(PHOTOS[0], "a", {}, feats[PHOTOS[0]])])
        assert eng.index.sealer.seal()  # before the words
        eng.add([(n, n, {}, feats[n]) for n in PHOTOS[1:3]])
        assert eng.index.sealer.seal()  # fits them
        eng.add([(PHOTOS[3], "d", {}, feats[PHOTOS[3]])])  # in the buffer
        segments = eng.index.store.segments
        assert [s.inverted is not None for s in segments] == [False, True]
        for name in PHOTOS:
            best = eng.search(feats["view:" + name], top_k=1).best
            assert best is not None and best.image.image_id == name and best.inliers >= 20
    finally:
        eng.close()
