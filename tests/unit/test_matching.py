import numpy as np

from search_service.matching import (
    Hits,
    exact_knn,
    gather_hits,
    putative_matches,
    shortlist,
    vote,
)


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
    assert shortlist(np.array([0, 2, 1]), 5, 1).tolist() == [1, 2]
    assert shortlist(np.array([0, 2, 1]), 5, 2).tolist() == [1]


def test_many_query_keypoints_on_one_database_keypoint_give_one_match():
    # The collapse that fooled the naive prototype: every query keypoint's nearest
    # neighbour is database row 7.
    h = _hits([(q, 7, 0, 0.1 + q / 100) for q in range(50)])
    (p,) = putative_matches(h, np.array([0]), ratio=1.0, max_distance=2.0)
    assert p.query.tolist() == [0] and p.row.tolist() == [7]


def test_each_query_keypoint_keeps_its_nearest_hit_per_image():
    h = _hits([(0, 5, 0, 0.4), (0, 3, 0, 0.2), (0, 9, 1, 0.1)])
    p0, p1 = putative_matches(h, np.array([0, 1]), ratio=1.0, max_distance=2.0)
    assert p0.row.tolist() == [3] and p1.row.tolist() == [9]


def test_ratio_test_rejects_ambiguous_matches_within_an_image():
    # q0: 0.50 vs 0.52 in image 0 (ambiguous); q1: 0.2 vs 0.6 (distinctive).
    h = _hits([(0, 1, 0, 0.50), (0, 2, 0, 0.52), (1, 3, 0, 0.2), (1, 4, 0, 0.6)])
    (p,) = putative_matches(h, np.array([0]), ratio=0.8, max_distance=2.0)
    assert p.query.tolist() == [1] and p.row.tolist() == [3]


def test_distance_cap_and_candidates_without_hits():
    h = _hits([(0, 1, 0, 1.5), (1, 2, 0, 0.3)])
    p0, p1 = putative_matches(h, np.array([0, 4]), ratio=1.0, max_distance=1.0)
    assert p0.query.tolist() == [1]
    assert p1.image == 4 and p1.query.size == 0


def test_exact_knn_in_blocks_equals_one_block(monkeypatch):
    from search_service import matching

    rng = np.random.default_rng(3)
    queries = rng.normal(size=(37, 16)).astype(np.float32)
    base = rng.normal(size=(50, 16)).astype(np.float32)
    whole = matching.exact_knn(queries, base, 5)
    monkeypatch.setattr(matching, "EXACT_BLOCK", 100)  # two queries per block
    blocked = matching.exact_knn(queries, base, 5)
    np.testing.assert_array_equal(whole[0], blocked[0])
    np.testing.assert_allclose(whole[1], blocked[1], rtol=1e-6)
    brute = np.argsort(((queries[:, None] - base[None]) ** 2).sum(-1), axis=1)[:, :5]
    np.testing.assert_array_equal(blocked[0], brute)
