"""Verification, a search's fourth step: a robust affine fit (OpenCV USAC MAGSAC++) on
the matched locations of each shortlisted image.

The score is the number of inliers, counted over distinct locations on both sides, and a
fit whose transform is degenerate (collapsed, extremely stretched or scaled) scores zero:
that is how many-to-one or one-point clusters are kept from passing as matches.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from .errors import Cancelled
from .exact_matches import Putative
from .segment import ImageMeta

log = logging.getLogger(__name__)

MIN_MATCHES = 4


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


@dataclass(frozen=True)
class Verification:
    inliers: int
    mask: np.ndarray  # [M] bool over the putative matches
    transform: np.ndarray | None  # [2, 3] query → database


def _rejected(m: int) -> Verification:
    return Verification(0, np.zeros(m, bool), None)


def is_degenerate(transform: np.ndarray, params: VerifyParams) -> bool:
    s = np.linalg.svd(transform[:, :2].astype(np.float64), compute_uv=False)
    if s[1] <= 1e-9 or not np.isfinite(s).all():
        return True
    scale = float(np.sqrt(s[0] * s[1]))
    in_range = 1 / params.max_scale <= scale <= params.max_scale
    return bool(not in_range or s[0] / s[1] > params.max_anisotropy)


def distinct_count(points: np.ndarray) -> int:
    """Number of distinct locations (to the pixel)."""
    if points.shape[0] == 0:
        return 0
    return int(np.unique(np.round(points).astype(np.int64), axis=0).shape[0])


def verify(
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


class _Count:
    """A thread-safe count (candidates whose verification raised), for the metrics."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self.value += 1


VERIFY_FAILURES = _Count()


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
    putatives: Sequence[Putative],
    images: Sequence[ImageMeta],
    params: VerifyParams,
    pool: ThreadPoolExecutor | None = None,
    alive: Callable[[], bool] = lambda: True,
) -> Iterable[Checked]:
    """Each putative set verified against its image (``images`` indexed by
    ``Putative.image``), on the pool's threads (OpenCV releases the GIL). A candidate whose
    verification raises scores 0 and is logged: one bad image must not fail the search."""

    def check(put: Putative) -> Checked:
        if not alive():
            raise Cancelled("the caller went away during verification")
        src, dst = query_locations[put.query], put.locations
        meta = images[put.image]
        try:
            return Checked(put, src, dst, verify(src, dst, (meta.width, meta.height), params))
        except Exception:
            log.exception("verifying candidate %r failed; skipped", meta.image_id)
            VERIFY_FAILURES.add()
            return Checked(put, src, dst, _rejected(len(src)))

    if pool is not None and len(putatives) > 1:
        return pool.map(check, putatives)
    return map(check, putatives)
