"""The second half of a search, from k-NN hits to a ranked, verified list.

Shared by one index (SearchEngine) and by a coordinator over shards: both gather the k
nearest database descriptors of every query descriptor, then call ``rank``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from landmark.wire import Features

from .errors import Cancelled, InvalidRequest
from .matching import Hits, mutual_matches, shortlist, vote
from .segment import ImageMeta
from .verify import Verification, VerifyParams, verify

log = logging.getLogger(__name__)


class _Count:
    """A thread-safe count (candidates whose verification raised), for the metrics."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self.value += 1


VERIFY_FAILURES = _Count()


# Inliers a match needs, by feature kind, unless the operator or the request says otherwise:
# the lowest count at which the exhaustive check (make quality-ceiling BACKEND=...) accepts
# at most 5% of the open-set queries (docs/quality.md).
MIN_INLIERS = {"sift": 7, "aliked": 9}
FALLBACK_MIN_INLIERS = 7  # feature kinds not measured here (delf)


@dataclass(frozen=True)
class SearchParams:
    k: int = 5  # neighbours per query descriptor (they only choose the shortlist)
    search_k: int = 0  # Annoy nodes per lookup, shared among segments; 0 = k * 48 (matching.py)
    shortlist: int = 20  # best-voted images matched exactly and verified
    min_votes: int = 4
    ratio: float = 0.85  # Lowe's ratio test of exact matching with a shortlisted image
    max_distance: float = 0.9  # on L2-normalised descriptors (0..2)
    min_inliers: int = 0  # 0 = MIN_INLIERS of the query's feature kind
    verify: VerifyParams = field(default_factory=VerifyParams)

    def min_inliers_for(self, backend: str, requested: int = 0) -> int:
        """The threshold of one search: the request's, else the configured one, else the
        feature kind's."""
        return requested or self.min_inliers or MIN_INLIERS.get(backend, FALLBACK_MIN_INLIERS)


@dataclass(frozen=True)
class Candidate:
    image: ImageMeta
    inliers: int
    votes: int
    putative: int
    query_locations: np.ndarray | None = None
    database_locations: np.ndarray | None = None
    transform: np.ndarray | None = None


@dataclass(frozen=True)
class Timing:
    neighbours_ms: float = 0.0  # nearest database descriptors (a coordinator: the shards)
    matching_ms: float = 0.0  # votes, shortlist and exact mutual matching
    verify_ms: float = 0.0
    total_ms: float = 0.0


@dataclass(frozen=True)
class SearchResult:
    candidates: list[Candidate]
    min_inliers: int
    timing: Timing
    verified: int = 0  # candidate images verified geometrically

    @property
    def best(self) -> Candidate | None:
        """The best candidate, if it reaches min_inliers (else "no match")."""
        if self.candidates and self.candidates[0].inliers >= self.min_inliers:
            return self.candidates[0]
        return None


@dataclass(frozen=True)
class Putative:
    """Putative matches of the query with one shortlisted database image."""

    image: int  # index into the ranked images
    query: np.ndarray  # [M] query keypoint indices, ascending
    locations: np.ndarray  # [M, 2] (x, y) of the matched database keypoints


# Exact matching of the query with a list of shortlisted images (indices into the ranked
# images): one Putative per image, in the same order.
Matcher = Callable[[np.ndarray], Sequence[Putative]]


def order_key(c: Candidate, min_inliers: int) -> tuple[int, int, int, int, str]:
    """Verified candidates first, by inliers; the rest by how many mutual matches they
    have (the similarity before verification), then by votes."""
    accepted = c.inliers >= min_inliers
    return (
        0 if accepted else 1,
        -c.inliers if accepted else 0,
        -c.putative,
        -c.votes,
        c.image.image_id,
    )


def rank(
    features: Features,
    hits: Hits,
    images: Sequence[ImageMeta],
    match: Matcher,
    params: SearchParams,
    *,
    shortlist_size: int,
    min_inliers: int,
    include_matches: bool = False,
    include_rejected: bool = False,
    alive: Callable[[], bool] = lambda: True,
    pool: ThreadPoolExecutor | None = None,
) -> tuple[list[Candidate], int, float, float]:
    """Vote, shortlist, exact one-to-one matching, verification.

    ``hits.image`` indexes ``images``; ``match`` matches the query
    exactly with shortlisted images. Returns the candidates best first, how many images
    were verified, and the matching and verification times in ms."""
    t0 = time.perf_counter()
    votes = vote(hits, len(images))
    chosen = shortlist(votes, shortlist_size, params.min_votes, lambda i: images[i].image_id)
    if not alive():
        raise Cancelled("the caller went away before matching")
    putatives = match(chosen)
    t1 = time.perf_counter()

    def check(put: Putative) -> tuple[Putative, np.ndarray, np.ndarray, Verification]:
        if not alive():
            raise Cancelled("the caller went away during verification")
        src = features.locations[put.query]
        dst = put.locations
        meta = images[put.image]
        try:
            return put, src, dst, verify(src, dst, (meta.width, meta.height), params.verify)
        except Exception:  # one bad candidate must not fail the search: skip it
            log.exception("verifying candidate %r failed; skipped", meta.image_id)
            VERIFY_FAILURES.add()
            return put, src, dst, Verification(0, np.zeros(len(src), bool), None)

    # OpenCV releases the GIL: candidates are verified on all the pool's threads.
    checked = (
        pool.map(check, putatives)
        if pool is not None and len(putatives) > 1
        else map(check, putatives)
    )
    found: list[Candidate] = []
    for put, src, dst, result in checked:
        if result.inliers < min_inliers and not include_rejected:
            continue
        found.append(
            Candidate(
                image=images[put.image],
                inliers=result.inliers,
                votes=int(votes[put.image]),
                putative=int(put.query.size),
                query_locations=src[result.mask] if include_matches else None,
                database_locations=dst[result.mask] if include_matches else None,
                transform=result.transform,
            )
        )
    found.sort(key=lambda c: order_key(c, min_inliers))
    t2 = time.perf_counter()
    return found, len(putatives), (t1 - t0) * 1e3, (t2 - t1) * 1e3


@dataclass(frozen=True)
class Comparison:
    """Two feature sets matched with each other and verified: what a search would score."""

    inliers: int
    putative: int
    min_inliers: int
    query_locations: np.ndarray  # [M, 2] inlier (x, y) in the query
    reference_locations: np.ndarray  # [M, 2] the same inliers in the reference
    transform: np.ndarray | None

    @property
    def match(self) -> bool:
        return self.inliers >= self.min_inliers


def compare(
    query: Features, reference: Features, params: SearchParams, min_inliers: int = 0
) -> Comparison:
    """Exact mutual matching and verification of ``query`` against ``reference``, with the
    parameters and threshold a search uses for the feature kind."""
    if (query.backend, query.dimension) != (reference.backend, reference.dimension):
        raise InvalidRequest(
            f"the query's features are {query.backend} ({query.dimension}-D) and the "
            f"reference's {reference.backend} ({reference.dimension}-D): extract both photos "
            "with the same extractor"
        )
    q, r = mutual_matches(
        query.descriptors, reference.descriptors, params.ratio, params.max_distance
    )
    src, dst = query.locations[q], reference.locations[r]
    result = verify(src, dst, reference.image_size, params.verify)
    return Comparison(
        inliers=result.inliers,
        putative=int(q.size),
        min_inliers=params.min_inliers_for(query.backend, min_inliers),
        query_locations=src[result.mask],
        reference_locations=dst[result.mask],
        transform=result.transform,
    )
