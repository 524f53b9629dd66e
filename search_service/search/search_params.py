"""What a search is asked to do, declared once: neighbours per lookup, the shortlist, the
matching and verification thresholds, and the inliers a match needs by feature kind."""

from __future__ import annotations

from dataclasses import dataclass, field

THREADS = 2  # threads looking up, matching and verifying one search (1 = none extra)

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
class VerifyParams:
    # Residual threshold as a fraction of the database image's longer side (pixels otherwise).
    threshold_fraction: float = 0.015
    min_threshold_px: float = 3.0
    max_iters: int = 2000
    confidence: float = 0.999
    # A transform is degenerate when its scale is outside [1/max_scale, max_scale] or one
    # axis is stretched more than max_anisotropy times the other.
    max_scale: float = 10.0
    max_anisotropy: float = 5.0
    # Overlays (overlays.py; docs/quality.md has the measurements that chose these): a
    # fit is frame-locked when one frame-locked map explains at least overlay_share of its
    # inliers, within overlay_tolerance_fraction of the reference's longer side ...
    overlay_share: float = 0.5
    overlay_tolerance_fraction: float = 0.004
    # ... and pins the map down (a scale off by pin_scale would show), or the fit is
    # weak: under compact_fit_stands times the acceptance threshold. A compact cluster
    # fits some frame-locked map whatever it shows; a strong one is a scene's.
    pin_scale: float = 0.1
    compact_fit_stands: float = 2.0
    # ... unless those inliers are this share of the query's keypoints (the same photo or
    # the same view), or this smaller share spread over this share of its width and of its
    # height (a copy at another resolution keeps fewer matches, all over the frame)
    same_photo_fraction: float = 0.25
    resized_copy_fraction: float = 0.1
    resized_copy_extent: float = 0.5
    max_overlay_peels: int = 8  # frame-locked fits peeled off before a candidate scores 0
    peel_overlays: bool = True  # False: the fit as it is (to measure what peeling does)


@dataclass(frozen=True)
class SearchParams:
    k: int = 5  # neighbours per looked-up query descriptor (they only choose the shortlist)
    search_k: int = 0  # Annoy nodes per lookup, shared among segments; 0 = k * 48 (lookup.py)
    # query descriptors that look up neighbours, the strongest first (0 = LOOKUP_FEATURES
    # of the query's feature kind); exact matching and verification use all of them
    lookup_features: int = 0
    shortlist: int = 20  # best-voted images matched exactly and verified
    # the aggregated shortlist: words each query descriptor is counted in (multiple
    # assignment; the stored images' descriptors go to their one nearest word). 2: the
    # shortlists of 3 (mAP 0.944 in-process on the evaluation photos, recall 0.987 at
    # 10,000 images) in two thirds of the first stage; 1 loses some (0.931, 0.975)
    query_words: int = 2
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
