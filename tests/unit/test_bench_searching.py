"""The bench's search measurements on a real engine (bench/searching.py): paired runs keep
their own parameters and results, and the shortlist's recall counts where the right images
rank."""

import pytest

from bench.searching import search_paired, shortlist_recall
from search_service.engine import SearchEngine
from search_service.search.search_params import SearchParams
from tests.unit.test_engine import PHOTOS, feats  # noqa: F401 (a fixture)


@pytest.fixture()
def gallery(tmp_path, feats):  # noqa: F811
    """The four photos and their second views, each pair under one label, and one more
    view whose label no other image has; the views are the queries."""
    eng = SearchEngine(tmp_path / "idx", threads=1, background=False)
    label = {n: n.split(".")[0] for n in PHOTOS}
    eng.add([(n, label[n], {}, feats[n]) for n in PHOTOS])
    eng.add([("view:" + n, label[n], {}, feats["view:" + n]) for n in PHOTOS[:3]])
    eng.add([("alone", "elsewhere", {}, feats["view:" + PHOTOS[3]])])
    queries = [("view:" + n, label[n], feats["view:" + n]) for n in PHOTOS[:3]]
    queries.append(("alone", "elsewhere", feats["view:" + PHOTOS[3]]))
    yield eng, queries
    eng.close()


def test_paired_runs_keep_their_own_parameters_and_results(gallery):
    engine, queries = gallery
    correct: dict[str, bool] = {}
    never = SearchParams(min_inliers=100_000)  # no candidate can be accepted
    got = search_paired(engine, queries, {"service": None, "never": never}, correct, passes=2)
    assert got["service"]["top1"] == 0.75  # "alone" has no other photo of its label
    assert got["never"]["top1"] == 0.0
    assert got["service"]["searches"] == got["never"]["searches"] == 8
    assert correct == {"view:astronaut.png": True, "view:coffee.png": True,
                       "view:chelsea.png": True, "alone": False}  # fmt: skip
    assert engine.params == SearchParams()


def test_shortlist_recall_counts_where_the_right_images_rank(gallery):
    engine, queries = gallery
    got = shortlist_recall(engine, queries)
    # three queries find their one other photo first; "alone" has none to find, and holds
    # all it could (nothing)
    assert got == {"length": 20, "recall": 0.75, "held": 1.0, "first_position_mean": 1.0}
