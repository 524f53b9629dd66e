"""BASELINE — the seed's algorithm, rewritten here from its description, for comparison only.

The seed notebook looked every query descriptor up in a scipy cKDTree (k=10,
distance_upper_bound=0.8), collected candidate images with Python loops over the
neighbour lists, and verified EVERY candidate with scikit-image's RANSAC
(AffineTransform, min_samples=3, residual_threshold=20, max_trials=1000). The score is
the inlier count; the best-scoring image wins. Nothing of it is used by the services.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from scipy.spatial import cKDTree
from skimage.measure import ransac
from skimage.transform import AffineTransform

K = 10
DISTANCE_UPPER_BOUND = 0.8


class SeedBaseline:
    def __init__(self, descriptors: np.ndarray, locations: np.ndarray, boundaries: list[int]):
        self.locations_agg = locations
        self.boundaries = boundaries  # accumulated index boundaries, len = images + 1
        self.tree = cKDTree(descriptors)

    def _locations_to_use(self, image_index: int, indices: np.ndarray, query_locations):
        start, end = self.boundaries[image_index], self.boundaries[image_index + 1]
        q, db = [], []
        for i, row in enumerate(indices):  # the notebook's per-candidate loop
            for acc_index in row:
                if start <= acc_index < end:
                    q.append(query_locations[i])
                    db.append(self.locations_agg[acc_index])
                    break
        return np.array(q), np.array(db)

    def search(self, descriptors: np.ndarray, locations: np.ndarray, exclude: int | None = None):
        """Returns (best image index or None, its inliers, timing dict)."""
        t0 = time.perf_counter()
        n = len(self.locations_agg)
        # Leave-one-out: look up a few more neighbours, drop the query's own image, keep 10.
        _, idx = self.tree.query(
            descriptors, k=K + 5, distance_upper_bound=DISTANCE_UPPER_BOUND, workers=-1
        )
        if exclude is not None:
            lo, hi = self.boundaries[exclude], self.boundaries[exclude + 1]
            own = (idx >= lo) & (idx < hi)
            idx = np.where(own, n, idx)
            order = np.argsort(idx == n, axis=1, kind="stable")
            idx = np.take_along_axis(idx, order, axis=1)
        indices = idx[:, :K]
        t1 = time.perf_counter()
        unique_indices = np.array(list({val for val in indices.flatten() if val != n}))
        bounds = np.array(self.boundaries)
        unique_images = np.unique([np.argmax(bounds > i) - 1 for i in unique_indices])
        best, best_inliers = None, 0
        for image_index in unique_images:
            q, db = self._locations_to_use(int(image_index), indices, locations)
            if len(q) < 3:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _, inliers = ransac(
                    (db, q), AffineTransform, min_samples=3, residual_threshold=20, max_trials=1000
                )
            count = int(inliers.sum()) if inliers is not None else 0
            if count > best_inliers:
                best, best_inliers = int(image_index), count
        t2 = time.perf_counter()
        return (
            best,
            best_inliers,
            {
                "kdtree_ms": (t1 - t0) * 1e3,
                "verify_ms": (t2 - t1) * 1e3,
                "total_ms": (t2 - t0) * 1e3,
                "candidates": int(len(unique_images)),
            },
        )
