"""What a search is asked to do, declared once: neighbours per lookup, the shortlist, the
matching and verification thresholds, and the inliers a match needs by feature kind."""

from __future__ import annotations

from dataclasses import dataclass, field

from .verify import VerifyParams

# Inliers a match needs, by feature kind, unless the operator or the request says otherwise:
# the lowest count at which the exhaustive check (make quality-ceiling BACKEND=...) accepts
# at most 5% of the open-set queries (docs/quality.md).
MIN_INLIERS = {"sift": 7, "aliked": 9}
FALLBACK_MIN_INLIERS = 7  # feature kinds not measured here (delf)

# Query descriptors that look up neighbours, by feature kind, unless the operator says
# otherwise: the strongest 500 keep every answer of ALIKED's features at 1,000 to 50,000
# images and halve the lookups (docs/index-design.md). SIFT's less distinctive descriptors
# lose an answer that way, so SIFT and the kinds not measured here look up with all.
LOOKUP_FEATURES = {"aliked": 500}


@dataclass(frozen=True)
class SearchParams:
    k: int = 5  # neighbours per looked-up query descriptor (they only choose the shortlist)
    search_k: int = 0  # Annoy nodes per lookup, shared among segments; 0 = k * 48 (lookup.py)
    # query descriptors that look up neighbours, the strongest first (0 = LOOKUP_FEATURES
    # of the query's feature kind); exact matching and verification use all of them
    lookup_features: int = 0
    shortlist: int = 20  # best-voted images matched exactly and verified
    min_votes: int = 4
    ratio: float = 0.85  # Lowe's ratio test of exact matching with a shortlisted image
    max_distance: float = 0.9  # on L2-normalised descriptors (0..2)
    min_inliers: int = 0  # 0 = MIN_INLIERS of the query's feature kind
    # an inlier keypoint shared by verified candidates of L labels counts 1/L in each
    # (ranking.py; False: every inlier counts 1, to measure what this does)
    weigh_shared_inliers: bool = False
    verify: VerifyParams = field(default_factory=VerifyParams)

    def min_inliers_for(self, backend: str, requested: int = 0) -> int:
        """The threshold of one search: the request's, else the configured one, else the
        feature kind's."""
        return requested or self.min_inliers or MIN_INLIERS.get(backend, FALLBACK_MIN_INLIERS)

    def lookup_features_for(self, backend: str) -> int:
        """How many of a query's strongest descriptors look up neighbours (0 = all)."""
        return self.lookup_features or LOOKUP_FEATURES.get(backend, 0)


# More than any query holds: every query descriptor looks up (the path before lookup_features).
EVERY_DESCRIPTOR = 1 << 30
