"""Exact matches, a search's third step: each shortlisted image's descriptors against
every query descriptor, one to one: a query keypoint and a database keypoint that are each
other's nearest neighbour (mutual), with Lowe's ratio test against the query keypoint's
second nearest in that image. The matches are the putative correspondences verification
fits a transform to."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import Cancelled
from . import blas

if TYPE_CHECKING:  # read, never built here: a coordinator matches without an index
    from ..index.view import View


@dataclass(frozen=True)
class Putative:
    """Putative matches of the query with one shortlisted database image."""

    image: int  # index into the ranked images
    query: np.ndarray  # [M] query keypoint indices, ascending
    locations: np.ndarray  # [M, 2] (x, y) of the matched database keypoints


# Exact matching of the query with a list of shortlisted images (indices into the ranked
# images): one Putative per image, in the same order. A search over one index matches the
# images of its view (view_matcher); a coordinator asks the shards that hold them.
Matcher = Callable[[np.ndarray], Sequence[Putative]]


def view_matcher(
    view: View,
    descriptors: np.ndarray,
    ratio: float,
    max_distance: float,
    pool: ThreadPoolExecutor | None,
    alive: Callable[[], bool],
) -> Matcher:
    """Exact matching of the query's ``descriptors`` with images of ``view``, on ``pool``."""

    def one(image: int) -> Putative:
        if not alive():
            raise Cancelled("the caller went away during matching")
        database, locations = view.features_of(int(image))
        q, d = mutual_matches(descriptors, database, ratio, max_distance)
        return Putative(int(image), q, locations[d])

    def match(images: np.ndarray) -> list[Putative]:
        if pool is not None and len(images) > 1:
            return list(pool.map(one, images))
        return [one(i) for i in images]

    return match


def mutual_matches(
    query: np.ndarray, database: np.ndarray, ratio: float, max_distance: float
) -> tuple[np.ndarray, np.ndarray]:
    """Exact one-to-one matches between two sets of L2-normalised descriptors: query
    keypoint i and database keypoint j match when each is the other's nearest neighbour
    (mutual), i's nearest is clearly nearer than its second nearest (Lowe's ratio test)
    and within max_distance. Returns (query indices, database indices), in query order.

    The similarity matrix is computed in blocks of query rows (at most
    blas.EXACT_BLOCK entries each), so memory stays bounded whatever the sizes of the two sets."""
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
    step = max(1, blas.EXACT_BLOCK // m)
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        with blas.SLOTS:
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
