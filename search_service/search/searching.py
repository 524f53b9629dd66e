"""A search, as one story: first stage → shortlist → exact matches → verification → ranking.

The first stage (shortlist.first_stage) scores sealed images by their visual words and
finds the k nearest rows of the query's strongest descriptors among the images without
words (lookup.py); a single index runs it on its own view (engine.py), a coordinator asks
its shards (coordinator/). From there on, both run ``from_first_stage``. ``compare`` is the
same matching and verification for two photos, without an index.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from landmark.wire import Features

from ..errors import Cancelled, InvalidRequest
from ..index.images import ImageMeta
from .exact_matches import Matcher, mutual_matches
from .hits import Hits, WordChoice
from .ranking import SearchResult, Timing, ranked
from .search_params import SearchParams
from .verify import FailureCount, Frames, verify, verify_candidates
from .votes import combine


def from_first_stage(
    features: Features,
    words: WordChoice,
    hits: Hits,
    images: Sequence[ImageMeta],
    match: Matcher,
    params: SearchParams,
    *,
    shortlist_size: int,
    **rest,  # noqa: ANN003 (from_shortlist's)
) -> SearchResult:
    """The rest of a search once its first stage has chosen images by their ``words`` and
    found the ``hits`` of the query's nearest rows (image numbers index ``images``): the
    shortlist (shortlist.combine), then ``from_shortlist``."""
    name = lambda i: images[i].image_id  # noqa: E731
    chosen, votes = combine(words, hits, len(images), shortlist_size, params.min_votes, name)
    return from_shortlist(features, chosen, votes, images, match, params, **rest)


def from_shortlist(
    features: Features,
    chosen: np.ndarray,
    votes: np.ndarray,
    images: Sequence[ImageMeta],
    match: Matcher,
    params: SearchParams,
    *,
    top_k: int,
    min_inliers: int,
    neighbours_ms: float,
    started: float,
    include_matches: bool = False,
    include_rejected: bool = False,
    alive: Callable[[], bool] = lambda: True,
    pool: ThreadPoolExecutor | None = None,
    failures: FailureCount | None = None,
) -> SearchResult:
    """The ``chosen`` images (numbers into ``images``) matched exactly with the query by
    ``match``, each verified, and ranked (``votes`` per image: what the first stage gave
    them, shown and used to break ties). ``started`` is the search's
    time.perf_counter() at its start."""
    t0 = time.perf_counter()
    if not alive():
        raise Cancelled("the caller went away before matching")
    putatives = match(chosen)
    t1 = time.perf_counter()
    checked = verify_candidates(
        features.locations,
        features.image_size,
        putatives,
        images,
        params.verify,
        min_inliers,
        pool,
        alive,
        failures,
    )
    candidates = ranked(
        checked,
        votes,
        images,
        min_inliers,
        include_matches,
        include_rejected,
        weigh_shared=params.weigh_shared_inliers,
    )
    t2 = time.perf_counter()
    timing = Timing(neighbours_ms, (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t2 - started) * 1e3)
    return SearchResult(candidates[:top_k], min_inliers, timing, len(putatives))


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
    threshold = params.min_inliers_for(query.backend, min_inliers)
    frames = Frames(query.image_size, reference.image_size, len(query), threshold)
    result = verify(src, dst, frames, params.verify)
    return Comparison(
        inliers=result.inliers,
        putative=int(q.size),
        min_inliers=threshold,
        query_locations=src[result.mask],
        reference_locations=dst[result.mask],
        transform=result.transform,
    )
