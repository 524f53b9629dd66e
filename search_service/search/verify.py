"""Verification, a search's fourth step: a robust affine fit (OpenCV USAC MAGSAC++) on
the matched locations of each shortlisted image.

The score is the number of inliers, counted over distinct locations on both sides, and a
fit whose transform is degenerate (collapsed, mirrored, extremely stretched or scaled)
scores zero: that is how many-to-one or one-point clusters are kept from passing as matches.

A fit that could be accepted is examined for overlays (overlays.py: a watermark, a banner,
a logo the two photos both carry), and its overlay part is peeled off and the rest fitted
again, until a fit is not an overlay's or too few matches remain. The overlay part is:

- most of the fit on one frame-locked map, when that map is pinned down by inliers spread
  wide enough, or when the fit is weak (a compact cluster fits some frame-locked map
  whatever it shows, so only a weak one is taken for a stamp);
- or, at least MIN_MATCHES inliers whose frame-locked map places them at the same place of
  both frames (a corner, an edge's middle, the centre: a banner, a logo, a timestamp).

A fit whose frame-locked inliers cover a large part of the query (or a smaller part spread
over its frame) is kept: that is the same photo or view (a copy, resized, with or without
an overlay), whose whole scene maps frame to frame.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import Cancelled
from ..index.images import ImageMeta
from .exact_matches import Putative
from .overlays import frame_locked, pinned, placed_alike
from .search_params import VerifyParams

log = logging.getLogger(__name__)

MIN_MATCHES = 4
MIN_OVERLAY_TOLERANCE_PX = 2.0


@dataclass(frozen=True)
class Verification:
    inliers: int
    mask: np.ndarray  # [M] bool over the putative matches
    transform: np.ndarray | None  # [2, 3] query → database


def _rejected(m: int) -> Verification:
    return Verification(0, np.zeros(m, bool), None)


def is_degenerate(transform: np.ndarray, params: VerifyParams) -> bool:
    linear = transform[:, :2].astype(np.float64)
    s = np.linalg.svd(linear, compute_uv=False)
    if s[1] <= 1e-9 or not np.isfinite(s).all():
        return True
    if np.linalg.det(linear) <= 0:  # a mirror image: no two photos of a scene relate so
        return True
    scale = float(np.sqrt(s[0] * s[1]))
    in_range = 1 / params.max_scale <= scale <= params.max_scale
    return bool(not in_range or s[0] / s[1] > params.max_anisotropy)


def distinct_count(points: np.ndarray) -> int:
    """Number of distinct locations (to the pixel)."""
    if points.shape[0] == 0:
        return 0
    return int(np.unique(np.round(points).astype(np.int64), axis=0).shape[0])


def fit(
    src: np.ndarray, dst: np.ndarray, dst_size: tuple[float, float], params: VerifyParams
) -> Verification:
    """Fit query→database affine on ``src``→``dst`` [M, 2] and count the inliers."""
    m = src.shape[0]
    if m < MIN_MATCHES:
        return _rejected(m)
    threshold = max(params.min_threshold_px, params.threshold_fraction * max(dst_size))
    transform, mask = cv2.estimateAffine2D(
        src.astype(np.float32),
        dst.astype(np.float32),
        method=cv2.USAC_MAGSAC,
        ransacReprojThreshold=threshold,
        maxIters=params.max_iters,
        confidence=params.confidence,
    )
    if transform is None or mask is None or is_degenerate(transform, params):
        return _rejected(m)
    inlier = mask.ravel().astype(bool)
    count = min(distinct_count(src[inlier]), distinct_count(dst[inlier]))
    return Verification(count, inlier, transform.astype(np.float32))


@dataclass(frozen=True)
class Frames:
    """What verification knows of the two photos besides the matches: their sizes
    (width, height), how many keypoints the query has, and the inliers from which a fit
    is examined for overlays (the acceptance threshold: a fit below it is not a match,
    overlay or not)."""

    query_size: tuple[float, float]
    reference_size: tuple[float, float]
    query_keypoints: int
    examine_from: int = MIN_MATCHES


def verify(src: np.ndarray, dst: np.ndarray, frames: Frames, params: VerifyParams) -> Verification:
    """The fit of ``src`` → ``dst`` [M, 2] that is not frame-locked (module docstring), and
    its inliers; 0 when every fit is."""
    m = src.shape[0]
    keep = np.arange(m)
    for _ in range(params.max_overlay_peels + 1):
        result = fit(src[keep], dst[keep], frames.reference_size, params)
        if result.transform is None:
            return result if keep.size == m else _rejected(m)
        inliers = keep[result.mask]
        peel = _frame_locked_part(src[inliers], dst[inliers], result, frames, params)
        if peel is None:
            mask = np.zeros(m, bool)
            mask[inliers] = True
            return Verification(result.inliers, mask, result.transform)
        keep = np.setdiff1d(keep, inliers[peel], assume_unique=True)
    return _rejected(m)


def _frame_locked_part(
    src: np.ndarray, dst: np.ndarray, result: Verification, frames: Frames, params: VerifyParams
) -> np.ndarray | None:
    """The inliers of ``result`` [I] to peel off (a mask), or None when the fit stands."""
    if not params.peel_overlays or result.transform is None:
        return None
    if result.inliers < frames.examine_from:
        return None  # it cannot be accepted, overlay or not
    if _same_photo(src, frames, params):
        return None  # the same photo or view: its whole scene maps frame to frame
    tolerance = max(
        MIN_OVERLAY_TOLERANCE_PX, params.overlay_tolerance_fraction * max(frames.reference_size)
    )
    sizes = frames.query_size, frames.reference_size
    # most of the fit on one frame-locked map (a watermark's grid, step for step) ...
    locked, scale = frame_locked(src, dst, *sizes, tolerance)
    count = int(locked.sum())
    if max(MIN_MATCHES, params.overlay_share * len(src)) <= count and (
        pinned(src[locked], scale, tolerance, params.pin_scale)
        or len(src) < params.compact_fit_stands * frames.examine_from
    ):
        return locked
    # ... or part of it at the same place of both frames (a banner, a logo)
    placed = placed_alike(src, dst, *sizes, tolerance)
    if placed.sum() >= MIN_MATCHES:
        return placed
    return None


def _same_photo(points: np.ndarray, frames: Frames, params: VerifyParams) -> bool:
    """Whether a fit's inliers at ``points`` [N, 2] (query side) are the same photo or the
    same view (a copy, resized, warped a little) rather than an overlay: a large share of
    the query's keypoints, or a smaller one spread over most of its frame (a stamp sits in
    a band, a corner or on a word; a resized copy's matches fill the frame)."""
    if len(points) >= params.same_photo_fraction * frames.query_keypoints:
        return True
    if len(points) < params.resized_copy_fraction * frames.query_keypoints:
        return False
    extent = np.ptp(points, axis=0) / np.asarray(frames.query_size, np.float64)
    return bool(extent.min() >= params.resized_copy_extent)


class FailureCount:
    """A thread-safe count of candidates whose verification raised, one per index (the
    engine's, reported in its info and metrics) or per coordinator."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self.value += 1


@dataclass(frozen=True)
class Checked:
    """One shortlisted image verified: its putative matches, their locations on both
    sides and the fit."""

    putative: Putative
    src: np.ndarray  # [M, 2] query (x, y)
    dst: np.ndarray  # [M, 2] database (x, y)
    result: Verification


def verify_candidates(
    query_locations: np.ndarray,
    query_size: tuple[float, float],
    putatives: Sequence[Putative],
    images: Sequence[ImageMeta],
    params: VerifyParams,
    min_inliers: int,
    pool: ThreadPoolExecutor | None = None,
    alive: Callable[[], bool] = lambda: True,
    failures: FailureCount | None = None,
) -> Iterable[Checked]:
    """Each putative set verified against its image (``images`` indexed by
    ``Putative.image``), on the pool's threads (OpenCV releases the GIL). A candidate whose
    verification raises scores 0 and is logged: one bad image must not fail the search."""

    def check(put: Putative) -> Checked:
        if not alive():
            raise Cancelled("the caller went away during verification")
        src, dst = query_locations[put.query], put.locations
        meta = images[put.image]
        frames = Frames(query_size, (meta.width, meta.height), len(query_locations), min_inliers)
        try:
            return Checked(put, src, dst, verify(src, dst, frames, params))
        except Exception:
            log.exception("verifying candidate %r failed; skipped", meta.image_id)
            if failures is not None:
                failures.add()
            return Checked(put, src, dst, _rejected(len(src)))

    if pool is not None and len(putatives) > 1:
        return pool.map(check, putatives)
    return map(check, putatives)
