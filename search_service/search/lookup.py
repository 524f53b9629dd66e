"""Lookup, a search's first step: the k nearest database descriptors of each looked-up
query descriptor, over the sealed segments (Annoy) and the growing buffer (exact), as
Hits: one entry per (query keypoint, database row) pair.

Only the strongest ``SearchParams.lookup_features`` query descriptors look up neighbours
(``lookup_rows``): their hits only vote for the shortlist, and exact matching and
verification use every query descriptor (docs/index-design.md has the measurements).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from annoy import AnnoyIndex

from ..index.segment import Segment
from ..index.view import View
from . import blas
from .hits import Hits

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
    if seg.annoy is None:
        raise ValueError(f"{seg.name} has words, not trees: it is shortlisted by them")
    if seg.projection is None:
        return ann_lookup(seg.annoy, queries, n, search_k, pool)
    wide = RERANK * n
    ids, _ = ann_lookup(seg.annoy, seg.projection(queries), wide, search_k, pool)
    valid = ids >= 0
    rows = seg.unit_rows(np.where(valid, ids, 0).ravel()).reshape(*ids.shape, -1)
    with blas.SLOTS:
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

    Queries go in blocks so that the distance matrix stays near blas.EXACT_BLOCK entries
    (a few MB) however many searches run at once."""
    n = queries.shape[0]
    kk = min(k, base.shape[0])
    ids = np.full((n, k), -1, np.int64)
    dists = np.full((n, k), np.inf, np.float32)
    if kk == 0:
        return ids, dists
    base_sq = (base * base).sum(1)[None, :]
    step = max(1, blas.EXACT_BLOCK // base.shape[0])
    # Candidates come from the fast |q|² + |b|² - 2 q·b, whose last bits depend on the
    # matrix shapes BLAS sees; a few spare ones are kept and the final distances are
    # computed pair by pair, so the answer does not depend on how many rows the buffer
    # holds (one index and N shards agree).
    spare = min(kk + 2, base.shape[0])
    for lo in range(0, n, step):
        q = queries[lo : lo + step]
        with blas.SLOTS:
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
    """k nearest database rows over the segments without words (Annoy) and the growing
    buffer (exact), leaving out removed images and the global image numbers in ``skip``
    (excluded by the caller). The images of segments with words are shortlisted by them
    (shortlist.py).

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
    sealed_rows = sum(seg.rows for seg in view.segments if seg.annoy is not None)
    for s, seg in enumerate(view.segments):
        if seg.annoy is None:
            continue
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
    if not rows:  # every segment has words, and the buffer is empty
        none = np.full((len(queries), k), -1, np.int64)
        return none, none.copy(), np.full((len(queries), k), np.inf, np.float32)
    if len(rows) == 1 and rows[0].shape[1] == k:
        return rows[0], images[0], dists[0]
    r, i, d = np.hstack(rows), np.hstack(images), np.hstack(dists)
    best = np.argsort(d, axis=1, kind="stable")[:, :k]
    take = np.take_along_axis
    return take(r, best, axis=1), take(i, best, axis=1), take(d, best, axis=1)


def lookup_rows(strengths: np.ndarray | None, n: int, limit: int) -> np.ndarray:
    """Which of ``n`` query descriptors look up neighbours: the ``limit`` strongest by
    detector score (ties: the first), all of them when ``limit`` is 0 or not below n or
    when there are no scores; ascending."""
    if not limit or limit >= n or strengths is None:
        return np.arange(n, dtype=np.int32)
    strongest = np.argsort(-np.asarray(strengths, np.float64), kind="stable")[:limit]
    return np.sort(strongest).astype(np.int32)


def gather_hits(
    rows: np.ndarray,
    images: np.ndarray,
    dists: np.ndarray,
    excluded: np.ndarray | None = None,
    queries: np.ndarray | None = None,
) -> Hits:
    """Flatten k-NN results, drop empty slots and excluded images. ``queries`` [Q] gives
    the query keypoint of each row of results (default: row i is keypoint i)."""
    which = np.arange(rows.shape[0], dtype=np.int32) if queries is None else queries
    q = np.repeat(which.astype(np.int32), rows.shape[1])
    r, img, d = rows.ravel(), images.ravel(), dists.ravel()
    keep = r >= 0
    if excluded is not None and excluded.size:
        keep &= ~np.isin(img, excluded)
    return Hits(q[keep], r[keep], img[keep].astype(np.int32), d[keep])


def nearest_hits(
    view: View,
    descriptors: np.ndarray,
    which: np.ndarray,
    k: int,
    search_k: int,
    skip: np.ndarray,
    pool: ThreadPoolExecutor | None = None,
) -> Hits:
    """The hits of the query descriptors ``which`` (lookup_rows): their k nearest live rows
    among the images without words, leaving out those in ``skip`` (knn)."""
    queries = descriptors if len(which) == len(descriptors) else descriptors[which]
    rows, images, dists = knn(view, queries, k, search_k, pool, skip)
    return gather_hits(rows, images, dists, np.concatenate([view.dead, skip]), which)
