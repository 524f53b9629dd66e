import numpy as np

from search_service.search.exact_matches import mutual_matches
from search_service.search.hits import Hits
from search_service.search.lookup import exact_knn, gather_hits
from search_service.search.votes import shortlist, vote


def _hits(rows):
    """rows: (query, db_row, image, dist)."""
    a = np.array(rows, dtype=float)
    return Hits(
        a[:, 0].astype(np.int32),
        a[:, 1].astype(np.int64),
        a[:, 2].astype(np.int32),
        a[:, 3].astype(np.float32),
    )


def test_gather_hits_drops_empty_slots_and_excluded_images():
    rows = np.array([[0, 3, -1], [4, 1, 2]])
    images = np.array([[0, 1, -1], [2, 0, 1]])
    dists = np.array([[0.1, 0.2, np.inf], [0.3, 0.4, 0.5]], np.float32)
    h = gather_hits(rows, images, dists, excluded=np.array([1], np.int32))
    assert h.query.tolist() == [0, 1, 1]
    assert h.row.tolist() == [0, 4, 1]
    assert h.image.tolist() == [0, 2, 0]


def test_exact_knn_matches_brute_force():
    rng = np.random.default_rng(0)
    base = rng.random((50, 8), dtype=np.float32)
    queries = rng.random((5, 8), dtype=np.float32)
    ids, dists = exact_knn(queries, base, 3)
    full = np.linalg.norm(queries[:, None] - base[None], axis=2)
    np.testing.assert_array_equal(ids, np.argsort(full, axis=1)[:, :3])
    np.testing.assert_allclose(dists, np.sort(full, axis=1)[:, :3], atol=1e-5)
    ids, _ = exact_knn(queries, base[:2], 3)
    assert (ids[:, 2] == -1).all()


def test_votes_count_distinct_query_keypoints_per_image():
    h = _hits([(0, 10, 1, 0.1), (0, 11, 1, 0.2), (1, 12, 1, 0.1), (2, 20, 2, 0.1)])
    assert vote(h, 3).tolist() == [0, 2, 1]
    assert shortlist(np.array([0, 2, 1]), 5, 1, str).tolist() == [1, 2]
    assert shortlist(np.array([0, 2, 1]), 5, 2, str).tolist() == [1]
    # equal votes: by image id, not by position in the index
    assert shortlist(np.array([3, 1, 3, 3]), 2, 1, "cxab".__getitem__).tolist() == [2, 3]


def _unit(rows):
    a = np.asarray(rows, np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_many_query_keypoints_on_one_database_keypoint_give_one_match():
    # The collapse that fooled the naive prototype: every query keypoint's nearest
    # database keypoint is the same one; only the closest query keypoint keeps it.
    rng = np.random.default_rng(0)
    hub = rng.normal(size=16)
    queries = _unit([hub + 0.05 * (q + 1) * rng.normal(size=16) for q in range(50)])
    database = _unit([hub, *rng.normal(size=(5, 16))])
    q, d = mutual_matches(queries, database, ratio=1.0, max_distance=2.0)
    closest = int(np.argmax(queries @ database[0]))
    assert len(set(d.tolist())) == d.size  # one-to-one
    assert q[d == 0].tolist() == [closest]


def test_mutual_nearest_neighbours_match_in_query_order():
    rng = np.random.default_rng(1)
    database = _unit(rng.normal(size=(40, 32)))
    order = rng.permutation(40)[:25]
    queries = _unit(database[order] + 0.02 * rng.normal(size=(25, 32)))
    q, d = mutual_matches(queries, database, ratio=0.9, max_distance=2.0)
    assert q.tolist() == list(range(25)) and d.tolist() == order.tolist()


def test_ratio_test_rejects_ambiguous_matches():
    # Query 0 sits between two near-identical database keypoints; query 1 is distinctive.
    e = np.eye(4, dtype=np.float32)
    database = _unit([e[0] + 0.30 * e[2], e[0] + 0.32 * e[3], e[1]])
    queries = _unit([e[0], e[1] + 0.1 * e[2]])
    q, d = mutual_matches(queries, database, ratio=0.8, max_distance=2.0)
    assert q.tolist() == [1] and d.tolist() == [2]
    q, _ = mutual_matches(queries, database, ratio=1.0, max_distance=2.0)
    assert 0 in q.tolist()


def test_mutual_matches_in_blocks_equal_one_block(monkeypatch):
    from search_service.search import blas

    rng = np.random.default_rng(5)
    database = _unit(rng.normal(size=(60, 16)))
    queries = _unit(
        np.vstack([database[:40] + 0.1 * rng.normal(size=(40, 16)), rng.normal(size=(30, 16))])
    )
    whole = mutual_matches(queries, database, ratio=0.9, max_distance=2.0)
    monkeypatch.setattr(blas, "EXACT_BLOCK", 7 * 60)  # 7 query rows per block
    blocked = mutual_matches(queries, database, ratio=0.9, max_distance=2.0)
    assert whole[0].size > 20
    for a, b in zip(whole, blocked, strict=True):
        assert a.tolist() == b.tolist()


def test_distance_cap_and_empty_sides():
    e = np.eye(3, dtype=np.float32)
    q, d = mutual_matches(e[:1], _unit([e[0] + e[1]]), ratio=1.0, max_distance=0.5)
    assert q.size == 0  # the only neighbour is 0.77 away
    q, d = mutual_matches(e[:1], _unit([e[0] + e[1]]), ratio=1.0, max_distance=1.0)
    assert q.tolist() == [0] and d.tolist() == [0]
    q, d = mutual_matches(e[:0], e, ratio=0.8, max_distance=2.0)
    assert q.size == 0 and d.size == 0
    q, d = mutual_matches(e, e[:0], ratio=0.8, max_distance=2.0)
    assert q.size == 0 and d.size == 0


def test_exact_knn_in_blocks_equals_one_block(monkeypatch):
    from search_service.search import blas, lookup

    rng = np.random.default_rng(3)
    queries = rng.normal(size=(37, 16)).astype(np.float32)
    base = rng.normal(size=(50, 16)).astype(np.float32)
    whole = lookup.exact_knn(queries, base, 5)
    monkeypatch.setattr(blas, "EXACT_BLOCK", 100)  # two queries per block
    blocked = lookup.exact_knn(queries, base, 5)
    np.testing.assert_array_equal(whole[0], blocked[0])
    np.testing.assert_allclose(whole[1], blocked[1], rtol=1e-6)
    brute = np.argsort(((queries[:, None] - base[None]) ** 2).sum(-1), axis=1)[:, :5]
    np.testing.assert_array_equal(blocked[0], brute)


def test_lookup_rows_are_the_strongest_in_keypoint_order():
    from search_service.search.lookup import lookup_rows

    strengths = np.array([0.1, 0.9, 0.5, 0.9, 0.2], np.float32)
    assert lookup_rows(strengths, 5, 3).tolist() == [1, 2, 3]
    assert lookup_rows(strengths, 5, 2).tolist() == [1, 3]  # ties: the first
    everything = [0, 1, 2, 3, 4]
    assert lookup_rows(strengths, 5, 0).tolist() == everything  # 0 = all
    assert lookup_rows(strengths, 5, 5).tolist() == everything
    assert lookup_rows(None, 5, 3).tolist() == everything  # no scores: all


def test_gather_hits_names_the_looked_up_keypoints():
    rows = np.array([[7, -1], [8, 9]])
    images = np.array([[0, -1], [1, 1]])
    dists = np.zeros((2, 2), np.float32)
    hits = gather_hits(rows, images, dists, queries=np.array([3, 10], np.int32))
    assert hits.query.tolist() == [3, 10, 10] and hits.row.tolist() == [7, 8, 9]


def test_lookups_by_feature_kind_unless_the_operator_says():
    from search_service.search.search_params import SearchParams

    assert SearchParams().lookup_features_for("aliked") == 500
    assert SearchParams().lookup_features_for("sift") == 0  # all: SIFT loses answers with 500
    assert SearchParams().lookup_features_for("delf") == 0
    assert SearchParams(lookup_features=300).lookup_features_for("sift") == 300
