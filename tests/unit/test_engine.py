import numpy as np
import pytest
from PIL import Image

from extractor_service.backends.sift import SiftBackend
from extractor_service.extractor import FeatureExtractor, Limits
from landmark_client.wire import Features
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
    eng = SearchEngine(tmp_path / "idx", threads=1)
    eng.add([(n, n.split(".")[0], {"src": "skimage"}, feats[n]) for n in PHOTOS])
    yield eng
    eng.close()


def test_each_view_finds_its_photo(engine, feats):
    for name in PHOTOS:
        r = engine.search(feats["view:" + name], top_k=3)
        assert r.best is not None and r.best.image.image_id == name
        assert r.best.inliers >= 20
        assert r.best.image.metadata == {"src": "skimage"}
        assert all(c.inliers >= r.min_inliers for c in r.candidates)


def test_exclusion_leaves_no_match(engine, feats):
    r = engine.search(feats["view:coffee.png"], exclude=["coffee.png"])
    assert r.best is None or r.best.image.image_id != "coffee.png"


def test_index_reloads_from_disk_with_the_same_answers(tmp_path, engine, feats):
    before = engine.search(feats["view:rocket.jpg"])
    again = SearchEngine(tmp_path / "idx", threads=1)
    after = again.search(feats["view:rocket.jpg"])
    assert [(c.image.image_id, c.inliers) for c in after.candidates] == [
        (c.image.image_id, c.inliers) for c in before.candidates
    ]
    assert again.info()["images"] == 4 and again.info()["generation"] == 1


def test_remove_takes_effect_at_once_and_persists(tmp_path, engine, feats):
    removed, missing = engine.remove(["chelsea.png", "nope.png"])
    assert removed == 1 and missing == ["nope.png"]
    r = engine.search(feats["view:chelsea.png"])
    assert all(c.image.image_id != "chelsea.png" for c in r.candidates)
    assert SearchEngine(tmp_path / "idx", threads=1).info()["images"] == 3
    gens = [p.name for p in (tmp_path / "idx").iterdir() if p.name.startswith("gen-")]
    assert gens == ["gen-00000002"]  # old generation cleaned up


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


def test_half_written_generation_is_never_loaded(tmp_path, engine, feats):
    idx = tmp_path / "idx"
    junk = idx / ".tmp-gen-crashed"
    junk.mkdir()
    (junk / "meta.json").write_text("{ half")
    (idx / "gen-00000099").mkdir()  # a renamed but never committed generation
    again = SearchEngine(idx, threads=1)
    assert again.info()["generation"] == 1 and again.info()["images"] == 4
