"""Nearest-neighbour lookup and the gathering of hits per database image (vectorised).

From the k nearest database descriptors of every query descriptor:
  votes     — per database image, the number of distinct query keypoints with a hit in it,
              which chooses the shortlist;
  mutual    — per shortlisted image, exact one-to-one matches: a query keypoint and a
              database keypoint that are each other's nearest neighbour, with Lowe's ratio
              test against the query keypoint's second nearest in that image.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from annoy import AnnoyIndex
from threadpoolctl import threadpool_limits

from .segment import Segment
from .view import View


@dataclass(frozen=True)
class Hits:
    """k-NN results flattened: one entry per (query keypoint, database row) pair."""

    query: np.ndarray  # [H] int32 query keypoint
    row: np.ndarray  # [H] int64 database row
    image: np.ndarray  # [H] int32 database image index
    dist: np.ndarray  # [H] float32 Euclidean distance

    @classmethod
    def empty(cls) -> Hits:
        i32 = np.zeros(0, np.int32)
        return cls(i32, np.zeros(0, np.int64), i32.copy(), np.zeros(0, np.float32))


EXACT_BLOCK = 1 << 20  # distance-matrix entries per block of exact search
# OpenBLAS keeps a work buffer (tens of MB) for every call running at once and never
# returns it; two at a time use both cores and keep that memory bounded however many
# searches run in parallel.
_BLAS = threading.BoundedSemaphore(2)


def single_threaded_blas() -> None:
    """Make BLAS (numpy's matrix products) use one thread per call, for the whole process.

    A search parallelises over its own pool (Annoy lookups, exact matching, RANSAC). BLAS
    worker threads spin between calls and took the cores from those threads: measured on
    2 cores, a search took 124 ms with BLAS's own threads and 66 ms with one."""
    threadpool_limits(limits=1, user_api="blas")


RERANK = 3  # a compact segment's Annoy candidates per neighbour kept (docs/index-design.md)
NODES_PER_NEIGHBOUR = 48  # default search_k = k * this: 240 Annoy nodes for k = 5
# search_k is shared among the segments by their rows, each segment taking at least this
# many nodes per neighbour asked of it (docs/index-design.md)
MIN_NODES_PER_NEIGHBOUR = 6
DEAD_EXTRA = 4  # a segment with removed images is asked for up to k * (1 + this) neighbours


def ann_lookup(
    annoy: AnnoyIndex,
    queries: np.ndarray,
    k: int,
    search_k: int,
    pool: ThreadPoolExecutor | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """k nearest rows per query: ids [Q, k] int64 (-1 = none) and distances [Q, k]."""
    n = queries.shape[0]
    ids = np.full((n, k), -1, np.int64)
    dists = np.full((n, k), np.inf, np.float32)

    def run(lo: int, hi: int) -> None:
        # Annoy answers one vector per call and releases the GIL inside it.
        for i in range(lo, hi):
            got, dist = annoy.get_nns_by_vector(queries[i], k, search_k, include_distances=True)
            ids[i, : len(got)] = got
            dists[i, : len(dist)] = dist

    if pool is None or n < 64:
        run(0, n)
    else:
        # chunks of 128 queries keep every worker busy, whatever the pool's size
        list(pool.map(lambda lo: run(lo, min(lo + 128, n)), range(0, n, 128)))
    return ids, dists


def segment_lookup(
    seg: Segment,
    queries: np.ndarray,
    n: int,
    search_k: int,
    pool: ThreadPoolExecutor | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The n nearest rows of one segment per query: ids [Q, n] (-1 = none) and distances
    between the full descriptors. A compact segment's Annoy holds projections: it is asked
    for RERANK times n candidates, which are ranked again by their full descriptors. The
    nodes inspected (search_k) follow k, not the spare neighbours."""
    if seg.projection is None:
        return ann_lookup(seg.annoy, queries, n, search_k, pool)
    wide = RERANK * n
    ids, _ = ann_lookup(seg.annoy, seg.projection(queries), wide, search_k, pool)
    valid = ids >= 0
    rows = seg.unit_rows(np.where(valid, ids, 0).ravel()).reshape(*ids.shape, -1)
    with _BLAS:
        cosine = np.einsum("qd,qkd->qk", queries, rows)
    # unit vectors: distance = sqrt(2 - 2 cosine)
    dist = np.where(valid, np.sqrt(np.maximum(2.0 - 2.0 * cosine, 0.0)), np.inf)
    order = np.lexsort((ids, dist), axis=1)[:, :n]  # by distance; ties by row
    found = np.take_along_axis(dist, order, axis=1).astype(np.float32)
    return np.where(np.isfinite(found), np.take_along_axis(ids, order, axis=1), -1), found


def exact_knn(
    queries: np.ndarray, base: np.ndarray, k: int, ignore: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force k nearest rows of ``base`` (the small growing buffer), never returning
    the rows where ``ignore`` [N] is True.

    Queries go in blocks so that the distance matrix stays near EXACT_BLOCK entries
    (a few MB) however many searches run at once."""
    n = queries.shape[0]
    kk = min(k, base.shape[0])
    ids = np.full((n, k), -1, np.int64)
    dists = np.full((n, k), np.inf, np.float32)
    if kk == 0:
        return ids, dists
    base_sq = (base * base).sum(1)[None, :]
    step = max(1, EXACT_BLOCK // base.shape[0])
    # Candidates come from the fast |q|² + |b|² - 2 q·b, whose last bits depend on the
    # matrix shapes BLAS sees; a few spare ones are kept and the final distances are
    # computed pair by pair, so the answer does not depend on how many rows the buffer
    # holds (one index and N shards agree).
    spare = min(kk + 2, base.shape[0])
    for lo in range(0, n, step):
        q = queries[lo : lo + step]
        with _BLAS:
            d2 = (q * q).sum(1)[:, None] + base_sq - 2 * q @ base.T
        if ignore is not None:
            d2[:, ignore] = np.inf
        part = (
            np.argpartition(d2, spare - 1, axis=1)[:, :spare]
            if spare < base.shape[0]
            else np.tile(np.arange(spare), (q.shape[0], 1))
        )
        exact = np.sqrt(((q[:, None, :] - base[part]) ** 2).sum(-1, dtype=np.float64))
        if ignore is not None:
            exact[ignore[part]] = np.inf
        order = np.lexsort((part, exact), axis=1)[:, :kk]
        found = np.take_along_axis(exact, order, axis=1)
        ids[lo : lo + step, :kk] = np.where(
            np.isfinite(found), np.take_along_axis(part, order, axis=1), -1
        )
        dists[lo : lo + step, :kk] = found
    return ids, dists


def knn(
    view: View,
    queries: np.ndarray,
    k: int,
    search_k: int,
    pool: ThreadPoolExecutor | None = None,
    skip: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k nearest database rows over every segment and the growing buffer, leaving out
    removed images and the global image numbers in ``skip`` (excluded by the caller).

    Left-out images must not take the places of the others: removed images stay in their
    sealed segment until a merge (an image replaced by the same photo leaves a dead twin of
    every descriptor), and an excluded image is often the query itself. The exact search of
    the growing buffer never looks at their rows; an Annoy segment holding n of them is
    asked for 2n extra neighbours (at most DEAD_EXTRA * k) and their rows are dropped.

    Returns global rows [Q, k] (-1 = none), their global image numbers and distances."""
    rows, images, dists = [], [], []
    gone = view.dead if skip is None or not skip.size else np.union1d(view.dead, skip)
    bounds = (*view.image_offsets[1:], view.growing_first)
    nodes = search_k or k * NODES_PER_NEIGHBOUR
    sealed_rows = sum(seg.rows for seg in view.segments)
    for s, seg in enumerate(view.segments):
        lo, hi = view.image_offsets[s], bounds[s]
        dead = gone[(gone >= lo) & (gone < hi)]
        # an image may hold several of a descriptor's nearest rows (itself, when it is
        # the query): two spare neighbours per left-out image
        n = k + min(2 * int(dead.size), DEAD_EXTRA * k)
        # the segments together inspect about the nodes one segment of all their rows
        # would; each still pays its trees' descent (docs/index-design.md)
        share = max(round(nodes * seg.rows / sealed_rows), MIN_NODES_PER_NEIGHBOUR * n)
        ids, d = segment_lookup(seg, queries, n, share, pool)
        valid = ids >= 0
        local = np.where(valid, ids, 0)
        image = seg.image_of(local) + lo
        if dead.size:
            valid &= ~np.isin(image, dead)
            d = np.where(valid, d, np.inf).astype(np.float32)
        rows.append(np.where(valid, local + view.row_offsets[s], -1))
        images.append(np.where(valid, image, -1))
        dists.append(d)
    if view.growing_descriptors.shape[0]:
        ignore = np.isin(view.growing_row_image, gone) if gone.size else None
        ids, d = exact_knn(queries, view.growing_descriptors, k, ignore)
        valid = ids >= 0
        local = np.where(valid, ids, 0)
        image = view.growing_row_image[local]
        rows.append(np.where(valid, local + view.row_offsets[-1], -1))
        images.append(np.where(valid, image, -1))
        dists.append(d)
    if len(rows) == 1 and rows[0].shape[1] == k:
        return rows[0], images[0], dists[0]
    r, i, d = np.hstack(rows), np.hstack(images), np.hstack(dists)
    best = np.argsort(d, axis=1, kind="stable")[:, :k]
    take = np.take_along_axis
    return take(r, best, axis=1), take(i, best, axis=1), take(d, best, axis=1)


def gather_hits(
    rows: np.ndarray, images: np.ndarray, dists: np.ndarray, excluded: np.ndarray | None = None
) -> Hits:
    """Flatten k-NN results, drop empty slots and excluded images."""
    q = np.repeat(np.arange(rows.shape[0], dtype=np.int32), rows.shape[1])
    r, img, d = rows.ravel(), images.ravel(), dists.ravel()
    keep = r >= 0
    if excluded is not None and excluded.size:
        keep &= ~np.isin(img, excluded)
    return Hits(q[keep], r[keep], img[keep].astype(np.int32), d[keep])


def vote(hits: Hits, num_images: int) -> np.ndarray:
    """Per database image: distinct query keypoints with at least one hit in it."""
    if hits.query.size == 0:
        return np.zeros(num_images, np.int64)
    pair = hits.image.astype(np.int64) * (int(hits.query.max()) + 1) + hits.query
    return np.bincount(hits.image[np.unique(pair, return_index=True)[1]], minlength=num_images)


def shortlist(
    votes: np.ndarray, size: int, min_votes: int, name_of: Callable[[int], str]
) -> np.ndarray:
    """The ``size`` best-voted images with at least ``min_votes`` votes, best first. Equal
    votes are ordered by ``name_of(image)`` (the image id), so that the choice does not
    depend on where images sit in the index (one index or several shards)."""
    if size <= 0 or votes.size == 0:
        return np.zeros(0, np.int64)
    pool = np.arange(votes.size)
    if votes.size > size:  # only images at or above the size-th best vote can be chosen
        cutoff = np.partition(votes, votes.size - size)[votes.size - size]
        pool = np.nonzero(votes >= max(cutoff, min_votes))[0]
    order = np.array(sorted(pool.tolist(), key=lambda i: (-votes[i], name_of(i))), np.int64)
    order = order[:size]
    return order[votes[order] >= min_votes]


def mutual_matches(
    query: np.ndarray, database: np.ndarray, ratio: float, max_distance: float
) -> tuple[np.ndarray, np.ndarray]:
    """Exact one-to-one matches between two sets of L2-normalised descriptors: query
    keypoint i and database keypoint j match when each is the other's nearest neighbour
    (mutual), i's nearest is clearly nearer than its second nearest (Lowe's ratio test)
    and within max_distance. Returns (query indices, database indices), in query order.

    The similarity matrix is computed in blocks of query rows (at most EXACT_BLOCK
    entries each), so memory stays bounded whatever the sizes of the two sets."""
    n, m = query.shape[0], database.shape[0]
    empty = np.zeros(0, np.int64)
    if n == 0 or m == 0:
        return empty, empty.copy()
    q = np.ascontiguousarray(query, np.float32)
    d = np.ascontiguousarray(database, np.float32)
    nearest = np.empty(n, np.int64)
    s1 = np.empty(n, np.float32)
    s2 = np.full(n, -np.inf, np.float32)
    column_best = np.full(m, -np.inf, np.float32)
    step = max(1, EXACT_BLOCK // m)
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        with _BLAS:
            sim = q[lo:hi] @ d.T
        rows = np.arange(hi - lo)
        best = sim.argmax(axis=1)
        nearest[lo:hi] = best
        s1[lo:hi] = sim[rows, best]
        np.maximum(column_best, sim.max(axis=0), out=column_best)
        if m > 1:
            sim[rows, best] = -np.inf
            s2[lo:hi] = sim.max(axis=1)
    mutual = s1 >= column_best[nearest]
    # unit vectors: squared distance = 2 - 2 * cosine similarity
    d1 = np.sqrt(np.maximum(2.0 - 2.0 * s1, 0.0))
    d2 = np.sqrt(np.maximum(2.0 - 2.0 * s2, 0.0))
    ok = mutual & (d1 < ratio * d2) & (d1 <= max_distance)
    return np.nonzero(ok)[0].astype(np.int64), nearest[ok]
